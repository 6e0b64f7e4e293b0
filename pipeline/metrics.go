package pipeline

import (
	"strconv"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/opsmetrics"
	"github.com/flashreturn/flashreturn/pipeline/stages"
)

// latencyBuckets are the upper bounds (seconds) of the latency histograms:
// 50 µs to ~26 s, factor 2, readable by histogram_quantile. An apply is
// tens of µs, a commit ms, a publish ack ms to seconds under a leader
// election: one set of buckets covers all of them with ±50% resolution.
var latencyBuckets = metrics.ExponentialBuckets(50e-6, 2, 20)

// batchBuckets are the upper bounds of the batch size histogram: 1 to
// 4096, factor 2. Batch size is the load signal (1 when idle, BatchMax
// when the partition is behind), so powers of two suffice.
var batchBuckets = metrics.ExponentialBuckets(1, 2, 13)

// pipelineMetrics holds every metric of the pipeline, registered once at
// start-up on the daemon's own set. Label values are bounded: event types,
// verdicts, reason codes, effect kinds, DLQ reasons, partitions.
type pipelineMetrics struct {
	set *metrics.Set

	eventsIn    [core.EventClock + 1]*metrics.Counter
	redelivered *metrics.Counter
	dlq         map[string]*metrics.Counter
	effectsOut  [core.EffectResolution + 1]*metrics.Counter
	// resolutions counts resolutions by outcome and by (approved, rejected
	// and closed; merchant, platform, timeout).
	resolutions   [core.ResolutionClosed + 1][core.ActorTimeout + 1]*metrics.Counter
	reasons       [core.NumCodes]*metrics.Counter
	refundFen     *metrics.Counter
	advanceFen    *metrics.Counter
	clawbackFen   *metrics.Counter
	compensFen    *metrics.Counter
	applyLatency  *metrics.PrometheusHistogram
	batchSize     *metrics.PrometheusHistogram
	roundParts    *metrics.PrometheusHistogram // partitions committed together per runner round
	commitLat     *metrics.PrometheusHistogram
	publishLat    *metrics.PrometheusHistogram
	lag           *metrics.PrometheusHistogram
	commitErrors  *metrics.Counter
	publishErrs   *metrics.Counter
	consumerReset *metrics.Counter
	setupRetries  *metrics.Counter
	timersFired   *metrics.Counter
	// suppressed counts outputs a replay made again that FR_OUT's last
	// commit marker already covered (not published).
	suppressed *metrics.Counter
	panics     *metrics.Counter
	// stages are the stage histograms (pipeline/stages), on latencyBuckets.
	stages *stages.Histograms
	// decisions maps a policy name to its counters by verdict.
	decisions sync.Map
	// ops are the operator's metrics and the status page's state
	// (metrics_ops.go).
	ops *opsmetrics.Ops
}

// newPipelineMetrics registers every metric on set once, at New: label
// values are bounded and known up front (event types, verdicts, reason
// codes, DLQ reasons), so the hot path only increments counters it holds
// and never builds a metric name.
func newPipelineMetrics(set *metrics.Set) *pipelineMetrics {
	m := &pipelineMetrics{set: set, dlq: make(map[string]*metrics.Counter)}
	for t := core.EventOrderPaid; t <= core.EventClock; t++ {
		m.eventsIn[t] = set.NewCounter(`flashreturn_events_in_total{type="` + t.String() + `"}`)
	}
	for _, r := range wire.Reasons {
		m.dlq[r] = set.NewCounter(`flashreturn_dead_letters_total{reason="` + r + `"}`)
	}
	for k := core.EffectDecision; k <= core.EffectResolution; k++ {
		m.effectsOut[k] = set.NewCounter(`flashreturn_effects_out_total{kind="` + k.String() + `"}`)
	}
	// The pairs that can happen: a person approves or rejects; the review
	// deadline approves, the return deadline closes.
	for _, r := range []struct {
		o core.Resolution
		a core.Actor
	}{
		{core.ResolutionApproved, core.ActorMerchant}, {core.ResolutionApproved, core.ActorPlatform}, {core.ResolutionApproved, core.ActorTimeout},
		{core.ResolutionRejected, core.ActorMerchant}, {core.ResolutionRejected, core.ActorPlatform}, {core.ResolutionClosed, core.ActorTimeout},
	} {
		m.resolutions[r.o][r.a] = set.NewCounter(`flashreturn_resolutions_total{outcome="` + r.o.String() + `",by="` + r.a.String() + `"}`)
	}
	for c := core.Code(0); c < core.NumCodes; c++ {
		m.reasons[c] = set.NewCounter(`flashreturn_decision_reasons_total{reason="` + c.String() + `"}`)
	}
	m.redelivered = set.NewCounter(`flashreturn_events_skipped_total`)
	m.refundFen = set.NewCounter(`flashreturn_refunds_fen_total`)
	m.advanceFen = set.NewCounter(`flashreturn_advanced_fen_total`)
	m.clawbackFen = set.NewCounter(`flashreturn_clawbacks_fen_total`)
	m.compensFen = set.NewCounter(`flashreturn_compensation_fen_total`)
	m.applyLatency = set.NewPrometheusHistogramExt(`flashreturn_apply_duration_seconds`, latencyBuckets)
	m.batchSize = set.NewPrometheusHistogramExt(`flashreturn_batch_size_events`, batchBuckets)
	m.roundParts = set.NewPrometheusHistogramExt(`flashreturn_round_size_partitions`, batchBuckets)
	m.commitLat = set.NewPrometheusHistogramExt(`flashreturn_commit_duration_seconds`, latencyBuckets)
	m.publishLat = set.NewPrometheusHistogramExt(`flashreturn_publish_ack_duration_seconds`, latencyBuckets)
	m.lag = set.NewPrometheusHistogramExt(`flashreturn_event_lag_seconds`, latencyBuckets)
	m.commitErrors = set.NewCounter(`flashreturn_commit_errors_total`)
	m.publishErrs = set.NewCounter(`flashreturn_publish_errors_total`)
	m.consumerReset = set.NewCounter(`flashreturn_consumer_resets_total`)
	m.setupRetries = set.NewCounter(`flashreturn_setup_retries_total`)
	m.timersFired = set.NewCounter(`flashreturn_timers_fired_total`)
	m.suppressed = set.NewCounter(`flashreturn_outputs_suppressed_total`)
	m.panics = set.NewCounter(`flashreturn_poison_events_total`)
	m.stages = stages.New(set, latencyBuckets)
	m.ops = opsmetrics.New(set)
	return m
}

