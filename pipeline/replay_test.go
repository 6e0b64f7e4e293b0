package pipeline

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/replay"
)

var decidedAt = regexp.MustCompile(`"decided_at":"[^"]*"`)

// replayWorld publishes a small world with approvals, reviews, pickups,
// a missed window (fired by a clock event), refunds and inspections.
func replayWorld(h *harness) (requests int) {
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	h.merchant("m2", []string{"addr A"}, []string{"addr B"}, nil)
	for i := 0; i < 12; i++ {
		u := fmt.Sprintf("rw%d", i)
		h.pub("credit", u, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 1 + i%5})
		merchant := []string{"m1", "m2"}[i%2]
		h.order(u, "o1", merchant, 10000+i*5000, "2026-11-11T15:00:00+08:00", nil)
		reason := []string{"no_reason", "quality", "dislike"}[i%3]
		h.pub("return", u, "return.requested", "2026-11-12T10:00:00+08:00",
			map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": reason, "pickup": i%2 == 0})
		requests++
		if i%3 == 0 {
			h.pub("logistics", u, "logistics.tracking", "2026-11-12T11:00:00+08:00", map[string]any{"request_id": "r1", "tracking_no": "T1"})
			h.pub("inspection", u, "inspection.result", "2026-11-14T11:00:00+08:00", map[string]any{"request_id": "r1", "outcome": []string{"ok", "used"}[i%2]})
		}
	}
	for p := 0; p < 8; p++ {
		ts := time.Date(2026, 11, 12, 23, 0, 0, 0, time.UTC)
		h.pubRaw("fr.in.clock."+wire.ClockToken(p, 8), wire.ClockMsgID(p, ts), wire.AppendClock(nil, p, ts))
	}
	return requests
}

// TestReplayIsByteIdentical is the determinism proof: replaying the stored
// inbound stream with the live policy yields byte-identical effects
// (except decided_at) to what the daemon published.
func TestReplayIsByteIdentical(t *testing.T) {
	h := startHarness(t, "douyin-lightning", nil)
	n := replayWorld(h)
	h.waitOut("fr.out.decision.", n)
	h.waitFor("compensations fired", func() bool { return len(h.out("fr.out.compensation.")) > 0 })
	kinds := checkReplayIdentical(t, h, "douyin-lightning")
	if len(kinds) < 4 {
		t.Fatalf("the world exercised too few effect kinds: %v", kinds)
	}
}

// checkReplayIdentical replays the harness's stored inbound streams with
// preset policy and fails unless the replay makes exactly the effects the
// daemon published, byte for byte except decided_at. It returns the
// effect kinds seen (the first three bytes of their IDs).
func checkReplayIdentical(t *testing.T, h *harness, policy string) map[string]bool {
	t.Helper()
	sentinels(h, h.d.cfg.Partitions)
	pol, _ := core.Preset(policy)
	res, err := replay.Run(context.Background(), h.js, replay.Options{Policies: []*core.Policy{pol}, Partitions: h.d.cfg.Partitions, Record: true, RecordTime: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	live := map[string][]byte{}
	for _, o := range h.out("fr.out.") {
		e := core.Effect{UserID: fmt.Sprint(o.Data["user_id"]), RequestID: fmt.Sprint(o.Data["request_id"])}
		for k := core.EffectDecision; k <= core.EffectResolution; k++ {
			if "fr.out."+k.String()+"."+e.UserID == o.Subject {
				e.Kind = k
			}
		}
		if o.Data["outcome"] == "closed" {
			e.Resolution = core.ResolutionClosed
		}
		live[e.MsgID()] = decidedAt.ReplaceAll(o.Raw, nil)
	}
	replayed := res.Policies[0].Effects
	if len(replayed) != len(live) {
		t.Fatalf("replay produced %d effects, the daemon published %d", len(replayed), len(live))
	}
	kinds := map[string]bool{}
	for id, b := range replayed {
		lb, ok := live[id]
		if !ok {
			t.Fatalf("replay effect %s was never published", id)
		}
		if got := decidedAt.ReplaceAll(b, nil); string(got) != string(lb) {
			t.Fatalf("effect %s differs:\nlive   %s\nreplay %s", id, lb, got)
		}
		kinds[id[:3]] = true
	}
	return kinds
}

// sentinels publishes one request for a user on every partition and waits
// for their decisions: a partition publishes a batch's outputs before it
// takes the next batch, so everything stored before is then published.
func sentinels(h *harness, parts int) {
	h.t.Helper()
	covered := map[int]bool{}
	for i := 0; len(covered) < parts; i++ {
		u := fmt.Sprintf("sentinel%d", i)
		if p := wire.Partition(u, parts); !covered[p] {
			covered[p] = true
			h.pub("return", u, "return.requested", "2026-11-20T10:00:00+08:00",
				map[string]any{"request_id": "s", "order_id": "none", "kind": "return_refund", "reason": "no_reason", "pickup": false})
		}
	}
	h.waitFor("sentinel decisions", func() bool {
		n := 0
		for _, d := range h.out("fr.out.decision.sentinel") {
			if d.Data["request_id"] == "s" {
				n++
			}
		}
		return n == parts
	})
}

// TestReplayWhatIf replays one world under two presets with known
// differences and reports the requests whose outcome changes.
func TestReplayWhatIf(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	n := replayWorld(h)
	h.waitOut("fr.out.decision.", n)
	sentinels(h, 8)
	tm, _ := core.Preset("tmall-fast-return")
	jd, _ := core.Preset("jd-lightning-refund")
	res, err := replay.Run(context.Background(), h.js, replay.Options{Policies: []*core.Policy{tm, jd}, Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	a, b := res.Policies[0], res.Policies[1]
	if a.Requests != n+8 || b.Requests != n+8 {
		t.Fatalf("requests %d/%d, want %d", a.Requests, b.Requests, n)
	}
	// The live run's approvals equal the baseline replay's.
	live := 0
	for _, d := range h.out("fr.out.decision.") {
		if d.Data["decision"] == "approved" {
			live++
		}
	}
	if a.Approved != live {
		t.Fatalf("baseline replay approved %d, the daemon %d", a.Approved, live)
	}
	// Every 'quality' request tmall sends to review is approvable by jd
	// (stars >= 2); jd refuses every no_reason/dislike one.
	if res.ChangedCount == 0 || a.Reasons["reason_not_eligible"] == 0 || b.Reasons["reason_not_eligible"] == 0 {
		t.Fatalf("no difference found: %+v %+v", a, b)
	}
	if b.AdvancedFen == 0 {
		t.Fatalf("jd advances money at approval, got %d", b.AdvancedFen)
	}
	if res.Events == 0 || res.EventsPerSec <= 0 {
		t.Fatalf("events %d at %f/s", res.Events, res.EventsPerSec)
	}
}
