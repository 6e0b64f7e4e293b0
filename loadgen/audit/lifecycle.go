package audit

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/flashreturn/flashreturn/loadgen/contract"
	"github.com/flashreturn/flashreturn/loadgen/world"
)

// Lifecycle counts what the after-sales lifecycle did in a run: what the
// world sent and what came back. It is part of [Report].
type Lifecycle struct {
	// Answers counts the review answers sent; LateAnswers those to
	// requests dated past their review deadline; DuplicateAnswers the
	// answers after a request's first; StrayAnswers the first answers to
	// requests whose decision was not review.
	Answers          int64 `json:"review_answers"`
	LateAnswers      int64 `json:"late_answers"`
	DuplicateAnswers int64 `json:"duplicate_answers"`
	StrayAnswers     int64 `json:"stray_answers"`
	// Aged and Unreturned count the requests sent dated past the review
	// deadline, and past the return deadline with goods that never come
	// back; SecondRequests those on an order that had one before;
	// SplurgeRequests those of splurges.
	Aged            int64 `json:"aged_requests"`
	Unreturned      int64 `json:"unreturned_requests"`
	SecondRequests  int64 `json:"second_requests"`
	SplurgeRequests int64 `json:"splurge_requests"`
	// Resolutions counts resolutions by "outcome/by" (closes included);
	// Closes the closed ones; NotReturnedClawbacks and NotReturnedTrust
	// the clawbacks and trust feedbacks with outcome not_returned.
	Resolutions          map[string]int64 `json:"resolutions"`
	Closes               int64            `json:"closes"`
	NotReturnedClawbacks int64            `json:"not_returned_clawbacks"`
	NotReturnedTrust     int64            `json:"not_returned_trust"`
	// InvalidSent counts the events sent that must be dead-lettered, by
	// the reason they must get; DeadLetters the FR_DLQ messages by the
	// reason they carry.
	InvalidSent map[string]int64 `json:"dead_letters_expected"`
	DeadLetters map[string]int64 `json:"dead_letters_by_reason"`
}

// LifecycleOf counts the run's lifecycle. It must run after the run's
// outputs have drained.
// These are counts, not checks: they say how much of the lifecycle a
// run exercised, so that a passing audit over a run with no closes or
// no late answers is not read as proof that those paths work.
func LifecycleOf(g *world.Generator, t *Tracker) Lifecycle {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := Lifecycle{Resolutions: map[string]int64{}, InvalidSent: map[string]int64{}, DeadLetters: maps.Clone(t.dlqReasons)}
	for i := range t.reqs {
		rec := &t.reqs[i]
		// Requests whose publish failed are still counted here (unlike in
		// the checks): the world planned and sent them, and the counts
		// describe the traffic offered.
		if !rec.sent || i >= len(g.Requests) {
			continue
		}
		r := &g.Requests[i]
		n := int64(len(r.Hist.Answers))
		l.Answers += n
		if r.Aged {
			l.LateAnswers += n
			l.Aged++
		}
		if n > 1 {
			l.DuplicateAnswers += n - 1
		}
		// An answer to a request not in review must change nothing
		// (domain.md, After review); counting them shows how often the
		// run tested that.
		if n > 0 && rec.decisions > 0 && rec.decision != contract.DecisionReview {
			l.StrayAnswers++
		}
		if r.Unreturned {
			l.Unreturned++
		}
		if r.Second {
			l.SecondRequests++
		}
		if r.Splurge {
			l.SplurgeRequests++
		}
		for _, o := range rec.outs {
			switch {
			case o.kind == contract.OutResolution:
				l.Resolutions[o.outcome+"/"+o.by]++
				if o.outcome == contract.ResolutionClosed {
					l.Closes++
				}
			case o.kind == contract.OutClawback && o.outcome == contract.OutcomeNotReturned:
				l.NotReturnedClawbacks++
			case o.kind == contract.OutTrust && o.outcome == contract.OutcomeNotReturned:
				l.NotReturnedTrust++
			}
		}
	}
	for i, b := range t.badRecs {
		if b.sent && i < len(g.Bads) {
			// Expected by reason next to DeadLetters by reason: a reason
			// missing from one side is visible at a glance in the summary.
			l.InvalidSent[g.Bads[i].Reason]++
		}
	}
	return l
}

// WriteText writes the lifecycle lines of the human summary.
func (l Lifecycle) WriteText(b *strings.Builder) {
	fmt.Fprintf(b, "  lifecycle: review answers %d (late %d, duplicate %d, to requests not in review %d); aged requests %d, unreturned %d, second %d, splurge %d\n",
		l.Answers, l.LateAnswers, l.DuplicateAnswers, l.StrayAnswers, l.Aged, l.Unreturned, l.SecondRequests, l.SplurgeRequests)
	fmt.Fprintf(b, "  resolutions: %s; closes %d, not_returned clawbacks %d, trust %d\n", FormatCounts(l.Resolutions), l.Closes,
		l.NotReturnedClawbacks, l.NotReturnedTrust)
	fmt.Fprintf(b, "  dead letters by reason: %s (expected %s)\n", FormatCounts(l.DeadLetters), FormatCounts(l.InvalidSent))
}

// FormatCounts renders counts as "k1=n1 k2=n2" in key order ("none" when
// empty), the form of every tally in the text report; keys are sorted so
// that two reports of one run compare line by line.
func FormatCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
