package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/httpapi"
	"github.com/flashreturn/flashreturn/pipeline/streams"
)

// The after-sales lifecycle end to end, through the real daemon (embedded
// NATS with JetStream, Badger): review answers, the review and return
// deadlines, and input that cannot stand (domain.md).

// tick publishes a clock event dated at into the partition of user, which
// moves that partition's event time (and fires its due timers).
func (h *harness) tick(user, at string) {
	h.t.Helper()
	p := wire.Partition(user, h.d.cfg.Partitions)
	ts, err := time.Parse(time.RFC3339, at)
	if err != nil {
		h.t.Fatal(err)
	}
	h.pubRaw("fr.in.clock."+wire.ClockToken(p, h.d.cfg.Partitions), wire.ClockMsgID(p, ts), wire.AppendClock(nil, p, ts))
}

// one returns the single output on subject prefix about request id,
// waiting for it, and fails if there is more than one.
func (h *harness) one(prefix, id string) map[string]any {
	h.t.Helper()
	var got []map[string]any
	h.waitFor(prefix+" for "+id, func() bool {
		got = got[:0]
		for _, o := range h.out(prefix) {
			if o.Data["request_id"] == id {
				got = append(got, o.Data)
			}
		}
		return len(got) > 0
	})
	if len(got) != 1 {
		h.t.Fatalf("%d outputs on %s for %s: %v", len(got), prefix, id, got)
	}
	return got[0]
}

// getJSON fetches path from the daemon's HTTP endpoint into v.
func (h *harness) getJSON(path string, v any) int {
	h.t.Helper()
	resp, err := http.Get("http://" + h.d.HTTPAddr() + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			h.t.Fatalf("%s: %v: %s", path, err, b)
		}
	}
	return resp.StatusCode
}

func policyOf(t *testing.T, out map[string]any) string {
	t.Helper()
	p, ok := out["policy"].(map[string]any)
	if !ok || p["name"] == "" || p["version"] == "" {
		t.Fatalf("output without policy: %v", out)
	}
	return fmt.Sprint(p["name"], "/", p["version"])
}

