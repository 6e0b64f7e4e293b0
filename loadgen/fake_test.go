package loadgen

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startServer runs an embedded nats-server with JetStream on a free port,
// storing under t.TempDir(), with the contract's output streams and one
// inbound stream FR_IN on fr.in.>.
func startServer(t *testing.T) (*server.Server, jetstream.JetStream) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []jetstream.StreamConfig{
		{Name: "FR_OUT", Subjects: []string{"fr.out.>"}, Duplicates: 2 * time.Minute},
		{Name: "FR_DLQ", Subjects: []string{"fr.dlq.>"}},
		{Name: "FR_MERCHANT", Subjects: []string{"fr.merchant.>"}, MaxMsgsPerSubject: 1},
		{Name: "FR_IN", Subjects: []string{"fr.in.>"}, Duplicates: 2 * time.Minute},
	} {
		if _, err := js.CreateStream(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	return srv, js
}

// fakeDaemon is a tiny stand-in for flashreturnd: it reads FR_IN with a
// durable consumer, dead-letters malformed events, and answers each
// return.requested with a decision after delay (tmall-like rules on stars,
// amount, delivery and window), refunding approved requests on tracking.
// With serial set, each request takes delay of processing time in turn (a
// slow receiver); otherwise decisions are delayed in parallel.
type fakeDaemon struct {
	delay  time.Duration
	serial bool
	// planted faults, by request id
	skipDecision map[string]bool
	doubleRefund map[string]bool

	js        jetstream.JetStream
	mu        sync.Mutex
	stars     map[string]int
	paid      map[string]int64
	delivered map[string]time.Time
	approved  map[string]bool
	refunded  map[string]bool
	reqPaid   map[string]int64
	reqAmount map[string]int64
	wg        sync.WaitGroup
}

func (f *fakeDaemon) start(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	f.js = js
	f.stars, f.paid, f.delivered = map[string]int{}, map[string]int64{}, map[string]time.Time{}
	f.approved, f.refunded, f.reqPaid, f.reqAmount = map[string]bool{}, map[string]bool{}, map[string]int64{}, map[string]int64{}
	ctx := context.Background()
	cons, err := js.CreateConsumer(ctx, "FR_IN", jetstream.ConsumerConfig{Durable: "fake", AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { f.handle(m) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Stop(); <-cc.Closed(); f.wg.Wait() })
}

func (f *fakeDaemon) publish(subject string, v any) {
	b, _ := json.Marshal(v)
	_, _ = f.js.Publish(context.Background(), subject, b)
}

func (f *fakeDaemon) dlq(m jetstream.Msg, reason string) {
	f.publish("fr.dlq."+reason, map[string]any{"reason": reason, "error": reason, "subject": m.Subject(),
		"payload_b64": base64.StdEncoding.EncodeToString(m.Data())})
}

func (f *fakeDaemon) handle(m jetstream.Msg) {
	var ev map[string]any
	if err := json.Unmarshal(m.Data(), &ev); err != nil {
		f.dlq(m, "bad_json")
		return
	}
	str := func(k string) string { s, _ := ev[k].(string); return s }
	num := func(k string) (float64, bool) { n, ok := ev[k].(float64); return n, ok }
	user := m.Subject()[strings.LastIndexByte(m.Subject(), '.')+1:]
	typ := str("type")
	known := map[string]bool{typeOrderPaid: true, typeOrderShipped: true, typeOrderDelivered: true, typeCreditUpdated: true,
		typeReturnRequested: true, typeReturnCancelled: true, typeTracking: true, typePickupDone: true, typeInspection: true}
	switch {
	case !known[typ]:
		f.dlq(m, "unknown_type")
		return
	case str("user_id") != user:
		f.dlq(m, "subject_mismatch")
		return
	case typ == typeOrderPaid && str("order_id") == "":
		f.dlq(m, "missing_field")
		return
	}
	at, _ := time.Parse(time.RFC3339Nano, str("at"))
	f.mu.Lock()
	defer f.mu.Unlock()
	switch typ {
	case typeCreditUpdated:
		s, _ := num("stars")
		if s < 1 || s > 5 {
			f.dlq(m, "bad_value")
			return
		}
		f.stars[user] = int(s)
	case typeOrderPaid:
		p, _ := num("paid_fen")
		f.paid[str("order_id")] = int64(p)
	case typeOrderDelivered:
		f.delivered[str("order_id")] = at
	case typeReturnRequested:
		id, order := str("request_id"), str("order_id")
		paid, known := f.paid[order]
		amount := paid
		if a, ok := num("amount_fen"); ok {
			amount = int64(a)
		}
		decision, reasons := decisionApproved, []string{}
		switch {
		case !known:
			decision, reasons = decisionRejected, []string{reasonOrderUnknown}
		case amount > paid:
			decision, reasons = decisionRejected, []string{reasonAmountExceedsPaid}
		default:
			if f.stars[user] < 3 {
				reasons = append(reasons, "credit_low")
			}
			if d, ok := f.delivered[order]; !ok {
				reasons = append(reasons, "not_delivered")
			} else if at.Sub(d) > 7*24*time.Hour {
				reasons = append(reasons, "outside_window")
			}
			if len(reasons) > 0 {
				decision = decisionReview
			}
		}
		f.approved[id], f.reqPaid[id], f.reqAmount[id] = decision == decisionApproved, paid, amount
		if f.skipDecision[id] {
			return
		}
		out := map[string]any{"request_id": id, "order_id": order, "user_id": user, "decision": decision, "reasons": reasons,
			"policy": map[string]string{"name": "tmall-fast-return", "version": "fake"}}
		if f.serial {
			time.Sleep(f.delay) // the receiver's own processing time
			f.publish("fr.out.decision."+user, out)
			return
		}
		f.wg.Add(1)
		time.AfterFunc(f.delay, func() { defer f.wg.Done(); f.publish("fr.out.decision."+user, out) })
	case typeTracking, typePickupDone:
		id := str("request_id")
		if !f.approved[id] || f.refunded[id] {
			return
		}
		f.refunded[id] = true
		n := 1
		if f.doubleRefund[id] {
			n = 2
		}
		for i := 0; i < n; i++ {
			f.publish("fr.out.refund."+user, map[string]any{"refund_id": id + "-r", "request_id": id, "amount_fen": f.reqAmount[id]})
		}
	}
}
