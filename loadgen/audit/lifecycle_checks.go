package audit

import (
	"fmt"
	"math"
	"slices"

	"github.com/flashreturn/flashreturn/loadgen/contract"
	"github.com/flashreturn/flashreturn/loadgen/world"
)

// The after-sales lifecycle checks. They reconstruct what happened to
// each request from two sources: what the world sent (the request's
// history: positions in the event sequence of its return.requested,
// cancellation, goods back, inspection and review answers) and the
// outputs about it. Events of one shopper are stored, and so processed,
// in the order they were sent, so an output can be placed in the
// shopper's input order at the input that caused it:
//
//   - a decision, and a refund or pickup of an approval at once, at the
//     return.requested;
//   - a resolution by a person at the request's first answer, a
//     resolution by timeout right after the return.requested (the world
//     dates only aged requests past a deadline, and the daemon fires a
//     passed deadline at the next advance of its partition's clock:
//     placing it right after the request is the earliest it can be);
//   - a refund on its trigger: pre_shipment and approval at the
//     approval, tracking at the first logistics.tracking or pickup.done,
//     inspection at the inspection.result;
//   - a clawback at the inspection, or at the close for not_returned.
//
// Where a position is uncertain (a timer, a re-sent publish that was
// stored out of order) the reconstruction takes the one that makes a
// violation less likely, so that a check never fails a correct daemon;
// it may then miss a violation in that rare order.

// Parameters of the shipped presets that the lifecycle checks use
// (shared/domain.md); a run under another policy skips the checks that
// need them.
const (
	presetExposureCapFen     = 500000
	presetNotReturnedPenalty = 50
)

// The sub-positions of one input: outputs it causes come after it, timers
// that its processing makes due after those.
const (
	posEffect = 1
	posTimer  = 2
	// posEnd stands for "never": an inspection, cancellation or refund
	// that did not happen sorts after everything, so at every position
	// it reads "not yet", which is what it was when the run ended.
	posEnd = math.MaxInt64
)

// at is the position of the effects of the input sent at hist position p
// (Event.N+1; 0 means never, which maps to the end of the run).
// The factor 4 leaves room between two inputs: p*4 is the input,
// +1 its effects, +2 the timers it makes due, and the next input is at
// p*4+4, so sub-positions never collide with a neighbour.
func at(p int64) int64 {
	if p == 0 {
		return posEnd
	}
	return p*4 + posEffect
}

// reqView is one request as the lifecycle checks see it.
type reqView struct {
	i    int32
	id   string
	req  *world.Request
	rec  *reqRec
	paid int64
	// amount is what the refund pays and the exposure counts (domain.md,
	// The presets, exactly: amount_fen, default the order's paid_fen).
	amount int64 // the request's amount: amount_fen, or the paid amount
	// positions (see at)
	sent, approval, cancel, back, inspect, close int64
	refund                                       int64 // of the first refund, posEnd if none
	approvedAtOnce, approvedByReview             bool
	resolutions, closes                          []outRec
}

// policyOf is the platform policy the audit judges by: the configured one,
// else the one most decisions name. Called with t.mu held.
// A tie is broken by name so that two audits of one run judge by the
// same policy. Caveat: a run across a policy change is judged by the
// majority's numbers, and the preset checks may then be loose or
// wrong for the minority's requests; pass Policy to pin it.
func policyOf(in Input, t *Tracker) string {
	if in.Policy != "" {
		return in.Policy
	}
	policy, most := "", int64(0)
	for name, n := range t.policies {
		if n > most || n == most && name < policy {
			policy, most = name, n
		}
	}
	return policy
}

// resolvedApproved reports whether a resolution approved the request.
func resolvedApproved(rec *reqRec) bool {
	for _, o := range rec.outs {
		if o.kind == contract.OutResolution && o.outcome == contract.ResolutionApproved {
			return true
		}
	}
	return false
}

