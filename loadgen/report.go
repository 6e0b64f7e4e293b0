package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/flashreturn/flashreturn/loadgen/audit"
	"github.com/flashreturn/flashreturn/loadgen/faults"
)

// Report is what a run measured and what its audit found. It is plain data:
// encode it as JSON (its field tags are the --json format) or render it
// with [Report.WriteText] and [Report.WriteHTML].
type Report struct {
	Params Params `json:"params"`
	// StartedAt is the wall-clock time of the first scheduled send.
	StartedAt time.Time `json:"started_at"`
	// ElapsedSec runs from the first send to the end of the drain.
	ElapsedSec float64 `json:"elapsed_sec"`
	// SendSec is how long sending took.
	SendSec float64      `json:"send_sec"`
	Publish PublishStats `json:"publish"`
	// Requests is the number of return.requested sent; Decided how many of
	// them got a decision.
	Requests int64 `json:"requests"`
	Decided  int64 `json:"decided"`
	// Decisions counts decisions by outcome, Reasons by reason code.
	Decisions map[string]int64 `json:"decisions"`
	Reasons   map[string]int64 `json:"reasons"`
	// Policies counts decisions by the policy name they carry.
	Policies map[string]int64 `json:"policies"`
	// Outputs counts FR_OUT messages by kind (decision, refund, ...).
	Outputs      map[string]int64 `json:"outputs"`
	OutputsTotal int64            `json:"outputs_total"`
	// DeadLetters counts FR_DLQ messages; MalformedSent the malformed
	// events sent.
	DeadLetters   int64 `json:"dead_letters"`
	MalformedSent int64 `json:"malformed_sent"`
	// Lifecycle counts review answers, deadlines, resolutions and dead
	// letters by reason.
	Lifecycle audit.Lifecycle `json:"lifecycle"`
	// Latency is request (scheduled send) to decision (arrival); against
	// the relay (Params.Expect "outputs"), to the request's echo.
	Latency Latency `json:"latency"`
	// Visible is, per decision, FR_OUT's stored timestamp to loadgen's
	// consumer receiving it: the "ack → visible to a consumer" stage of
	// the answer, which the target cannot time itself. It assumes the
	// server's clock is loadgen's (one host); nil when outputs were only
	// counted.
	Visible *Latency `json:"visible,omitempty"`
	// Series has one sample per second of the run.
	Series []Sample `json:"series"`
	// Steps and MaxSustainableRate are set by a step run.
	Steps              []StepResult `json:"steps,omitempty"`
	MaxSustainableRate float64      `json:"max_sustainable_rate,omitempty"`
	// Throughput is set by a throughput run.
	Throughput *Throughput `json:"throughput,omitempty"`
	// BacklogMax is the largest backlog sampled (inbound pending when the
	// target exposes it, else requests without a decision) and
	// BacklogMaxAtSec when; BacklogClearSec is how long after that the
	// backlog first fell under 100 ms of offered traffic (at least 10
	// events), -1 if it never did. One-second resolution.
	BacklogMax      int64   `json:"backlog_max"`
	BacklogMaxAtSec float64 `json:"backlog_max_at_sec"`
	BacklogClearSec float64 `json:"backlog_clear_sec"`
	// Drained says every expected output arrived before the drain
	// deadline; DrainSec is how long after the last send that took.
	Drained  bool    `json:"drained"`
	DrainSec float64 `json:"drain_sec"`
	// Audit lists every check; Passed is true when none failed.
	Audit  []audit.Check `json:"audit"`
	Passed bool          `json:"passed"`
	// Processes are the processes the run spawned (Config.Spawn,
	// Config.SpawnNATS), each life of each.
	Processes []faults.Process `json:"processes,omitempty"`
	// Faults are the faults of the schedule as carried out, with the
	// decision gap each caused.
	Faults []faults.FaultResult `json:"faults,omitempty"`
	// Thresholds are the thresholds of the run with what was measured;
	// ThresholdsPassed is true when none is broken (so also without any).
	Thresholds       []ThresholdResult `json:"thresholds,omitempty"`
	ThresholdsPassed bool              `json:"thresholds_passed"`
}

