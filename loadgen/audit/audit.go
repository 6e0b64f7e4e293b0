package audit

import (
	"fmt"
	"slices"

	"github.com/flashreturn/flashreturn/loadgen/contract"
	"github.com/flashreturn/flashreturn/loadgen/world"
)

// Check is one audit rule and how the run fared against it.
type Check struct {
	// Name is a stable identifier, e.g. "decision_exactly_once".
	Name string `json:"name"`
	// Rule says in a sentence what must hold.
	Rule string `json:"rule"`
	// Checked is how many items the rule was applied to.
	Checked int64 `json:"checked"`
	// Failed is how many broke it; the check passes when it is 0.
	Failed int64 `json:"failed"`
	// Examples names up to five offending items.
	Examples []string `json:"examples,omitempty"`
	// Skipped says why the rule could not be applied, if it could not.
	Skipped string `json:"skipped,omitempty"`
}

// OK reports whether the check passed (or was skipped).
func (c Check) OK() bool { return c.Failed == 0 }

func (c *Check) fail(example string) {
	c.Failed++
	if len(c.Examples) < 5 {
		c.Examples = append(c.Examples, example)
	}
}

// presetMinStars are the minimum stars of the shipped presets
// (shared/domain.md).
var presetMinStars = map[string]int{"tmall-fast-return": 3, "douyin-lightning": 3, "jd-lightning-refund": 2}

// Input is what the audit reads: the world, what the run saw, and the
// publish outcome.
type Input struct {
	// Gen is the run's world, no longer generating.
	Gen *world.Generator
	// Tracker is what the run sent and saw, no longer reading outputs.
	Tracker *Tracker
	// FailedPubs is the events given up after RetryFor: each fails the
	// audit, since the target never had a chance to process it.
	FailedPubs int64
	// Policy is the name of the platform policy to judge expectations
	// by; empty means: the one the decisions name.
	Policy string
	// ExpectDecisions is false when the target does not decide (the
	// relay).
	ExpectDecisions bool
}

// Run checks the invariants of the contract and the simple expectations
// the world implies, in a fixed order (the report lists them as
// returned). It must run after the run's outputs have drained: a check
// run early fails a correct target for an output still on its way.
func Run(in Input) []Check {
	g, t := in.Gen, in.Tracker
	t.mu.Lock()
	defer t.mu.Unlock()

	accepted := Check{Name: "events_accepted", Rule: "every event was accepted by the server (publish acked)"}
	accepted.Checked = t.sentReqs + t.badSent
	accepted.Failed = in.FailedPubs
	checks := []Check{accepted}

	once := Check{Name: "decision_exactly_once", Rule: "every return.requested gets exactly one decision"}
	refundOnce := Check{Name: "refund_at_most_once", Rule: "no request gets two refunds"}
	refundPaid := Check{Name: "refund_not_over_paid", Rule: "no refund exceeds the order's paid amount"}
	refundApproved := Check{Name: "refund_only_if_approved", Rule: "no refund for a request that was not approved (at once, or by a resolution)"}
	for i := range t.reqs {
		r := &t.reqs[i]
		id := g.RequestID(int32(i))
		if r.sent && !r.failed {
			once.Checked++
			if r.decisions != 1 {
				once.fail(fmt.Sprintf("%s: %d decisions", id, r.decisions))
			}
		}
		if r.refunds == 0 {
			continue
		}
		refundOnce.Checked++
		refundPaid.Checked++
		refundApproved.Checked++
		if r.refunds > 1 {
			refundOnce.fail(fmt.Sprintf("%s: %d refunds", id, r.refunds))
		}
		var paid int64
		if i < len(g.Requests) && g.Requests[i].Order >= 0 {
			paid = g.Orders[g.Requests[i].Order].PaidFen
		}
		if r.refundFen > paid {
			refundPaid.fail(fmt.Sprintf("%s: refund %d fen > paid %d fen", id, r.refundFen, paid))
		}
		if r.decision != contract.DecisionApproved && !resolvedApproved(r) {
			refundApproved.fail(fmt.Sprintf("%s: refund after decision %q and no approving resolution", id, r.decision))
		}
	}
	if !in.ExpectDecisions {
		once.Skipped = "the target does not decide (relay)"
		once.Failed, once.Examples = 0, nil
	}
	checks = append(checks, once, refundOnce, refundPaid, refundApproved)

	dlq := Check{Name: "malformed_dead_lettered", Rule: "every malformed event, and every well-formed one that cannot stand, reaches the dead-letter stream"}
	dlqReason := Check{Name: "dead_letter_reason", Rule: "every such event is dead-lettered with the contract's reason (bad_json ... unknown_order, unknown_request, future_time)"}
	dlqSubject := Check{Name: "dead_letter_subject", Rule: "a dead letter's subject is the subject the event was published to (fr.in.<kind>.<user_id>)"}
	for i, b := range t.badRecs {
		if !b.sent || b.failed {
			continue
		}
		dlq.Checked++
		want := g.Bads[i].Reason
		if b.seen == 0 {
			dlq.fail(fmt.Sprintf("%s (%s) never dead-lettered", g.Bads[i].Subject, want))
			continue
		}
		dlqReason.Checked++
		if b.reason != want {
			dlqReason.fail(fmt.Sprintf("%s: reason %q, want %q", g.Bads[i].Subject, b.reason, want))
		}
		dlqSubject.Checked++
		if b.subject != g.Bads[i].Subject {
			dlqSubject.fail(fmt.Sprintf("%s (%s): dead letter names subject %q", g.Bads[i].Subject, want, b.subject))
		}
	}
	valid := Check{Name: "valid_not_dead_lettered", Rule: "no valid event is dead-lettered", Checked: t.dlqTotal, Failed: t.validDLQN,
		Examples: slices.Clone(t.validDLQ)}
	checks = append(checks, dlq, dlqReason, dlqSubject, valid)
	if in.ExpectDecisions {
		checks = append(checks, expectations(in, t)...)
		checks = append(checks, lifecycleChecks(in, t)...)
	}
	return checks
}

