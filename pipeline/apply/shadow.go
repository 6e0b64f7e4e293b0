package apply

import (
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashreturn/flashreturn/internal/core"
)

// shadowKeep is how many recent disagreements the daemon keeps for
// GET /v1/shadow.
const shadowKeep = 200

// Shadow decides every return request a second time with another policy,
// on a copy of the shopper's state as the live policy sees it, and
// compares. Only the live decision is published; the shadow's decisions
// and disagreements are counted in metrics and readable over HTTP, so an
// operator sees what a policy would do on live traffic before turning it
// on. Safe for concurrent use by the partition workers.
type Shadow struct {
	policy *core.Policy

	mu            sync.Mutex
	requests      int64
	liveApproved  int64
	shadowApprove int64
	liveAdvance   int64
	shadowAdvance int64
	disagreements int64
	// toPeople and byDeadline count the reviews of each side (0 live, 1
	// shadow) that only a person can approve, and those the review
	// deadline approves when nobody answers.
	toPeople, byDeadline [2]int64
	byPair               map[[2]core.Verdict]int64
	recent               []Disagreement // ring buffer
	next                 int

	liveApp, shadowApp, disagree *metrics.Counter
	liveFen, shadowFen           *metrics.Counter
}

// Disagreement is one request that the shadow policy decided differently.
type Disagreement struct {
	UserID        string   `json:"user_id"`
	RequestID     string   `json:"request_id"`
	Live          string   `json:"live"`
	Shadow        string   `json:"shadow"`
	LiveReasons   []string `json:"live_reasons"`
	ShadowReasons []string `json:"shadow_reasons"`
}

// ShadowSummary is the answer of GET /v1/shadow.
type ShadowSummary struct {
	Policy            PolicyRef `json:"policy"`
	Requests          int64     `json:"requests"`
	LiveApproved      int64     `json:"live_approved"`
	ShadowApproved    int64     `json:"shadow_approved"`
	LiveAdvancedFen   int64     `json:"live_advanced_fen"`
	ShadowAdvancedFen int64     `json:"shadow_advanced_fen"`
	Disagreements     int64     `json:"disagreements"`
	// After review: how many of each side's reviews wait for a person (a
	// safety rule failed, or the merchant is unknown), and how many the
	// review deadline approves when nobody answers.
	LiveToPeople           int64            `json:"live_to_people"`
	ShadowToPeople         int64            `json:"shadow_to_people"`
	LiveDeadlineApprovable int64            `json:"live_deadline_approvable"`
	ShadowDeadlineApproves int64            `json:"shadow_deadline_approvable"`
	ByOutcome              map[string]int64 `json:"by_outcome"`
	RecentDisagreements    []Disagreement   `json:"recent_disagreements"`
}

// NewShadow makes the shadow of policy p and registers its counters
// (flashreturn_shadow_*{shadow="<name>"}) on set. One per daemon: the
// counters are registered once, and registering them twice panics.
func NewShadow(p *core.Policy, set *metrics.Set) *Shadow {
	l := `{shadow="` + p.Name + `"}`
	return &Shadow{
		policy:    p,
		byPair:    make(map[[2]core.Verdict]int64),
		liveApp:   set.NewCounter(`flashreturn_shadow_live_approved_total` + l),
		shadowApp: set.NewCounter(`flashreturn_shadow_approved_total` + l),
		disagree:  set.NewCounter(`flashreturn_shadow_disagreements_total` + l),
		liveFen:   set.NewCounter(`flashreturn_shadow_live_advanced_fen_total` + l),
		shadowFen: set.NewCounter(`flashreturn_shadow_advanced_fen_total` + l),
	}
}

// decisionOf returns the decision among effects and the advanced money
// they pay at once.
func decisionOf(effects []core.Effect) (*core.Effect, int64) {
	var dec *core.Effect
	var adv int64
	for i := range effects {
		e := &effects[i]
		switch {
		case e.Kind == core.EffectDecision:
			dec = e
		case e.Kind == core.EffectRefund && e.Advance:
			adv += e.AmountFen
		}
	}
	return dec, adv
}

// observe records the live and shadow outcome of one request.
func (s *Shadow) observe(live, shadow []core.Effect) {
	ld, ladv := decisionOf(live)
	sd, sadv := decisionOf(shadow)
	if ld == nil || sd == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if ld.Verdict == core.VerdictApproved {
		s.liveApproved++
		s.liveApp.Inc()
	}
	if sd.Verdict == core.VerdictApproved {
		s.shadowApprove++
		s.shadowApp.Inc()
	}
	s.liveAdvance += ladv
	s.shadowAdvance += sadv
	s.liveFen.Add(int(ladv))
	s.shadowFen.Add(int(sadv))
	s.byPair[[2]core.Verdict{ld.Verdict, sd.Verdict}]++
	for i, d := range [2]*core.Effect{ld, sd} {
		if d.Verdict != core.VerdictReview {
			continue
		}
		if core.DeadlineApproves(d.Reasons) {
			s.byDeadline[i]++
		} else {
			s.toPeople[i]++
		}
	}
	if ld.Verdict == sd.Verdict && ld.Reasons == sd.Reasons {
		return
	}
	s.disagreements++
	s.disagree.Inc()
	d := Disagreement{UserID: ld.UserID, RequestID: ld.RequestID, Live: ld.Verdict.String(), Shadow: sd.Verdict.String(),
		LiveReasons: ld.Reasons.AppendStrings([]string{}), ShadowReasons: sd.Reasons.AppendStrings([]string{})}
	if len(s.recent) < shadowKeep {
		s.recent = append(s.recent, d)
	} else {
		s.recent[s.next] = d
	}
	s.next = (s.next + 1) % shadowKeep
}

// Policy returns the shadow policy (fixed for the daemon's life; a reload
// swaps only the live policy).
func (s *Shadow) Policy() *core.Policy { return s.policy }

// Summary returns the counts so far and the recent disagreements, oldest
// first.
func (s *Shadow) Summary() ShadowSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := ShadowSummary{
		Policy: PolicyRef{Name: s.policy.Name, Version: s.policy.Version}, Requests: s.requests,
		LiveApproved: s.liveApproved, ShadowApproved: s.shadowApprove,
		LiveAdvancedFen: s.liveAdvance, ShadowAdvancedFen: s.shadowAdvance,
		Disagreements: s.disagreements, ByOutcome: map[string]int64{},
		LiveToPeople: s.toPeople[0], ShadowToPeople: s.toPeople[1],
		LiveDeadlineApprovable: s.byDeadline[0], ShadowDeadlineApproves: s.byDeadline[1],
	}
	for k, n := range s.byPair {
		out.ByOutcome[k[0].String()+"->"+k[1].String()] = n
	}
	if len(s.recent) < shadowKeep {
		out.RecentDisagreements = append([]Disagreement{}, s.recent...)
	} else {
		out.RecentDisagreements = append(append([]Disagreement{}, s.recent[s.next:]...), s.recent[:s.next]...)
	}
	return out
}
