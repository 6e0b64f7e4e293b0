package core

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

func atPlus(f *fixture, base int64, d time.Duration) string {
	return time.Unix(0, base+int64(d)).In(f.env.Loc).Format(time.RFC3339Nano)
}

func countEffects(out []Effect, k EffectKind) (n int, fen int64) {
	for i := range out {
		if out[i].Kind == k {
			n++
			fen += out[i].AmountFen
		}
	}
	return
}

// domain.md, velocity: "a request that has 5 or more requests of the same
// shopper in the 24 hours before it (strictly later than its own at minus
// 24 h ...) fails velocity_cap. Requests 1 to 5 pass, the 6th fails."
// A 6th request stored 52 minutes late, after another event of the same
// shopper moved MaxAt forward, must still see the five (found in review:
// prune dropped them relative to MaxAt, and jd paid the 6th at once).
func TestLateRequestSeesVelocityHistory(t *testing.T) {
	f := newFixture(t, PresetJD)
	base := parseTime(t, "", "2026-11-12T10:00:00+08:00")
	f.deliveredOrders(6, "paid=1000")
	for i := range 5 {
		id := string(rune('a' + i))
		d := f.decision(atPlus(f, base, time.Duration(10*(i+1))*time.Minute) + " return.requested req=r" + id + " order=" + id + " kind=refund_only reason=quality")
		if d.Verdict != VerdictApproved {
			t.Fatalf("request %d: %s %v", i+1, d.Verdict, d.Reasons.AppendStrings(nil))
		}
	}
	// Another publisher of the same shopper is on time ...
	f.apply(atPlus(f, base, 24*time.Hour+51*time.Minute) + " credit.updated stars=5")
	// ... the 6th request, dated 23h59m after base, arrives 52 min late.
	// Five requests (base+10m..base+50m) are in (at-24h, at]: it must fail.
	out := f.apply(atPlus(f, base, 23*time.Hour+59*time.Minute) + " return.requested req=rf order=f kind=refund_only reason=quality")
	wantReview(t, out, CodeVelocityCap, "6th request in 24 h")
}

// wantReview fails unless out's decision is review with code, the spec's
// answer that pays nothing at once.
func wantReview(t *testing.T, out []Effect, code Code, what string) {
	t.Helper()
	if d := &out[0]; d.Verdict != VerdictReview || !d.Reasons.Has(code) {
		n, fen := countEffects(out, EffectRefund)
		t.Fatalf("%s: got %s %v (refunds %d, %d fen); spec: review with %s, no refund",
			what, d.Verdict, d.Reasons.AppendStrings(nil), n, fen, code)
	}
}

// domain.md, trust: "a shopper with a bad inspection (...) after an
// advance (money or goods) in the last 90 days ... fails trust_flagged."
// A request dated inside the 90 days but stored about an hour after
// another event of the shopper passed them must still see the mark (found
// in review: prune dropped it, and jd advanced the refund).
func TestLateRequestSeesTrustMarks(t *testing.T) {
	f := newFixture(t, PresetJD)
	f.order("2026-01-01T10:00:00+08:00", "o1", "paid=5000")
	f.apply("2026-01-02T10:00:00+08:00 order.delivered order=o1")
	d := f.decision("2026-01-03T10:00:00+08:00 return.requested req=r1 order=o1 kind=return_refund reason=quality")
	if d.Verdict != VerdictApproved {
		t.Fatalf("r1: %s %v", d.Verdict, d.Reasons.AppendStrings(nil))
	}
	f.apply("2026-01-04T10:00:00+08:00 logistics.tracking req=r1 no=SF1")
	bad := parseTime(t, "", "2026-01-05T10:00:00+08:00")
	out := f.apply(atPlus(f, bad, 0) + " inspection.result req=r1 outcome=empty_box")
	if n, _ := countEffects(out, EffectClawback); n != 1 {
		t.Fatalf("bad inspection after advance: clawbacks %d", n)
	}
	f.order(atPlus(f, bad, 80*24*time.Hour), "o2", "paid=5000")
	f.apply(atPlus(f, bad, 85*24*time.Hour) + " order.delivered order=o2")
	f.apply(atPlus(f, bad, 90*24*time.Hour+time.Minute) + " credit.updated stars=5")
	// Dated 1 h before the 90 days end: the bad inspection is in
	// (at-90d, at], the shopper must fail trust_flagged.
	out = f.apply(atPlus(f, bad, 90*24*time.Hour-time.Hour) + " return.requested req=r2 order=o2 kind=return_refund reason=quality")
	wantReview(t, out, CodeTrustFlagged, "request 89d23h after an empty_box")
}

