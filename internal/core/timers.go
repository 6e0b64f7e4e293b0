package core

import (
	"slices"
	"time"
)

// CompensationReason is the reason of every compensation effect: the
// courier missed the pickup window.
const CompensationReason = "pickup_missed"

// TimerKind is what a request's timer does when it fires.
type TimerKind uint8

// Timer kinds, in the order they fire when due at the same instant.
const (
	TimerNone TimerKind = iota
	// TimerPickup: the pickup window ended (plus the policy's grace) with
	// no sign the courier came: one compensation.
	TimerPickup
	// TimerReview: the review deadline passed with no answer to a request
	// that failed fast-track rules only: approved by timeout.
	TimerReview
	// TimerReturn: the return deadline passed with nothing sent back:
	// closed (and clawed back if anything was advanced).
	TimerReturn
)

var timerNames = [...]string{"", "pickup", "review", "return"}

// String returns the timer's name ("pickup").
func (k TimerKind) String() string { return enumName(timerNames[:], k) }

// Timer returns the request's earliest armed timer: its kind and deadline
// (Unix ns). The timer fires once event time is strictly past the
// deadline. Every parameter comes from the request's own policy:
//
//   - pickup: an approved open request with a pickup, no compensation
//     sent and no sign the courier came in its window: the window's end
//     plus PickupGrace;
//   - review: a request in review whose failed codes allow an approval
//     without a person (no safety rule, merchant known): its decision's at
//     plus ReviewDeadline;
//   - return: an approved open request whose goods must come back and
//     that has seen no tracking, pickup or inspection: its approval's at
//     plus ReturnDeadline.
func (r *Request) Timer() (TimerKind, int64) {
	if r.Status != StatusOpen || r.Policy == nil {
		return TimerNone, 0
	}
	kind, at := TimerNone, int64(0)
	arm := func(k TimerKind, dl int64) {
		if kind == TimerNone || dl < at {
			kind, at = k, dl
		}
	}
	p := r.Policy
	if r.InReview() {
		if timeoutEligible(r.Reasons) {
			arm(TimerReview, r.At+int64(p.ReviewDeadline))
		}
		return kind, at
	}
	if r.Pickup && !r.CompensationSent && !r.CourierOnTime {
		arm(TimerPickup, r.WindowEnd+int64(p.PickupGrace))
	}
	if r.Approved() && r.GoodsComeBack() && !r.Tracked && !r.PickupDone && r.Inspection == OutcomeNone {
		arm(TimerReturn, r.ApprovedAt+int64(p.ReturnDeadline))
	}
	return kind, at
}

// NextDeadline returns the user's earliest timer deadline over its
// requests (see [Request.Timer]). ok is false when nothing is armed. The
// timer is due once event time is strictly past the deadline; see [Fire].
func NextDeadline(u *User) (deadline int64, ok bool) {
	for i := range u.Requests {
		if k, dl := u.Requests[i].Timer(); k != TimerNone && (!ok || dl < deadline) {
			deadline, ok = dl, true
		}
	}
	return deadline, ok
}

// Fire fires every timer of u that is due at event time now (Unix ns):
// each armed timer whose deadline is strictly before now, in deadline
// order (ties: the request's order in u.Requests, then [TimerKind]
// order), each once. A fired timer may arm another (a review approved by
// timeout gets a pickup window and a return deadline from its deadline);
// those fire in the same call when they too are before now. Effects:
//
//   - pickup: one compensation (reason [CompensationReason], the request
//     policy's CompensationFen);
//   - review: the approval by timeout (see the Apply doc on review
//     answers) at the deadline;
//   - return: a resolution closed by timeout at the deadline; if money or
//     goods were advanced, a clawback and trust feedback with outcome
//     not_returned and the policy's penalty, and a trust mark.
//
// It appends to out and returns it, like Apply; u.MaxAt is not changed
// (now is the partition's clock, not a user event). Calling Fire with a
// now at which nothing is due is a no-op.
func Fire(u *User, now int64, env *Env, out []Effect) []Effect {
	for {
		idx, kind, dl := -1, TimerNone, int64(0)
		for i := range u.Requests {
			k, at := u.Requests[i].Timer()
			if k != TimerNone && at < now && (idx < 0 || at < dl) {
				idx, kind, dl = i, k, at
			}
		}
		if idx < 0 {
			return out
		}
		r := &u.Requests[idx]
		switch kind {
		case TimerPickup:
			r.CompensationSent = true
			var e *Effect
			out, e = emit(out, EffectCompensation, u, r)
			e.AmountFen = r.Policy.CompensationFen
		case TimerReview:
			out = approveReviewed(u, r, ActorTimeout, dl, env, out)
		case TimerReturn:
			out = closeNotReturned(u, r, dl, out)
		}
	}
}

// MinRetention is the shortest time closed history is kept: the longest
// rule window of the presets (the 90-day trust window). See
// [Policy.Retention].
const MinRetention = 90 * 24 * time.Hour