// TestReviewAnsweredByMerchant: a request in review approved by its
// merchant gets one resolution (with the return address and the note), a
// pickup from the answer's time, and the refund only when the inspection
// comes back ok (trigger inspection, not an advance); a second answer
// changes nothing. The query API follows it from review to feedback.
func TestReviewAnsweredByMerchant(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	h.merchant("m1", []string{"Hangzhou desk"}, []string{"Hangzhou desk"}, nil)
	h.pub("credit", "ra", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	h.order("ra", "o1", "m1", 12900, "2026-11-11T15:00:00+08:00", nil)
	h.pub("return", "ra", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "quality", "pickup": true})
	dec := h.one("fr.out.decision.ra", "r1")
	if dec["decision"] != "review" {
		t.Fatalf("decision %v", dec)
	}
	var rv httpapi.RequestView
	h.waitFor("request in review in the query API", func() bool {
		return h.getJSON("/v1/users/ra/requests/r1", &rv) == http.StatusOK && rv.Stage == "review"
	})
	if rv.Deadline == nil || rv.Deadline.Timer != "review" {
		t.Fatalf("review deadline not shown: %+v", rv.Deadline)
	}
	// The query API's decision record says when it was decided exactly as
	// the decision output does (zone and format).
	if rv.Record == nil || rv.Record.DecidedAt != dec["decided_at"] {
		t.Fatalf("decision record decided_at %v, the output's %v", rv.Record, dec["decided_at"])
	}
	h.pub("review", "ra", "review.approved", "2026-11-12T11:00:00+08:00", map[string]any{"request_id": "r1", "by": "merchant", "note": "photos fine"})
	res := h.one("fr.out.resolution.ra", "r1")
	if res["outcome"] != "approved" || res["by"] != "merchant" || res["return_address"] != "Hangzhou desk" ||
		res["note"] != "photos fine" || res["resolution_id"] != "rs.ra.r1" || res["at"] != "2026-11-12T11:00:00.000+08:00" {
		t.Fatalf("resolution %v", res)
	}
	pk := h.one("fr.out.pickup.ra", "r1")
	if pk["window_start"] != "2026-11-12T11:00:00.000+08:00" || pk["replace"] != false {
		t.Fatalf("pickup %v", pk)
	}
	// A second answer, and tracking: nothing (a reviewed approval pays on
	// the inspection).
	h.pub("review", "ra", "review.rejected", "2026-11-12T11:05:00+08:00", map[string]any{"request_id": "r1", "by": "platform"})
	h.pub("logistics", "ra", "logistics.tracking", "2026-11-12T12:00:00+08:00", map[string]any{"request_id": "r1", "tracking_no": "SF1"})
	h.pub("inspection", "ra", "inspection.result", "2026-11-14T10:00:00+08:00", map[string]any{"request_id": "r1", "outcome": "ok"})
	rf := h.one("fr.out.refund.ra", "r1")
	if rf["trigger"] != "inspection" || rf["advance"] != false || rf["amount_fen"] != float64(12900) {
		t.Fatalf("refund %v", rf)
	}
	h.one("fr.out.trust.ra", "r1")
	if n := len(h.out("fr.out.resolution.ra")); n != 1 {
		t.Fatalf("%d resolutions, want 1", n)
	}
	want := policyOf(t, dec)
	for _, o := range h.out("fr.out.") {
		if o.Data["user_id"] == "ra" && policyOf(t, o.Data) != want {
			t.Fatalf("%s names policy %s, its decision %s", o.Subject, policyOf(t, o.Data), want)
		}
	}
	h.waitFor("request finished in the query API", func() bool {
		return h.getJSON("/v1/users/ra/requests/r1", &rv) == http.StatusOK && rv.Stage == "feedback"
	})
	if rv.Resolution == nil || rv.Resolution.By != "merchant" || rv.Resolution.Note != "photos fine" || rv.Refund == nil || !rv.Refund.Sent {
		t.Fatalf("query API after the refund: %+v %+v", rv.Resolution, rv.Refund)
	}
	var uv httpapi.UserView
	h.getJSON("/v1/users/ra", &uv)
	if len(uv.Orders) != 1 || uv.Orders[0].RefundedFen != 12900 || uv.Orders[0].ReservedFen != 0 {
		t.Fatalf("order money %+v", uv.Orders)
	}
}