// domain.md: "A return.requested whose request_id the shopper already has
// is a redelivery: no new output"; Money safety: an approved request gets
// "exactly one refund"; contract.md: "A refund is emitted at most once per
// request". 90 days after a refund_only finished, prune forgets it; a
// redelivery (a replay of the stream, a republish) must still be one
// (found in review: it was decided again and, through the review deadline
// already past, refunded a second time).
func TestRedeliveryOfPrunedRequestIsIgnored(t *testing.T) {
	f := newFixture(t, PresetJD)
	f.order("2026-01-01T10:00:00+08:00", "o1", "paid=10000")
	f.apply("2026-01-02T10:00:00+08:00 order.delivered order=o1")
	req := "2026-01-03T10:00:00+08:00 return.requested req=r1 order=o1 kind=refund_only reason=other amount=4000"
	d := f.decision(req)
	if d.Verdict != VerdictReview {
		t.Fatalf("r1: %s", d.Verdict)
	}
	var all []Effect
	// Merchant silent: approved by timeout, refunded 4000 at once.
	all = append(all, f.apply("2026-01-07T10:00:00+08:00 credit.updated stars=5")...)
	if n, fen := countEffects(all, EffectRefund); n != 1 || fen != 4000 {
		t.Fatalf("first refund: %d, %d fen", n, fen)
	}
	all = append(all, f.apply("2026-05-01T10:00:00+08:00 credit.updated stars=5")...)
	// The same return.requested again.
	re := f.apply(req)
	all = append(all, re...)
	all = Fire(&f.u, parseTime(t, "", "2026-05-01T10:00:01+08:00"), &f.env, all)
	if n, fen := countEffects(all, EffectRefund); n != 1 || len(re) != 0 {
		t.Fatalf("request r1 redelivered: %d new effects, refunds for r1 %d totalling %d fen; spec: no new output, one refund of 4000", len(re), n, fen)
	}
}

// Past LateAllowance the windows cannot be counted once history was
// pruned: a request dated 10 days before the shopper's latest event, whose
// 24 hours reach back past a pruned velocity entry, fails velocity_cap
// safe (review, no money), and the trace says why. One whose window lies
// after everything pruned is judged on the count.
func TestLateRequestPastAllowanceFailsSafe(t *testing.T) {
	f := newFixture(t, PresetJD)
	base := parseTime(t, "", "2026-03-01T10:00:00+08:00")
	for _, id := range []string{"a", "b", "c"} {
		f.order("2026-02-26T10:00:00+08:00", id, "paid=1000")
		f.apply("2026-02-27T10:00:00+08:00 order.delivered order=" + id)
	}
	if d := f.decision(atPlus(f, base, 0) + " return.requested req=ra order=a kind=refund_only reason=quality"); d.Verdict != VerdictApproved {
		t.Fatalf("ra: %s %v", d.Verdict, d.Reasons.AppendStrings(nil))
	}
	// 20 days on: ra's velocity entry (older than 24 h + LateAllowance) is pruned.
	f.apply(atPlus(f, base, 20*24*time.Hour) + " credit.updated stars=5")
	if f.u.VelocityPrunedTo != base || len(f.u.RecentRequests) != 0 {
		t.Fatalf("velocity entries %v, pruned to %d; want none kept, pruned to %d", f.u.RecentRequests, f.u.VelocityPrunedTo, base)
	}
	// Dated 12 h after ra, stored 19.5 days late: ra is in its window.
	out := f.apply(atPlus(f, base, 12*time.Hour) + " return.requested req=rb order=b kind=refund_only reason=quality")
	d := &out[0]
	if d.Verdict != VerdictReview || d.Reasons != CodeSet(0).With(CodeVelocityCap) {
		t.Fatalf("rb: %s %v, want review velocity_cap", d.Verdict, d.Reasons.AppendStrings(nil))
	}
	if n, _ := countEffects(out, EffectRefund); n != 0 {
		t.Fatalf("rb refunded %d times", n)
	}
	var text string
	for _, c := range d.Trace.List() {
		if c.Code == CodeVelocityCap {
			text = c.String()
		}
	}
	if want := "requests in window at least 1, max 5: window reaches past pruned history"; text != want {
		t.Fatalf("velocity check %q, want %q", text, want)
	}
	// Dated 2 days after ra, stored 18 days late: nothing pruned lies in
	// its 24 hours, so the count (rb only) decides, and it passes.
	if d := f.decision(atPlus(f, base, 48*time.Hour) + " return.requested req=rc order=c kind=refund_only reason=quality"); d.Verdict != VerdictApproved {
		t.Fatalf("rc: %s %v, want approved", d.Verdict, d.Reasons.AppendStrings(nil))
	}
}