// Params are a run's parameters, as reported.
type Params struct {
	// The fields mirror Config and WorldOptions after defaults.
	NATSURL        string             `json:"nats_url"`
	Mode           string             `json:"mode"`
	Shape          string             `json:"shape,omitempty"`
	ShapeParams    map[string]float64 `json:"shape_params,omitempty"`
	Seed           uint64             `json:"seed"`
	RunID          string             `json:"run_id"`
	Shoppers       int                `json:"shoppers"`
	Merchants      int                `json:"merchants"`
	ReturnFraction float64            `json:"return_fraction"`
	BadFraction    float64            `json:"bad_fraction"`
	Events         int                `json:"events,omitempty"`
	Rate           float64            `json:"rate,omitempty"`
	Expect         string             `json:"expect,omitempty"`
	P99TargetMs    float64            `json:"p99_target_ms"`
	MaxInFlight    int                `json:"max_in_flight"`
	Policy         string             `json:"policy,omitempty"`
	// Partitions maps decisions to partitions for the decision gaps;
	// RetryForSec bounds the re-sends of a failed publish.
	Partitions  int     `json:"partitions"`
	RetryForSec float64 `json:"retry_for_sec"`
	// Spawn, SpawnNATS, FaultCmd and Faults are the fault options as
	// given (Faults in schedule syntax).
	Spawn     string `json:"spawn,omitempty"`
	SpawnNATS string `json:"spawn_nats,omitempty"`
	FaultCmd  string `json:"fault_cmd,omitempty"`
	Faults    string `json:"faults,omitempty"`
}

// PublishStats counts what happened to the publishes.
type PublishStats struct {
	// Sent is the number of events handed to the server; Acked how many
	// of them it acknowledged (each event once); Duplicates the acks that
	// said "duplicate": a re-send after a lost ack whose first copy had
	// been stored, still one event.
	Sent       int64 `json:"sent"`
	Acked      int64 `json:"acked"`
	Duplicates int64 `json:"duplicates"`
	// Stalls counts ErrTooManyStalledMsgs (in-flight bound reached for
	// StallWait); Errors other publish errors (refused, unreachable, ack
	// lost or timed out); Retries re-sends (same Nats-Msg-Id); Failed the
	// events given up on (after Config.RetryFor); Recoveries the times
	// the sender stopped to re-send failed publishes in order before
	// sending on.
	Stalls     int64 `json:"stalls"`
	Errors     int64 `json:"errors"`
	Retries    int64 `json:"retries"`
	Failed     int64 `json:"failed"`
	Recoveries int64 `json:"recoveries"`
	// MaxLagMs is the largest delay of a send behind its schedule: when it
	// is large the generator, not the target, was the bottleneck.
	MaxLagMs float64 `json:"max_lag_ms"`
	// LateSends counts sends more than 1 ms behind schedule.
	LateSends int64 `json:"late_sends"`
}

// Latency summarises request-to-decision times in milliseconds. Each is
// measured from the request's scheduled send time, so a stalled target
// is charged for the time its backlog made requests wait (coordinated
// omission corrected), except in a throughput run at unlimited rate,
// which measures from the actual send.
type Latency struct {
	Count        int64        `json:"count"`
	MeanMs       float64      `json:"mean_ms"`
	P50Ms        float64      `json:"p50_ms"`
	P90Ms        float64      `json:"p90_ms"`
	P99Ms        float64      `json:"p99_ms"`
	P999Ms       float64      `json:"p999_ms"`
	MaxMs        float64      `json:"max_ms"`
	Distribution []Percentile `json:"distribution"`
	MeasuredFrom string       `json:"measured_from"`
}

// Percentile is one point of the latency distribution.
type Percentile struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

