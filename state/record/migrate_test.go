package record

import (
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

// v2Record writes u as version 2: for a user without orders, versions 3
// and 4 only add the two trailing pruned times (0 each: one byte each)
// and the count of forgotten IDs (0: one byte).
func v2Record(t *testing.T, u *core.User) []byte {
	t.Helper()
	if len(u.Orders) != 0 || u.VelocityPrunedTo != 0 || u.TrustPrunedTo != 0 || len(u.Forgotten) != 0 {
		t.Fatal("v2Record: no orders, no pruned times, nothing forgotten")
	}
	enc := AppendUser(nil, u)
	n := len(enc)
	if enc[0] != userV4 || enc[n-1] != 0 || enc[n-2] != timeZero || enc[n-3] != timeZero {
		t.Fatalf("unexpected v4 encoding %x", enc)
	}
	return append([]byte{userV2}, enc[1:n-3]...)
}

// TestMigratedPrunedTimes: a version-2 record did not say what pruning
// dropped; the decoder derives it from the windows the older release
// kept, the longer of the spec's and the legacy policy's (the daemon's
// --policy). Under a policy with 48 h / 180 day windows, a request after
// the shopper's last event is judged on the count (found in review: with
// the spec's windows it failed both rules safe for up to 90 days); one
// dated before it, whose window reaches past what may have been pruned,
// fails safe.
func TestMigratedPrunedTimes(t *testing.T) {
	pol := *recordtest.Preset(core.PresetJD)
	pol.VelocityWindow = 48 * time.Hour
	pol.TrustWindow = 180 * 24 * time.Hour
	T0, h := recordtest.T0, int64(time.Hour)
	// One request 30 h before the last event, no trust mark ever.
	rec := v2Record(t, &core.User{ID: "u1", Stars: 5, MaxAt: T0, RecentRequests: []int64{T0 - 30*h}})
	got, err := DecodeUser(rec, testResolver(&pol))
	if err != nil {
		t.Fatal(err)
	}
	if got.VelocityPrunedTo != T0-48*h || got.TrustPrunedTo != T0-180*24*h {
		t.Fatalf("pruned times %d %d, want MaxAt - 48 h and - 180 days", T0-got.VelocityPrunedTo, T0-got.TrustPrunedTo)
	}
	env := &core.Env{Policy: &pol, Loc: time.UTC}
	apply := func(typ core.EventType, at int64, fill func(*core.Event)) []core.Effect {
		e := core.Event{Type: typ, At: at, AtRaw: time.Unix(0, at).UTC().Format(time.RFC3339Nano), UserID: "u1", EventID: "e"}
		fill(&e)
		return core.Apply(got, &e, env, nil)
	}
	request := func(at int64, id, order string) *core.Effect {
		out := apply(core.EventReturnRequested, at, func(e *core.Event) {
			e.OrderID, e.RequestID, e.Kind, e.Reason = order, id, core.KindRefundOnly, core.ReasonQuality
		})
		return &out[0]
	}
	for _, o := range []string{"o1", "o2"} {
		apply(core.EventOrderPaid, T0+h, func(e *core.Event) { e.OrderID, e.PaidFen, e.SevenDay = o, 1000, true })
		apply(core.EventOrderDelivered, T0+2*h, func(e *core.Event) { e.OrderID = o })
	}
	if d := request(T0+3*h, "r1", "o1"); d.Verdict != core.VerdictApproved {
		t.Fatalf("in order after the upgrade: %s %v, want approved", d.Verdict, d.Reasons.AppendStrings(nil))
	}
	// Dated 2 h before the upgrade's last event (stored late): its 48 h
	// reach past MaxAt - 48 h, where the older release may have pruned.
	d := request(T0-2*h, "r2", "o2")
	if d.Verdict != core.VerdictReview || !d.Reasons.Has(core.CodeVelocityCap) || !d.Reasons.Has(core.CodeTrustFlagged) {
		t.Fatalf("late, reaching past the migrated history: %s %v, want review velocity_cap trust_flagged", d.Verdict, d.Reasons.AppendStrings(nil))
	}
}