// A policy whose trust window is longer than what was kept cannot see the
// older marks either: the shopper fails trust_flagged safe until the
// window has passed them.
func TestTrustWindowPastPrunedMarksFailsSafe(t *testing.T) {
	f := newFixture(t, PresetJD)
	u := &f.u
	u.ID = "u1"
	u.TrustPrunedTo = parseTime(t, "", "2026-01-01T10:00:00+08:00")
	u.MaxAt = u.TrustPrunedTo + int64(100*24*time.Hour)
	long := *f.env.Policy
	long.TrustWindow = 120 * 24 * time.Hour
	f.env.Policy = &long
	f.order(atPlus(f, u.MaxAt, 0), "o1", "paid=1000")
	f.apply(atPlus(f, u.MaxAt, time.Hour) + " order.delivered order=o1")
	d := f.decision(atPlus(f, u.MaxAt, 2*time.Hour) + " return.requested req=r1 order=o1 kind=refund_only reason=quality")
	if d.Verdict != VerdictReview || !d.Reasons.Has(CodeTrustFlagged) {
		t.Fatalf("r1: %s %v, want review trust_flagged", d.Verdict, d.Reasons.AppendStrings(nil))
	}
}

// A request first rejected order_unknown, then redelivered naming a real
// order (a redelivery: no output), then that redelivery replayed after
// pruning: still a redelivery (found in review: it was decided afresh and
// refunded 10000 fen).
func TestRedeliveryNamingAnotherOrderAfterPrune(t *testing.T) {
	f := newFixture(t, PresetJD)
	f.order("2026-01-01T10:00:00+08:00", "o1", "paid=10000")
	f.apply("2026-01-02T10:00:00+08:00 order.delivered order=o1")
	if d := f.decision("2026-01-03T10:00:00+08:00 return.requested req=r1 order=ox kind=refund_only reason=quality"); d.Verdict != VerdictRejected {
		t.Fatalf("r1 on ox: %s", d.Verdict)
	}
	again := "2026-01-05T10:00:00+08:00 return.requested req=r1 order=o1 kind=refund_only reason=quality"
	if out := f.apply(again); len(out) != 0 {
		t.Fatalf("redelivery of r1 gave %d effects", len(out))
	}
	pruneThenReplay(t, f, "r1", again)
}

// pruneThenReplay moves the shopper's clock to 2026-05-01 (pruning
// request id, checked), then applies req again: it must yield nothing.
func pruneThenReplay(t *testing.T, f *fixture, id, req string) {
	t.Helper()
	f.apply("2026-05-01T10:00:00+08:00 credit.updated stars=5")
	if f.u.Request(id) != nil {
		t.Fatalf("%s not pruned", id)
	}
	if out := f.apply(req); len(out) != 0 {
		n, fen := countEffects(out, EffectRefund)
		t.Fatalf("replay of pruned %s: %d effects, %d refunds, %d fen; want none", id, len(out), n, fen)
	}
}

// A request rejected order_unknown has no order to remember it on: once
// pruned, its replay must still be no new request (no second decision),
// and stays none when a late order.paid for that order turns up: decided
// then, it could be approved and paid.
func TestRedeliveryOfPrunedUnknownOrderRequest(t *testing.T) {
	f := newFixture(t, PresetJD)
	req := "2026-01-03T10:00:00+08:00 return.requested req=r1 order=ox kind=refund_only reason=quality"
	if d := f.decision(req); d.Verdict != VerdictRejected || !d.Reasons.Has(CodeOrderUnknown) {
		t.Fatalf("r1 on unknown ox: %s %v", d.Verdict, d.Reasons.AppendStrings(nil))
	}
	pruneThenReplay(t, f, "r1", req)
	f.order("2026-01-01T10:00:00+08:00", "ox", "paid=10000")
	f.apply("2026-05-02T10:00:00+08:00 order.delivered order=ox")
	if out := f.apply(req); len(out) != 0 {
		n, fen := countEffects(out, EffectRefund)
		t.Fatalf("replay of r1 once ox is known: %d effects, %d refunds, %d fen; want none", len(out), n, fen)
	}
}

