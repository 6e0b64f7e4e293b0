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
// fail counts one violation. Examples stop at five: a broken target
// usually fails thousands of requests the same way, five ids are enough
// to start a search, and the JSON report stays bounded whatever the run.
func (c Check) OK() bool { return c.Failed == 0 }

func (c *Check) fail(example string) {
	c.Failed++
	if len(c.Examples) < 5 {
		c.Examples = append(c.Examples, example)
	}
}

// presetMinStars are the minimum stars of the shipped presets
// (shared/domain.md).
// Membership in this map is also how the audit decides that the policy
// is a shipped preset at all: the lifecycle checks that need a preset's
// numbers look it up here rather than guess under a custom policy.
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

	// A publish given up after RetryFor fails the audit even though the
	// target may be blameless: the audit cannot vouch for an event the
	// target never stored, and a run that silently drops its failed
	// publishes would report a clean audit over less work than it claims.
	accepted := Check{Name: "events_accepted", Rule: "every event was accepted by the server (publish acked)"}
	accepted.Checked = t.sentReqs + t.badSent
	accepted.Failed = in.FailedPubs
	checks := []Check{accepted}

	// Exactly once, not at least once: a second decision is what a daemon
	// produces when it replays a redelivered return.requested after a
	// crash without recognising its request_id (domain.md, Outcomes: a
	// redelivery gives no new output), and a missing one is a lost event.
	// Requests never accepted by the server are left out: the target never
	// had them, and events_accepted already fails the run for them.
	once := Check{Name: "decision_exactly_once", Rule: "every return.requested gets exactly one decision"}
	// At most once (contract.md, Outbound subjects) and not exactly once
	// (domain.md, Money safety: "Every approval pays, or says why not"),
	// because a refund's trigger (tracking,
	// inspection) may not have been sent before the run ended, so a missing
	// refund is not evidence of a fault, while a second one always is.
	refundOnce := Check{Name: "refund_at_most_once", Rule: "no request gets two refunds"}
	// Per-order ceiling (domain.md, Money safety) for a single refund; the
	// sum over an order's requests is order_refunds_within_paid's job. A
	// request on an order that was never paid compares with 0, so any
	// refund for it fails.
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
		// A refund with neither an approval at once nor an approving
		// resolution is money paid on no decision at all; review alone
		// never pays (domain.md, After review).
		if r.decision != contract.DecisionApproved && !resolvedApproved(r) {
			refundApproved.fail(fmt.Sprintf("%s: refund after decision %q and no approving resolution", id, r.decision))
		}
	}
	if !in.ExpectDecisions {
		// The check stays in the list, marked skipped, rather than being
		// dropped, so that the reports of the relay and of flashreturnd
		// list the same checks and compare line by line.
		once.Skipped = "the target does not decide (relay)"
		once.Failed, once.Examples = 0, nil
	}
	checks = append(checks, once, refundOnce, refundPaid, refundApproved)

	// domain.md, Input that cannot stand: such events are "never silently
	// dropped". The reason and subject are only judged for events that did
	// reach FR_DLQ, so that one missing dead letter counts once, not three
	// times. The subject must be the published one whatever the inbound
	// layout stores it under (contract.md, Outbound subjects): a
	// partitioning subject transform must not leak into the dead letter,
	// whose subject is what an operator needs to re-publish a repaired
	// event to the right shopper.
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
	// Every dead letter is a candidate (Checked = all of FR_DLQ); only
	// those carrying one of this run's own event ids can be a valid event
	// wrongly refused, so other publishers on a shared server are not
	// blamed on the target.
	valid := Check{Name: "valid_not_dead_lettered", Rule: "no valid event is dead-lettered", Checked: t.dlqTotal, Failed: t.validDLQN,
		Examples: slices.Clone(t.validDLQ)}
	if !in.ExpectDecisions {
		// The relay echoes malformed events like the rest: skipped, and
		// kept in the list for the same reason as decision_exactly_once.
		for _, c := range []*Check{&dlq, &dlqReason, &dlqSubject, &valid} {
			c.Skipped = "the target does not dead-letter (relay)"
			c.Failed, c.Examples = 0, nil
		}
	}
	checks = append(checks, dlq, dlqReason, dlqSubject, valid)
	// The expectations and lifecycle checks judge decisions and their
	// consequences; against the relay there are none to judge.
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
	// The three checks below cite domain.md, Outcomes: order_unknown and
	// amount_exceeds_paid are among the only codes that reject, so these
	// requests must be rejected under every policy, not merely not
	// approved. The window check cites the Window paragraph: a request 10
	// days after sign-off, or before it, fails outside_window or
	// not_delivered, which gives review, never approval. Merchant rules
	// can approve a fast-track failure (domain.md, Merchant rules), so
	// the check only looks at merchants without rules; early requests are
	// sent after order.shipped, so douyin's exception for unshipped
	// orders never applies to them.
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
		// A rejected request is judged by the rejecting rule only: the
		// `continue`s keep the same request from also being counted by the
		// checks below, whose premise (an order that exists, an amount that
		// fits) does not hold.
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
		// Minimum stars is a fast-track rule: failing it gives review,
		// never approval, unless a merchant rule matches. The audit does
		// not evaluate merchant rules in full; it spares any shopper that
		// some rule of the merchant could admit on stars, which may miss a
		// violation but never blames a daemon for a legal approval.
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
// MinStars 0 means the rule sets no stars condition (contract.md's
// merchant rule format), so such a rule admits every shopper. Other
// conditions of the rule (reasons, amount, kind) are ignored on
// purpose: ignoring one can only spare more requests.
func rulesAdmitStars(rules []contract.MerchantRule, stars int) bool {
	for _, r := range rules {
		if r.MinStars == 0 || r.MinStars <= stars {
			return true
		}
	}
	return false
}
