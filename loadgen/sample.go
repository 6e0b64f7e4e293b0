package loadgen

import (
	"context"
	"fmt"
	"time"

	"github.com/flashreturn/flashreturn/loadgen/audit"
)

// sampler state between two ticks.
type sampleState struct {
	t                     time.Duration
	sent, acked, failed   int64
	decided, outputs, dlq int64
	stepIdx               int
	stepT                 time.Duration
	stepSent, stepDecided int64
	stepBacklog           int64
	stepBacklogInbound    bool
}

// backlog is what a step watches: the inbound consumers' pending count
// when the target exposes it, else the requests still without a decision.
func (r *runner) backlog(c audit.Counts) (int64, bool) {
	if in := r.inbound.Load(); in >= 0 {
		return in, true
	}
	return c.SentReqs - c.Decided - c.FailedReqs, false
}

// sample records one Sample per second, prints progress and, for a step
// run, judges each finished step. It returns when done is closed.
func (r *runner) sample(ctx context.Context, done <-chan struct{}) {
	// One sample a second: fine enough to see a fault's outage and a
	// Double11 ramp in the charts, coarse enough that a long run's series
	// stays small in the JSON report.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var prev sampleState
	prev.stepBacklog = -1
	for {
		select {
		case <-tick.C:
		case <-done:
			return
		case <-ctx.Done():
			return
		}
		now := time.Since(r.base)
		c := r.tr.Snapshot()
		// Per-second percentiles come from a window reset at each tick,
		// so a spike shows in the second it happened instead of being
		// averaged into the whole run's histogram.
		p50, p99, mx, nlat := r.tr.Window()
		cur := sampleState{t: now, sent: r.pub.sent.Load(), acked: r.pub.acked.Load(), failed: r.pub.failed.Load(),
			decided: c.Decided, outputs: c.OutTotal, dlq: c.DLQTotal}
		dt := (now - prev.t).Seconds()
		rate := func(a, b int64) float64 { return float64(a-b) / dt }
		offered := r.cfg.Rate
		if r.cfg.Mode == ModeScenario {
			offered = r.cfg.Shape.Rate(now)
		}
		// After the last send nothing is offered: the drain's samples
		// must not read as a sender falling behind.
		if r.sendEnd.Load() != 0 {
			offered = 0
		}
		s := Sample{T: now.Seconds(), Offered: offered, Sent: rate(cur.sent, prev.sent), Acked: rate(cur.acked, prev.acked),
			Decided: rate(cur.decided, prev.decided), Outputs: rate(cur.outputs, prev.outputs), DLQ: rate(cur.dlq, prev.dlq),
			P50Ms: ms(p50), P99Ms: ms(p99), MaxMs: ms(mx), Latency: nlat, Pending: c.SentReqs - c.Decided - c.FailedReqs,
			// Pending excludes failed requests: they will never be decided,
			// and counting them would show a backlog the target does not have.
			Inbound: r.inbound.Load(), Failures: cur.failed}
		r.seriesMu.Lock()
		r.series = append(r.series, s)
		r.seriesMu.Unlock()
		if r.cfg.Progress != nil {
			in := "n/a"
			if s.Inbound >= 0 {
				in = fmt.Sprint(s.Inbound)
			}
			fmt.Fprintf(r.cfg.Progress, "[%5.0fs] sent %7.0f/s  decided %6.0f/s  outputs %7.0f/s  backlog %d req, %s inbound  p99 %.2fms (so far %.2fms)  dlq %d  failed %d\n",
				now.Seconds(), s.Sent, s.Decided, s.Outputs, s.Pending, in, s.P99Ms, ms(r.tr.P99SoFar()), c.DLQTotal, cur.failed)
		}
		cur.stepIdx, cur.stepT, cur.stepSent, cur.stepDecided, cur.stepBacklog, cur.stepBacklogInbound =
			prev.stepIdx, prev.stepT, prev.stepSent, prev.stepDecided, prev.stepBacklog, prev.stepBacklogInbound
		if st, ok := r.cfg.Shape.(Step); ok && r.cfg.Mode == ModeScenario && r.sendEnd.Load() == 0 {
			r.judgeStep(st, now, c, &cur)
		}
		prev = cur
	}
}

