package pipeline

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/stages"
)

// TestPoisonEvent: an event that panics the core goes to fr.dlq.poison
// with its payload, the rest of its batch is applied once (the batch is
// re-applied without it), and the counters count each decision once.
// The events are stored while no daemon runs, so that the restarted
// daemon takes them as one backlog batch.
func TestPoisonEvent(t *testing.T) {
	cfg, js := outsideServer(t, "douyin-lightning")
	h := runHarness(t, cfg)
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	// One partition's shoppers only: they share a consumer, so a batch.
	var users []string
	for i := 0; len(users) < 6; i++ {
		if u := fmt.Sprintf("pz%d", i); partitionOf(u) == partitionOf("pz0") {
			users = append(users, u)
		}
	}
	for _, u := range users {
		h.pub("credit", u, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
		h.order(u, "o1", "m1", 10000, "2026-11-11T15:00:00+08:00", nil)
	}
	h.stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const poisonUser = 2
	var poisonBody []byte
	for i, u := range users {
		b, _ := json.Marshal(map[string]any{"event_id": "req-" + u, "type": "return.requested", "at": "2026-11-12T10:00:00+08:00", "user_id": u,
			"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": false})
		if i == poisonUser {
			poisonBody = b
		}
		if _, err := js.Publish(ctx, "fr.in.return."+u, b, jetstream.WithMsgID("req-"+u)); err != nil {
			t.Fatal(err)
		}
	}
	applyHook = func(ev *core.Event) {
		if ev.UserID == users[poisonUser] && ev.Type == core.EventReturnRequested {
			panic("test: poison " + ev.UserID)
		}
	}
	t.Cleanup(func() { applyHook = nil })
	h2 := runHarness(t, cfg)
	dl := h2.waitOut("fr.dlq.poison", 1)
	want := len(users) - 1
	h2.waitFor("the other requests decided", func() bool {
		n := 0
		for _, u := range users {
			n += len(h2.out("fr.out.decision." + u))
		}
		return n >= want
	})
	raw, _ := base64.StdEncoding.DecodeString(fmt.Sprint(dl[0].Data["payload_b64"]))
	if string(raw) != string(poisonBody) || !strings.Contains(fmt.Sprint(dl[0].Data["error"]), "test: poison") {
		t.Fatalf("poison dead letter = %v", dl[0].Data)
	}
	for i, u := range users {
		n := len(h2.out("fr.out.decision." + u))
		if (i == poisonUser && n != 0) || (i != poisonUser && n != 1) {
			t.Errorf("%s: %d decisions", u, n)
		}
	}
	// Counted once each, although the batch was applied twice.
	h2.waitFor("decisions counted", func() bool { return countDecisions(h2.d) >= want })
	if got := countDecisions(h2.d); got != want {
		t.Fatalf("flashreturn_decisions_total = %d, want %d", got, want)
	}
	if got := h2.d.m.Panics.Get(); got != 1 {
		t.Fatalf("panics counted %d, want 1", got)
	}
	// The stage timings too: each event this daemon applied once (the
	// poison one included: it passed the stages on its way to the DLQ),
	// as flashreturn_partition_events_total counts them.
	h2.waitFor("the batch's events counted", func() bool { return sumCounter(h2.d, "flashreturn_partition_events_total{") >= len(users) })
	applied := uint64(sumCounter(h2.d, "flashreturn_partition_events_total{"))
	if n, _ := scrapeHistograms(t, h2.d); n[stages.StoredPulled.Metric()] != applied || n[stages.PulledApplied.Metric()] != applied {
		t.Fatalf("stage counts %d and %d, want %d", n[stages.StoredPulled.Metric()], n[stages.PulledApplied.Metric()], applied)
	}
}

func partitionOf(u string) int { return wire.Partition(u, 8) }

// countDecisions sums flashreturn_decisions_total over its labels.
func countDecisions(d *Daemon) int { return sumCounter(d, "flashreturn_decisions_total{") }

// sumCounter sums the values of d's series whose name and labels start
// with prefix.
func sumCounter(d *Daemon, prefix string) int {
	var b strings.Builder
	d.cfg.Metrics.WritePrometheus(&b)
	n := 0
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, prefix) {
			var v int
			fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &v)
			n += v
		}
	}
	return n
}

// TestTimerPanicBlocksOnlyItsShopper: a core panic while firing one
// shopper's timers blocks that shopper's timers and nothing else. The
// clock event that moved the partition is not dead-lettered, and the next
// events of the partition, which move the clock again, are applied. Before
// the fix the event that moved the clock was blamed (dead-lettered as
// poison), the clock stayed behind, and every later clock-moving event of
// the partition panicked on the same timer and was dead-lettered too.
func TestTimerPanicBlocksOnlyItsShopper(t *testing.T) {
	const bad = "tp0"
	fireHook = func(id string) {
		if id == bad {
			panic("test: timer of " + id)
		}
	}
	t.Cleanup(func() { fireHook = nil })
	h := startHarness(t, "tmall-fast-return", nil)
	other := ""
	for i := 1; other == ""; i++ {
		if u := fmt.Sprintf("tp%d", i); partitionOf(u) == partitionOf(bad) {
			other = u
		}
	}
	h.merchant("m1", []string{"desk"}, []string{"desk"}, nil)
	for _, u := range []string{bad, other} {
		h.pub("credit", u, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
		h.order(u, "o1", "m1", 5000, "2026-11-11T15:00:00+08:00", nil)
	}
	// bad's request waits in review, with a 72 h deadline.
	h.pub("return", bad, "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r1", "order_id": "o1", "kind": "refund_only", "reason": "no_reason", "pickup": false})
	h.one("fr.out.decision."+bad, "r1")
	// The clock passes the deadline: bad's timer panics.
	h.tick(bad, "2026-11-16T00:00:00+08:00")
	// other's request moves the clock again; it must be decided.
	h.pub("return", other, "return.requested", "2026-11-16T10:00:00+08:00",
		map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	if d := h.one("fr.out.decision."+other, "r1"); d["decision"] != "approved" {
		t.Fatalf("decision of %s: %v", other, d)
	}
	if dl := h.out("fr.dlq."); len(dl) != 0 {
		t.Fatalf("dead letters after a timer's panic: %v", dl)
	}
	if res := h.out("fr.out.resolution." + bad); len(res) != 0 {
		t.Fatalf("the blocked shopper's timer fired: %v", res)
	}
}
