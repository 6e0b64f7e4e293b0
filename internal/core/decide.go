package core

import "slices"

// SafetyCodes are the codes of the safety rules, which merchant rules
// cannot override.
const SafetyCodes = CodeSet(1<<CodeExposureCap | 1<<CodeVelocityCap | 1<<CodeTrustFlagged)

// RejectCodes are the only codes a rejection lists.
const RejectCodes = CodeSet(1<<CodeOrderUnknown | 1<<CodeAmountExceedsPaid | 1<<CodeDuplicateRequest)

// Values of Check.Got (and Limit) for the CodeNotDelivered check.
const (
	DeliveryNotShipped = 0 // Got: the order has not shipped
	DeliveryShipped    = 1 // Got: shipped, not signed for
	DeliveryDelivered  = 2 // Got: signed for; Limit 2: delivery required
	// DeliveryAfterRequest as Got: signed for, but after the request's
	// at (the request fails not_delivered).
	DeliveryAfterRequest = 3
	// DeliveryExempt as Limit: the policy's pre-shipment rule applies to
	// this unshipped order, so neither delivery nor the window is required.
	DeliveryExempt = 0
)

// checker accumulates the rule trace and the failed codes of a decision.
type checker struct {
	tr    *Trace
	fails CodeSet
}

func (c *checker) check(code Code, pass bool, got, limit int64, text string) {
	if ch := c.next(code, pass); ch != nil {
		ch.Got, ch.Limit, ch.Text = got, limit, text
	}
}

// next records the outcome of a check and returns its slot in the trace
// (nil when the trace is full) for the caller to fill: the slots of a
// fresh trace are zero, and filling them in place copies nothing.
func (c *checker) next(code Code, pass bool) *Check {
	if !pass {
		c.fails = c.fails.With(code)
	}
	if c.tr.N == MaxChecks {
		return nil
	}
	ch := &c.tr.Checks[c.tr.N]
	c.tr.N++
	ch.Code, ch.Pass = code, pass
	return ch
}

func (c *checker) add(ch Check) {
	if slot := c.next(ch.Code, ch.Pass); slot != nil {
		*slot = ch
	}
}

// ceiling checks the per-order ceiling: what the order already has
// reserved or refunded plus amount stays at or under its paid amount
// (amount_exceeds_paid; a single request above the paid amount fails it
// too).
func (c *checker) ceiling(o *Order, amount int64) {
	held := o.ReservedFen + o.RefundedFen
	if ch := c.next(CodeAmountExceedsPaid, fits(held, amount, o.PaidFen)); ch != nil {
		ch.Got, ch.Limit, ch.Held = amount, o.PaidFen, held
	}
}

// fits reports whether held + amount <= limit without computing the sum:
// amount_fen and paid_fen are any non-negative int64 the wire accepts,
// and held + 2^63-1 wraps to a negative sum that passes (it approved a
// refund of 2^63-1 fen, testdata/risk.txt). held and limit are sums of
// checked amounts, so limit - held cannot wrap.
func fits(held, amount, limit int64) bool { return amount <= limit-held }