// judgeStep closes a step once its time is up: it was sustained if the
// sender kept to the schedule, the backlog did not grow and the p99 of the
// decisions that arrived during it stayed under the target.
func (r *runner) judgeStep(st Step, now time.Duration, c audit.Counts, cur *sampleState) {
	bl, inbound := r.backlog(c)
	if cur.stepBacklog < 0 {
		cur.stepBacklog, cur.stepBacklogInbound = bl, inbound
	}
	k := int(now / st.StepDuration)
	if k == cur.stepIdx {
		return
	}
	dt := (now - cur.stepT).Seconds()
	p99, n := r.tr.StepWindow()
	rate := st.Rate(cur.stepT)
	res := StepResult{Step: cur.stepIdx + 1, Rate: rate, SentPerSec: float64(cur.sent-cur.stepSent) / dt,
		DecidedPerSec: float64(c.Decided-cur.stepDecided) / dt, P99Ms: ms(p99), Decisions: n, BacklogStart: cur.stepBacklog,
		BacklogEnd: bl, Sustained: true}
	// Backlog growth, not p99 alone, decides a step: an open-loop
	// target that falls behind shows it first as a queue that keeps
	// growing, while the p99 of the decisions that do arrive can still
	// look good for a while. Some growth is allowed because a sample
	// taken mid-burst is noise, not overload.
	allowed := max(int64(rate/4), 50) // a quarter second of traffic
	if !inbound {
		// Without inbound consumer figures the backlog is counted in
		// undecided requests, a few percent of events, so the allowance
		// is scaled down by the same share.
		allowed = max(int64(rate*r.cfg.World.ReturnFraction/12), 10)
	}
	switch {
	// Checked first: if loadgen could not send the step's rate,
	// the step measured loadgen, and the target is not blamed.
	case res.SentPerSec < 0.9*rate:
		res.Sustained, res.Why = false, fmt.Sprintf("sender reached only %.0f/s: loadgen or the publish path is the limit", res.SentPerSec)
	case bl-cur.stepBacklog > allowed:
		res.Sustained, res.Why = false, fmt.Sprintf("backlog grew by %d (> %d)", bl-cur.stepBacklog, allowed)
	case n > 0 && p99 > r.cfg.P99Target:
		res.Sustained, res.Why = false, fmt.Sprintf("p99 %.2fms > target %.2fms", ms(p99), ms(r.cfg.P99Target))
	}
	r.seriesMu.Lock()
	r.steps = append(r.steps, res)
	if res.Sustained {
		r.maxRate = rate
	}
	r.seriesMu.Unlock()
	if !res.Sustained {
		// The first unsustained step ends the ramp: the report's
		// maximum is the last sustained rate, and pushing past it only
		// builds a backlog that lengthens the drain.
		r.stop.Store(true)
	}
	cur.stepIdx, cur.stepT, cur.stepSent, cur.stepDecided, cur.stepBacklog, cur.stepBacklogInbound = k, now, cur.sent, c.Decided, bl, inbound
}

