package loadgen

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Threshold is a pass/fail rule on one of a run's figures, such as
// p99<10ms or decided>99.9%. A run that breaks one still returns its
// report; cmd/loadgen then exits with its own code (4). Build one with
// [ParseThreshold].
type Threshold struct {
	// Expr is the rule as written, blanks removed.
	Expr string `json:"threshold"`
	// Metric is one of the metric names [ParseThreshold] lists.
	Metric string `json:"metric"`
	// Op is <, <=, >, >=, == or !=.
	Op string `json:"op"`
	// Value is the bound in Unit.
	Value float64 `json:"value"`
	// Unit is "ms" for times, "%" for shares, "/s" for rates, "" for
	// counts.
	Unit string `json:"unit"`
}

// ThresholdResult is a threshold and how the run fared against it.
type ThresholdResult struct {
	Threshold
	// Measured is the figure in Unit; nil when the run did not measure it
	// (no decisions, no faults) or it is unbounded (never drained).
	Measured *float64 `json:"measured"`
	// MeasuredText is Measured for people, or why there is none.
	MeasuredText string `json:"measured_text"`
	// Passed is true when the measured figure meets the bound; a figure
	// the run did not measure fails.
	Passed bool `json:"passed"`
}

// Metric kinds of a threshold: what its value looks like.
const (
	kindTime  = iota // a duration, compared in ms
	kindShare        // N%, N/s or a count
	kindCount        // a count or N%
	kindExact        // a count
)

var thresholdMetrics = map[string]int{
	"p50": kindTime, "p90": kindTime, "p99": kindTime, "p99.9": kindTime, "p999": kindTime, "max": kindTime, "mean": kindTime,
	"drain": kindTime, "backlog_clear": kindTime, "gap": kindTime,
	"decided": kindShare, "dlq": kindCount, "dlq_unexpected": kindExact,
}

var thresholdRE = regexp.MustCompile(`^([a-z][a-z0-9_.]*)(<=|>=|==|!=|<|>)(.+)$`)

// ParseThreshold parses a rule of the form <metric><op><value>, blanks
// allowed, op one of < <= > >= == !=. The metrics:
//
//   - p50, p90, p99, p99.9 (or p999), max, mean: request-to-decision
//     latency from the scheduled send; the value is a duration (10ms,
//     1.5s, 800us).
//   - drain: time from the last send until every expected output had
//     arrived (unbounded when the run never drained); a duration.
//   - backlog_clear: time from the backlog's peak until it fell under
//     100 ms of offered traffic (unbounded if it never did); a duration.
//   - gap: the largest decision gap any fault caused (see [faults.FaultResult]);
//     a duration.
//   - decided: requests that got a decision, as a share (99.9%), a rate
//     over the sending time (800/s) or a count (12000).
//   - dlq: dead letters, as a count or a share of the events sent (0.2%).
//   - dlq_unexpected: valid events that were dead-lettered; a count.
//
// Anything else, a value without its unit (p99<10) or a unit the metric
// does not take, is an error.
func ParseThreshold(s string) (Threshold, error) {
	expr := strings.Join(strings.Fields(s), "")
	m := thresholdRE.FindStringSubmatch(strings.ToLower(expr))
	if m == nil {
		if strings.Contains(expr, "=") {
			return Threshold{}, fmt.Errorf("loadgen: threshold %q: want <metric><op><value> with op one of < <= > >= == != (e.g. p99<10ms)", s)
		}
		return Threshold{}, fmt.Errorf("loadgen: threshold %q: want <metric><op><value>, e.g. p99<10ms or decided>99.9%%", s)
	}
	name, op, val := m[1], m[2], m[3]
	kind, ok := thresholdMetrics[name]
	if !ok {
		return Threshold{}, fmt.Errorf("loadgen: threshold %q: unknown metric %q (want p50, p90, p99, p99.9, max, mean, drain, backlog_clear, gap, decided, dlq or dlq_unexpected)", s, name)
	}
	if name == "p999" {
		name = "p99.9"
	}
	t := Threshold{Expr: expr, Metric: name, Op: op}
	bad := func(want string) (Threshold, error) {
		return Threshold{}, fmt.Errorf("loadgen: threshold %q: %s takes %s, not %q", s, name, want, val)
	}
	switch kind {
	case kindTime:
		d, err := time.ParseDuration(val)
		if err != nil || d < 0 {
			return bad("a duration such as 10ms or 2s")
		}
		t.Value, t.Unit = ms(d), "ms"
	case kindShare, kindCount, kindExact:
		num, unit := val, ""
		switch {
		case strings.HasSuffix(val, "%") && kind != kindExact:
			num, unit = strings.TrimSuffix(val, "%"), "%"
		case strings.HasSuffix(val, "/s") && kind == kindShare:
			num, unit = strings.TrimSuffix(val, "/s"), "/s"
		}
		want := map[int]string{kindShare: "a share (99.9%), a rate (800/s) or a count", kindCount: "a count or a share (0.1%)",
			kindExact: "a count"}[kind]
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || unit == "%" && f > 100 {
			return bad(want)
		}
		if unit == "" && f != math.Trunc(f) {
			return bad(want)
		}
		t.Value, t.Unit = f, unit
	}
	return t, nil
}

