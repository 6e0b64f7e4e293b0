package pipeline

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/internal/wire"
)

// TestMissedPickupFiresFromClockEvents: a pickup window that ends with no
// pickup.done is compensated once, when a clock event moves the
// partition's event time past the window's end.
func TestMissedPickupFiresFromClockEvents(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	h.pub("credit", "uc", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	h.order("uc", "o1", "m1", 5000, "2026-11-11T15:00:00+08:00", nil)
	h.pub("return", "uc", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": true})
	h.waitOut("fr.out.pickup.uc", 1)
	p := wire.Partition("uc", 8)
	tick := func(at string) {
		ts, _ := time.Parse(time.RFC3339, at)
		h.pubRaw("fr.in.clock."+wire.ClockToken(p, 8), wire.ClockMsgID(p, ts), wire.AppendClock(nil, p, ts))
	}
	tick("2026-11-12T12:00:00+08:00") // exactly the end: not yet passed
	tick("2026-11-12T12:00:01+08:00")
	tick("2026-11-12T13:00:00+08:00")
	c := h.waitOut("fr.out.compensation.uc", 1)[0].Data
	if c["reason"] != "pickup_missed" || c["amount_fen"] != float64(500) {
		t.Fatalf("compensation = %v", c)
	}
	// A late pickup.done changes nothing; one more tick fires nothing more.
	h.pub("logistics", "uc", "pickup.done", "2026-11-12T13:30:00+08:00", map[string]any{"request_id": "r1"})
	h.waitOut("fr.out.refund.uc", 1)
	tick("2026-11-12T14:00:00+08:00")
	h.pub("credit", "uc", "credit.updated", "2026-11-12T15:00:00+08:00", map[string]any{"stars": 5})
	h.waitFor("credit applied", func() bool {
		u, ok, _ := h.d.store.ReadUser(p, "uc")
		return ok && u.MaxAt >= mustTime("2026-11-12T15:00:00+08:00")
	})
	if n := len(h.out("fr.out.compensation.")); n != 1 {
		t.Fatalf("%d compensations, want 1", n)
	}
}

func mustTime(s string) int64 {
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return ts.UnixNano()
}

// TestRedeliveryAndDuplicates: the same event published twice (same
// Nats-Msg-Id) is stored once; a return.requested with a known request_id
// but a new event_id is a redelivery and yields no output.
func TestRedeliveryAndDuplicates(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	body := `{"event_id":"dup1","type":"return.requested","at":"2026-11-12T10:00:00+08:00","user_id":"ud","request_id":"r1","order_id":"o9","kind":"return_refund","reason":"no_reason","pickup":false}`
	h.pubRaw("fr.in.return.ud", "dup1", []byte(body))
	h.pubRaw("fr.in.return.ud", "dup1", []byte(body))
	h.pubRaw("fr.in.return.ud", "dup2", []byte(body))
	h.pub("return", "ud", "return.requested", "2026-11-12T10:01:00+08:00",
		map[string]any{"request_id": "r2", "order_id": "o9", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	decs := h.waitOut("fr.out.decision.ud", 2)
	h.waitFor("r2 applied", func() bool { return len(h.out("fr.out.decision.ud")) >= 2 })
	if len(decs) != 2 || decs[0].Data["request_id"] != "r1" || decs[1].Data["request_id"] != "r2" {
		t.Fatalf("decisions = %v", decs)
	}
}

// TestQueryAPI reads a request's stage, effects and trace over HTTP.
func TestQueryAPI(t *testing.T) {
	h := startHarness(t, "douyin-lightning", nil)
	h.merchant("m1", []string{"addr A"}, []string{"addr B"}, nil)
	h.pub("credit", "uq", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 4})
	h.order("uq", "o1", "m1", 30001, "2026-11-11T15:00:00+08:00", nil)
	h.pub("return", "uq", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "dislike", "pickup": false})
	h.waitOut("fr.out.decision.uq", 1)
	get := func(path string) (int, map[string]any) {
		resp, err := http.Get("http://" + h.d.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var v map[string]any
		_ = json.Unmarshal(b, &v)
		return resp.StatusCode, v
	}
	var v map[string]any
	h.waitFor("request visible", func() bool {
		code, body := get("/v1/users/uq/requests/r1")
		v = body
		return code == 200
	})
	if v["stage"] != "review" || v["decision"] != "review" || v["order_id"] != "o1" {
		t.Fatalf("request view = %v", v)
	}
	reasons := fmt.Sprint(v["reasons"])
	if reasons != "[amount_over_cap merchant_address_mismatch]" {
		t.Fatalf("reasons = %s", reasons)
	}
	trace, _ := v["trace"].([]any)
	if len(trace) == 0 {
		t.Fatalf("no trace in %v", v)
	}
	if pol, _ := v["policy"].(map[string]any); pol["name"] != "douyin-lightning" || pol["version"] == "" {
		t.Fatalf("policy = %v", v["policy"])
	}
	if code, _ := get("/v1/users/uq/requests/nope"); code != 404 {
		t.Fatalf("unknown request: %d", code)
	}
	if code, _ := get("/v1/users/nobody"); code != 404 {
		t.Fatalf("unknown user: %d", code)
	}
	code, u := get("/v1/users/uq")
	if code != 200 || u["stars"] != float64(4) || fmt.Sprint(u["open_requests"]) != "[r1]" {
		t.Fatalf("user view %d %v", code, u)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := get(p); code != 200 {
			t.Fatalf("%s: %d", p, code)
		}
	}
}

// TestNATSOutageThenBack runs the daemon against an external server that
// goes away for a while: publishes fail, nothing is acked or lost, and
// processing resumes when the server is back.
func TestNATSOutageThenBack(t *testing.T) {
	storeDir := t.TempDir()
	srv := testkit.StartServer(t, func(o *server.Options) { o.StoreDir = storeDir })
	port := srv.Addr().(interface{ String() string }).String()
	pol, _ := core.Preset("tmall-fast-return")
	h := runHarness(t, Config{DataDir: t.TempDir(), NATSURL: srv.ClientURL(), HTTPAddr: "127.0.0.1:0", Policy: pol, Partitions: 4, ClockInterval: -1,
		OutDuplicates: time.Second})
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	h.pub("return", "uo", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r0", "order_id": "x", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	h.waitOut("fr.out.decision.uo", 1)

	// Publish a burst and take the server away while it is in flight.
	for i := 1; i <= 20; i++ {
		h.pub("return", "uo", "return.requested", "2026-11-12T10:00:00+08:00",
			map[string]any{"request_id": fmt.Sprintf("r%d", i), "order_id": "x", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	h.waitFor("daemon notices the outage", func() bool { return !h.d.nc.IsConnected() })
	testkit.StartServer(t, func(o *server.Options) { o.Port, o.StoreDir = mustPort(t, port), storeDir })
	h.waitFor("client reconnected", func() bool { return h.nc.IsConnected() })
	h.waitFor("daemon ready again", h.d.Ready)
	// A sentinel on the same user: once it is decided, everything before it is.
	h.pub("return", "uo", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "sentinel", "order_id": "x", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	h.waitFor("sentinel decided", func() bool {
		for _, d := range h.out("fr.out.decision.uo") {
			if d.Data["request_id"] == "sentinel" {
				return true
			}
		}
		return false
	})
	decs := h.out("fr.out.decision.uo")
	seen := map[any]int{}
	for _, d := range decs {
		seen[d.Data["request_id"]]++
	}
	if len(seen) != 22 || len(decs) != 22 {
		t.Fatalf("%d decisions for %d requests, want 22 each: %v", len(decs), len(seen), seen)
	}
	// With FR_OUT's duplicate window at 1 s, a round republished after the
	// restart would be stored twice: the markers keep it once.
	for id, n := range msgIDCounts(t, h.js) {
		if n != 1 {
			t.Errorf("Nats-Msg-Id %s stored %d times", id, n)
		}
	}
}

func mustPort(t *testing.T, hostport string) int {
	var port int
	if _, err := fmt.Sscanf(hostport[len("127.0.0.1:"):], "%d", &port); err != nil {
		t.Fatalf("port of %q: %v", hostport, err)
	}
	return port
}
