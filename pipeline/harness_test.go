package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/httpapi"
	"github.com/flashreturn/flashreturn/pipeline/streams"
)

// harness runs a real Daemon (embedded NATS with JetStream, Badger in a
// temp dir) and a client that publishes inbound events and collects every
// output from FR_OUT and FR_DLQ.
type harness struct {
	t      *testing.T
	d      *Daemon
	cancel context.CancelFunc
	done   chan error
	nc     *nats.Conn
	js     jetstream.JetStream

	col *testkit.Collector // FR_OUT and FR_DLQ from the start

	mu   sync.Mutex
	outs []outMsg // col's messages decoded so far (out decodes each once)
}

type outMsg struct {
	Subject string
	Data    map[string]any
	Raw     []byte
}

func startHarness(t *testing.T, policy string, mutate func(*Config)) *harness {
	t.Helper()
	pol, ok := core.Preset(policy)
	if !ok {
		t.Fatalf("unknown preset %s", policy)
	}
	cfg := Config{
		DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", HTTPAddr: "127.0.0.1:0",
		Policy: pol, Partitions: 8, ClockInterval: -1,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	return runHarness(t, cfg)
}

// outsideServer starts a NATS server apart from the daemon (streams
// layout, 8 partitions), for tests that store events while no daemon
// runs, and returns a daemon Config on it (preset policy, HTTP off) and
// a client. The server stops at the test's end.
func outsideServer(t *testing.T, policy string) (Config, jetstream.JetStream) {
	t.Helper()
	srv, err := streams.StartEmbedded(streams.EmbeddedOptions{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), Layout: streams.LayoutStreams, Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	pol, ok := core.Preset(policy)
	if !ok {
		t.Fatalf("unknown preset %s", policy)
	}
	_, js := testkit.Connect(t, srv.ClientURL())
	return Config{DataDir: t.TempDir(), NATSURL: srv.ClientURL(), Layout: streams.LayoutStreams, HTTPAddr: "off", Policy: pol, Partitions: 8, ClockInterval: -1}, js
}

// serveAPI is the HTTP handler the test daemons serve: the real query API
// and status page, as cmd/flashreturnd wires them.
func serveAPI(d *Daemon) http.Handler { return httpapi.New(d) }

func runHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	if cfg.HTTP == nil {
		cfg.HTTP = serveAPI
	}
	if cfg.Logger == nil && os.Getenv("FR_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, d: d, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- d.Run(ctx) }()
	select {
	case <-d.Started():
	case err := <-h.done:
		t.Fatalf("daemon stopped before starting: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not start within 30s")
	}
	h.waitFor("daemon ready", d.Ready)
	h.nc, h.js = testkit.Connect(t, d.ClientURL())
	h.col = testkit.Collect(t, h.js, wire.StreamOut, wire.StreamDLQ)
	t.Cleanup(func() { h.stop() })
	return h
}

// stop drains the daemon and checks that Run returned nil.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	if h.nc != nil {
		h.nc.Close()
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("daemon Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		h.t.Error("daemon did not drain within 15s")
	}
}

// waitFor waits up to 20 s for cond (testkit.WaitUntil).
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	testkit.WaitUntil(h.t, 20*time.Second, what, cond)
}

// pub publishes one inbound event with a JetStream ack. fields are merged
// into {"event_id","type","at","user_id"}.
func (h *harness) pub(kind, user, typ, at string, fields map[string]any) {
	h.t.Helper()
	id := fmt.Sprintf("e%d", time.Now().UnixNano())
	ev := map[string]any{"event_id": id, "type": typ, "at": at, "user_id": user}
	for k, v := range fields {
		ev[k] = v
	}
	b, _ := json.Marshal(ev)
	h.pubRaw("fr.in."+kind+"."+user, id, b)
}

func (h *harness) pubRaw(subject, msgID string, data []byte) {
	h.t.Helper()
	if msgID != "" {
		testkit.Publish(h.t, h.js, subject, msgID, data, 10*time.Second)
		return
	}
	// Without an ID a retry could store the event twice: one attempt.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.js.Publish(ctx, subject, data); err != nil {
		h.t.Fatalf("publish %s: %v", subject, err)
	}
}

func (h *harness) merchant(id string, ret, ship []string, rules []map[string]any) {
	h.t.Helper()
	ev := map[string]any{"event_id": "m-" + id + fmt.Sprint(time.Now().UnixNano()), "type": "merchant.updated", "at": "2026-11-01T00:00:00+08:00",
		"merchant_id": id, "return_addresses": ret, "ship_addresses": ship}
	if rules != nil {
		ev["rules"] = rules
	}
	b, _ := json.Marshal(ev)
	h.pubRaw("fr.merchant."+id, "", b)
	h.waitFor("merchant "+id+" in view", func() bool { return h.d.merchants.Lookup(id) != nil })
}

// out returns the outputs on subjects with the given prefix.
func (h *harness) out(prefix string) []outMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.col.From(len(h.outs)) {
		var v map[string]any
		_ = json.Unmarshal(m.Data, &v)
		h.outs = append(h.outs, outMsg{Subject: m.Subject, Data: v, Raw: m.Data})
	}
	var r []outMsg
	for _, o := range h.outs {
		if strings.HasPrefix(o.Subject, prefix) {
			r = append(r, o)
		}
	}
	return r
}

// waitOut waits until at least n outputs with the prefix exist and returns them.
func (h *harness) waitOut(prefix string, n int) []outMsg {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%d outputs on %s", n, prefix), func() bool { return len(h.out(prefix)) >= n })
	return h.out(prefix)
}

// order publishes a paid, shipped and delivered order.
func (h *harness) order(user, order, merchant string, paid int, deliveredAt string, extra map[string]any) {
	f := map[string]any{"order_id": order, "merchant_id": merchant, "category": "apparel", "size": "small",
		"paid_fen": paid, "seven_day": true, "city": "shanghai"}
	for k, v := range extra {
		f[k] = v
	}
	h.pub("order", user, "order.paid", "2026-11-10T10:00:00+08:00", f)
	if deliveredAt != "" {
		h.pub("order", user, "order.shipped", "2026-11-10T12:00:00+08:00", map[string]any{"order_id": order})
		h.pub("order", user, "order.delivered", deliveredAt, map[string]any{"order_id": order})
	}
}