// measure returns the threshold's figure from the report, in t.Unit, and
// whether the run measured it (an unbounded figure is +Inf with ok true).
func (t Threshold) measure(r *Report) (v float64, ok bool, why string) {
	l := r.Latency
	latency := func(x float64) (float64, bool, string) {
		if l.Count == 0 {
			return 0, false, "no decisions measured"
		}
		return x, true, ""
	}
	switch t.Metric {
	case "p50":
		return latency(l.P50Ms)
	case "p90":
		return latency(l.P90Ms)
	case "p99":
		return latency(l.P99Ms)
	case "p99.9":
		return latency(l.P999Ms)
	case "max":
		return latency(l.MaxMs)
	case "mean":
		return latency(l.MeanMs)
	case "drain":
		if !r.Drained {
			return math.Inf(1), true, "never drained"
		}
		return r.DrainSec * 1000, true, ""
	case "backlog_clear":
		if len(r.Series) == 0 {
			return 0, false, "no samples"
		}
		if r.BacklogClearSec < 0 {
			return math.Inf(1), true, "backlog never cleared"
		}
		return r.BacklogClearSec * 1000, true, ""
	case "gap":
		if len(r.Faults) == 0 {
			return 0, false, "no faults in the run"
		}
		worst := -1.0
		for _, f := range r.Faults {
			worst = max(worst, f.GapMs)
		}
		if worst < 0 {
			return math.Inf(1), true, "no decision after any fault"
		}
		return worst, true, ""
	case "decided":
		switch t.Unit {
		case "%":
			if r.Requests == 0 {
				return 0, false, "no requests sent"
			}
			return 100 * float64(r.Decided) / float64(r.Requests), true, ""
		case "/s":
			if r.SendSec <= 0 {
				return 0, false, "nothing sent"
			}
			return float64(r.Decided) / r.SendSec, true, ""
		}
		return float64(r.Decided), true, ""
	case "dlq":
		if t.Unit == "%" {
			if r.Publish.Sent == 0 {
				return 0, false, "nothing sent"
			}
			return 100 * float64(r.DeadLetters) / float64(r.Publish.Sent), true, ""
		}
		return float64(r.DeadLetters), true, ""
	case "dlq_unexpected":
		for _, c := range r.Audit {
			if c.Name == "valid_not_dead_lettered" {
				return float64(c.Failed), true, ""
			}
		}
		return 0, false, "the audit did not count dead letters"
	}
	return 0, false, "unknown metric"
}

func (t Threshold) holds(v float64) bool {
	switch t.Op {
	case "<":
		return v < t.Value
	case "<=":
		return v <= t.Value
	case ">":
		return v > t.Value
	case ">=":
		return v >= t.Value
	case "==":
		return v == t.Value
	case "!=":
		return v != t.Value
	}
	return false
}

// Evaluate measures the threshold on a finished run's report.
func (t Threshold) Evaluate(r *Report) ThresholdResult {
	res := ThresholdResult{Threshold: t}
	v, ok, why := t.measure(r)
	switch {
	case !ok:
		res.MeasuredText = "not measured: " + why
	case math.IsInf(v, 0):
		res.MeasuredText = why
		res.Passed = t.holds(v)
	default:
		res.Measured = &v
		res.MeasuredText = fmtMeasure(v, t.Unit)
		res.Passed = t.holds(v)
	}
	return res
}

// ApplyThresholds evaluates ts on the report and records the results in
// Thresholds and ThresholdsPassed (true when none is broken, so also
// when there are none).
func (r *Report) ApplyThresholds(ts []Threshold) {
	r.Thresholds = nil
	r.ThresholdsPassed = true
	for _, t := range ts {
		res := t.Evaluate(r)
		r.Thresholds = append(r.Thresholds, res)
		if !res.Passed {
			r.ThresholdsPassed = false
		}
	}
}

// BrokenThresholds returns the thresholds the run broke.
func (r *Report) BrokenThresholds() []ThresholdResult {
	var out []ThresholdResult
	for _, t := range r.Thresholds {
		if !t.Passed {
			out = append(out, t)
		}
	}
	return out
}

func fmtMeasure(v float64, unit string) string {
	switch unit {
	case "ms":
		if v >= 1000 {
			return strconv.FormatFloat(v/1000, 'f', 2, 64) + "s"
		}
		return strconv.FormatFloat(v, 'f', 2, 64) + "ms"
	case "%":
		return strconv.FormatFloat(v, 'f', 3, 64) + "%"
	case "/s":
		return strconv.FormatFloat(v, 'f', 1, 64) + "/s"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