// expectations are the decisions the world implies for simple cases.
// Called with t.mu held.
func expectations(in Input, t *Tracker) []Check {
	g := in.Gen
	policy := policyOf(in, t)
	minStars, preset := presetMinStars[policy]

	low := Check{Name: "low_stars_not_approved", Rule: "a shopper below the policy's minimum stars is never approved (unless a merchant rule admits the stars)"}
	over := Check{Name: "amount_over_paid_rejected", Rule: "a request for more than was paid is rejected with amount_exceeds_paid"}
	ghost := Check{Name: "unknown_order_rejected", Rule: "a request for an order never paid is rejected with order_unknown"}
	window := Check{Name: "outside_window_not_approved", Rule: "a request 10 days after sign-off, or before delivery, is not approved (merchants without rules)"}
	if !preset {
		low.Skipped = fmt.Sprintf("policy %q is not a shipped preset: minimum stars unknown", policy)
	}
	for i := range t.reqs {
		rec := &t.reqs[i]
		if !rec.sent || rec.failed || rec.decisions == 0 || i >= len(g.Requests) {
			continue
		}
		req := g.Requests[i]
		id := g.RequestID(int32(i))
		var rules []contract.MerchantRule
		var paid int64
		if req.Order >= 0 {
			o := g.Orders[req.Order]
			paid = o.PaidFen
			rules = g.Merchants[o.Merchant].Rules
		}
		if req.Order < 0 {
			ghost.Checked++
			if rec.decision != contract.DecisionRejected || !slices.Contains(rec.reasons, contract.ReasonOrderUnknown) {
				ghost.fail(fmt.Sprintf("%s: %s %v", id, rec.decision, rec.reasons))
			}
			continue
		}
		if req.AmountFen > paid {
			over.Checked++
			if rec.decision != contract.DecisionRejected || !slices.Contains(rec.reasons, contract.ReasonAmountExceedsPaid) {
				over.fail(fmt.Sprintf("%s: %s %v (amount %d > paid %d)", id, rec.decision, rec.reasons, req.AmountFen, paid))
			}
			continue
		}
		if preset && req.Stars < minStars && !rulesAdmitStars(rules, req.Stars) {
			low.Checked++
			if rec.decision == contract.DecisionApproved {
				low.fail(fmt.Sprintf("%s: %d stars approved under %s", id, req.Stars, policy))
			}
		}
		if (req.Stale || req.Early) && len(rules) == 0 {
			window.Checked++
			if rec.decision == contract.DecisionApproved {
				window.fail(fmt.Sprintf("%s: approved (stale=%v early=%v)", id, req.Stale, req.Early))
			}
		}
	}
	return []Check{low, over, ghost, window}
}

// rulesAdmitStars reports whether some merchant rule could approve a
// shopper with the given stars.
func rulesAdmitStars(rules []contract.MerchantRule, stars int) bool {
	for _, r := range rules {
		if r.MinStars == 0 || r.MinStars <= stars {
			return true
		}
	}
	return false
}