// counts stages the counter increments of a batch: a batch can be applied
// twice (after a core panic, without the poison event) and its outputs are
// published after its commit, so its counts are added once, when its
// outputs are acknowledged (batchOps.published). A nil *counts adds at
// once (work outside a batch).
type counts []countAdd

// countAdd is one staged increment.
type countAdd struct {
	c *metrics.Counter
	n int
}

// add stages n on c (or adds it now, for a nil *counts).
func (cs *counts) add(c *metrics.Counter, n int) {
	if cs == nil {
		c.Add(n)
		return
	}
	*cs = append(*cs, countAdd{c, n})
}

// flush adds the staged increments and empties the log.
func (cs *counts) flush() {
	for _, a := range *cs {
		a.c.Add(a.n)
	}
	cs.reset()
}

// reset drops the staged increments.
func (cs *counts) reset() {
	clear(*cs)
	*cs = (*cs)[:0]
}

// decision counts one decision by verdict and policy, and its reasons.
// Counters per policy are made on first use (a reload brings a new
// policy name) and kept in a sync.Map: workers race to make them, and
// LoadOrStore makes every worker use the one that won.
func (m *pipelineMetrics) decision(cs *counts, e *core.Effect, policy string) {
	byVerdict, ok := m.decisions.Load(policy)
	if !ok {
		var cs [core.VerdictRejected + 1]*metrics.Counter
		for v := core.VerdictApproved; v <= core.VerdictRejected; v++ {
			cs[v] = m.set.GetOrCreateCounter(`flashreturn_decisions_total{decision="` + v.String() + `",policy="` + policy + `"}`)
		}
		byVerdict, _ = m.decisions.LoadOrStore(policy, &cs)
	}
	cs.add(byVerdict.(*[core.VerdictRejected + 1]*metrics.Counter)[e.Verdict], 1)
	for c := core.Code(0); c < core.NumCodes; c++ {
		if e.Reasons.Has(c) {
			cs.add(m.reasons[c], 1)
		}
	}
}

// effect counts one output effect and the money it moves.
func (m *pipelineMetrics) effect(cs *counts, e *core.Effect) {
	cs.add(m.effectsOut[e.Kind], 1)
	switch e.Kind {
	case core.EffectRefund:
		cs.add(m.refundFen, int(e.AmountFen))
		if e.Advance {
			cs.add(m.advanceFen, int(e.AmountFen))
		}
	case core.EffectClawback:
		cs.add(m.clawbackFen, int(e.AmountFen))
	case core.EffectCompensation:
		cs.add(m.compensFen, int(e.AmountFen))
	case core.EffectResolution:
		if c := m.resolutions[e.Resolution][e.By]; c != nil {
			cs.add(c, 1)
		}
	}
}

// deadLetter counts one dead letter by reason. A reason outside the
// contract's list (wire.Reasons) still counts, on a counter made on the
// spot: losing the count would hide exactly the unexpected case.
func (m *pipelineMetrics) deadLetter(cs *counts, reason string) {
	c, ok := m.dlq[reason]
	if !ok {
		c = m.set.GetOrCreateCounter(`flashreturn_dead_letters_total{reason="` + reason + `"}`)
	}
	cs.add(c, 1)
}

// partitionLabel is the label set of a per-partition metric.
func partitionLabel(p int) string { return `{partition="` + strconv.Itoa(p) + `"}` }
