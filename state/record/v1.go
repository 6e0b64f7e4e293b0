package record

import "github.com/flashreturn/flashreturn/internal/core"

// deriveV1 completes a user decoded from a version-1 record (written
// before requests kept their policy, before the per-order ceiling and the
// review lifecycle) as well as the record allows; the package doc
// (Version 1) states each derivation and its limits. p is
// the store's legacy policy.
func deriveV1(u *core.User, p *core.Policy) {
	for i := range u.Requests {
		r := &u.Requests[i]
		r.Policy = p
		// Version 1 sent trust feedback for every inspection, and a
		// clawback for a bad one after an advance refund.
		r.TrustSent = r.Inspection != core.OutcomeNone
		r.ClawbackSent = r.Inspection.Bad() && r.RefundSent && r.RefundAdvance
		// A courier's sign recorded with no compensation sent came before
		// version 1 fired the window (otherwise it would have
		// compensated): the courier counts as on time, so the new pickup
		// timer does not compensate it now.
		r.CourierOnTime = r.Pickup && !r.CompensationSent && (r.PickupDone || r.Tracked)
		// Version 1 scheduled a pickup only when asked, except an
		// exchange under a policy with ExchangePickup.
		r.PickupAsked = r.Pickup && (r.Kind != core.KindExchange || !p.ExchangePickup)
		if r.Verdict != core.VerdictApproved {
			continue // version 1 had no review answers: review stays review
		}
		r.ApprovedAt = r.At
		rule := p.RefundRule(r.Kind)
		if r.RefundTrigger == core.TriggerPreShipment {
			rule = core.RefundRule{Trigger: core.TriggerPreShipment}
		}
		r.PayTrigger, r.PayAdvance = rule.Trigger, rule.Advance
		if r.Status == core.StatusOpen && !r.RefundSent && rule.Trigger != core.TriggerNone {
			r.Reserved = true
			if rule.Advance && rule.Trigger == core.TriggerTracking {
				r.Promised = true
				u.PromisedFen += r.AmountFen
			}
		}
	}
	for i := range u.Orders {
		o := &u.Orders[i]
		o.LastAt = max(o.PaidAt, o.ShippedAt, o.DeliveredAt)
		for j := range u.Requests {
			r := &u.Requests[j]
			if r.OrderID != o.ID {
				continue
			}
			o.LastAt = max(o.LastAt, r.At, r.RefundAt, r.ClosedAt)
			if r.Reserved {
				o.ReservedFen += r.AmountFen
			}
			if r.RefundSent && !r.ClawbackSent {
				o.RefundedFen += r.AmountFen
			}
		}
	}
}
