package core

import (
	"strings"
	"time"
)

// Apply applies one user event to the user's state u and appends the
// resulting effects to out, which it returns (like append). It is pure: it
// reads only u, ev and env (env.Policy must not be nil; env.Merchant may
// be), takes time only from ev.At, and allocates only when a slice of u or
// out must grow. A rejection is a Decision effect, never an error: Apply
// has no error result and, given a validated event, no failure mode.
//
// Effects, by event type:
//
//   - order.paid, order.shipped, order.delivered, credit.updated: none
//     (state only). Logistics events for an order u does not know are
//     ignored; a second order.paid for a known order is ignored (the first
//     wins), as are later shipped/delivered times of an order that has one.
//   - return.requested: exactly one decision, except for a redelivery (a
//     request_id u already has), which yields nothing. An approval may be
//     followed by a refund (pre_shipment or approval trigger) and a pickup.
//   - return.cancelled: none; an open request with no refund sent becomes
//     cancelled (its pickup timer disarmed), anything else is unchanged.
//   - logistics.tracking, pickup.done: at most one refund (tracking
//     trigger) for an approved open request whose policy pays on tracking.
//   - inspection.result: for an open request, a clawback (bad outcome after
//     an advance refund), a refund (ok outcome, approved, goods come back,
//     none paid yet, the policy pays one) and trust feedback; the request
//     is finished.
//   - clock.tick and invalid types: ignored (timers fire through [Fire]).
//
// Before applying ev, Apply moves u.MaxAt to ev.At when that is later and
// prunes history older than the policy's [Policy.Retention].
//
// Apply is not safe for concurrent use on the same User; distinct users
// may be applied concurrently with the same Env.
func Apply(u *User, ev *Event, env *Env, out []Effect) []Effect {
	if ev.Type == EventClock || ev.Type == EventInvalid || ev.Type >= numEventTypes {
		return out
	}
	if u.ID == "" {
		u.ID = ev.UserID
		own(&u.ID)
	}
	if ev.At > u.MaxAt {
		u.MaxAt = ev.At
		prune(u, env.Policy)
	}
	switch ev.Type {
	case EventOrderPaid:
		orderPaid(u, ev)
	case EventOrderShipped:
		if o := u.order(ev.OrderID); o != nil && o.ShippedAt == 0 {
			o.ShippedAt = ev.At
		}
	case EventOrderDelivered:
		if o := u.order(ev.OrderID); o != nil && o.DeliveredAt == 0 {
			o.DeliveredAt = ev.At
			if o.ShippedAt == 0 {
				o.ShippedAt = ev.At // signed for, so it shipped
			}
		}
	case EventCreditUpdated:
		u.Stars = ev.Stars
	case EventReturnRequested:
		out = requested(u, ev, env, out)
	case EventReturnCancelled:
		if r := u.request(ev.RequestID); r != nil && r.Status == StatusOpen && !r.RefundSent {
			closeRequest(r, StatusCancelled, ev.At)
		}
	case EventLogisticsTracking, EventPickupDone:
		out = tracked(u, ev, env, out)
	case EventInspectionResult:
		out = inspected(u, ev, env, out)
	}
	return out
}

func orderPaid(u *User, ev *Event) {
	if u.order(ev.OrderID) != nil {
		return
	}
	u.Orders = append(u.Orders, Order{
		ID:               ev.OrderID,
		MerchantID:       ev.MerchantID,
		Category:         ev.Category,
		City:             ev.City,
		Size:             ev.Size,
		PaidFen:          ev.PaidFen,
		SevenDay:         ev.SevenDay,
		FreightInsurance: ev.FreightInsurance,
		PaidAt:           ev.At,
	})
	o := &u.Orders[len(u.Orders)-1]
	own(&o.ID, &o.MerchantID, &o.Category, &o.City)
}