// views builds the view of every request that was sent, accepted and
// decided. Called with t.mu held.
// Undecided requests are left out: decision_exactly_once already fails
// them, and judging their lifecycle too would count one fault twice.
func views(g *world.Generator, t *Tracker) []reqView {
	var out []reqView
	for i := range t.reqs {
		rec := &t.reqs[i]
		if !rec.sent || rec.failed || rec.decisions == 0 || i >= len(g.Requests) {
			continue
		}
		r := &g.Requests[i]
		v := reqView{i: int32(i), id: g.RequestID(int32(i)), req: r, rec: rec, sent: at(r.Hist.Sent), approval: posEnd,
			cancel: posEnd, back: at(r.Hist.Back), inspect: at(r.Hist.Inspect), close: posEnd, refund: posEnd}
		if r.Hist.Cancel != 0 {
			v.cancel = at(r.Hist.Cancel)
		}
		if r.Order >= 0 {
			v.paid = g.Orders[r.Order].PaidFen
		}
		v.amount = r.AmountFen
		if v.amount == 0 {
			v.amount = v.paid
		}
		for _, o := range rec.outs {
			if o.kind != contract.OutResolution {
				continue
			}
			if o.outcome == contract.ResolutionClosed {
				v.closes = append(v.closes, o)
			} else {
				v.resolutions = append(v.resolutions, o)
			}
		}
		if rec.decision == contract.DecisionApproved {
			v.approvedAtOnce, v.approval = true, v.sent
		} else if len(v.resolutions) > 0 && v.resolutions[0].outcome == contract.ResolutionApproved {
			v.approvedByReview = true
			v.approval = v.resolutionPos(v.resolutions[0])
		}
		if len(v.closes) > 0 && v.approval != posEnd {
			// A close is a timer: right after the approval when the
			// return deadline had passed at send (unreturned), else
			// unknown.
			v.close = posEnd
			if r.Unreturned {
				v.close = v.approval - posEffect + posTimer
			}
		}
		for _, o := range rec.outs {
			if o.kind == contract.OutRefund {
				v.refund = v.refundPos(o)
				break
			}
		}
		out = append(out, v)
	}
	return out
}

// resolutionPos places a (non-closed) resolution: at the first answer, or
// right after the request for a timeout.
func (v *reqView) resolutionPos(o outRec) int64 {
	if o.by == contract.ByTimeout {
		return v.sent - posEffect + posTimer
	}
	if len(v.req.Hist.Answers) > 0 {
		return at(v.req.Hist.Answers[0].Pos)
	}
	return posEnd
}

// refundPos places a refund at its trigger.
func (v *reqView) refundPos(o outRec) int64 {
	switch o.trigger {
	case contract.TriggerPreShipment, contract.TriggerApproval:
		if v.approval != posEnd {
			return v.approval
		}
		return v.sent
	// max: a tracking that came before a reviewed approval
	// triggers the refund at the approval, not before it.
	case contract.TriggerTracking:
		return max(v.back, v.approval)
	case contract.TriggerInspection:
		return v.inspect
	}
	return posEnd
}

// clawbackPos places a clawback: at the close for not_returned, else at
// the inspection.
func (v *reqView) clawbackPos(o outRec) int64 {
	if o.outcome == contract.OutcomeNotReturned {
		return v.close
	}
	return v.inspect
}

// advanced says whether money or goods were advanced for the request, and
// how much (a refund with advance: true, or a pickup with replace: true).
// Money first: a refund sent in advance is the amount at stake. A
// pickup with replace: true advances goods worth the request's amount
// (domain.md, Safety rules, exposure: "goods advanced ... the
// request's amount").
func (v *reqView) advanced() (int64, bool) {
	for _, o := range v.rec.outs {
		if o.kind == contract.OutRefund && o.advance {
			return o.amount, true
		}
	}
	for _, o := range v.rec.outs {
		if o.kind == contract.OutPickup && o.replace {
			return v.amount, true
		}
	}
	return 0, false
}

