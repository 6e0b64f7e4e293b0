package pipeline

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/pipeline/replay"
)

func liveDecision(h *harness, user, request string) map[string]any {
	for _, d := range h.out("fr.out.decision." + user) {
		if d.Data["request_id"] == request {
			return d.Data
		}
	}
	return nil
}

func reasonsOf(d map[string]any) []string {
	var r []string
	rs, _ := d["reasons"].([]any)
	for _, x := range rs {
		r = append(r, fmt.Sprint(x))
	}
	return r
}

// TestMerchantViewAsOfIngest: a request is decided with the merchant
// profile as it was when the request was stored, whatever the view holds
// when it is decided or replayed: a request stored before its merchant's
// profile is merchant_unknown live and in replay; one stored after an
// update uses the new address, one before it the old; a request stored
// right after a profile (no wait for the view) sees it.
func TestMerchantViewAsOfIngest(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	req := func(user, id string) {
		h.pub("return", user, "return.requested", "2026-11-12T10:00:00+08:00",
			map[string]any{"request_id": id, "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	}
	for _, u := range []string{"ma", "mb", "mc", "md"} {
		h.pub("credit", u, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	}
	h.order("ma", "o1", "late", 10000, "2026-11-11T15:00:00+08:00", nil)
	h.order("mb", "o1", "late", 10000, "2026-11-11T15:00:00+08:00", nil)
	h.order("mc", "o1", "late", 10000, "2026-11-11T15:00:00+08:00", nil)
	h.order("md", "o1", "quick", 10000, "2026-11-11T15:00:00+08:00", nil)

	req("ma", "r1") // before the merchant exists
	h.waitFor("r1 decided", func() bool { return liveDecision(h, "ma", "r1") != nil })
	if d := liveDecision(h, "ma", "r1"); !slices.Contains(reasonsOf(d), "merchant_unknown") {
		t.Fatalf("r1 before the profile: %v, want merchant_unknown", d)
	}
	h.merchant("late", []string{"old address"}, []string{"old address"}, nil)
	req("mb", "r2")
	h.waitFor("r2 decided", func() bool { return liveDecision(h, "mb", "r2") != nil })
	if d := liveDecision(h, "mb", "r2"); d["decision"] != "approved" || d["return_address"] != "old address" {
		t.Fatalf("r2 after the profile: %v, want approved to the old address", d)
	}
	h.merchant("late", []string{"new address"}, []string{"new address"}, nil)
	h.waitFor("the update in the view", func() bool {
		m := h.d.merchants.Lookup("late")
		return m != nil && m.ReturnAddresses[0] == "new address"
	})
	req("mc", "r3")
	h.waitFor("r3 decided", func() bool { return liveDecision(h, "mc", "r3") != nil })
	if d := liveDecision(h, "mc", "r3"); d["decision"] != "approved" || d["return_address"] != "new address" {
		t.Fatalf("r3 after the update: %v, want approved to the new address", d)
	}
	// No wait for the view between the profile and the request.
	h.pubRaw("fr.merchant.quick", "", []byte(`{"event_id":"mq","type":"merchant.updated","at":"2026-11-01T00:00:00+08:00","merchant_id":"quick","return_addresses":["q"],"ship_addresses":["q"]}`))
	req("md", "r4")
	h.waitFor("r4 decided", func() bool { return liveDecision(h, "md", "r4") != nil })
	if d := liveDecision(h, "md", "r4"); d["decision"] != "approved" || d["return_address"] != "q" {
		t.Fatalf("r4 stored right after its merchant: %v, want approved to q", d)
	}

	// Replay now, with every profile known: the same decisions, r2's too
	// (FR_MERCHANT keeps the last 10 profiles per merchant (pipeline/streams),
	// so the version in force when r2 was stored is still there).
	sentinels(h, 8)
	pol, _ := core.Preset("tmall-fast-return")
	res, err := replay.Run(context.Background(), h.js, replay.Options{Policies: []*core.Policy{pol}, Partitions: 8, Record: true, RecordTime: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ user, req string }{{"ma", "r1"}, {"mb", "r2"}, {"mc", "r3"}, {"md", "r4"}} {
		id := (&core.Effect{Kind: core.EffectDecision, UserID: c.user, RequestID: c.req}).MsgID()
		live := h.out("fr.out.decision." + c.user)
		var lb []byte
		for _, o := range live {
			if o.Data["request_id"] == c.req {
				lb = decidedAt.ReplaceAll(o.Raw, nil)
			}
		}
		rb := decidedAt.ReplaceAll(res.Policies[0].Effects[id], nil)
		if string(lb) != string(rb) {
			t.Errorf("%s/%s differs:\nlive   %s\nreplay %s", c.user, c.req, lb, rb)
		}
	}
}
