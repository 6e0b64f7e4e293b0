package core

import (
	"slices"
	"strings"
	"time"
)

// Apply applies one user event to the user's state u and appends the
// resulting effects to out, which it returns (like append). It is pure: it
// reads only u, ev and env (env.Policy must not be nil; env.Merchant may
// be), takes time only from ev.At, and allocates only when a slice of u or
// out must grow (or u's string slab fills, see [User]). A rejection is a
// Decision effect, never an error: Apply has no error result and, given a
// validated event, no failure mode.
//
// Effects, by event type:
//
//   - order.paid, credit.updated: none (state only). A second order.paid
//     of a known order only moves its LastAt (the first's fields win).
//   - order.shipped, order.delivered: none (a known order keeps its first
//     times); for an order u does not have, a [FaultUnknownOrder] dead letter.
//   - return.requested: exactly one decision, except for a redelivery (a
//     request_id u already has), which yields nothing. An approval may be
//     followed by a refund (pre_shipment or approval trigger) and a pickup.
//   - return.cancelled: none; an open request that has handed nothing over
//     (no refund sent, no replace exchange's new item delivered) becomes
//     cancelled (pickup and deadlines disarmed, reservation and promised
//     advance released); anything else is unchanged.
//   - logistics.tracking, pickup.done: at most one refund (tracking
//     trigger) for an approved open request whose terms pay on tracking.
//   - inspection.result: for an open request, a clawback (bad outcome after
//     an advance), a refund (ok outcome, approved, goods come back, none
//     paid yet, its terms pay one) and trust feedback.
//   - review.approved, review.rejected: for a request in review with no
//     resolution yet, one resolution (and, for an approval, what it does:
//     a refund, a pickup); for any other request of u, nothing.
//   - every event about a request (return.cancelled, logistics.*,
//     pickup.done, inspection.result, review.*) that u does not have: a
//     [FaultUnknownRequest] dead letter, no state change (but see below).
//   - clock.tick and invalid types: ignored (timers fire through [Fire]).
//
// Before applying ev (unless it is dead-lettered), Apply fires u's timers
// due before ev.At as [Fire] would, effects first: a late event follows
// the deadlines before its at even if no clock passed them yet (an answer
// after the review deadline loses to the timeout; a pickup.done dated in
// its window counts). It then moves u.MaxAt to ev.At when later and
// prunes; an event whose own time pruned what it names is dead-lettered
// as above, its time having moved u's clock.
//
// Apply is not safe for concurrent use on the same User; distinct users
// may be applied concurrently with the same Env.
func Apply(u *User, ev *Event, env *Env, out []Effect) []Effect {
	if ev.Type == EventClock || ev.Type == EventInvalid || ev.Type >= numEventTypes {
		return out
	}
	if f := fault(u, ev); f != FaultNone {
		return deadLetter(out, ev, f)
	}
	if u.ID == "" {
		u.ID = ev.UserID
		u.own(&u.ID)
	}
	if dl, ok := NextDeadline(u); ok && dl < ev.At {
		out = Fire(u, ev.At, env, out)
	}
	if ev.At > u.MaxAt {
		u.MaxAt = ev.At
		if prune(u, env.Policy) && fault(u, ev) != FaultNone { // pruned what ev names
			return deadLetter(out, ev, fault(u, ev))
		}
	}
	switch ev.Type {
	case EventOrderPaid:
		orderPaid(u, ev)
	case EventOrderShipped:
		if o := u.Order(ev.OrderID); o.ShippedAt == 0 {
			o.ShippedAt = ev.At
			o.touch(ev.At)
		}
	case EventOrderDelivered:
		if o := u.Order(ev.OrderID); o.DeliveredAt == 0 {
			o.DeliveredAt = ev.At
			if o.ShippedAt == 0 {
				o.ShippedAt = ev.At // signed for, so it shipped
			}
			o.touch(ev.At)
		}
	case EventCreditUpdated:
		u.Stars = ev.Stars
	case EventReturnRequested:
		out = requested(u, ev, env, out)
	case EventReturnCancelled:
		if r := u.Request(ev.RequestID); r.Status == StatusOpen && !r.handedOver() {
			u.end(r, StatusCancelled, ev.At)
		}
	case EventLogisticsTracking, EventPickupDone:
		out = tracked(u, ev, out)
	case EventInspectionResult:
		out = inspected(u, ev, out)
	case EventReviewApproved, EventReviewRejected:
		out = answered(u, ev, env, out)
	}
	return out
}

