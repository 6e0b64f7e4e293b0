package stages

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Stage is one step of an event's way through the daemon.
type Stage int

// The stages, in the order an event passes them.
const (
	// StoredPulled runs from the JetStream stored timestamp of the message
	// (its metadata) to the moment the NATS client handed it to the
	// worker's consume callback, before the worker's own buffer: it is the
	// broker's share (file store, pull round trips, pull expiry). Per event.
	StoredPulled Stage = iota
	// PulledApplied runs from that moment to the end of the apply of the
	// event's batch, before its commit: the worker's buffer, the merchant
	// catch-up wait, the previous batch's commit and publish, and the core.
	// It ends at the batch's end, not the event's, so that it meets Commit
	// without a gap. Per event.
	PulledApplied
	// Commit is the batch's Badger transaction (states, cursor, clock,
	// outbox), from the first attempt to the one that succeeded: a retried
	// commit is the events' time too. Per batch.
	Commit
	// PublishAck runs from handing the batch's outputs to the publisher
	// (pipeline/outbound) to the worker seeing them stored in FR_OUT with
	// their commit marker: the wait for a round, the atomic batch, a retry
	// after a failure. The worker looks without blocking while it applies
	// the next batch, so the figure can exceed the publisher's answer by
	// up to one batch's apply. Per batch with outputs.
	PublishAck
	// NumStages is the number of stages.
	NumStages
)

// names are the metric name parts; deploy/grafana's Stages row lists the
// same, and renaming one breaks the dashboard's queries.
var names = [NumStages]string{"stored_pulled", "pulled_applied", "commit", "publish_ack"}

// String returns the stage's name as it appears in its metric's name.
func (s Stage) String() string { return names[s] }

// Metric returns the name of the stage's histogram.
func (s Stage) Metric() string { return "flashreturn_stage_" + names[s] + "_seconds" }

// Histograms are the stage histograms of one daemon. Safe for concurrent
// use: every worker observes into the same histograms.
type Histograms struct {
	h [NumStages]*metrics.PrometheusHistogram

	// bounds are the histograms' bucket upper bounds, ascending; counts
	// mirrors each histogram's buckets (len(bounds)+1, the last one +Inf)
	// for the status page, which cannot read a PrometheusHistogram back
	// (see [Histograms.Snapshot]). Both are fixed at New: Observe only
	// adds to existing counters, so it stays allocation-free and lock-free.
	bounds []float64
	counts [NumStages][]atomic.Uint64
}

// New registers the stage histograms on set with the given bucket upper
// bounds (seconds). Registering twice on one set panics, as every metric
// of the set does: a daemon calls it once.
func New(set *metrics.Set, buckets []float64) *Histograms {
	// The mirror's bucket search needs the bounds sorted; a copy, so that
	// a caller reusing its slice cannot move the mirror's buckets away
	// from the exported histograms'.
	h := Histograms{bounds: slices.Clone(buckets)}
	slices.Sort(h.bounds)
	for s := range NumStages {
		h.h[s] = set.NewPrometheusHistogramExt(s.Metric(), buckets)
		h.counts[s] = make([]atomic.Uint64, len(h.bounds)+1)
	}
	return &h
}

// Observe counts d in stage s, in its histogram and in the status page's
// mirror of its buckets.
func (h *Histograms) Observe(s Stage, d time.Duration) {
	sec := seconds(d)
	h.h[s].Update(sec)
	// The first bound >= sec: Prometheus' "le" buckets, so a value equal
	// to a bound counts in that bound's bucket, as in the exported
	// histogram; past the last bound it is the +Inf slot.
	i, _ := slices.BinarySearch(h.bounds, sec)
	h.counts[s][i].Add(1)
}

// seconds is d in seconds, 0 when negative (see the package's invariants).
func seconds(d time.Duration) float64 { return max(d.Seconds(), 0) }

// Events stages the per-event stage timings of the batch being applied
// until it is known to stick. A worker owns one; it is not safe for
// concurrent use.
type Events struct {
	h  *Histograms
	ev []timing
}

// timing is one event's stored and pulled moments, Unix nanoseconds.
type timing struct{ stored, pulled int64 }

// NewEvents makes a worker's staging of per-event timings into h.
func NewEvents(h *Histograms) *Events { return &Events{h: h} }

// Reset drops what was staged: the batch is being applied (again).
func (e *Events) Reset() { e.ev = e.ev[:0] }

// Add stages one event stored at stored and handed to the worker at
// pulled (both Unix nanoseconds).
func (e *Events) Add(stored, pulled int64) {
	e.ev = append(e.ev, timing{stored, pulled})
}

// Applied observes every staged event's StoredPulled and PulledApplied,
// the batch having been applied at now, and empties the staging.
func (e *Events) Applied(now time.Time) {
	at := now.UnixNano()
	for _, t := range e.ev {
		e.h.Observe(StoredPulled, time.Duration(t.pulled-t.stored))
		e.h.Observe(PulledApplied, time.Duration(at-t.pulled))
	}
	e.Reset()
}
