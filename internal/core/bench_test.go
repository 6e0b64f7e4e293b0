package core

import (
	"strconv"
	"testing"
	"time"
)

// warmUser returns a shopper with history: 12 orders (delivered), 8
// requests in various states, a few recent requests and an advance
// outstanding, like a regular customer on Singles' Day.
func warmUser(tb testing.TB, env *Env) *User {
	u := &User{ID: "u1"}
	at := parseTime(tb, "", "2026-11-01T10:00:00+08:00")
	step := func(d time.Duration) int64 { at += int64(d); return at }
	ev := func(e Event) {
		e.UserID = "u1"
		Apply(u, &e, env, nil)
	}
	ev(Event{Type: EventCreditUpdated, At: step(time.Minute), Stars: 4})
	for i := range 12 {
		id := "o" + strconv.Itoa(i)
		ev(Event{Type: EventOrderPaid, At: step(time.Hour), OrderID: id, MerchantID: "m1", Category: "shoes", Size: SizeSmall, PaidFen: 12900, SevenDay: true, City: "Hangzhou"})
		ev(Event{Type: EventOrderDelivered, At: step(time.Hour), OrderID: id})
	}
	for i := range 8 {
		id := "r" + strconv.Itoa(i)
		ev(Event{Type: EventReturnRequested, At: step(9 * time.Hour), RequestID: id, OrderID: "o" + strconv.Itoa(i), Kind: KindReturnRefund, Reason: ReasonDislike, Pickup: i%2 == 0})
		if i < 5 {
			ev(Event{Type: EventLogisticsTracking, At: step(time.Hour), RequestID: id, TrackingNo: "T"})
		}
		if i < 3 {
			ev(Event{Type: EventInspectionResult, At: step(time.Hour), RequestID: id, Outcome: OutcomeOK})
		}
	}
	return u
}

// restore copies src into dst reusing dst's slices (no allocation once
// dst has grown to size).
func restore(dst, src *User) {
	orders, reqs, recent, bad, slab := dst.Orders, dst.Requests, dst.RecentRequests, dst.TrustMarks, dst.slab
	*dst = *src
	dst.Orders = append(orders[:0], src.Orders...)
	dst.Requests = append(reqs[:0], src.Requests...)
	dst.RecentRequests = append(recent[:0], src.RecentRequests...)
	dst.TrustMarks = append(bad[:0], src.TrustMarks...)
	dst.slab = slab // dst keeps its own slab: src's strings stay where they are
}

func benchEnv(tb testing.TB) *Env {
	p, _ := Preset(PresetTmall)
	m := &Merchant{ID: "m1", ReturnAddresses: []string{"Hangzhou return desk"}, ShipAddresses: []string{"Hangzhou warehouse"}, Revision: 1}
	return &Env{Policy: p, Loc: shanghai(tb), Merchant: func(id string) *Merchant {
		if id == "m1" {
			return m
		}
		return nil
	}}
}

// BenchmarkApplyReturnRequested decides a return.requested (approved, with
// a pickup: the longest path) for a warm shopper. The state is restored
// before each iteration, into slices that already have room, so the
// request is decided fresh every time; restoring is included in the time.
func BenchmarkApplyReturnRequested(b *testing.B) {
	env := benchEnv(b)
	tmpl := warmUser(b, env)
	ev := Event{Type: EventReturnRequested, UserID: "u1", At: tmpl.MaxAt + int64(time.Hour), AtRaw: "2026-11-05T10:00:00+08:00",
		RequestID: "rnew", OrderID: "o11", Kind: KindReturnRefund, Reason: ReasonNoReason, Pickup: true}
	u := &User{}
	restore(u, tmpl)
	u.Requests = append(u.Requests, Request{}) // room for the new request
	out := make([]Effect, 0, 8)
	restore(u, tmpl)
	out = Apply(u, &ev, env, out[:0])
	if len(out) != 2 || out[0].Verdict != VerdictApproved {
		b.Fatalf("warm decision: %d effects, %v %v", len(out), out[0].Verdict, out[0].Reasons.AppendStrings(nil))
	}
	b.ReportAllocs()
	for b.Loop() {
		restore(u, tmpl)
		out = Apply(u, &ev, env, out[:0])
	}
}