func deadLetter(out []Effect, ev *Event, f Fault) []Effect {
	return append(out, Effect{Kind: EffectDeadLetter, UserID: ev.UserID, RequestID: ev.RequestID, OrderID: ev.OrderID, Fault: f})
}

// fault reports whether ev refers to an order or request u does not have.
func fault(u *User, ev *Event) Fault {
	switch ev.Type {
	case EventOrderShipped, EventOrderDelivered:
		if u.Order(ev.OrderID) == nil {
			return FaultUnknownOrder
		}
	case EventReturnCancelled, EventLogisticsTracking, EventPickupDone, EventInspectionResult,
		EventReviewApproved, EventReviewRejected:
		if u.Request(ev.RequestID) == nil {
			return FaultUnknownRequest
		}
	}
	return FaultNone
}

// orderPaid records a new order; a known one's LastAt covers every
// order.paid of it. None dated past OrderRetention, whatever the policy
// (no pruned order was last seen later): a replay of a pruned order,
// recreated with a fresh ceiling, could pay its old requests again.
func orderPaid(u *User, ev *Event) {
	if o := u.Order(ev.OrderID); o != nil {
		o.touch(ev.At)
		return
	}
	if ev.At < u.MaxAt-int64(OrderRetention) {
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
		LastAt:           ev.At,
	})
	o := &u.Orders[len(u.Orders)-1]
	u.own(&o.ID, &o.MerchantID, &o.Category, &o.City)
}

// slabMin and slabMax bound the size of a new string slab: a shopper's
// first strings get a small one, each new slab doubles, up to slabMax.
const (
	slabMin = 64
	slabMax = 4096
)

// own gives the strings it points to storage of the user's own. An
// Event's strings may share the buffer they were decoded from (wire.Decode
// keeps one copy of the payload per event); a shopper's state lives for
// months and must not pin a whole payload for a few identifiers.
//
// The bytes go to the user's slab, a strings.Builder whose String() is a
// view of its buffer: bytes once written are never written again (a
// Builder only appends, and a full one is replaced, not grown in place),
// so the views handed out stay valid and immutable. A new slab is one
// allocation for many strings; in steady state owning a request's
// identifiers allocates nothing (BenchmarkApplyReturnRequested).
func (u *User) own(strs ...*string) {
	n := 0
	for _, s := range strs {
		n += len(*s)
	}
	if n == 0 {
		return
	}
	if u.slab == nil || u.slab.Cap()-u.slab.Len() < n {
		size := slabMin
		if u.slab != nil {
			size = min(2*u.slab.Cap(), slabMax)
		}
		u.slab = new(strings.Builder)
		u.slab.Grow(max(size, n))
	}
	start := u.slab.Len()
	for _, s := range strs {
		u.slab.WriteString(*s)
	}
	all := u.slab.String()[start:]
	for _, s := range strs {
		l := len(*s)
		*s, all = all[:l], all[l:]
	}
}

// Order returns the user's order with the given ID, or nil when the user
// has none (never seen, or pruned). The pointer is valid until the next
// Apply.
func (u *User) Order(id string) *Order {
	for i := range u.Orders {
		if u.Orders[i].ID == id {
			return &u.Orders[i]
		}
	}
	return nil
}

// Request returns the user's request with the given ID, or nil. The
// pointer is valid until the next Apply.
func (u *User) Request(id string) *Request {
	for i := range u.Requests {
		if u.Requests[i].ID == id {
			return &u.Requests[i]
		}
	}
	return nil
}

// hasOpenRequest reports whether the order has an open request.
func (u *User) hasOpenRequest(orderID string) bool {
	for i := range u.Requests {
		if u.Requests[i].Status == StatusOpen && u.Requests[i].OrderID == orderID {
			return true
		}
	}
	return false
}

// touch records an event about the order at time at.
func (o *Order) touch(at int64) { o.LastAt = max(o.LastAt, at) }

// Open reports whether the request is open: decided approved or review,
// and not yet ended.
func (r *Request) Open() bool { return r.Status == StatusOpen }

// Approved reports whether the request was approved: at once (fast track
// or merchant rule) or after review.
func (r *Request) Approved() bool {
	return r.Verdict == VerdictApproved || r.Resolution == ResolutionApproved
}