// countsInExposure reports whether an approval at once promised or paid
// an advance (counted against the exposure cap from the approval): a
// refund sent with advance: true or a pickup with replace: true; or, when
// no refund came (cancelled, closed, trigger not reached by the end of
// the run), what the preset promises: tmall's return_refund (refund on
// tracking, advance), douyin's return_refund of a shipped order.
// The promise has to be inferred from the preset because no output
// announces it: a promised advance is invisible until its refund is
// sent, and that may be after the run ends. jd needs no inference: its
// advances are paid at approval (refund seen) or are replace pickups.
func (v *reqView) countsInExposure(g *world.Generator, policy string) bool {
	if !v.approvedAtOnce {
		return false // a reviewed approval advances nothing
	}
	if _, ok := v.advanced(); ok {
		return true
	}
	if v.rec.refunds > 0 {
		return false // a refund not in advance
	}
	if v.req.Kind != "return_refund" {
		return false
	}
	switch policy {
	case "tmall-fast-return":
		return true
	case "douyin-lightning":
		o := g.Orders[v.req.Order]
		// Both are positions in the event sequence: shipped before the
		// request was sent means "fast refund after shipment", a tracking
		// refund in advance; unshipped is pre_shipment, not in advance.
		return o.Shipped != 0 && o.Shipped < v.req.Hist.Sent
	}
	return false
}

// exposureEnd is where an advance stops counting: its inspection, a
// cancellation before any refund, or its close.
// domain.md, Safety rules, exposure: an inspection result (good or
// bad) releases the amount, as do a cancellation before any refund and
// the close by the return deadline. A cancellation after a refund
// changes nothing (Outcomes), hence the v.cancel < v.refund test.
func (v *reqView) exposureEnd() int64 {
	end := min(v.inspect, v.close)
	if v.cancel < v.refund {
		end = min(end, v.cancel)
	}
	return end
}

// lifecycleChecks are the checks of money safety, resolutions and
// deadlines, and the policy every output names. Called with t.mu held.
func lifecycleChecks(in Input, t *Tracker) []Check {
	g := in.Gen
	policy := policyOf(in, t)
	_, preset := presetMinStars[policy]
	vs := views(g, t)
	byUser := map[int32][]int{}
	byOrder := map[int32][]int{}
	for k := range vs {
		r := vs[k].req
		byUser[r.Shopper] = append(byUser[r.Shopper], k)
		if r.Order >= 0 {
			byOrder[r.Order] = append(byOrder[r.Order], k)
		}
	}
	// Sorted, not map order: the examples a failed check lists must be
	// the same for two audits of one seeded run, or reports cannot be
	// compared.
	users := slicesSortedKeys(byUser)
	orders := slicesSortedKeys(byOrder)

	checks := []Check{
		reviewResolved(vs, preset),
		resolutionHasReason(vs, preset),
		closes(vs, preset),
		notReturned(vs, preset),
		reviewedNotAdvanced(vs),
		policyEverywhere(t, g),
		exposureKept(g, vs, byUser, users, policy, preset),
		orderCeiling(vs, byOrder, orders),
	}
	checks = append(checks, ceilingExpectations(vs, byOrder, orders)...)
	checks = append(checks, invalidChecks(g, t)...)
	return checks
}