// An order pruned itself (OrderRetention after its last event) hands its
// forgotten IDs to the user: a replay of its pruned request after that is
// still no new request.
func TestPrunedOrderKeepsItsForgottenIDs(t *testing.T) {
	f := newFixture(t, PresetJD)
	f.order("2026-01-01T10:00:00+08:00", "o1", "paid=10000")
	f.apply("2026-01-02T10:00:00+08:00 order.delivered order=o1")
	req := "2026-01-03T10:00:00+08:00 return.requested req=r1 order=o1 kind=refund_only reason=other amount=4000"
	f.decision(req)
	f.apply("2026-05-01T10:00:00+08:00 credit.updated stars=5") // r1 pruned, on o1
	if o := f.u.Order("o1"); o == nil || len(o.Forgotten) != 1 {
		t.Fatalf("o1 after r1's prune: %+v", o)
	}
	f.apply("2027-06-01T10:00:00+08:00 credit.updated stars=5") // o1 pruned
	if f.u.Order("o1") != nil || len(f.u.Forgotten) != 1 || f.u.Forgotten[0] != "r1" {
		t.Fatalf("o1 pruned: order %v, user's forgotten %v", f.u.Order("o1"), f.u.Forgotten)
	}
	if out := f.apply(req); len(out) != 0 {
		t.Fatalf("replay of r1 after o1 was pruned: %d effects; want none", len(out))
	}
}

// Order.Forgotten keeps at most MaxForgotten IDs, the newest, each once.
func TestForgottenIsBounded(t *testing.T) {
	var o Order
	for i := range MaxForgotten + 10 {
		forget(&o.Forgotten, "r"+strconv.Itoa(i))
		forget(&o.Forgotten, "r"+strconv.Itoa(i))
	}
	if len(o.Forgotten) != MaxForgotten || o.Forgotten[0] != "r10" || o.Forgotten[MaxForgotten-1] != "r"+strconv.Itoa(MaxForgotten+9) {
		t.Fatalf("forgotten %d, first %s, last %s", len(o.Forgotten), o.Forgotten[0], o.Forgotten[len(o.Forgotten)-1])
	}
	// A longer list (only a hand-built record has one) is cut to the
	// bound at the next forget.
	long := append(slices.Clone(o.Forgotten), o.Forgotten...)
	forget(&long, "new")
	if len(long) != MaxForgotten || long[MaxForgotten-1] != "new" {
		t.Fatalf("an over-long list: %d after a forget, last %s", len(long), long[len(long)-1])
	}
}

// The query API's "flagged" is the decision's test: a trust window that
// reaches back past pruned marks flags the shopper (fails safe).
func TestTrustFlaggedPastPrunedMarks(t *testing.T) {
	p, _ := Preset(PresetJD)
	at := int64(200 * 24 * time.Hour)
	u := &User{ID: "u1", MaxAt: at, TrustPrunedTo: at - int64(80*24*time.Hour)}
	if !u.TrustFlagged(at, p) {
		t.Fatal("a mark pruned 80 days ago is inside the 90-day window: flagged")
	}
	if _, flagged := u.Trust(p); !flagged {
		t.Fatal("Trust: not flagged")
	}
	if u.TrustFlagged(at+int64(11*24*time.Hour), p) {
		t.Fatal("91 days after the pruned mark: not flagged")
	}
}

