package opsmetrics

import (
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
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

// Pipeline holds every metric of the pipeline, registered once at
// start-up on the daemon's own set. Label values are bounded: event types,
// verdicts, reason codes, effect kinds, DLQ reasons, partitions.
type Pipeline struct {
	Set *metrics.Set

	EventsIn    [core.EventClock + 1]*metrics.Counter
	Redelivered *metrics.Counter
	DLQ         map[string]*metrics.Counter
	EffectsOut  [core.EffectResolution + 1]*metrics.Counter
	// resolutions Counts resolutions by outcome and by (approved, rejected
	// and closed; merchant, platform, timeout).
	Resolutions   [core.ResolutionClosed + 1][core.ActorTimeout + 1]*metrics.Counter
	Reasons       [core.NumCodes]*metrics.Counter
	RefundFen     *metrics.Counter
	AdvanceFen    *metrics.Counter
	ClawbackFen   *metrics.Counter
	CompensFen    *metrics.Counter
	ApplyLatency  *metrics.PrometheusHistogram
	BatchSize     *metrics.PrometheusHistogram
	RoundParts    *metrics.PrometheusHistogram // partitions committed together per runner round
	CommitLat     *metrics.PrometheusHistogram
	PublishLat    *metrics.PrometheusHistogram
	Lag           *metrics.PrometheusHistogram
	CommitErrors  *metrics.Counter
	PublishErrs   *metrics.Counter
	ConsumerReset *metrics.Counter
	SetupRetries  *metrics.Counter
	TimersFired   *metrics.Counter
	// suppressed Counts outputs a replay made again that FR_OUT's last
	// commit marker already covered (not published).
	Suppressed *metrics.Counter
	Panics     *metrics.Counter
	// tooBig Counts batches applied again smaller because their commit
	// did not fit one Badger transaction (worker.shrink).
	TooBig *metrics.Counter
	// Expired counts inbound events that left their stream (its max age,
	// a purge) before their partition processed them: acknowledged
	// events lost to retention (streams layout only: see
	// pipeline.checkExpired).
	Expired *metrics.Counter
	// Rewound counts partitions that found their inbound stream behind
	// their cursor (recreated, or its store lost): events stored there
	// with sequences up to the cursor are never delivered.
	Rewound *metrics.Counter
	// stages are the stage histograms (pipeline/stages), on latencyBuckets.
	Stages *stages.Histograms
	// decisions maps a policy name to its counters by verdict.
	Decisions sync.Map
	// ops are the operator's metrics and the status page's state
	// (metrics_ops.go).
	Ops *Ops
}

// NewPipeline registers every metric on set once, at New: label
// values are bounded and known up front (event types, verdicts, reason
// codes, DLQ reasons), so the hot path only increments counters it holds
// and never builds a metric name.
func NewPipeline(set *metrics.Set) *Pipeline {
	m := &Pipeline{Set: set, DLQ: make(map[string]*metrics.Counter)}
	for t := core.EventOrderPaid; t <= core.EventClock; t++ {
		m.EventsIn[t] = set.NewCounter(`flashreturn_events_in_total{type="` + t.String() + `"}`)
	}
	for _, r := range wire.Reasons {
		m.DLQ[r] = set.NewCounter(`flashreturn_dead_letters_total{reason="` + r + `"}`)
	}
	for k := core.EffectDecision; k <= core.EffectResolution; k++ {
		m.EffectsOut[k] = set.NewCounter(`flashreturn_effects_out_total{kind="` + k.String() + `"}`)
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
		m.Resolutions[r.o][r.a] = set.NewCounter(`flashreturn_resolutions_total{outcome="` + r.o.String() + `",by="` + r.a.String() + `"}`)
	}
	for c := core.Code(0); c < core.NumCodes; c++ {
		m.Reasons[c] = set.NewCounter(`flashreturn_decision_reasons_total{reason="` + c.String() + `"}`)
	}
	m.Redelivered = set.NewCounter(`flashreturn_events_skipped_total`)
	m.RefundFen = set.NewCounter(`flashreturn_refunds_fen_total`)
	m.AdvanceFen = set.NewCounter(`flashreturn_advanced_fen_total`)
	m.ClawbackFen = set.NewCounter(`flashreturn_clawbacks_fen_total`)
	m.CompensFen = set.NewCounter(`flashreturn_compensation_fen_total`)
	m.ApplyLatency = set.NewPrometheusHistogramExt(`flashreturn_apply_duration_seconds`, latencyBuckets)
	m.BatchSize = set.NewPrometheusHistogramExt(`flashreturn_batch_size_events`, batchBuckets)
	m.RoundParts = set.NewPrometheusHistogramExt(`flashreturn_round_size_partitions`, batchBuckets)
	m.CommitLat = set.NewPrometheusHistogramExt(`flashreturn_commit_duration_seconds`, latencyBuckets)
	m.PublishLat = set.NewPrometheusHistogramExt(`flashreturn_publish_ack_duration_seconds`, latencyBuckets)
	m.Lag = set.NewPrometheusHistogramExt(`flashreturn_event_lag_seconds`, latencyBuckets)
	m.CommitErrors = set.NewCounter(`flashreturn_commit_errors_total`)
	m.PublishErrs = set.NewCounter(`flashreturn_publish_errors_total`)
	m.ConsumerReset = set.NewCounter(`flashreturn_consumer_resets_total`)
	m.SetupRetries = set.NewCounter(`flashreturn_setup_retries_total`)
	m.TimersFired = set.NewCounter(`flashreturn_timers_fired_total`)
	m.Suppressed = set.NewCounter(`flashreturn_outputs_suppressed_total`)
	m.Panics = set.NewCounter(`flashreturn_poison_events_total`)
	m.TooBig = set.NewCounter(`flashreturn_oversized_batches_total`)
	m.Expired = set.NewCounter(`flashreturn_events_expired_total`)
	m.Rewound = set.NewCounter(`flashreturn_stream_rewinds_total`)
	m.Stages = stages.New(set, latencyBuckets)
	m.Ops = New(set)
	return m
}

// Counts stages the counter increments of a batch: a batch can be applied
// twice (after a core panic, without the poison event) and its outputs are
// published after its commit, so its Counts are added once, when its
// outputs are acknowledged (batchOps.published). A nil *Counts adds at
// once (work outside a batch).
type Counts []countAdd

// countAdd is one staged increment.
type countAdd struct {
	c *metrics.Counter
	n int
}

// add stages n on c (or adds it now, for a nil *Counts).
func (cs *Counts) Add(c *metrics.Counter, n int) {
	if cs == nil {
		c.Add(n)
		return
	}
	*cs = append(*cs, countAdd{c, n})
}

// flush adds the staged increments and empties the log.
func (cs *Counts) Flush() {
	for _, a := range *cs {
		a.c.Add(a.n)
	}
	cs.Reset()
}

// reset drops the staged increments.
func (cs *Counts) Reset() {
	clear(*cs)
	*cs = (*cs)[:0]
}

// decision Counts one decision by verdict and policy, and its reasons.
// Counters per policy are made on first use (a reload brings a new
// policy name) and kept in a sync.Map: workers race to make them, and
// LoadOrStore makes every worker use the one that won.
func (m *Pipeline) Decision(cs *Counts, e *core.Effect, policy string) {
	byVerdict, ok := m.Decisions.Load(policy)
	if !ok {
		var cs [core.VerdictRejected + 1]*metrics.Counter
		for v := core.VerdictApproved; v <= core.VerdictRejected; v++ {
			cs[v] = m.Set.GetOrCreateCounter(`flashreturn_decisions_total{decision="` + v.String() + `",policy="` + policy + `"}`)
		}
		byVerdict, _ = m.Decisions.LoadOrStore(policy, &cs)
	}
	cs.Add(byVerdict.(*[core.VerdictRejected + 1]*metrics.Counter)[e.Verdict], 1)
	for c := core.Code(0); c < core.NumCodes; c++ {
		if e.Reasons.Has(c) {
			cs.Add(m.Reasons[c], 1)
		}
	}
}

// effect Counts one output effect and the money it moves.
func (m *Pipeline) Effect(cs *Counts, e *core.Effect) {
	cs.Add(m.EffectsOut[e.Kind], 1)
	switch e.Kind {
	case core.EffectRefund:
		cs.Add(m.RefundFen, int(e.AmountFen))
		if e.Advance {
			cs.Add(m.AdvanceFen, int(e.AmountFen))
		}
	case core.EffectClawback:
		cs.Add(m.ClawbackFen, int(e.AmountFen))
	case core.EffectCompensation:
		cs.Add(m.CompensFen, int(e.AmountFen))
	case core.EffectResolution:
		if c := m.Resolutions[e.Resolution][e.By]; c != nil {
			cs.Add(c, 1)
		}
	}
}

// deadLetter Counts one dead letter by reason. A reason outside the
// contract's list (wire.Reasons) still Counts, on a counter made on the
// spot: losing the count would hide exactly the unexpected case.
func (m *Pipeline) DeadLetter(cs *Counts, reason string) {
	c, ok := m.DLQ[reason]
	if !ok {
		c = m.Set.GetOrCreateCounter(`flashreturn_dead_letters_total{reason="` + reason + `"}`)
	}
	cs.Add(c, 1)
}