func slicesSortedKeys(m map[int32][]int) []int32 {
	keys := make([]int32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// firstAnswer is the answer that counts for a request in review: the first
// one, unless the request was cancelled before it.
// An answer after the cancellation is an answer "for a request not in
// review" (domain.md, After review): it changes nothing, so it cannot
// be the one that counts.
func (v *reqView) firstAnswer() (world.Answer, bool) {
	h := &v.req.Hist
	if len(h.Answers) == 0 || at(h.Answers[0].Pos) > v.cancel {
		return world.Answer{}, false
	}
	return h.Answers[0], true
}

// resolutionMatches reports whether a resolution carries out an approval
// (approve) or a rejection: an approval may become a rejection with
// amount_exceeds_paid under the per-order ceiling. For a request whose
// merchant is unknown (no return address to approve with) the spec says
// nothing, so any outcome is accepted.
func resolutionMatches(o outRec, approve bool, reasons []string) bool {
	if slices.Contains(reasons, contract.ReasonMerchantUnknown) {
		return true
	}
	if !approve {
		return o.outcome == contract.ResolutionRejected
	}
	return o.outcome == contract.ResolutionApproved || o.outcome == contract.ResolutionRejected && slices.Contains(o.reasons, contract.ReasonAmountExceedsPaid)
}

// reviewResolved enforces domain.md, After review: "exactly one
// resolution per request", the first answer's, and the Merchant
// deadline. The timeout case comes first because an aged request's
// deadline passed before it arrived: the daemon fires it at the next
// clock advance of the partition, before any answer can be processed,
// so its answers are late. It is only expected under a preset, whose
// 72 h the world's aged requests are dated past; a custom policy may
// have a longer deadline.
func reviewResolved(vs []reqView, preset bool) Check {
	c := Check{Name: "review_resolved", Rule: "a request in review that a person answered, or whose 72 h review deadline passed (fast-track rules only), ends in exactly one resolution: the first answer's, or by timeout (a later answer changes nothing)"}
	for k := range vs {
		v := &vs[k]
		if v.rec.decision != contract.DecisionReview {
			continue
		}
		ans, answered := v.firstAnswer()
		safety := waitsForPerson(v.rec.reasons)
		var wantBy string
		var approve bool
		switch {
		case !safety && v.req.Aged && preset && v.cancel == posEnd:
			wantBy, approve = contract.ByTimeout, true
		case answered:
			wantBy, approve = ans.By, ans.Approve
		default:
			continue
		}
		c.Checked++
		if len(v.resolutions) != 1 {
			c.fail(fmt.Sprintf("%s: %d resolutions, want one by %s", v.id, len(v.resolutions), wantBy))
			continue
		}
		o := v.resolutions[0]
		if o.by != wantBy || !resolutionMatches(o, approve, v.rec.reasons) {
			c.fail(fmt.Sprintf("%s: resolution %s by %s %v, want %s by %s (aged=%v, reasons %v)", v.id, o.outcome, o.by, o.reasons,
				map[bool]string{true: "approved", false: "rejected"}[approve], wantBy, v.req.Aged, v.rec.reasons))
		}
	}
	return c
}

// resolutionHasReason is the converse of reviewResolved: it fails the
// resolutions nothing called for. Each case is a sentence of domain.md,
// After review: only the first answer counts, a request that failed a
// safety rule "is never approved by timeout", and the deadline runs
// 72 h from the decision (so a timeout on a request not dated past it
// fired early). Approved-at-once and rejected requests are not in
// review, so any resolution of theirs (but a close) is unfounded.
func resolutionHasReason(vs []reqView, preset bool) Check {
	c := Check{Name: "resolution_has_reason", Rule: "no resolution without reason: none for a request approved at once (but a close) or rejected, none while a review waits within its deadline or for a person after a safety rule, at most one per request, never by timeout after a safety rule"}
	for k := range vs {
		v := &vs[k]
		c.Checked++
		switch {
		case len(v.resolutions) > 1:
			c.fail(fmt.Sprintf("%s: %d resolutions", v.id, len(v.resolutions)))
		case len(v.closes) > 1:
			c.fail(fmt.Sprintf("%s: %d closes", v.id, len(v.closes)))
		case v.rec.decision == contract.DecisionRejected && len(v.resolutions)+len(v.closes) > 0:
			c.fail(fmt.Sprintf("%s: rejected, then a resolution", v.id))
		case v.rec.decision == contract.DecisionApproved && len(v.resolutions) > 0:
			c.fail(fmt.Sprintf("%s: approved at once, then resolution %s by %s", v.id, v.resolutions[0].outcome, v.resolutions[0].by))
		case v.rec.decision == contract.DecisionReview && len(v.resolutions) == 1:
			o := v.resolutions[0]
			_, answered := v.firstAnswer()
			switch {
			case o.by == contract.ByTimeout && failedSafety(v.rec.reasons):
				c.fail(fmt.Sprintf("%s: resolved by timeout after safety rules %v", v.id, v.rec.reasons))
			case o.by == contract.ByTimeout && preset && !v.req.Aged:
				c.fail(fmt.Sprintf("%s: resolved by timeout within its 72 h review deadline", v.id))
			case o.by != contract.ByTimeout && !answered:
				c.fail(fmt.Sprintf("%s: resolved by %s with no answer that counts", v.id, o.by))
			}
		}
	}
	return c
}

// closes enforces domain.md, After review, Return deadline, both ways.
// A close is only demanded of an unreturned request approved at once:
// the world dates those past the 7 days, so the deadline has passed at
// approval. A reviewed approval starts its 7 days at the resolution,
// inside the run, so its close is not demanded; refund_only sends no
// goods back and can never be closed this way.
func closes(vs []reqView, preset bool) Check {
	c := Check{Name: "return_deadline_close", Rule: "an approved return or exchange whose goods never came back is closed by timeout once its 7-day return deadline passed, and no other request is closed"}
	for k := range vs {
		v := &vs[k]
		mustClose := v.req.Unreturned && v.approvedAtOnce && v.req.Kind != "refund_only" && preset
		if len(v.closes) == 0 && !mustClose {
			continue
		}
		c.Checked++
		if len(v.closes) == 0 {
			c.fail(fmt.Sprintf("%s: %s approved at once, dated %v back, never sent back: not closed", v.id, v.req.Kind, -v.req.Shift))
			continue
		}
		o := v.closes[0]
		switch {
		case o.by != contract.ByTimeout:
			c.fail(fmt.Sprintf("%s: closed by %s", v.id, o.by))
		case v.approval == posEnd:
			c.fail(fmt.Sprintf("%s: closed, never approved (decision %s)", v.id, v.rec.decision))
		case v.req.Kind == "refund_only":
			c.fail(fmt.Sprintf("%s: a refund_only closed by the return deadline", v.id))
		case preset && !v.req.Unreturned:
			c.fail(fmt.Sprintf("%s: closed within its 7-day return deadline (dated %v back)", v.id, -v.req.Shift))
		}
	}
	return c
}

// notReturned enforces the end of domain.md's Return deadline: the
// "claimed a return that never happened" abuse. The clawback must be
// the advanced amount exactly (the refund, or for a replace pickup the
// request's amount). Under another policy the penalty is only required
// to be positive: a not_returned feedback that penalises nothing would
// leave the abuse unanswered, which no policy is meant to allow.
func notReturned(vs []reqView, preset bool) Check {
	c := Check{Name: "not_returned_clawback", Rule: "a close of an advanced request (refund with advance, or pickup with replace) sends its clawback and trust feedback with outcome not_returned (penalty 50 under the presets); no other request gets either"}
	for k := range vs {
		v := &vs[k]
		var claws, trusts []outRec
		for _, o := range v.rec.outs {
			switch {
			case o.kind == contract.OutClawback && o.outcome == contract.OutcomeNotReturned:
				claws = append(claws, o)
			case o.kind == contract.OutTrust && o.outcome == contract.OutcomeNotReturned:
				trusts = append(trusts, o)
			}
		}
		if len(v.closes) == 0 {
			if len(claws)+len(trusts) > 0 {
				c.Checked++
				c.fail(fmt.Sprintf("%s: not_returned clawback/trust (%d/%d) without a close", v.id, len(claws), len(trusts)))
			}
			continue
		}
		c.Checked++
		amount, adv := v.advanced()
		switch {
		case !adv && len(claws)+len(trusts) > 0:
			c.fail(fmt.Sprintf("%s: closed with nothing advanced, yet %d clawbacks and %d trust feedbacks not_returned", v.id, len(claws), len(trusts)))
		case !adv:
		case len(claws) != 1 || len(trusts) != 1:
			c.fail(fmt.Sprintf("%s: advanced %d fen and closed: %d not_returned clawbacks, %d trust feedbacks, want one each", v.id, amount, len(claws), len(trusts)))
		case claws[0].amount != amount:
			c.fail(fmt.Sprintf("%s: not_returned clawback of %d fen, advanced %d", v.id, claws[0].amount, amount))
		case preset && trusts[0].penalty != presetNotReturnedPenalty || trusts[0].penalty <= 0:
			c.fail(fmt.Sprintf("%s: not_returned trust penalty %d", v.id, trusts[0].penalty))
		}
	}
	return c
}

// domain.md, After review: a reviewed approval "is not a fast track:
// nothing is advanced". An advance there would be credit the platform
// extends to a shopper that the fast-track rules did not clear.
func reviewedNotAdvanced(vs []reqView) Check {
	c := Check{Name: "reviewed_not_advanced", Rule: "a request approved after review gets nothing in advance: no refund with advance: true, no pickup with replace: true"}
	for k := range vs {
		v := &vs[k]
		if !v.approvedByReview {
			continue
		}
		c.Checked++
		if amount, adv := v.advanced(); adv {
			c.fail(fmt.Sprintf("%s: approved by %s, %d fen advanced", v.id, v.resolutions[0].by, amount))
		}
	}
	return c
}

// domain.md, Money safety, "Promises keep their policy": every output
// names the policy version of its request. Comparing each output with
// its decision's policy, not with the one in force, is what catches a
// daemon that stamps a reloaded policy on an older request's refund.
func policyEverywhere(t *Tracker, g *world.Generator) Check {
	c := Check{Name: "policy_on_every_output", Rule: "every output about a request names a policy (name and version), the one of its request's decision"}
	for i := range t.reqs {
		rec := &t.reqs[i]
		id := g.RequestID(int32(i))
		if rec.decisions > 0 {
			c.Checked++
			if rec.policyKey == "" {
				c.fail(fmt.Sprintf("%s: decision without policy name or version", id))
			}
		}
		for _, o := range rec.outs {
			c.Checked++
			switch {
			case o.policy == "":
				c.fail(fmt.Sprintf("%s: %s without policy name or version", id, o.kind))
			case rec.policyKey != "" && o.policy != rec.policyKey:
				c.fail(fmt.Sprintf("%s: %s names policy %q, its decision %q", id, o.kind, o.policy, rec.policyKey))
			}
		}
	}
	return c
}

// exposureKept enforces domain.md, Safety rules, exposure (cap 500000
// fen under every preset). Only approvals at once are judged: a
// reviewed approval advances nothing, so it cannot pass the cap. What
// counts is a lower bound of the daemon's exposure (earlier approvals
// still open at this approval's position), so a failure is proof of a
// breach, and a breach hidden in an uncertain order may be missed.
func exposureKept(g *world.Generator, vs []reqView, byUser map[int32][]int, users []int32, policy string, preset bool) Check {
	c := Check{Name: "exposure_cap_kept", Rule: fmt.Sprintf("at every approval at once, the shopper's advanced and promised money not yet got back plus the request's amount is at most %d fen", presetExposureCapFen)}
	if !preset {
		c.Skipped = fmt.Sprintf("policy %q is not a shipped preset: cap and promises unknown", policy)
		return c
	}
	for _, u := range users {
		ks := byUser[u]
		for _, a := range ks {
			va := &vs[a]
			if !va.approvedAtOnce {
				continue
			}
			c.Checked++
			var exposure int64
			var open []string
			for _, k := range ks {
				v := &vs[k]
				if k == a || !v.approvedAtOnce || v.approval >= va.approval || v.exposureEnd() <= va.approval || !v.countsInExposure(g, policy) {
					continue
				}
				amount, adv := v.advanced()
				if !adv {
					amount = v.amount
				}
				exposure += amount
				if len(open) < 4 {
					open = append(open, fmt.Sprintf("%s %d", v.id, amount))
				}
			}
			if exposure+va.amount > presetExposureCapFen {
				c.fail(fmt.Sprintf("%s approved: outstanding %d (%v) + %d > %d", va.id, exposure, open, va.amount, presetExposureCapFen))
			}
		}
	}
	return c
}

// moneyMove is a refund (+) or the clawback of refunded money (-) at a
// position of its shopper's input order.
type moneyMove struct {
	pos int64
	fen int64
	id  string
}

// orderMoves are the refunds and money clawbacks of one order's requests,
// in input order (clawbacks first at a tie: the kinder order).
func orderMoves(vs []reqView, ks []int) []moneyMove {
	var mv []moneyMove
	for _, k := range ks {
		v := &vs[k]
		var refunded int64
		for _, o := range v.rec.outs {
			if o.kind == contract.OutRefund {
				refunded += o.amount
				mv = append(mv, moneyMove{pos: v.refundPos(o), fen: o.amount, id: v.id})
			}
		}
		for _, o := range v.rec.outs {
			if o.kind == contract.OutClawback && refunded > 0 {
				// Only money comes back to the order's ceiling: the
				// clawback of an exchange's goods is not refunded money.
				back := min(o.amount, refunded)
				refunded -= back
				mv = append(mv, moneyMove{pos: v.clawbackPos(o), fen: -back, id: v.id})
			}
		}
	}
	slices.SortStableFunc(mv, func(a, b moneyMove) int {
		if a.pos != b.pos {
			return cmpInt64(a.pos, b.pos)
		}
		return cmpInt64(a.fen, b.fen)
	})
	return mv
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// orderCeiling enforces domain.md, Money safety, Per-order ceiling. It
// follows the running net in input order and not only the final sum: a
// refund that passes paid_fen broke the rule when it was paid, even if a
// clawback brought the total back under it later.
func orderCeiling(vs []reqView, byOrder map[int32][]int, orders []int32) Check {
	c := Check{Name: "order_refunds_within_paid", Rule: "per order, refunds minus clawbacks of refunded money never exceed the order's paid_fen"}
	for _, o := range orders {
		ks := byOrder[o]
		mv := orderMoves(vs, ks)
		if len(mv) == 0 {
			continue
		}
		c.Checked++
		paid := vs[ks[0]].paid
		var net int64
		var ids []string
		for _, m := range mv {
			net += m.fen
			if m.fen > 0 && !slices.Contains(ids, m.id) {
				ids = append(ids, m.id)
			}
			if net > paid {
				c.fail(fmt.Sprintf("order of %v: %d fen refunded net of clawbacks > paid %d", ids, net, paid))
				break
			}
		}
	}
	return c
}

// ceilingExpectations check the per-order ceiling on later requests of an
// order: one whose amount plus what the order already had refunded (net
// of clawbacks) passes paid_fen is rejected with amount_exceeds_paid; one
// that fits, when every earlier request of the order is over and holds
// nothing reserved, is not.
func ceilingExpectations(vs []reqView, byOrder map[int32][]int, orders []int32) []Check {
	rej := Check{Name: "order_ceiling_rejects", Rule: "a request whose amount plus its order's refunds so far passes paid_fen is rejected with amount_exceeds_paid"}
	allow := Check{Name: "order_ceiling_allows", Rule: "a request whose amount fits under paid_fen minus its order's refunds, once the order's earlier requests are over, is not rejected amount_exceeds_paid (6000 then 4000 of 10000)"}
	for _, o := range orders {
		ks := byOrder[o]
		if len(ks) < 2 {
			continue
		}
		mv := orderMoves(vs, ks)
		for _, a := range ks {
			va := &vs[a]
			if va.req.AmountFen > va.paid {
				continue // over paid on its own: amount_over_paid_rejected
			}
			var refunded int64
			for _, m := range mv {
				if m.pos < va.sent {
					refunded += m.fen
				}
			}
			earlier := 0
			clean := true
			for _, k := range ks {
				v := &vs[k]
				if k == a || v.sent >= va.sent {
					continue
				}
				earlier++
				clean = clean && v.overBefore(va.sent)
			}
			if earlier == 0 {
				continue
			}
			exceeds := slices.Contains(va.rec.reasons, contract.ReasonAmountExceedsPaid)
			switch {
			// Refunds alone are a lower bound of what the daemon holds
			// against the order (reservations are invisible), so past
			// paid_fen the rejection is certain.
			case va.amount+refunded > va.paid:
				rej.Checked++
				if va.rec.decision != contract.DecisionRejected || !exceeds {
					rej.fail(fmt.Sprintf("%s: %d + %d refunded > paid %d: %s %v", va.id, va.amount, refunded, va.paid, va.rec.decision, va.rec.reasons))
				}
			// The other way only when every earlier request is over:
			// an open one may hold a reservation that the audit cannot
			// see and that legitimately makes this one not fit.
			case clean:
				allow.Checked++
				if exceeds {
					allow.fail(fmt.Sprintf("%s: %d + %d refunded <= paid %d, earlier requests over: %s %v", va.id, va.amount, refunded, va.paid, va.rec.decision, va.rec.reasons))
				}
			}
		}
	}
	return []Check{rej, allow}
}

// overBefore reports whether the request was over, with nothing left
// reserved against its order, before position p: rejected, cancelled
// before any refund, in review with no resolution at all, or refunded and
// finished (a refund_only's refund, or the inspection of goods that came
// back after the refund).
// A review without resolution never reserved anything: the amount is
// reserved from the approval (domain.md, Per-order ceiling).
func (v *reqView) overBefore(p int64) bool {
	switch {
	case v.rec.decision == contract.DecisionRejected:
		return true
	case v.cancel < p && v.refund > v.cancel:
		return true
	case v.rec.decision == contract.DecisionReview && len(v.resolutions) == 0 && len(v.closes) == 0:
		return true
	case v.refund == posEnd:
		return false
	case v.req.Kind == "refund_only":
		return v.refund < p
	}
	return v.refund <= v.inspect && v.inspect < p
}

// invalidChecks check that well-formed events that cannot stand changed
// nothing and did not stop their shopper. Called with t.mu held.
// domain.md, Input that cannot stand: such an event goes to the
// dead-letter stream "and the rest of the partition goes on". An
// output about it would mean it changed state; no decision for the
// next request would mean it stopped its partition.
func invalidChecks(g *world.Generator, t *Tracker) []Check {
	none := Check{Name: "no_output_for_invalid", Rule: "a well-formed event that cannot stand (unknown order or request, future time, amount 0) produces no output",
		Checked: int64(len(t.badRecs)), Failed: t.invalidN, Examples: slices.Clone(t.invalidOut)}
	next := Check{Name: "valid_after_invalid", Rule: "after an event that cannot stand, the same shopper's next request is decided"}
	byOrder := map[int32][]int32{}
	for i := range g.Requests {
		if o := g.Requests[i].Order; o >= 0 {
			byOrder[o] = append(byOrder[o], int32(i))
		}
	}
	for i, b := range t.badRecs {
		if !b.sent || b.failed || i >= len(g.Bads) || g.Bads[i].Follow < 0 {
			continue
		}
		for _, r := range byOrder[g.Bads[i].Follow] {
			if int(r) >= len(t.reqs) || !t.reqs[r].sent || t.reqs[r].failed {
				continue
			}
			next.Checked++
			if t.reqs[r].decisions == 0 {
				next.fail(fmt.Sprintf("%s after %s (%s): no decision", g.RequestID(r), g.Bads[i].Subject, g.Bads[i].Reason))
			}
		}
	}
	return []Check{none, next}
}
