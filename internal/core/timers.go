package core

import (
	"slices"
	"time"
)

// CompensationReason is the reason of every compensation effect: the
// courier missed the pickup window.
const CompensationReason = "pickup_missed"

// NextDeadline returns the user's earliest timer: the smallest pickup
// WindowEnd (Unix ns) of a request whose timer is armed (see
// [Request.TimerArmed]). ok is false when nothing is armed. The timer is
// due once event time is strictly past the deadline; see [Fire].
func NextDeadline(u *User) (deadline int64, ok bool) {
	for i := range u.Requests {
		r := &u.Requests[i]
		if r.TimerArmed() && (!ok || r.WindowEnd < deadline) {
			deadline, ok = r.WindowEnd, true
		}
	}
	return deadline, ok
}

// Fire fires every timer of u that is due at event time now (Unix ns): each
// armed pickup window whose end is strictly before now yields one
// compensation effect (reason [CompensationReason], env.Policy's
// CompensationFen), in the order of u.Requests, and is disarmed so that it
// never fires again. It appends to out and returns it, like Apply; u.MaxAt
// is not changed (now is the partition's clock, not a user event). Calling
// Fire with a now at which nothing is due is a no-op.
func Fire(u *User, now int64, env *Env, out []Effect) []Effect {
	for i := range u.Requests {
		r := &u.Requests[i]
		if !r.TimerArmed() || r.WindowEnd >= now {
			continue
		}
		r.CompensationSent = true
		out = append(out, Effect{
			Kind:      EffectCompensation,
			UserID:    u.ID,
			RequestID: r.ID,
			OrderID:   r.OrderID,
			AmountFen: env.Policy.CompensationFen,
		})
	}
	return out
}

// MinRetention is the shortest time closed history is kept: the longest
// rule window of the presets (the 90-day trust window). See
// [Policy.Retention].
const MinRetention = 90 * 24 * time.Hour

// AbandonAfter is how long a request may stay open (awaiting a review, an
// inspection...) before pruning drops it as abandoned, counted from its
// decision to the user's MaxAt. Dropping it forgets it (its order may be
// dropped too) but does not release advanced money it holds: that stays
// in User.OutstandingFen, counted against the exposure cap.
const AbandonAfter = 365 * 24 * time.Hour

// prune drops, relative to u.MaxAt, closed requests closed more than the
// policy's retention ago, open requests decided more than AbandonAfter
// ago, orders that no remaining request refers to and whose last event is
// older than the retention, velocity entries outside the velocity window
// and bad inspections outside the trust window. Order of the kept entries
// is preserved; nothing is allocated.
func prune(u *User, p *Policy) {
	cutoff := u.MaxAt - int64(p.Retention())
	abandon := u.MaxAt - int64(AbandonAfter)
	u.Requests = slices.DeleteFunc(u.Requests, func(r Request) bool {
		return (r.Status != StatusOpen && r.ClosedAt < cutoff) || (r.Status == StatusOpen && r.At < abandon)
	})
	u.Orders = slices.DeleteFunc(u.Orders, func(o Order) bool {
		return max(o.PaidAt, o.ShippedAt, o.DeliveredAt) < cutoff && !u.referenced(o.ID)
	})

	u.RecentRequests = dropTimes(u.RecentRequests, u.MaxAt-int64(p.VelocityWindow))
	u.BadInspections = dropTimes(u.BadInspections, u.MaxAt-int64(p.TrustWindow))
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

// dropTimes removes the times t <= cutoff, keeping the order of the rest.
func dropTimes(ts []int64, cutoff int64) []int64 {
	n := 0
	for _, t := range ts {
		if t > cutoff {
			ts[n] = t
			n++
		}
	}
	return ts[:n]
}
