package loadgen

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/loadgen/contract"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// startServer runs an embedded nats-server with JetStream on a free port
// (testkit.StartServer), storing under t.TempDir(), with the contract's
// output streams and one inbound stream FR_IN on fr.in.>.
func startServer(t *testing.T) (*server.Server, jetstream.JetStream) {
	t.Helper()
	srv := testkit.StartServer(t)
	_, js := testkit.Connect(t, srv.ClientURL())
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

// fakeDaemon is a tiny stand-in for flashreturnd under a tmall-like
// policy: it reads FR_IN with a durable consumer, dead-letters malformed
// events and those that cannot stand, and answers each return.requested
// with a decision after delay (stars, kind, delivery and window, the
// per-order ceiling, duplicates and the exposure cap of promised
// advances); it refunds approved requests on tracking (advance), resolves
// reviews on the first answer, and fires the review and return deadlines
// when a request arrives already past them (the world's aged and
// unreturned requests). With serial set, each request takes delay of
// processing time in turn (a slow receiver); otherwise decisions are
// delayed in parallel.
type fakeDaemon struct {
	delay  time.Duration
	serial bool
	// planted faults, by request id
	skipDecision map[string]bool
	doubleRefund map[string]bool

	js          jetstream.JetStream
	mu          sync.Mutex
	stars       map[string]int
	orders      map[string]*fakeOrder
	reqs        map[string]*fakeReq
	outstanding map[string]int64 // per user: promised and advanced money
	wg          sync.WaitGroup
}

type fakeOrder struct {
	user      string
	paid      int64
	delivered time.Time
	reserved  int64  // reserved or refunded against paid
	open      string // the open request, if any
}

type fakeReq struct {
	id, user, order, kind string
	amount                int64
	status                string // approved, reviewed (approved after review), review, over
	safety                bool   // the review waits for a person
	refunded              bool
}

var fakePolicy = map[string]string{"name": "tmall-fast-return", "version": "fake"}

func (f *fakeDaemon) start(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	f.js = js
	f.stars, f.orders, f.reqs, f.outstanding = map[string]int{}, map[string]*fakeOrder{}, map[string]*fakeReq{}, map[string]int64{}
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

// out publishes an output about request r, naming the policy.
func (f *fakeDaemon) out(kind string, r *fakeReq, fields map[string]any) {
	fields["request_id"], fields["user_id"], fields["policy"] = r.id, r.user, fakePolicy
	f.publish("fr.out."+kind+"."+r.user, fields)
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
	known := map[string]bool{contract.TypeOrderPaid: true, contract.TypeOrderShipped: true, contract.TypeOrderDelivered: true, contract.TypeCreditUpdated: true,
		contract.TypeReturnRequested: true, contract.TypeReturnCancelled: true, contract.TypeTracking: true, contract.TypePickupDone: true, contract.TypeInspection: true,
		contract.TypeReviewApproved: true, contract.TypeReviewRejected: true}
	amount, hasAmount := num("amount_fen")
	at, _ := time.Parse(time.RFC3339Nano, str("at"))
	var stored time.Time
	if md, err := m.Metadata(); err == nil {
		stored = md.Timestamp
	}
	switch {
	case !known[typ]:
		f.dlq(m, "unknown_type")
		return
	case str("user_id") != user:
		f.dlq(m, "subject_mismatch")
		return
	case typ == contract.TypeOrderPaid && str("order_id") == "":
		f.dlq(m, "missing_field")
		return
	case hasAmount && amount <= 0:
		f.dlq(m, "bad_value")
		return
	case at.Sub(stored) > 5*time.Minute:
		f.dlq(m, "future_time")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs[str("request_id")]
	if r != nil && r.user != user {
		r = nil
	}
	switch typ {
	case contract.TypeOrderShipped, contract.TypeOrderDelivered:
		o := f.orders[str("order_id")]
		if o == nil || o.user != user {
			f.dlq(m, "unknown_order")
			return
		}
		if typ == contract.TypeOrderDelivered {
			o.delivered = at
		}
	case contract.TypeReturnCancelled, contract.TypeTracking, contract.TypePickupDone, contract.TypeInspection, contract.TypeReviewApproved, contract.TypeReviewRejected:
		if r == nil {
			f.dlq(m, "unknown_request")
			return
		}
	}
	switch typ {
	case contract.TypeCreditUpdated:
		s, _ := num("stars")
		if s < 1 || s > 5 {
			f.dlq(m, "bad_value")
			return
		}
		f.stars[user] = int(s)
	case contract.TypeOrderPaid:
		p, _ := num("paid_fen")
		f.orders[str("order_id")] = &fakeOrder{user: user, paid: int64(p)}
	case contract.TypeReturnRequested:
		f.requested(m, str("request_id"), str("order_id"), str("kind"), user, int64(amount), hasAmount, at, stored)
	case contract.TypeTracking, contract.TypePickupDone:
		if r.status != "approved" || r.refunded {
			return
		}
		r.refunded = true
		n := 1
		if f.doubleRefund[r.id] {
			n = 2
		}
		for range n {
			f.out(contract.OutRefund, r, map[string]any{"refund_id": r.id + "-r", "amount_fen": r.amount, "trigger": contract.TriggerTracking, "advance": true})
		}
	case contract.TypeInspection:
		o := f.orders[r.order]
		bad := str("outcome") != "ok"
		switch {
		case r.status == "approved":
			f.outstanding[r.user] -= r.amount
			if bad && r.refunded {
				f.out(contract.OutClawback, r, map[string]any{"amount_fen": r.amount, "outcome": str("outcome")})
				o.reserved -= r.amount
			}
		case r.status == "reviewed" && r.kind == "return_refund":
			if bad {
				o.reserved -= r.amount
			} else {
				f.out(contract.OutRefund, r, map[string]any{"refund_id": r.id + "-r", "amount_fen": r.amount, "trigger": contract.TriggerInspection, "advance": false})
			}
		default:
			return
		}
		f.end(r)
	case contract.TypeReturnCancelled:
		switch {
		case r.status == "approved" && !r.refunded:
			f.outstanding[r.user] -= r.amount
			f.orders[r.order].reserved -= r.amount
		case r.status == "review":
		default:
			return
		}
		f.end(r)
	case contract.TypeReviewApproved, contract.TypeReviewRejected:
		if r.status == "review" {
			f.resolve(r, typ == contract.TypeReviewApproved, str("by"), str("at"))
		}
	}
}

// end closes request r: its order has no open request any more.
func (f *fakeDaemon) end(r *fakeReq) {
	r.status = "over"
	if o := f.orders[r.order]; o != nil && o.open == r.id {
		o.open = ""
	}
}

// resolve carries out a review's answer (or its deadline, by "timeout").
func (f *fakeDaemon) resolve(r *fakeReq, approve bool, by, at string) {
	o := f.orders[r.order]
	res := map[string]any{"resolution_id": r.id + "-res", "order_id": r.order, "by": by, "at": at, "reasons": []string{}}
	switch {
	case !approve:
		res["outcome"] = contract.ResolutionRejected
		f.end(r)
	case r.kind != "exchange" && o.reserved+r.amount > o.paid:
		res["outcome"], res["reasons"] = contract.ResolutionRejected, []string{contract.ReasonAmountExceedsPaid}
		f.end(r)
	default:
		res["outcome"] = contract.ResolutionApproved
		r.status = "reviewed"
		if r.kind != "exchange" {
			o.reserved += r.amount
		}
	}
	f.out(contract.OutResolution, r, res)
	if r.status == "reviewed" && r.kind == "refund_only" {
		f.out(contract.OutRefund, r, map[string]any{"refund_id": r.id + "-r", "amount_fen": r.amount, "trigger": contract.TriggerApproval, "advance": false})
		f.end(r)
	}
}

func (f *fakeDaemon) requested(m jetstream.Msg, id, order, kind, user string, amount int64, hasAmount bool, at, stored time.Time) {
	if _, ok := f.reqs[id]; ok {
		return // redelivery
	}
	o := f.orders[order]
	if o != nil && o.user != user {
		o = nil
	}
	var paid int64
	if o != nil {
		paid = o.paid
	}
	if !hasAmount {
		amount = paid
	}
	r := &fakeReq{id: id, user: user, order: order, kind: kind, amount: amount}
	f.reqs[id] = r
	decision, reasons := contract.DecisionApproved, []string{}
	switch {
	case o == nil:
		decision, reasons = contract.DecisionRejected, []string{contract.ReasonOrderUnknown}
	case amount > paid || amount+o.reserved > paid || o.open != "":
		decision = contract.DecisionRejected
		if amount > paid || amount+o.reserved > paid {
			reasons = append(reasons, contract.ReasonAmountExceedsPaid)
		}
		if o.open != "" {
			reasons = append(reasons, contract.ReasonDuplicateRequest)
		}
	default:
		if kind != "return_refund" {
			reasons = append(reasons, "kind_not_eligible")
		}
		if f.stars[user] < 3 {
			reasons = append(reasons, "credit_low")
		}
		if o.delivered.IsZero() || at.Before(o.delivered) {
			reasons = append(reasons, "not_delivered")
		} else if at.Sub(o.delivered) > 7*24*time.Hour {
			reasons = append(reasons, "outside_window")
		}
		if f.outstanding[user]+amount > exposureCapFen {
			reasons = append(reasons, contract.ReasonExposureCap)
			r.safety = true
		}
		if len(reasons) > 0 {
			decision = contract.DecisionReview
		}
	}
	r.status = "over"
	switch decision {
	case contract.DecisionApproved:
		r.status = "approved"
		o.open = id
		o.reserved += amount
		f.outstanding[user] += amount
	case contract.DecisionReview:
		r.status = "review"
		o.open = id
	}
	if !f.skipDecision[id] {
		out := map[string]any{"request_id": id, "order_id": order, "user_id": user, "decision": decision, "reasons": reasons,
			"policy": fakePolicy}
		if f.serial {
			time.Sleep(f.delay) // the receiver's own processing time
			f.publish("fr.out.decision."+user, out)
		} else {
			f.wg.Add(1)
			time.AfterFunc(f.delay, func() { defer f.wg.Done(); f.publish("fr.out.decision."+user, out) })
		}
	}
	// Deadlines that had passed when the request was stored fire at once.
	switch {
	case r.status == "review" && !r.safety && stored.Sub(at) > 72*time.Hour:
		f.resolve(r, true, contract.ByTimeout, at.Add(72*time.Hour).Format(time.RFC3339Nano))
	case r.status == "approved" && kind != "refund_only" && stored.Sub(at) > 7*24*time.Hour:
		f.outstanding[user] -= amount
		o.reserved -= amount
		f.end(r)
		f.out(contract.OutResolution, r, map[string]any{"resolution_id": id + "-close", "order_id": order, "outcome": contract.ResolutionClosed,
			"by": contract.ByTimeout, "reasons": []string{}, "at": at.Add(7 * 24 * time.Hour).Format(time.RFC3339Nano)})
	}
}

// exposureCapFen is the shipped presets' cap on advanced and promised
// money per shopper (the audit's presetExposureCapFen), which the fake
// applies like the daemon.
const exposureCapFen = 500000
