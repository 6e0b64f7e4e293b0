package apply

import (
	"time"

	"github.com/bytedance/sonic"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
)

// TraceRecord is what the query API shows of a decision: the policy that
// made it and every rule evaluated with the values compared. It is stored
// beside the user's state, not in it, so the hot state stays small.
type TraceRecord struct {
	Policy           PolicyRef    `json:"policy"`
	Decision         string       `json:"decision"`
	Reasons          []string     `json:"reasons"`
	MerchantRule     string       `json:"merchant_rule,omitempty"`
	MerchantRevision uint64       `json:"merchant_revision"`
	RequestAt        string       `json:"request_at"`
	DecidedAt        string       `json:"decided_at"`
	Trace            []TraceCheck `json:"trace"`
}

// PolicyRef names a policy as the APIs show it (name and version).
type PolicyRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// TraceCheck is one rule evaluated for a decision: the values compared
// and whether it passed, as the core's trace recorded them.
type TraceCheck struct {
	Rule   string `json:"rule"`
	Pass   bool   `json:"pass"`
	Got    int64  `json:"got"`
	Limit  int64  `json:"limit"`
	Detail string `json:"detail"`
}

// EncodeTrace encodes the TraceRecord of decision effect e, decided at
// now (the batch's wall clock: the one value of a record that replay
// cannot reproduce, which is why records are not outputs). decided_at is
// written in loc (UTC when nil) in wire.TimeLayout, exactly as the
// decision's own decided_at on fr.out.decision, so that the query API
// and the output agree on the moment and its format.
func EncodeTrace(e *core.Effect, now time.Time, loc *time.Location) []byte {
	if loc == nil {
		loc = time.UTC
	}
	p := e.Policy
	r := TraceRecord{
		Policy:           PolicyRef{Name: p.Name, Version: p.Version},
		Decision:         e.Verdict.String(),
		Reasons:          e.Reasons.AppendStrings(make([]string, 0, 4)),
		MerchantRule:     e.MerchantRule,
		MerchantRevision: e.MerchantRevision,
		RequestAt:        e.RequestAt,
		DecidedAt:        now.In(loc).Format(wire.TimeLayout),
		Trace:            make([]TraceCheck, 0, e.Trace.N),
	}
	for _, c := range e.Trace.Checks[:e.Trace.N] {
		r.Trace = append(r.Trace, TraceCheck{Rule: c.Name(), Pass: c.Pass, Got: c.Got, Limit: c.Limit, Detail: c.String()})
	}
	b, err := sonic.Marshal(&r)
	if err != nil {
		// A plain struct of strings and numbers always encodes.
		panic("apply: encode trace: " + err.Error())
	}
	return b
}
