package core

import (
	"slices"
	"testing"
	"time"
)

// httpView is what pipeline/http.go (now pipeline/httpapi) computed inline before the query
// functions existed, copied verbatim (as of commit ab61ca3) so that the
// functions can be checked against it: the HTTP API switches to them
// with no visible change.
type httpView struct {
	open     []string
	exposure int64
	marks    int
	flagged  bool
	refund   *RefundState // nil: no refund block
	pickup   *PickupState // nil: no pickup block
	closedAt int64
	closed   bool
}

func legacyUserView(u *User, pol *Policy) httpView {
	v := httpView{open: []string{}, exposure: u.OutstandingFen + u.PromisedFen}
	for _, rq := range u.Requests {
		if rq.Status == StatusOpen {
			v.open = append(v.open, rq.ID)
		}
	}
	cutoff := u.MaxAt - int64(pol.TrustWindow)
	for _, t := range u.TrustMarks {
		if t > cutoff {
			v.marks++
		}
	}
	v.flagged = u.TrustFlagged(u.MaxAt, pol)
	return v
}

func legacyRequestView(rq *Request) httpView {
	var v httpView
	if rq.Status == StatusClosed {
		v.closed, v.closedAt = true, rq.ClosedAt
	}
	if rq.Approved() && (rq.PayTrigger != TriggerNone || rq.RefundSent) {
		rv := &RefundState{Trigger: rq.PayTrigger, Advance: rq.PayAdvance, Reserved: rq.Reserved, Sent: rq.RefundSent}
		if rq.RefundSent {
			rv.Trigger, rv.Advance, rv.SentAt = rq.RefundTrigger, rq.RefundAdvance, rq.RefundAt
		}
		v.refund = rv
	}
	if rq.WindowEnd != 0 {
		v.pickup = &PickupState{WindowStart: rq.WindowStart, WindowEnd: rq.WindowEnd, Done: rq.PickupDone || rq.CourierOnTime, Compensated: rq.CompensationSent}
	}
	return v
}

// checkQuery compares the query functions with the HTTP API's former
// derivation, and checks what the effect list must hold, on one state.
// TestInvariants calls it after every event of its random histories.
func checkQuery(t *testing.T, u *User, p *Policy) {
	t.Helper()
	want := legacyUserView(u, p)
	marks, flagged := u.Trust(p)
	if got := u.OpenRequests([]string{}); !slices.Equal(got, want.open) || u.Exposure() != want.exposure ||
		marks != want.marks || flagged != want.flagged {
		t.Fatalf("user %s: open %v exposure %d trust %d/%t, http.go had %v %d %d/%t",
			u.ID, got, u.Exposure(), marks, flagged, want.open, want.exposure, want.marks, want.flagged)
	}
	for i := range u.Requests {
		r := &u.Requests[i]
		want := legacyRequestView(r)
		rs, rok := r.RefundState()
		if rok != (want.refund != nil) || rok && rs != *want.refund {
			t.Fatalf("%s/%s: refund %+v %t, http.go had %+v", u.ID, r.ID, rs, rok, want.refund)
		}
		ps, pok := r.PickupState()
		if pok != (want.pickup != nil) || pok && ps != *want.pickup {
			t.Fatalf("%s/%s: pickup %+v %t, http.go had %+v", u.ID, r.ID, ps, pok, want.pickup)
		}
		if at, ok := r.Closed(); ok != want.closed || at != want.closedAt {
			t.Fatalf("%s/%s: closed %d %t, http.go had %d %t", u.ID, r.ID, at, ok, want.closedAt, want.closed)
		}
		// The effect list names what was sent, each kind once, except a
		// resolution that answered a review and a close.
		effs := r.Effects(u.ID)
		if len(effs) == 0 || effs[0].Kind != EffectDecision {
			t.Fatalf("%s/%s: effects %v do not start with the decision", u.ID, r.ID, effs)
		}
		n := 1
		for _, sent := range []bool{r.Resolution != ResolutionNone, r.Status == StatusClosed, r.RefundSent, r.Pickup,
			r.CompensationSent, r.ClawbackSent, r.TrustSent} {
			if sent {
				n++
			}
		}
		if len(effs) != n {
			t.Fatalf("%s/%s: %d effects %v, want %d", u.ID, r.ID, len(effs), effs, n)
		}
	}
}

// TestTrustMarkAfterLastEvent: a return deadline fired by partition time
// after the shopper's last event leaves a trust mark dated after MaxAt. The
// query API counts it at once but flags the shopper only from the next
// event on, the instant a decision would see it (as http.go did).
func TestTrustMarkAfterLastEvent(t *testing.T) {
	f := newFixture(t, PresetJD)
	f.order("2026-11-01T10:00:00+08:00", "o1", "paid=9000")
	f.apply("2026-11-02T10:00:00+08:00 order.delivered order=o1")
	f.apply("2026-11-03T10:00:00+08:00 return.requested req=r1 order=o1 kind=return_refund reason=quality")
	if m, fl := f.u.Trust(f.env.Policy); m != 0 || fl {
		t.Fatalf("before the close: marks %d flagged %t", m, fl)
	}
	// The partition clock passes the return deadline (7 days after the
	// approval) while the shopper sends nothing.
	Fire(&f.u, f.u.MaxAt+int64(8*24*time.Hour), &f.env, nil)
	if at, ok := f.u.Request("r1").Closed(); !ok || at <= f.u.MaxAt {
		t.Fatalf("closed %d %t, max_at %d", at, ok, f.u.MaxAt)
	}
	if m, fl := f.u.Trust(f.env.Policy); m != 1 || fl {
		t.Fatalf("after the close: marks %d flagged %t, want 1 false", m, fl)
	}
	f.apply("2026-11-20T10:00:00+08:00 credit.updated stars=5")
	if m, fl := f.u.Trust(f.env.Policy); m != 1 || !fl {
		t.Fatalf("after the next event: marks %d flagged %t, want 1 true", m, fl)
	}
	checkQuery(t, &f.u, f.env.Policy)
}

// TestRefundState covers each refund block the query API can show.
func TestRefundState(t *testing.T) {
	for _, c := range []struct {
		name string
		r    Request
		want RefundState
		ok   bool
	}{
		{"review, not approved", Request{Verdict: VerdictReview, PayTrigger: TriggerTracking}, RefundState{}, false},
		{"exchange pays nothing", Request{Verdict: VerdictApproved}, RefundState{}, false},
		{"promised on tracking", Request{Verdict: VerdictApproved, PayTrigger: TriggerTracking, PayAdvance: true, Reserved: true},
			RefundState{Trigger: TriggerTracking, Advance: true, Reserved: true}, true},
		{"paid by inspection instead", Request{Verdict: VerdictApproved, PayTrigger: TriggerTracking, PayAdvance: true,
			RefundSent: true, RefundTrigger: TriggerInspection, RefundAt: 7},
			RefundState{Trigger: TriggerInspection, Sent: true, SentAt: 7}, true},
		{"approved after review", Request{Verdict: VerdictReview, Resolution: ResolutionApproved, PayTrigger: TriggerInspection, Reserved: true},
			RefundState{Trigger: TriggerInspection, Reserved: true}, true},
		{"rejected after review", Request{Verdict: VerdictReview, Resolution: ResolutionRejected, PayTrigger: TriggerNone}, RefundState{}, false},
	} {
		got, ok := c.r.RefundState()
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %+v %t, want %+v %t", c.name, got, ok, c.want, c.ok)
		}
		if want := legacyRequestView(&c.r); (want.refund != nil) != ok {
			t.Errorf("%s: http.go disagrees", c.name)
		}
	}
}