// An event whose own time prunes the request or order it refers to is
// dead-lettered as if it had come one event later (found by FuzzApply:
// it dereferenced the pruned request and panicked the core, which the
// pipeline dead-letters as poison).
func TestEventPrunedByItsOwnTime(t *testing.T) {
	f := newFixture(t, PresetJD)
	f.order("2026-01-01T10:00:00+08:00", "o1", "paid=10000")
	f.apply("2026-01-02T10:00:00+08:00 order.delivered order=o1")
	f.decision("2026-01-03T10:00:00+08:00 return.requested req=r1 order=o1 kind=refund_only reason=other amount=4000")
	f.apply("2026-01-07T10:00:00+08:00 credit.updated stars=5") // approved by the review deadline, refunded, closed
	if r := f.u.Request("r1"); r == nil || r.Status == StatusOpen {
		t.Fatalf("r1 not closed: %+v", r)
	}
	oneDeadLetter := func(ev string, want Fault) {
		t.Helper()
		out := f.apply(ev)
		if len(out) != 1 || out[0].Kind != EffectDeadLetter || out[0].Fault != want {
			t.Fatalf("%s: %+v, want one dead letter %v", ev, out, want)
		}
	}
	oneDeadLetter("2026-05-01T10:00:00+08:00 logistics.tracking req=r1 no=SF1", FaultUnknownRequest)
	if f.u.MaxAt != parseTime(t, "", "2026-05-01T10:00:00+08:00") {
		t.Fatal("the dead-lettered event's time did not move the shopper's clock")
	}
	oneDeadLetter("2027-03-01T10:00:00+08:00 order.shipped order=o1", FaultUnknownOrder)
}

// A replay of an order pruned long ago does not bring it back: recreated,
// its ceiling would start afresh, and a replayed request whose ID the
// bounded forgotten lists no longer hold could be paid a second time
// (found in review: paid 10000, refunded 20000 in total). Neither after a
// reload to a policy that keeps orders longer (prune's horizon depends on
// the policy), nor through a second order.paid of the order dated later
// than its first (found in a second review: ignored, it did not count as
// the order's last event, so the order was pruned before its time).
func TestReplayedOrderPastItsHorizonIsNotRecreated(t *testing.T) {
	for _, tc := range []struct {
		name        string
		secondPaid  bool // a second order.paid, dated later, before the prune
		longerAfter bool // a reload to a policy keeping orders 800 days before the replay
	}{{"plain", false, false}, {"policy with longer retention", false, true}, {"second order.paid", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, PresetJD)
			events := []string{"2026-01-01T10:00:00+08:00 order.paid order=o1 merchant=m1 category=shoes size=small seven_day paid=10000"}
			if tc.secondPaid {
				events = append(events, "2026-03-01T10:00:00+08:00 order.paid order=o1 merchant=m1 category=shoes size=small seven_day paid=10000")
			}
			events = append(events, "2026-01-02T10:00:00+08:00 order.delivered order=o1",
				"2026-01-03T10:00:00+08:00 return.requested req=r1 order=o1 kind=refund_only reason=quality",
				"2026-01-04T10:00:00+08:00 review.approved req=r1 by=merchant")
			var all []Effect
			for _, ev := range events {
				all = append(all, f.apply(ev)...)
			}
			if n, fen := countEffects(all, EffectRefund); n != 1 || fen != 10000 {
				t.Fatalf("first pass: %d refunds, %d fen", n, fen)
			}
			f.apply("2027-03-03T10:00:00+08:00 credit.updated stars=5") // r1, then o1 pruned
			if f.u.Request("r1") != nil || (f.u.Order("o1") != nil) != tc.secondPaid {
				// The second order.paid counts as o1's last event: not yet.
				t.Errorf("after the prune: r1 %v, o1 %v", f.u.Request("r1"), f.u.Order("o1"))
			}
			f.u.Forgotten = nil // as if 64 newer forgotten IDs had pushed r1 out
			if tc.longerAfter {
				p := *f.env.Policy
				p.TrustWindow = 800 * 24 * time.Hour
				if err := p.Finish(); err != nil {
					t.Fatal(err)
				}
				f.env.Policy = &p
			}
			for _, ev := range events {
				all = append(all, f.apply(ev)...)
			}
			all = Fire(&f.u, parseTime(t, "", "2027-03-10T10:00:00+08:00"), &f.env, all)
			if n, fen := countEffects(all, EffectRefund); n != 1 || fen != 10000 {
				t.Fatalf("refunds for o1 (paid 10000): %d, %d fen in total; want one of 10000", n, fen)
			}
			if o := f.u.Order("o1"); o != nil && !tc.secondPaid {
				t.Fatal("o1 recreated by a replay of its order.paid")
			}
		})
	}
}