// exposure checks the exposure cap: what the platform has advanced to the
// shopper and not got back, plus the advances it has promised, plus this
// amount, stays at or under the cap.
func (c *checker) exposure(u *User, amount, capFen int64) {
	if ch := c.next(CodeExposureCap, fits(u.Exposure(), amount, capFen)); ch != nil {
		ch.Got, ch.Limit, ch.Held, ch.Promised = amount, capFen, u.OutstandingFen, u.PromisedFen
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// countIn counts the times t in ts with from < t <= to.
func countIn(ts []int64, from, to int64) int64 {
	var n int64
	for _, t := range ts {
		if t > from && t <= to {
			n++
		}
	}
	return n
}

// inWindow counts ts in (from, to]; not whole: a lower bound (pruned after from).
func inWindow(ts []int64, prunedTo, from, to int64) (n int64, whole bool) {
	return countIn(ts, from, to), prunedTo <= from
}

// prunedText is a safety check's trace text, by b2i(window not whole).
var prunedText = [2]string{"", "window reaches past pruned history"}

// requested decides a return.requested and records the request.
func requested(u *User, ev *Event, env *Env, out []Effect) []Effect {
	if r := u.Request(ev.RequestID); r != nil {
		// Naming another order: remembered there too, for a replay.
		if o := u.Order(ev.OrderID); o != nil && r.OrderID != o.ID {
			forget(&o.Forgotten, r.ID)
		}
		return out // redelivery: the shopper has this request
	}
	if u.forgotten(ev.RequestID) {
		return out // redelivery of a request pruned from state
	}
	p := env.Policy
	at := ev.At
	rq := Request{
		ID:          ev.RequestID,
		OrderID:     ev.OrderID,
		Kind:        ev.Kind,
		Reason:      ev.Reason,
		At:          at,
		Status:      StatusOpen,
		PickupAsked: ev.Pickup,
		Policy:      p,
	}
	if ev.HasAmount {
		rq.AmountFen = ev.AmountFen
	}
	// The decision is filled in place in out (see emit) and its checks
	// written straight into its trace.
	out, e := emit(out, EffectDecision, u, &rq)
	e.RequestAt = ev.AtRaw
	c := checker{tr: &e.Trace}

	// Rules that reject: the request cannot stand.
	o := u.Order(ev.OrderID)
	c.check(CodeOrderUnknown, o != nil, b2i(o != nil), 1, "")
	if o != nil {
		rq.OrderID = o.ID // the order's own copy: nothing to own
		u.own(&rq.ID)
		if !ev.HasAmount {
			rq.AmountFen = o.PaidFen
		}
		c.ceiling(o, rq.AmountFen)
		dup := u.hasOpenRequest(o.ID)
		c.check(CodeDuplicateRequest, !dup, b2i(dup), 0, "")
		o.touch(at)
	} else {
		u.own(&rq.ID, &rq.OrderID)
	}
	if c.fails != 0 {
		e.Verdict = VerdictRejected
		e.Reasons = c.fails
		rq.Status = StatusRejected
		rq.Verdict = VerdictRejected
		rq.Reasons = c.fails
		rq.ClosedAt = at
		u.RecentRequests = append(u.RecentRequests, at)
		u.Requests = append(u.Requests, rq)
		return out
	}

	// Fast-track rules, in the order of the preset table.
	m := merchantOf(env, o)
	c.check(CodeKindNotEligible, p.Kinds.Has(ev.Kind), int64(ev.Kind), int64(p.Kinds), "")
	c.check(CodeCreditLow, u.Stars >= p.MinStars, int64(u.Stars), int64(p.MinStars), "")
	c.check(CodeReasonNotEligible, p.Reasons.Has(ev.Reason), int64(ev.Reason), int64(p.Reasons), "")
	if p.RequireSevenDay {
		c.check(CodeNotSevenDay, o.SevenDay, b2i(o.SevenDay), 1, "")
	}
	shipped := o.ShippedAt != 0 || o.DeliveredAt != 0
	preShipment := p.PreShipmentRefund && ev.Kind == KindReturnRefund && !shipped
	switch {
	case o.DeliveredAt != 0 && at < o.DeliveredAt:
		// Filed before the sign-off it refers to: as if not delivered
		// (domain.md, Input that cannot stand), the window not evaluated.
		c.check(CodeNotDelivered, false, DeliveryAfterRequest, DeliveryDelivered, "")
	case o.DeliveredAt != 0:
		c.check(CodeNotDelivered, true, DeliveryDelivered, DeliveryDelivered, "")
		days := daysSince(o.DeliveredAt, at, env.loc())
		c.check(CodeOutsideWindow, days <= int64(p.WindowDays), days, int64(p.WindowDays), "")
	case preShipment:
		c.check(CodeNotDelivered, true, DeliveryNotShipped, DeliveryExempt, "")
	default:
		c.check(CodeNotDelivered, false, b2i(shipped), DeliveryDelivered, "")
	}
	if p.AmountCapFen > 0 {
		c.check(CodeAmountOverCap, o.PaidFen <= p.AmountCapFen, o.PaidFen, p.AmountCapFen, "")
	}
	if len(p.ExcludedCategories) > 0 {
		ex := slices.Contains(p.ExcludedCategories, o.Category)
		c.check(CodeCategoryExcluded, !ex, b2i(ex), 0, o.Category)
	}
	if p.RequireSingleAddress {
		nr, ns := int64(-1), int64(-1)
		ok := false
		if m != nil {
			nr, ns = int64(len(m.ReturnAddresses)), int64(len(m.ShipAddresses))
			ok = nr == 1 && ns == 1 && m.ReturnAddresses[0] == m.ShipAddresses[0]
		}
		c.check(CodeMerchantAddressMismatch, ok, nr, ns, "")
	}
	if len(p.Cities) > 0 {
		in := slices.Contains(p.Cities, o.City)
		c.check(CodeCityNotCovered, in, b2i(in), int64(len(p.Cities)), o.City)
	}
	if ev.Kind.NeedsReturnAddress() {
		n := int64(-1)
		if m != nil {
			n = int64(len(m.ReturnAddresses))
		}
		c.check(CodeMerchantUnknown, n > 0, n, 1, "")
	}

	// Safety rules.
	c.exposure(u, rq.AmountFen, p.ExposureCapFen)
	// A window that reaches back past pruned history cannot be counted:
	// the rule fails safe, and the trace says why (see LateAllowance).
	n, whole := inWindow(u.RecentRequests, u.VelocityPrunedTo, at-int64(p.VelocityWindow), at)
	n++ // this request
	c.check(CodeVelocityCap, whole && n <= int64(p.VelocityMax), n, int64(p.VelocityMax), prunedText[b2i(!whole)])
	bad, whole := inWindow(u.TrustMarks, u.TrustPrunedTo, at-int64(p.TrustWindow), at)
	c.check(CodeTrustFlagged, whole && bad == 0, bad, 0, prunedText[b2i(!whole)])

	// Verdict. A merchant rule may approve what failed fast-track rules
	// only, and only a request the policy can pay (every approval pays,
	// or says why not).
	approved := c.fails == 0
	payable := preShipment || ev.Kind == KindExchange || p.RefundRule(ev.Kind).Trigger != TriggerNone
	if !approved && timeoutEligible(c.fails) && m != nil && payable {
		for i := range m.Rules {
			if ruleMatches(&m.Rules[i], u, ev, o, env) {
				approved = true
				e.MerchantRule = m.Rules[i].Name
				break
			}
		}
	}
	if m != nil {
		e.MerchantRevision = m.Revision
	}
	if approved {
		e.Verdict = VerdictApproved
		if ev.Kind.NeedsReturnAddress() {
			e.ReturnAddress = m.ReturnAddresses[0]
		}
	} else {
		e.Verdict = VerdictReview
		e.Reasons = c.fails
	}
	rq.Verdict = e.Verdict
	rq.Reasons = e.Reasons
	rq.MerchantRule = e.MerchantRule
	rq.MerchantRevision = e.MerchantRevision
	u.RecentRequests = append(u.RecentRequests, at)
	u.Requests = append(u.Requests, rq)
	if !approved {
		return out
	}
	// e is not used past this point: the appends below may move out.

	r := &u.Requests[len(u.Requests)-1]
	rule := p.RefundRule(r.Kind)
	if preShipment {
		rule = RefundRule{Trigger: TriggerPreShipment}
	}
	u.reserve(r, o, rule.Trigger, rule.Advance, at)
	if rule.Trigger == TriggerPreShipment || rule.Trigger == TriggerApproval {
		out = sendRefund(u, r, rule.Trigger, at, out)
	}
	if r.Status == StatusOpen && r.Kind.NeedsReturnAddress() &&
		(ev.Pickup || (r.Kind == KindExchange && p.ExchangePickup)) {
		// A fast-tracked exchange is pickup-and-replace: the courier
		// brings the new item, goods advanced until the inspection
		// (exposure), unless its terms refund money instead; then it is
		// not replaced too (money and item for one amount paid twice).
		replace := r.Kind == KindExchange && rule.Trigger == TriggerNone
		if replace {
			r.GoodsAdvance = true
			u.OutstandingFen += r.AmountFen
		}
		out = schedulePickup(u, r, o, replace, at, env, out)
	}
	if r.Status == StatusOpen && !r.GoodsComeBack() && r.PayTrigger == TriggerNone {
		// Nothing comes back and nothing is paid: nothing left to wait
		// for. (Policies cannot approve such a request for money: see
		// Policy.Finish and payable above; this ends a refund_only under
		// a hand-built policy.)
		u.end(r, StatusFinished, at)
	}
	return out
}

// timeoutEligible reports whether a review with these failed codes may be
// approved without a person: no safety rule failed and the merchant is
// known (a request needing a return address needs a merchant with one).
// It is the condition under which merchant rules may approve, and under
// which the review deadline approves by timeout.
func timeoutEligible(fails CodeSet) bool {
	return fails&SafetyCodes == 0 && !fails.Has(CodeMerchantUnknown)
}

// DeadlineApproves reports whether a request sent to review with these
// reasons is approved by its review deadline when nobody answers (it
// failed fast-track rules only, and its merchant is known). A request for
// which it is false waits for a person.
func DeadlineApproves(reasons CodeSet) bool { return reasons != 0 && timeoutEligible(reasons) }

// schedulePickup gives r a pickup window from at (service hours of r's
// policy) and emits the pickup.
func schedulePickup(u *User, r *Request, o *Order, replace bool, at int64, env *Env, out []Effect) []Effect {
	size := o.Size
	if size != SizeLarge {
		size = SizeSmall
	}
	r.Pickup = true
	// A sign of the courier that came before the window (a tracking or
	// pickup.done while the request waited in review) means the goods
	// are already on their way: the window cannot be missed, so it pays
	// no pickup_missed compensation.
	r.CourierOnTime = r.Tracked || r.PickupDone
	r.PickupSize = size
	r.Replace = replace
	r.WindowStart, r.WindowEnd = PickupWindow(at, size, r.Policy, env.loc())
	out, e := emit(out, EffectPickup, u, r)
	e.Size, e.WindowStart, e.WindowEnd, e.Replace = size, r.WindowStart, r.WindowEnd, r.Replace
	return out
}

// ruleMatches reports whether every condition of the merchant rule holds
// for the request; an empty condition matches anything. MaxAmountFen
// compares the order's paid_fen (like the platform cap); MaxDays needs a
// sign-off and compares the local days since the sign-off day.
func ruleMatches(mr *MerchantRule, u *User, ev *Event, o *Order, env *Env) bool {
	if mr.Kinds != 0 && !mr.Kinds.Has(ev.Kind) {
		return false
	}
	if mr.Reasons != 0 && !mr.Reasons.Has(ev.Reason) {
		return false
	}
	if u.Stars < mr.MinStars {
		return false
	}
	if (mr.HasMaxAmount || mr.MaxAmountFen != 0) && o.PaidFen > mr.MaxAmountFen {
		return false
	}
	if mr.HasMaxDays {
		if o.DeliveredAt == 0 || daysSince(o.DeliveredAt, ev.At, env.loc()) > int64(mr.MaxDays) {
			return false
		}
	}
	if len(mr.Categories) > 0 && !slices.Contains(mr.Categories, o.Category) {
		return false
	}
	return true
}