// report assembles the Report once the run has drained.
func (r *runner) report(sendEnd, drainEnd time.Duration, completedAt time.Time, drained bool) *Report {
	cfg := r.cfg
	t := r.tr
	rep := &Report{
		Params: Params{NATSURL: cfg.NATSURL, Mode: cfg.Mode, Seed: cfg.World.Seed, RunID: cfg.World.RunID,
			Shoppers: cfg.World.Shoppers, Merchants: cfg.World.Merchants, ReturnFraction: cfg.World.ReturnFraction,
			BadFraction: r.gen.Options().BadFraction, P99TargetMs: ms(cfg.P99Target), MaxInFlight: cfg.MaxInFlight, Policy: cfg.Policy},
		StartedAt:  r.base,
		ElapsedSec: drainEnd.Seconds(),
		SendSec:    sendEnd.Seconds(),
		Publish:    r.pub.stats(),
		Drained:    drained,
		DrainSec:   (drainEnd - sendEnd).Seconds(),
	}
	if cfg.Mode == ModeScenario {
		rep.Params.Shape = cfg.Shape.Name()
		rep.Params.ShapeParams = shapeParams(cfg.Shape)
	} else {
		rep.Params.Events, rep.Params.Rate = cfg.Events, cfg.Rate
	}
	rep.Params.Expect = cfg.Expect
	r.seriesMu.Lock()
	rep.Series, rep.Steps, rep.MaxSustainableRate = r.series, r.steps, r.maxRate
	r.seriesMu.Unlock()
	rep.setBacklog()

	tot := t.Totals()
	rep.Requests, rep.Decided = tot.Requests, tot.Decided
	rep.Decisions, rep.Reasons, rep.Policies, rep.Outputs = tot.Decisions, tot.Reasons, tot.Policies, tot.Outputs
	rep.OutputsTotal, rep.DeadLetters, rep.MalformedSent = tot.OutputsTotal, tot.DeadLetters, tot.MalformedSent
	rep.Latency = latencyOf(tot.Latency)
	if r.visible != nil && r.visible.TotalCount() > 0 {
		v := latencyOf(r.visible)
		v.MeasuredFrom = "FR_OUT's stored timestamp"
		rep.Visible = &v
	}
	if cfg.Mode == ModeThroughput && cfg.Rate == 0 {
		rep.Latency.MeasuredFrom = "actual send time (unlimited rate: no schedule)"
	}
	if cfg.Expect == ExpectOutputs {
		rep.Latency.MeasuredFrom += ", to the relay's echo of the request"
	}
	if cfg.Mode == ModeThroughput {
		tp := &Throughput{Events: len(r.pre), Requests: rep.Requests, Expect: cfg.Expect, SendSec: sendEnd.Seconds(), Completed: drained}
		if tp.SendSec > 0 {
			tp.SendRate = float64(rep.Publish.Sent) / tp.SendSec
		}
		if drained && !completedAt.IsZero() {
			tp.ProcessSec = max(completedAt.Sub(r.base), sendEnd).Seconds()
			tp.ProcessedPerSec = float64(rep.Publish.Acked) / tp.ProcessSec
		}
		rep.Throughput = tp
	}
	rep.Lifecycle = audit.LifecycleOf(r.gen, t)
	rep.Audit = audit.Run(audit.Input{Gen: r.gen, Tracker: t, FailedPubs: rep.Publish.Failed, Policy: cfg.Policy,
		ExpectDecisions: cfg.Expect != ExpectOutputs})
	if !drained {
		c := t.Snapshot()
		rep.Audit = append(rep.Audit, audit.Check{Name: "drained", Rule: fmt.Sprintf("every expected output arrives within %v after the last send", cfg.DrainTimeout),
			Checked: 1, Failed: 1, Examples: []string{fmt.Sprintf("requests %d decided %d, malformed %d dead-lettered %d, inbound backlog %d",
				c.SentReqs-c.FailedReqs, c.Decided, c.BadSent-c.FailedBads, c.BadSeen, r.inbound.Load())}})
	}
	rep.Passed = len(rep.Failed()) == 0
	return rep
}

// shapeParams is the shape's parameters as the report's JSON has them,
// in seconds and events/s, so that a report says what was offered
// without knowing Go's shape types.
func shapeParams(s Shape) map[string]float64 {
	switch v := s.(type) {
	case Steady:
		return map[string]float64{"rate": v.EventsPerSec, "duration_sec": v.Duration.Seconds()}
	case Double11:
		return map[string]float64{"base": v.Base, "peak": v.Peak, "duration_sec": v.Duration.Seconds(), "ramp_sec": v.Ramp.Seconds(),
			"hold_sec": v.Hold.Seconds(), "decay_sec": v.Decay.Seconds()}
	case Step:
		return map[string]float64{"start": v.Start, "increment": v.Increment, "step_sec": v.StepDuration.Seconds(), "max_steps": float64(v.MaxSteps)}
	}
	return nil
}