// Sample is one second of a run. Rates are per second over that second.
type Sample struct {
	// T is the end of the second, in seconds since the first send.
	T float64 `json:"t"`
	// Offered is the shape's rate; Sent, Acked, Decided (requests), Outputs
	// and DLQ are per-second rates.
	Offered float64 `json:"offered"`
	Sent    float64 `json:"sent"`
	Acked   float64 `json:"acked"`
	Decided float64 `json:"decided"`
	Outputs float64 `json:"outputs"`
	DLQ     float64 `json:"dlq"`
	// P50Ms, P99Ms and MaxMs are over the Latency decisions that arrived
	// during the second.
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
	Latency int64   `json:"latency_samples"`
	// Pending is requests sent without a decision yet; Inbound the
	// target's inbound consumers' pending messages (-1: not visible).
	Pending int64 `json:"pending_requests"`
	Inbound int64 `json:"inbound_backlog"`
	// Failures is the running count of events given up on.
	Failures int64 `json:"publish_failures"`
}

// StepResult is one step of a step run.
type StepResult struct {
	// Step counts from 1; Rate is the offered rate; the per-second rates,
	// p99 and backlog (inbound pending, or requests without a decision)
	// are what the step showed; Sustained and Why are its verdict.
	Step          int     `json:"step"`
	Rate          float64 `json:"rate"`
	SentPerSec    float64 `json:"sent_per_sec"`
	DecidedPerSec float64 `json:"decided_per_sec"`
	P99Ms         float64 `json:"p99_ms"`
	Decisions     int64   `json:"decisions"`
	BacklogStart  int64   `json:"backlog_start"`
	BacklogEnd    int64   `json:"backlog_end"`
	Sustained     bool    `json:"sustained"`
	Why           string  `json:"why,omitempty"`
}