// InReview reports whether the request waits for a person or a deadline:
// decided review, open, not resolved.
func (r *Request) InReview() bool {
	return r.Verdict == VerdictReview && r.Resolution == ResolutionNone && r.Status == StatusOpen
}

// GoodsComeBack reports whether goods travel back to the merchant for this
// request: its kind needs a return address and it was not settled by a
// pre-shipment refund (the order never left the merchant).
func (r *Request) GoodsComeBack() bool {
	return r.Kind.NeedsReturnAddress() && r.RefundTrigger != TriggerPreShipment
}

// Outstanding is what the platform advanced for this request and has not
// got back (counted in User.OutstandingFen): an advance refund sent, or
// the new item of a replace exchange, until the inspection or the close.
func (r *Request) Outstanding() int64 {
	if r.Status == StatusOpen && r.Advanced() {
		return r.AmountFen
	}
	return 0
}

// handedOver reports whether the request has advanced something that a
// cancellation may no longer take back: a refund sent, or the new item of
// a replace exchange, which the courier hands over when it collects the
// old one (pickup.done, or the tracking it uploads then). domain.md ends
// a request by cancellation only "before any refund" and counts a replace
// exchange's goods as advanced; reading the handover as that exchange's
// refund pays less: a cancellation after it would otherwise release the
// goods and drop the inspection, so an empty box came back unclawed.
func (r *Request) handedOver() bool {
	return r.RefundSent || (r.GoodsAdvance && (r.PickupDone || r.Tracked))
}

// Advanced reports whether money or goods were advanced for the request
// (an advance refund sent, or a replace exchange's new item handed over):
// a bad inspection or a not_returned close then claws it back.
func (r *Request) Advanced() bool { return (r.RefundSent && r.RefundAdvance) || r.GoodsAdvance }

// end ends an open request with status s at time at, giving back
// everything it holds: its reservation on the order (a refund promised
// and not paid), its promised advance, and what it has outstanding (an
// advance refund or the goods of a replace exchange: the goods are back,
// or were never handed over, or the money is being clawed back).
func (u *User) end(r *Request, s Status, at int64) {
	o := u.Order(r.OrderID)
	if r.Reserved && o != nil {
		o.ReservedFen -= r.AmountFen
	}
	r.Reserved = false
	if r.Promised {
		u.PromisedFen -= r.AmountFen
		r.Promised = false
	}
	u.OutstandingFen -= r.Outstanding()
	r.Status = s
	r.ClosedAt = at
	if o != nil {
		o.touch(at)
	}
}

// reserve records the approval terms of r at time at: the refund trigger
// and advance, the reservation of its amount on the order when it pays
// money, and a promised advance when the refund is an advance paid later
// than the approval (counted against the exposure cap from now on).
func (u *User) reserve(r *Request, o *Order, trig Trigger, advance bool, at int64) {
	r.ApprovedAt = at
	r.PayTrigger, r.PayAdvance = trig, advance
	o.touch(at)
	if trig == TriggerNone {
		return
	}
	r.Reserved = true
	o.ReservedFen += r.AmountFen
	if advance && trig == TriggerTracking {
		r.Promised = true
		u.PromisedFen += r.AmountFen
	}
}

// sendRefund records and emits the refund of r, paid on trigger trig at
// time at, moving its amount from reserved to refunded on the order and a
// promised advance to the outstanding ones. A request whose goods do not
// come back is finished by its refund.
func sendRefund(u *User, r *Request, trig Trigger, at int64, out []Effect) []Effect {
	// An inspection refund is paid after the goods are back, whatever the
	// terms said; a pre-shipment one before they ever left.
	advance := r.PayAdvance && trig != TriggerInspection && trig != TriggerPreShipment
	r.RefundSent = true
	r.RefundTrigger = trig
	r.RefundAdvance = advance
	r.RefundAt = at
	if o := u.Order(r.OrderID); o != nil {
		if r.Reserved {
			o.ReservedFen -= r.AmountFen
		}
		o.RefundedFen += r.AmountFen
		o.touch(at)
	}
	r.Reserved = false
	if r.Promised {
		u.PromisedFen -= r.AmountFen
		r.Promised = false
	}
	if advance {
		u.OutstandingFen += r.AmountFen
	}
	out, e := emit(out, EffectRefund, u, r)
	e.AmountFen, e.Trigger, e.Advance = r.AmountFen, trig, advance
	if !r.GoodsComeBack() {
		u.end(r, StatusFinished, at)
	}
	return out
}