// own gives the strings it points to storage of their own, one
// allocation for all of them. An Event's strings may share the buffer
// they were decoded from (wire.Decode keeps one copy of the payload per
// event); a shopper's state lives for months and must not pin a whole
// payload for a few identifiers.
func own(strs ...*string) {
	n := 0
	for _, s := range strs {
		n += len(*s)
	}
	if n == 0 {
		return
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range strs {
		b.WriteString(*s)
	}
	all := b.String()
	for _, s := range strs {
		l := len(*s)
		*s, all = all[:l], all[l:]
	}
}

// order returns the order with the given ID, or nil.
func (u *User) order(id string) *Order {
	for i := range u.Orders {
		if u.Orders[i].ID == id {
			return &u.Orders[i]
		}
	}
	return nil
}

// request returns the request with the given ID, or nil.
func (u *User) request(id string) *Request {
	for i := range u.Requests {
		if u.Requests[i].ID == id {
			return &u.Requests[i]
		}
	}
	return nil
}

// Order returns the user's order with the given ID, or nil when the user
// has none (never seen, or pruned). The pointer is valid until the next
// Apply.
func (u *User) Order(id string) *Order { return u.order(id) }

// Request returns the user's request with the given ID, or nil. The
// pointer is valid until the next Apply.
func (u *User) Request(id string) *Request { return u.request(id) }

// hasOpenRequest reports whether the order has an open request.
func (u *User) hasOpenRequest(orderID string) bool {
	for i := range u.Requests {
		if u.Requests[i].Status == StatusOpen && u.Requests[i].OrderID == orderID {
			return true
		}
	}
	return false
}

// Open reports whether the request is open: decided approved or review,
// and not yet cancelled or finished.
func (r *Request) Open() bool { return r.Status == StatusOpen }

// GoodsComeBack reports whether goods travel back to the merchant for this
// request: its kind needs a return address and it was not settled by a
// pre-shipment refund (the order never left the merchant).
func (r *Request) GoodsComeBack() bool {
	return r.Kind.NeedsReturnAddress() && r.RefundTrigger != TriggerPreShipment
}

// Outstanding is the advanced money of this request not yet covered by an
// inspection (counted in User.OutstandingFen).
func (r *Request) Outstanding() int64 {
	if r.RefundSent && r.RefundAdvance && r.Inspection == OutcomeNone {
		return r.AmountFen
	}
	return 0
}

// TimerArmed reports whether the request's pickup window still needs a
// compensation if it ends: approved, open, a pickup scheduled, not picked
// up and not compensated.
func (r *Request) TimerArmed() bool {
	return r.Status == StatusOpen && r.Verdict == VerdictApproved && r.Pickup &&
		!r.PickupDone && !r.CompensationSent
}

func closeRequest(r *Request, s Status, at int64) {
	r.Status = s
	r.ClosedAt = at
}

// sendRefund records and emits the refund of r. A request whose goods do
// not come back is finished by its refund.
func sendRefund(u *User, r *Request, trig Trigger, advance bool, at int64, out []Effect) []Effect {
	r.RefundSent = true
	r.RefundTrigger = trig
	r.RefundAdvance = advance
	r.RefundAt = at
	if advance {
		u.OutstandingFen += r.AmountFen
	}
	out = append(out, Effect{
		Kind:      EffectRefund,
		UserID:    u.ID,
		RequestID: r.ID,
		OrderID:   r.OrderID,
		AmountFen: r.AmountFen,
		Trigger:   trig,
		Advance:   advance,
	})
	if !r.GoodsComeBack() {
		closeRequest(r, StatusFinished, at)
	}
	return out
}

// tracked handles logistics.tracking and pickup.done.
func tracked(u *User, ev *Event, env *Env, out []Effect) []Effect {
	r := u.request(ev.RequestID)
	if r == nil || r.Status != StatusOpen {
		return out
	}
	if ev.Type == EventPickupDone {
		r.PickupDone = true
	} else {
		r.Tracked = true
	}
	if r.Verdict != VerdictApproved || r.RefundSent {
		return out
	}
	if rule := env.Policy.RefundRule(r.Kind); rule.Trigger == TriggerTracking {
		out = sendRefund(u, r, TriggerTracking, rule.Advance, ev.At, out)
	}
	return out
}

// inspected handles inspection.result.
func inspected(u *User, ev *Event, env *Env, out []Effect) []Effect {
	r := u.request(ev.RequestID)
	if r == nil || r.Status != StatusOpen || ev.Outcome == OutcomeNone || ev.Outcome >= numOutcomes {
		return out
	}
	p := env.Policy
	advanced := r.RefundSent && r.RefundAdvance
	u.OutstandingFen -= r.Outstanding() // released, good or bad
	r.Inspection = ev.Outcome
	if ev.Outcome.Bad() {
		if advanced {
			out = append(out, Effect{
				Kind: EffectClawback, UserID: u.ID, RequestID: r.ID, OrderID: r.OrderID,
				AmountFen: r.AmountFen, Outcome: ev.Outcome,
			})
			u.BadInspections = append(u.BadInspections, ev.At)
		}
	} else if r.Verdict == VerdictApproved && !r.RefundSent && r.GoodsComeBack() &&
		p.RefundRule(r.Kind).Trigger != TriggerNone {
		out = sendRefund(u, r, TriggerInspection, false, ev.At, out)
	}
	out = append(out, Effect{
		Kind: EffectTrust, UserID: u.ID, RequestID: r.ID, OrderID: r.OrderID,
		Outcome: ev.Outcome, Penalty: p.Penalties[ev.Outcome],
	})
	if r.Status == StatusOpen {
		closeRequest(r, StatusFinished, ev.At)
	}
	return out
}

// merchantOf returns the profile of the order's merchant, or nil.
func merchantOf(env *Env, o *Order) *Merchant {
	if env.Merchant == nil || o.MerchantID == "" {
		return nil
	}
	return env.Merchant(o.MerchantID)
}

// loc returns the zone for calendar rules.
func (env *Env) loc() *time.Location {
	if env.Loc == nil {
		return time.UTC
	}
	return env.Loc
}