// OrderRetention is how long an order is remembered after its last event
// when no kept request refers to it (domain.md: at least 400 days), so
// that a late request for an order delivered long ago is decided
// (outside_window), not rejected as order_unknown, and the per-order
// ceiling still knows what was refunded.
const OrderRetention = 400 * 24 * time.Hour

// AbandonAfter is how long a request may stay open (awaiting a review, an
// inspection...) before pruning drops it as abandoned, counted from its
// decision to the user's MaxAt. Dropping it forgets it but does not
// release advanced or promised money it holds: that stays counted against
// the exposure cap; its order's reservation stays too (the order is kept
// while anything is reserved on it).
const AbandonAfter = 365 * 24 * time.Hour

// LateAllowance: velocity entries and trust marks are kept for their
// windows plus this, so a request dated up to this far behind its
// shopper's latest event is judged on an exact history; further back,
// a window reaching past what was pruned fails its rule safe.
const LateAllowance = 7 * 24 * time.Hour

// prune drops, relative to u.MaxAt, what RULES.md (Bounded state) lists,
// keeping what stays in order and what the money rules need (forgotten
// IDs, pruned times); it reports whether a request or an order went.
func prune(u *User, p *Policy) (dropped bool) {
	n := len(u.Requests) + len(u.Orders)
	cutoff := u.MaxAt - int64(p.Retention())
	abandon := u.MaxAt - int64(AbandonAfter)
	orders := u.MaxAt - int64(max(OrderRetention, p.Retention()))
	u.Requests = compact(u.Requests, func(r *Request) bool {
		keep := r.ClosedAt >= cutoff
		if r.Status == StatusOpen {
			keep = r.At >= abandon
		}
		if !keep { // the order lookup only for what goes: prune is on the hot path
			list := &u.Forgotten
			if o := u.Order(r.OrderID); o != nil {
				list = &o.Forgotten
			}
			forget(list, r.ID)
		}
		return keep
	})
	// After the requests: an order is kept while a kept request refers to
	// it; a pruned order's forgotten IDs move to the user's.
	u.Orders = compact(u.Orders, func(o *Order) bool {
		keep := o.LastAt >= orders || o.ReservedFen != 0 || u.referenced(o.ID)
		for i := 0; !keep && i < len(o.Forgotten); i++ {
			forget(&u.Forgotten, o.Forgotten[i])
		}
		return keep
	})
	dropped = len(u.Requests)+len(u.Orders) < n
	// Velocity entries and trust marks are kept for the spec's windows
	// (24 h, 90 days) at least, whatever the policy in force: a policy
	// with shorter ones must not forget what the next policy's rules
	// read (a reload "changes later decisions only").
	velocity := u.MaxAt - int64(max(p.VelocityWindow, DefaultVelocityWindow)+LateAllowance)
	trust := u.MaxAt - int64(max(p.TrustWindow, DefaultTrustWindow)+LateAllowance)
	u.RecentRequests = pruneTimes(u.RecentRequests, velocity, &u.VelocityPrunedTo)
	u.TrustMarks = pruneTimes(u.TrustMarks, trust, &u.TrustPrunedTo)
	return dropped
}

// pruneTimes drops times at or before cutoff into *dropped (their max).
func pruneTimes(ts []int64, cutoff int64, dropped *int64) []int64 {
	return compact(ts, func(t *int64) bool {
		if *t <= cutoff {
			*dropped = max(*dropped, *t)
		}
		return *t > cutoff
	})
}

// compact keeps the elements of s for which keep holds, in order and in
// place, and clears the tail so that dropped entries pin no strings. It
// goes through pointers: requests and orders are hundreds of bytes, and
// most calls (prune runs on almost every event) drop nothing, so an
// element is read in place and copied only when it moves.
func compact[T any](s []T, keep func(*T) bool) []T {
	n := 0
	for i := range s {
		if !keep(&s[i]) {
			continue
		}
		if n != i {
			s[n] = s[i]
		}
		n++
	}
	clear(s[n:])
	return s[:n]
}

// MaxForgotten bounds Order.Forgotten and User.Forgotten (oldest go).
const MaxForgotten = 64

// forget records a request ID in a forgotten list, once.
func forget(list *[]string, id string) {
	if slices.Contains(*list, id) {
		return
	}
	if n := len(*list); n >= MaxForgotten { // > only from a hand-built record
		*list = append((*list)[:0], (*list)[n-MaxForgotten+1:]...)
	}
	*list = append(*list, id)
}

// forgotten reports whether a request with this ID was pruned from u, or
// redelivered naming one of u's kept orders.
func (u *User) forgotten(requestID string) bool {
	if slices.Contains(u.Forgotten, requestID) {
		return true
	}
	for i := range u.Orders {
		if slices.Contains(u.Orders[i].Forgotten, requestID) {
			return true
		}
	}
	return false
}

// referenced reports whether a request of u refers to the order.
func (u *User) referenced(orderID string) bool {
	for i := range u.Requests {
		if u.Requests[i].OrderID == orderID {
			return true
		}
	}
	return false
}