// BenchmarkApplyTracking applies a logistics.tracking that pays a refund.
func BenchmarkApplyTracking(b *testing.B) {
	env := benchEnv(b)
	tmpl := warmUser(b, env)
	ev := Event{Type: EventLogisticsTracking, UserID: "u1", At: tmpl.MaxAt + int64(time.Hour), RequestID: "r7", TrackingNo: "T7"}
	u := &User{}
	restore(u, tmpl)
	out := make([]Effect, 0, 8)
	if out = Apply(u, &ev, env, out[:0]); len(out) != 1 {
		b.Fatalf("%d effects", len(out))
	}
	b.ReportAllocs()
	for b.Loop() {
		restore(u, tmpl)
		out = Apply(u, &ev, env, out[:0])
	}
}

// BenchmarkFire fires a warm shopper's next deadline (NextDeadline: here
// the return deadline of an approved request whose goods never came
// back), as the worker does when the partition's clock passes it.
func BenchmarkFire(b *testing.B) {
	env := benchEnv(b)
	tmpl := warmUser(b, env)
	dl, ok := NextDeadline(tmpl)
	if !ok {
		b.Fatal("no deadline armed")
	}
	now := dl + int64(time.Minute)
	u := &User{}
	restore(u, tmpl)
	out := make([]Effect, 0, 8)
	if out = Fire(u, now, env, out[:0]); len(out) == 0 {
		b.Fatal("nothing fired")
	}
	b.ReportAllocs()
	for b.Loop() {
		restore(u, tmpl)
		if _, ok := NextDeadline(u); ok {
			out = Fire(u, now, env, out[:0])
		}
	}
}

// TestApplyZeroAllocs pins the allocation budget of the hot path: a
// decision on a warm shopper allocates nothing (the request's request_id
// goes to the shopper's string slab, see own, which has room; a new slab
// is one allocation for many requests), and a timer firing allocates
// nothing.
func TestApplyZeroAllocs(t *testing.T) {
	env := benchEnv(t)
	tmpl := warmUser(t, env)
	ev := Event{Type: EventReturnRequested, UserID: "u1", At: tmpl.MaxAt + int64(time.Hour), AtRaw: "x",
		RequestID: "rnew", OrderID: "o11", Kind: KindReturnRefund, Reason: ReasonNoReason, Pickup: true}
	u := &User{}
	restore(u, tmpl)
	u.Requests = append(u.Requests, Request{})
	out := make([]Effect, 0, 8)
	n := testing.AllocsPerRun(200, func() {
		restore(u, tmpl)
		out = Apply(u, &ev, env, out[:0])
	})
	if len(out) != 2 || out[0].Verdict != VerdictApproved {
		t.Fatalf("warm decision: %d effects, %v %v", len(out), out[0].Verdict, out[0].Reasons.AppendStrings(nil))
	}
	if n != 0 {
		t.Fatalf("Apply(return.requested) allocates %.1f times per call on a warm user, want 0", n)
	}
	now := tmpl.MaxAt + int64(48*time.Hour)
	n = testing.AllocsPerRun(200, func() {
		restore(u, tmpl)
		out = Fire(u, now, env, out[:0])
	})
	if n != 0 {
		t.Fatalf("Fire allocates %.1f times per call", n)
	}
}

// BenchmarkRestoreOnly is the cost of restoring the warm state alone, which
// the Apply benchmarks include: subtract it to get the decision itself.
func BenchmarkRestoreOnly(b *testing.B) {
	env := benchEnv(b)
	tmpl := warmUser(b, env)
	u := &User{}
	restore(u, tmpl)
	b.ReportAllocs()
	for b.Loop() {
		restore(u, tmpl)
	}
}