// Throughput is the result of a throughput run.
type Throughput struct {
	// Events were sent, Requests of them return.requested; Expect says what
	// completed the run; SendSec and SendRate describe the sending.
	Events   int     `json:"events"`
	Requests int64   `json:"requests"`
	Expect   string  `json:"expect"`
	SendSec  float64 `json:"send_sec"`
	SendRate float64 `json:"send_per_sec"`
	// ProcessSec runs from the first send to the last output that
	// completed the run; ProcessedPerSec = acknowledged events /
	// ProcessSec is the sustained processing rate.
	ProcessSec      float64 `json:"process_sec"`
	ProcessedPerSec float64 `json:"processed_per_sec"`
	Completed       bool    `json:"completed"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func usToMs(us int64) float64 { return float64(us) / 1000 }

func latencyOf(h *hdrhistogram.Histogram) Latency {
	l := Latency{Count: h.TotalCount(), MeanMs: h.Mean() / 1000, P50Ms: usToMs(h.ValueAtQuantile(50)),
		P90Ms: usToMs(h.ValueAtQuantile(90)), P99Ms: usToMs(h.ValueAtQuantile(99)), P999Ms: usToMs(h.ValueAtQuantile(99.9)),
		MaxMs: usToMs(h.Max()), MeasuredFrom: "scheduled send time"}
	if h.TotalCount() == 0 {
		return l
	}
	for _, q := range []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100} {
		l.Distribution = append(l.Distribution, Percentile{Percentile: q, Ms: usToMs(h.ValueAtQuantile(q))})
	}
	return l
}

// Failed returns the checks that failed.
func (r *Report) Failed() []audit.Check {
	var out []audit.Check
	for _, c := range r.Audit {
		if !c.OK() {
			out = append(out, c)
		}
	}
	return out
}

// WriteText writes the human summary.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	p := r.Params
	fmt.Fprintf(&b, "flashreturn loadgen: %s", p.Mode)
	if p.Mode == ModeScenario {
		fmt.Fprintf(&b, " %s %v", p.Shape, fmtParams(p.ShapeParams))
	}
	fmt.Fprintf(&b, " against %s (seed %d, run %s)\n", p.NATSURL, p.Seed, p.RunID)
	fmt.Fprintf(&b, "  elapsed %.1fs (sending %.1fs, drain %.2fs, drained=%v)\n", r.ElapsedSec, r.SendSec, r.DrainSec, r.Drained)
	ps := r.Publish
	fmt.Fprintf(&b, "  events sent %d, acked %d (dup %d), stalls %d, errors %d, retries %d (%d in-order recoveries), failed %d, max send lag %.1fms (%d late)\n",
		ps.Sent, ps.Acked, ps.Duplicates, ps.Stalls, ps.Errors, ps.Retries, ps.Recoveries, ps.Failed, ps.MaxLagMs, ps.LateSends)
	if r.SendSec > 0 {
		fmt.Fprintf(&b, "  send rate %.0f events/s\n", float64(ps.Sent)/r.SendSec)
	}
	fmt.Fprintf(&b, "  backlog max %d at %.0fs, cleared %.0fs later\n", r.BacklogMax, r.BacklogMaxAtSec, r.BacklogClearSec)
	fmt.Fprintf(&b, "  requests %d, decided %d: %s\n", r.Requests, r.Decided, audit.FormatCounts(r.Decisions))
	if len(r.Reasons) > 0 {
		fmt.Fprintf(&b, "  reasons: %s\n", audit.FormatCounts(r.Reasons))
	}
	fmt.Fprintf(&b, "  outputs %d: %s; dead letters %d (malformed sent %d); policy %s\n", r.OutputsTotal, audit.FormatCounts(r.Outputs),
		r.DeadLetters, r.MalformedSent, audit.FormatCounts(r.Policies))
	r.Lifecycle.WriteText(&b)
	l := r.Latency
	fmt.Fprintf(&b, "  request->decision latency (from %s, n=%d): p50 %.2fms p90 %.2fms p99 %.2fms p99.9 %.2fms max %.2fms\n",
		l.MeasuredFrom, l.Count, l.P50Ms, l.P90Ms, l.P99Ms, l.P999Ms, l.MaxMs)
	if v := r.Visible; v != nil && v.Count > 0 {
		fmt.Fprintf(&b, "  stored in FR_OUT->seen by loadgen (decisions, n=%d): p50 %.2fms p99 %.2fms max %.2fms\n", v.Count, v.P50Ms, v.P99Ms, v.MaxMs)
	}
	if t := r.Throughput; t != nil {
		fmt.Fprintf(&b, "  throughput: %d events (%d requests) sent in %.1fs (%.0f/s); processed (%s) in %.1fs: %.0f events/s sustained, completed=%v\n",
			t.Events, t.Requests, t.SendSec, t.SendRate, t.Expect, t.ProcessSec, t.ProcessedPerSec, t.Completed)
	}
	if len(r.Steps) > 0 {
		fmt.Fprintf(&b, "  steps (p99 target %.1fms):\n", p.P99TargetMs)
		for _, s := range r.Steps {
			fmt.Fprintf(&b, "    %2d rate %8.0f sent %8.0f/s decided %7.0f/s p99 %8.2fms backlog %d->%d %s %s\n", s.Step, s.Rate, s.SentPerSec,
				s.DecidedPerSec, s.P99Ms, s.BacklogStart, s.BacklogEnd, map[bool]string{true: "ok", false: "NOT SUSTAINED"}[s.Sustained], s.Why)
		}
		fmt.Fprintf(&b, "  max sustainable rate: %.0f events/s\n", r.MaxSustainableRate)
	}
	r.writeFaultsText(&b)
	b.WriteString("  audit:\n")
	for _, c := range r.Audit {
		status := "ok  "
		switch {
		case c.Skipped != "":
			status = "skip"
		case !c.OK():
			status = "FAIL"
		}
		fmt.Fprintf(&b, "    %s %-28s checked %d failed %d", status, c.Name, c.Checked, c.Failed)
		if c.Skipped != "" {
			fmt.Fprintf(&b, " (%s)", c.Skipped)
		}
		b.WriteString("\n")
		for _, e := range c.Examples {
			fmt.Fprintf(&b, "         e.g. %s\n", e)
		}
	}
	if len(r.Thresholds) > 0 {
		b.WriteString("  thresholds:\n")
		for _, t := range r.Thresholds {
			fmt.Fprintf(&b, "    %s %-24s measured %s\n", map[bool]string{true: "ok  ", false: "FAIL"}[t.Passed], t.Expr, t.MeasuredText)
		}
	}
	broken := len(r.BrokenThresholds())
	switch {
	case r.Passed && broken == 0:
		b.WriteString("  PASS\n")
	case r.Passed:
		fmt.Fprintf(&b, "  FAIL: audit passed, %d of %d thresholds broken\n", broken, len(r.Thresholds))
	case broken > 0:
		fmt.Fprintf(&b, "  FAIL: %d audit checks failed, %d of %d thresholds broken\n", len(r.Failed()), broken, len(r.Thresholds))
	default:
		fmt.Fprintf(&b, "  FAIL: %d audit checks failed\n", len(r.Failed()))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeFaultsText writes the spawned processes and the faults with their
// decision gaps.
func (r *Report) writeFaultsText(b *strings.Builder) {
	for _, p := range r.Processes {
		fmt.Fprintf(b, "  spawned %s: %s\n    log %s; ready: %s\n", p.Name, p.Command, p.Log, p.Ready)
		for _, run := range p.Runs {
			end := "running"
			if run.Exit != "" {
				end = fmt.Sprintf("%+.2fs %s", run.EndSec, run.Exit)
			}
			if p.Kept && run.Exit == "" {
				end = "left running (kept)"
			}
			fmt.Fprintf(b, "    pid %d from %+.2fs to %s\n", run.PID, run.StartSec, end)
		}
	}
	if len(r.Faults) == 0 {
		return
	}
	fmt.Fprintf(b, "  faults (%s), decision gaps over %d partitions:\n", r.Params.Faults, r.Params.Partitions)
	for _, f := range r.Faults {
		b.WriteString("    " + faultSummary(f) + "\n")
	}
}

// faultSummary is the fault in one line: when, what, and the gap it
// caused.
func faultSummary(f faults.FaultResult) string {
	var b strings.Builder
	if f.AtSec < 0 {
		fmt.Fprintf(&b, "planned %+.2fs %s %s: %s", f.PlannedSec, f.Target, f.Action, f.Error)
		return b.String()
	}
	fmt.Fprintf(&b, "%+.2fs %s %s", f.AtSec, f.Target, f.Action)
	if f.PID != 0 {
		fmt.Fprintf(&b, " (pid %d)", f.PID)
	}
	if f.By == "fault-cmd" {
		b.WriteString(" by the fault command")
	}
	if f.Error != "" {
		fmt.Fprintf(&b, " FAILED: %s", f.Error)
	}
	if f.ReadySec != nil {
		if *f.ReadySec >= 0 {
			fmt.Fprintf(&b, ", ready after %.2fs", *f.ReadySec)
		} else {
			b.WriteString(", never ready")
		}
	}
	if f.GapMs >= 0 {
		fmt.Fprintf(&b, ": decision gap %s; per partition max %s, p50 %s, %d/%d partitions decided by %+.2fs", fmtMeasure(f.GapMs, "ms"),
			fmtMeasure(f.PartitionGapMaxMs, "ms"), fmtMeasure(f.PartitionGapP50Ms, "ms"), f.Resumed, f.Partitions, f.WindowEndSec)
	} else {
		fmt.Fprintf(&b, ": no decision by %+.2fs", f.WindowEndSec)
	}
	return b.String()
}

func fmtParams(m map[string]float64) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%g", k, m[k])
	}
	return "(" + strings.Join(parts, " ") + ")"
}

// backlogOf is a sample's backlog: inbound pending when visible, else
// requests without a decision.
func backlogOf(s Sample) int64 {
	if s.Inbound >= 0 {
		return s.Inbound
	}
	return s.Pending
}

// setBacklog fills BacklogMax, BacklogMaxAtSec and BacklogClearSec from
// the series.
func (r *Report) setBacklog() {
	r.BacklogClearSec = -1
	imax := -1
	for i, s := range r.Series {
		if b := backlogOf(s); imax < 0 || b > r.BacklogMax {
			imax, r.BacklogMax, r.BacklogMaxAtSec = i, b, s.T
		}
	}
	if imax < 0 {
		return
	}
	for _, s := range r.Series[imax:] {
		if float64(backlogOf(s)) <= max(s.Offered/10, 10) {
			r.BacklogClearSec = s.T - r.BacklogMaxAtSec
			return
		}
	}
}