// TestReviewResolvedByTimeout: a merchant silent for 72 hours (partition
// event time, moved here by clock events) lets the platform approve a
// request that failed fast-track rules only; one that failed a safety
// rule waits for a person.
func TestReviewResolvedByTimeout(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	h.merchant("m1", []string{"desk"}, []string{"desk"}, nil)
	h.pub("credit", "rt", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	h.order("rt", "o1", "m1", 5000, "2026-11-11T15:00:00+08:00", nil)
	h.pub("return", "rt", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r1", "order_id": "o1", "kind": "refund_only", "reason": "no_reason", "pickup": false})
	if d := h.one("fr.out.decision.rt", "r1"); d["decision"] != "review" {
		t.Fatalf("decision %v", d)
	}
	h.tick("rt", "2026-11-15T10:00:00+08:00") // the deadline itself: not passed
	h.tick("rt", "2026-11-15T10:00:01+08:00")
	res := h.one("fr.out.resolution.rt", "r1")
	if res["outcome"] != "approved" || res["by"] != "timeout" || res["at"] != "2026-11-15T10:00:00.000+08:00" {
		t.Fatalf("resolution %v", res)
	}
	rf := h.one("fr.out.refund.rt", "r1")
	if rf["trigger"] != "approval" || rf["advance"] != false {
		t.Fatalf("refund %v", rf)
	}
}

// TestLateEventsKeepEventTimeOrder: events dated before their
// partition's clock (a backlog, a late publisher) keep event-time order
// within their shopper. A merchant answer dated after a passed review
// deadline loses to the timeout although no clock move came between the
// request and the answer (before the fix the answer won: loadgen's
// throughput-mode audit, review_resolved), and a pickup.done dated inside
// its window counts although the clock is past the window's end: no
// pickup_missed compensation.
func TestLateEventsKeepEventTimeOrder(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	h.merchant("m1", []string{"desk"}, []string{"desk"}, nil)
	h.pub("credit", "ro", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	h.order("ro", "o1", "m1", 5000, "2026-11-11T15:00:00+08:00", nil)
	h.order("ro", "o2", "m1", 6000, "2026-11-11T15:00:00+08:00", nil)
	h.tick("ro", "2026-11-20T00:00:00+08:00")
	h.pub("return", "ro", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r2", "order_id": "o2", "kind": "return_refund", "reason": "no_reason", "pickup": true})
	h.pub("logistics", "ro", "pickup.done", "2026-11-12T10:30:00+08:00", map[string]any{"request_id": "r2"})
	h.pub("return", "ro", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r1", "order_id": "o1", "kind": "refund_only", "reason": "no_reason", "pickup": false})
	h.pub("review", "ro", "review.approved", "2026-11-19T09:00:00+08:00", map[string]any{"request_id": "r1", "by": "merchant"})
	if d := h.one("fr.out.decision.ro", "r1"); d["decision"] != "review" {
		t.Fatalf("decision %v", d)
	}
	res := h.one("fr.out.resolution.ro", "r1")
	if res["outcome"] != "approved" || res["by"] != "timeout" || res["at"] != "2026-11-15T10:00:00.000+08:00" {
		t.Fatalf("resolution %v, want approved by timeout at the deadline", res)
	}
	h.one("fr.out.refund.ro", "r1")
	// r2's events were applied before r1's (one shopper, one partition,
	// stream order), so its outputs are all in by now.
	if rf := h.one("fr.out.refund.ro", "r2"); rf["amount_fen"] != float64(6000) {
		t.Fatalf("refund of r2 %v", rf)
	}
	if c := h.out("fr.out.compensation.ro"); len(c) != 0 {
		t.Fatalf("compensation for a pickup done inside its window: %v", c)
	}
}

// TestReturnClosedNotReturned: jd advances a return_refund at approval;
// nothing comes back within 7 days, so the request is closed, the advance
// clawed back (not_returned), trust feedback sent with the policy's
// penalty, and the shopper's next request is trust_flagged.
func TestReturnClosedNotReturned(t *testing.T) {
	h := startHarness(t, "jd-lightning-refund", nil)
	h.merchant("jd", []string{"Beijing returns"}, []string{"Beijing warehouse"}, nil)
	h.pub("credit", "rn", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 4})
	h.order("rn", "o1", "jd", 9000, "2026-11-11T15:00:00+08:00", nil)
	h.order("rn", "o2", "jd", 9000, "2026-11-18T15:00:00+08:00", nil)
	h.pub("return", "rn", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "quality", "pickup": false})
	if rf := h.one("fr.out.refund.rn", "r1"); rf["trigger"] != "approval" || rf["advance"] != true {
		t.Fatalf("refund %v", rf)
	}
	h.tick("rn", "2026-11-19T10:00:01+08:00")
	res := h.one("fr.out.resolution.rn", "r1")
	if res["outcome"] != "closed" || res["by"] != "timeout" || res["resolution_id"] != "rs.rn.r1.closed" {
		t.Fatalf("resolution %v", res)
	}
	cb := h.one("fr.out.clawback.rn", "r1")
	tr := h.one("fr.out.trust.rn", "r1")
	if cb["outcome"] != "not_returned" || cb["amount_fen"] != float64(9000) || tr["outcome"] != "not_returned" || tr["penalty"] != float64(50) {
		t.Fatalf("clawback %v trust %v", cb, tr)
	}
	h.pub("return", "rn", "return.requested", "2026-11-19T11:00:00+08:00",
		map[string]any{"request_id": "r2", "order_id": "o2", "kind": "return_refund", "reason": "quality", "pickup": false})
	if d := h.one("fr.out.decision.rn", "r2"); d["decision"] != "review" || !slices.Contains(reasonsOf(d), "trust_flagged") {
		t.Fatalf("next request %v, want review with trust_flagged", d)
	}
}

// TestInputThatCannotStand: an event about an order or a request the
// shopper does not have, an event dated too far in the future, and an
// amount of 0 each go to the dead-letter stream with their own reason and
// the subject they were published to; the valid event after each is
// processed, and the future one did not move the partition's clock.
func TestInputThatCannotStand(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	h.merchant("m1", []string{"desk"}, []string{"desk"}, nil)
	h.pub("credit", "ub", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	h.order("ub", "o1", "m1", 5000, "2026-11-11T15:00:00+08:00", nil)
	h.pub("order", "ub", "order.delivered", "2026-11-11T16:00:00+08:00", map[string]any{"order_id": "never-paid"})
	h.pub("return", "ub", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": true})
	h.one("fr.out.decision.ub", "r1")
	h.pub("logistics", "ub", "logistics.tracking", "2026-11-12T10:10:00+08:00", map[string]any{"request_id": "nobody", "tracking_no": "X"})
	h.pub("review", "ub", "review.approved", "2026-11-12T10:11:00+08:00", map[string]any{"request_id": "nobody", "by": "merchant"})
	future := time.Now().Add(time.Hour).Format(time.RFC3339)
	h.pub("credit", "ub", "credit.updated", future, map[string]any{"stars": 1})
	h.pub("return", "ub", "return.requested", "2026-11-12T10:12:00+08:00",
		map[string]any{"request_id": "r2", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": false, "amount_fen": 0})
	h.pub("logistics", "ub", "logistics.tracking", "2026-11-12T10:30:00+08:00", map[string]any{"request_id": "r1", "tracking_no": "SF1"})
	h.one("fr.out.refund.ub", "r1") // the valid events after them were applied
	want := map[string]string{"unknown_order": "fr.in.order.ub", "unknown_request": "fr.in.logistics.ub", "future_time": "fr.in.credit.ub", "bad_value": "fr.in.return.ub"}
	h.waitFor("every dead letter", func() bool { return len(h.out("fr.dlq.")) >= 5 })
	seen := map[string]int{}
	for _, o := range h.out("fr.dlq.") {
		r := fmt.Sprint(o.Data["reason"])
		seen[r]++
		if o.Subject != "fr.dlq."+r || o.Data["error"] == "" || o.Data["payload_b64"] == "" {
			t.Errorf("dead letter %s: %v", o.Subject, o.Data)
		}
		if w, ok := want[r]; ok && r != "unknown_request" && o.Data["subject"] != w {
			t.Errorf("%s names subject %v, want %s", r, o.Data["subject"], w)
		}
	}
	if seen["unknown_order"] != 1 || seen["unknown_request"] != 2 || seen["future_time"] != 1 || seen["bad_value"] != 1 || len(seen) != 4 {
		t.Fatalf("dead letters %v", seen)
	}
	// The shopper's stars are still 5: the future credit.updated was not
	// applied, and the partition's clock did not jump to it (the pickup
	// window of r1 is still open: no compensation).
	var uv httpapi.UserView
	h.getJSON("/v1/users/ub", &uv)
	if uv.Stars != 5 {
		t.Fatalf("stars %d: the future event was applied", uv.Stars)
	}
	if n := len(h.out("fr.out.compensation.ub")); n != 0 {
		t.Fatalf("a future event fired the pickup timer: %d compensations", n)
	}
}

// TestMerchantHistoryInBacklog: a request stored between two versions of
// its merchant's profile is decided with the version in force when it was
// stored, even when the daemon only reads it later (a backlog after a
// restart): FR_MERCHANT keeps the history. With one message per merchant
// the first version would be gone and the request merchant_unknown.
func TestMerchantHistoryInBacklog(t *testing.T) {
	dir := t.TempDir()
	srv, err := streams.StartEmbedded(streams.EmbeddedOptions{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(dir, "nats"), Layout: streams.LayoutStreams, Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := streams.EnsureStreams(ctx, js, streams.StreamOptions{Layout: streams.LayoutStreams, Partitions: 8, InMaxAge: time.Hour, OutMaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	pub := func(subj, id, body string) {
		t.Helper()
		if _, err := js.Publish(ctx, subj, []byte(body), jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	pub("fr.merchant.mh", "mh1", `{"event_id":"mh1","type":"merchant.updated","at":"2026-11-01T00:00:00+08:00","merchant_id":"mh","return_addresses":["first desk"],"ship_addresses":["first desk"]}`)
	pub("fr.in.credit.uh", "h1", `{"event_id":"h1","type":"credit.updated","at":"2026-11-01T00:00:00+08:00","user_id":"uh","stars":5}`)
	pub("fr.in.order.uh", "h2", `{"event_id":"h2","type":"order.paid","at":"2026-11-10T10:00:00+08:00","user_id":"uh","order_id":"o1","merchant_id":"mh","category":"shoes","size":"small","paid_fen":5000,"seven_day":true}`)
	pub("fr.in.order.uh", "h3", `{"event_id":"h3","type":"order.delivered","at":"2026-11-11T10:00:00+08:00","user_id":"uh","order_id":"o1"}`)
	pub("fr.in.return.uh", "h4", `{"event_id":"h4","type":"return.requested","at":"2026-11-12T10:00:00+08:00","user_id":"uh","request_id":"r1","order_id":"o1","kind":"return_refund","reason":"no_reason","pickup":false}`)
	pub("fr.merchant.mh", "mh2", `{"event_id":"mh2","type":"merchant.updated","at":"2026-11-12T11:00:00+08:00","merchant_id":"mh","return_addresses":[],"ship_addresses":[]}`)
	nc.Close()
	srv.Shutdown()
	srv.WaitForShutdown()

	pol := mustPreset(t, "tmall-fast-return")
	h := runHarness(t, Config{DataDir: dir, NATSListen: "127.0.0.1:-1", HTTPAddr: "127.0.0.1:0", Policy: pol, Partitions: 8, ClockInterval: -1})
	d := h.one("fr.out.decision.uh", "r1")
	if d["decision"] != "approved" || d["return_address"] != "first desk" {
		t.Fatalf("decision %v, want approved to the first desk (the profile in force when the request was stored)", d)
	}
}

func mustPreset(t *testing.T, name string) *core.Policy {
	t.Helper()
	p, ok := core.Preset(name)
	if !ok {
		t.Fatalf("unknown preset %s", name)
	}
	return p
}

// TestDeadLettersLeaveNoShopper: a shopper known only from dead-lettered
// events (an unknown order, an unknown request, a subject whose kind
// token is not a kind) stays unknown to the query API (404: a dead letter
// changes no state), and every dead letter names the subject the event
// was published to, unknown kind included.
func TestDeadLettersLeaveNoShopper(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	h.pub("order", "ghost", "order.shipped", "2026-11-11T16:00:00+08:00", map[string]any{"order_id": "nope"})
	h.pub("review", "ghost", "review.rejected", "2026-11-11T16:01:00+08:00", map[string]any{"request_id": "nope", "by": "merchant"})
	h.pub("foo", "ghost", "order.shipped", "2026-11-11T16:02:00+08:00", map[string]any{"order_id": "nope"})
	h.waitFor("three dead letters", func() bool { return len(h.out("fr.dlq.")) >= 3 })
	want := map[string]string{"unknown_order": "fr.in.order.ghost", "unknown_request": "fr.in.review.ghost", "subject_mismatch": "fr.in.foo.ghost"}
	for _, o := range h.out("fr.dlq.") {
		r := fmt.Sprint(o.Data["reason"])
		if o.Data["subject"] != want[r] {
			t.Errorf("%s names subject %v, want %s (error %v)", r, o.Data["subject"], want[r], o.Data["error"])
		}
		delete(want, r)
	}
	if len(want) != 0 {
		t.Fatalf("dead letters missing: %v", want)
	}
	var uv httpapi.UserView
	if code := h.getJSON("/v1/users/ghost", &uv); code != http.StatusNotFound {
		t.Fatalf("GET /v1/users/ghost after dead letters only: %d %+v, want 404", code, uv)
	}
}