// tracked handles logistics.tracking and pickup.done of a known request.
func tracked(u *User, ev *Event, out []Effect) []Effect {
	r := u.Request(ev.RequestID)
	if r.Status != StatusOpen {
		return out
	}
	if ev.Type == EventPickupDone {
		r.PickupDone = true
	} else {
		r.Tracked = true
	}
	// The courier came in time when either sign is dated inside the
	// window (a tracking number is uploaded by the courier at pickup).
	if r.Pickup && ev.At <= r.WindowEnd {
		r.CourierOnTime = true
	}
	if r.Approved() && !r.RefundSent && r.PayTrigger == TriggerTracking {
		out = sendRefund(u, r, TriggerTracking, ev.At, out)
	}
	return out
}

// inspected handles inspection.result of a known request. Only the first
// inspection counts. A request in review records it and sends the trust
// feedback, but stays in review: its approval (by a person or a deadline)
// then settles at once (see approveReviewed).
func inspected(u *User, ev *Event, out []Effect) []Effect {
	r := u.Request(ev.RequestID)
	if r.Status != StatusOpen || r.Inspection != OutcomeNone || !ev.Outcome.inspection() {
		return out
	}
	r.Inspection = ev.Outcome
	if o := u.Order(r.OrderID); o != nil {
		o.touch(ev.At)
	}
	if !r.InReview() {
		out = settleInspection(u, r, ev.At, out)
	}
	return trustFeedback(u, r, ev.Outcome, out)
}

// settleInspection ends an approved open request whose inspection came
// back: a bad one after an advance claws it back and marks the shopper; an
// ok one pays the refund if its terms pay one and none was paid; either
// releases what the request held. The trust feedback is the caller's.
func settleInspection(u *User, r *Request, at int64, out []Effect) []Effect {
	if r.Inspection.Bad() {
		if r.Advanced() {
			out = clawback(u, r, r.Inspection, at, out)
			u.TrustMarks = append(u.TrustMarks, at)
		}
	} else if !r.RefundSent && r.GoodsComeBack() && r.PayTrigger != TriggerNone {
		out = sendRefund(u, r, TriggerInspection, at, out)
	}
	if r.Status == StatusOpen {
		u.end(r, StatusFinished, at)
	}
	return out
}

// clawback emits the recovery of what was advanced for r (the refund, or
// for a replace exchange the new item's value) with the outcome that
// caused it, and gives the recovered money back to the order's ceiling.
func clawback(u *User, r *Request, outcome Outcome, at int64, out []Effect) []Effect {
	if r.RefundSent {
		if o := u.Order(r.OrderID); o != nil {
			o.RefundedFen -= r.AmountFen
			o.touch(at)
		}
	}
	r.ClawbackSent = true
	out, e := emit(out, EffectClawback, u, r)
	e.AmountFen, e.Outcome = r.AmountFen, outcome
	return out
}

// trustFeedback emits the feedback of outcome for r, with the penalty of
// r's policy.
func trustFeedback(u *User, r *Request, outcome Outcome, out []Effect) []Effect {
	r.TrustSent = true
	out, e := emit(out, EffectTrust, u, r)
	e.Outcome, e.Penalty = outcome, r.Policy.Penalties[outcome]
	return out
}

// emit appends an effect of kind k about request r of u to out and
// returns out and the new effect for the caller to fill. Every output
// names the shopper, the request, its order and the request's policy.
// The effect is built in place: an Effect with its trace is over a
// kilobyte, and a literal appended would be built and then copied. The
// pointer is valid until out is appended to again.
func emit(out []Effect, k EffectKind, u *User, r *Request) ([]Effect, *Effect) {
	out = slices.Grow(out, 1)[:len(out)+1]
	e := &out[len(out)-1]
	*e = Effect{Kind: k, UserID: u.ID, RequestID: r.ID, OrderID: r.OrderID, Policy: r.Policy}
	return out, e
}

// inspection reports whether o is an inspection outcome (not
// OutcomeNotReturned).
func (o Outcome) inspection() bool { return o > OutcomeNone && o < OutcomeNotReturned }

// merchantOf returns the profile of the order's merchant, or nil.
func merchantOf(env *Env, o *Order) *Merchant {
	if env.Merchant == nil || o == nil || o.MerchantID == "" {
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
