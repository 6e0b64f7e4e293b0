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
	if !pass {
		c.fails = c.fails.With(code)
	}
	if c.tr.N < MaxChecks {
		c.tr.Checks[c.tr.N] = Check{Code: code, Pass: pass, Got: got, Limit: limit, Text: text}
		c.tr.N++
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
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

// requested decides a return.requested and records the request.
func requested(u *User, ev *Event, env *Env, out []Effect) []Effect {
	if u.request(ev.RequestID) != nil {
		return out // redelivery: the shopper already has this request
	}
	p := env.Policy
	at := ev.At
	// Grow out in place and fill the decision there: an Effect with its
	// trace is over a kilobyte, so it is not built on the stack and copied.
	out = slices.Grow(out, 1)[:len(out)+1]
	e := &out[len(out)-1]
	*e = Effect{}
	e.Kind = EffectDecision
	e.UserID = u.ID
	e.RequestID = ev.RequestID
	e.OrderID = ev.OrderID
	e.RequestAt = ev.AtRaw
	c := checker{tr: &e.Trace}
	rq := Request{
		ID:      ev.RequestID,
		OrderID: ev.OrderID,
		Kind:    ev.Kind,
		Reason:  ev.Reason,
		At:      at,
		Status:  StatusOpen,
	}
	if ev.HasAmount {
		rq.AmountFen = ev.AmountFen
	}
	own(&rq.ID, &rq.OrderID)

	// Rules that reject: the request cannot stand.
	o := u.order(ev.OrderID)
	c.check(CodeOrderUnknown, o != nil, b2i(o != nil), 1, "")
	if o != nil {
		if !ev.HasAmount {
			rq.AmountFen = o.PaidFen
		}
		c.check(CodeAmountExceedsPaid, rq.AmountFen <= o.PaidFen, rq.AmountFen, o.PaidFen, "")
		dup := u.hasOpenRequest(o.ID)
		c.check(CodeDuplicateRequest, !dup, b2i(dup), 0, "")
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
		ex := containsString(p.ExcludedCategories, o.Category)
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
		in := containsString(p.Cities, o.City)
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
	exposure := u.OutstandingFen + rq.AmountFen
	c.check(CodeExposureCap, exposure <= p.ExposureCapFen, exposure, p.ExposureCapFen, "")
	n := countIn(u.RecentRequests, at-int64(p.VelocityWindow), at) + 1
	c.check(CodeVelocityCap, n <= int64(p.VelocityMax), n, int64(p.VelocityMax), "")
	bad := countIn(u.BadInspections, at-int64(p.TrustWindow), at)
	c.check(CodeTrustFlagged, bad == 0, bad, 0, "")

	// Verdict.
	approved := c.fails == 0
	if !approved && c.fails&SafetyCodes == 0 && !c.fails.Has(CodeMerchantUnknown) && m != nil {
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
	switch rule := p.RefundRule(r.Kind); {
	case preShipment:
		out = sendRefund(u, r, TriggerPreShipment, false, at, out)
	case rule.Trigger == TriggerApproval:
		out = sendRefund(u, r, TriggerApproval, rule.Advance, at, out)
	case !r.GoodsComeBack() && rule.Trigger == TriggerNone:
		// Nothing comes back and nothing is paid (a policy file may say
		// so): there is nothing left to wait for.
		closeRequest(r, StatusFinished, at)
	}
	if r.Status == StatusOpen && r.Kind.NeedsReturnAddress() &&
		(ev.Pickup || (r.Kind == KindExchange && p.ExchangePickup)) {
		size := o.Size
		if size != SizeLarge {
			size = SizeSmall
		}
		r.Pickup = true
		r.PickupSize = size
		r.Replace = r.Kind == KindExchange
		r.WindowStart, r.WindowEnd = PickupWindow(at, size, p, env.loc())
		out = append(out, Effect{
			Kind:        EffectPickup,
			UserID:      u.ID,
			RequestID:   r.ID,
			OrderID:     r.OrderID,
			Size:        size,
			WindowStart: r.WindowStart,
			WindowEnd:   r.WindowEnd,
			Replace:     r.Replace,
		})
	}
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
	if len(mr.Categories) > 0 && !containsString(mr.Categories, o.Category) {
		return false
	}
	return true
}
