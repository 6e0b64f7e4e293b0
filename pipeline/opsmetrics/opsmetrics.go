// Package opsmetrics holds the pipeline's metric set (Pipeline: every
// counter and histogram a worker or runner updates, registered once at
// start-up, with Counts to stage a batch's increments until its outputs
// are stored) and the operator's numbers that the Prometheus registry
// alone cannot give back: the decision latency histogram with a
// readable mirror of its buckets, the money gauges summed over partitions,
// the policy info gauges, the ring of recent dead letters, and the rate
// window of the status page. The pipeline's workers fold a batch's
// numbers in once its outputs are stored in FR_OUT (never a batch that is
// re-applied or abandoned); the status page reads them from any goroutine.
//
// Invariants: every method is safe for concurrent use; nothing here
// does IO or blocks beyond a short mutex; memory is bounded (the ring
// keeps 50 dead letters, the window 64 samples).
package opsmetrics

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/pipeline/httpapi"
	"github.com/flashreturn/flashreturn/pipeline/stages"
)

// decisionBuckets are the upper bounds (seconds) of
// flashreturn_decision_latency_seconds. They include the round numbers
// that SLOs are written against (0.1, 0.25, 0.5, 1, 2.5 s), so that
// `rate(..._bucket{le="1"}[w]) / rate(..._count[w])` is exact for the
// 1-second answer promise (deploy/prometheus/alerts.yml).
var decisionBuckets = [...]float64{
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60,
}

// deadLetterKeep is how many recent dead letters the status page lists.
const deadLetterKeep = 50

// Ops are the operator's metrics on top of [pipelineMetrics]: what
// the dashboard and the status page read on the night. Every count here is
// folded in only after a batch's outputs are acknowledged by FR_OUT, so a
// batch re-applied after a poison event, or abandoned on shutdown, is never
// counted twice. Safe for concurrent use.
//
//   - flashreturn_decision_latency_seconds (histogram): from the
//     return.requested message's JetStream ingest timestamp to the publish
//     ack of its decision. This is the shopper's request-to-answer time as
//     far as the daemon can see it.
//   - flashreturn_partition_events_total{partition} (counter): inbound
//     messages applied by each partition (valid or dead-lettered; clock
//     ticks excluded): rate() of it shows the hottest partitions.
//   - flashreturn_advanced_outstanding_fen (gauge): the change, since this
//     process started, of the money refunded in advance and not yet
//     covered by an inspection, summed over every shopper of every owned
//     partition. See [batchOps] for how it is measured and why it is
//     relative to the start of the process.
//   - flashreturn_promised_outstanding_fen (gauge): the same for advances
//     promised at approval and not yet paid (tmall waiting for tracking),
//     which count against the exposure cap too.
//   - flashreturn_advance_released_fen_total (counter): advanced money
//     released by an inspection result (good or bad) or a close.
//   - flashreturn_policy_info{role,policy,version} (gauge): 1 for the
//     policy in force (role="live") and the shadow policy (role="shadow"),
//     0 for a live policy that was replaced by a reload.
type Ops struct {
	set *metrics.Set
	// Start is when the process started: the origin of the status
	// page's "since start" numbers.
	Start           time.Time
	decisionLatency *metrics.PrometheusHistogram
	// ReleasedFen counts advanced money released by inspections or closes.
	ReleasedFen *metrics.Counter
	// OutstandingFen and PromisedFen are the changes since Start of the
	// money advanced and not yet covered, and of advances promised.
	OutstandingFen atomic.Int64
	PromisedFen    atomic.Int64

	// latCounts mirrors decisionLatency's buckets (the last one is +Inf)
	// for the status page, which cannot read a PrometheusHistogram back.
	latCounts [len(decisionBuckets) + 1]atomic.Uint64

	policies sync.Map // "role\x00name\x00version" → struct{}: info gauges registered

	deadMu   sync.Mutex
	dead     []httpapi.DeadLetterInfo // ring buffer of the last deadLetterKeep
	deadNext int

	sampleMu sync.Mutex
	samples  []Sample // the status page's rate window
}

// New registers the operator's metrics on set; start is now,
// the origin of the status page's "since start" numbers.
func New(set *metrics.Set) *Ops {
	o := &Ops{set: set, Start: time.Now()}
	o.decisionLatency = set.NewPrometheusHistogramExt(`flashreturn_decision_latency_seconds`, decisionBuckets[:])
	o.ReleasedFen = set.NewCounter(`flashreturn_advance_released_fen_total`)
	set.NewGauge(`flashreturn_advanced_outstanding_fen`, func() float64 { return float64(o.OutstandingFen.Load()) })
	set.NewGauge(`flashreturn_promised_outstanding_fen`, func() float64 { return float64(o.PromisedFen.Load()) })
	return o
}

// ObserveLatency records one decision latency in seconds.
func (o *Ops) ObserveLatency(sec float64) {
	o.decisionLatency.Update(sec)
	i := 0
	for i < len(decisionBuckets) && sec > decisionBuckets[i] {
		i++
	}
	o.latCounts[i].Add(1)
}

// ObservePolicy makes sure flashreturn_policy_info exists for p in role.
// It is called at scrape time, so a policy swapped in by a reload shows up
// on the next scrape.
func (o *Ops) ObservePolicy(role string, p *core.Policy, current func() *core.Policy) {
	if p == nil {
		return
	}
	key := role + "\x00" + p.Name + "\x00" + p.Version
	if _, ok := o.policies.Load(key); ok {
		return
	}
	name, version := p.Name, p.Version
	o.set.GetOrCreateGauge(`flashreturn_policy_info{role="`+role+`",policy="`+labelValue(name)+`",version="`+labelValue(version)+`"}`, func() float64 {
		if c := current(); c != nil && c.Name == name && c.Version == version {
			return 1
		}
		return 0
	})
	o.policies.Store(key, struct{}{})
}

// labelValue escapes s for use inside a quoted Prometheus label value.
func labelValue(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// AddDeadLetters appends a published batch's dead letters to the ring the
// status page lists; the oldest are overwritten, the page only needs the
// latest few to show what is going wrong now.
func (o *Ops) AddDeadLetters(ds []httpapi.DeadLetterInfo) {
	if len(ds) == 0 {
		return
	}
	o.deadMu.Lock()
	defer o.deadMu.Unlock()
	for _, d := range ds {
		if len(o.dead) < deadLetterKeep {
			o.dead = append(o.dead, d)
		} else {
			o.dead[o.deadNext] = d
		}
		o.deadNext = (o.deadNext + 1) % deadLetterKeep
	}
}

// RecentDeadLetters returns the recent dead letters, newest first.
func (o *Ops) RecentDeadLetters() []httpapi.DeadLetterInfo {
	o.deadMu.Lock()
	defer o.deadMu.Unlock()
	n := len(o.dead)
	out := make([]httpapi.DeadLetterInfo, 0, n)
	for i := range n {
		// deadNext is the slot after the newest (== n until the ring is full).
		out = append(out, o.dead[(o.deadNext-1-i+n)%n])
	}
	return out
}

// LatencySnapshot is a copy of the decision latency bucket counts.
type LatencySnapshot [len(decisionBuckets) + 1]uint64

// LatencySnapshot copies the decision latency buckets; two snapshots give
// the distribution between them (LatencyBetween).
func (o *Ops) LatencySnapshot() LatencySnapshot {
	var s LatencySnapshot
	for i := range s {
		s[i] = o.latCounts[i].Load()
	}
	return s
}

// quantile estimates the q-quantile (0..1) of the decisions between two
// snapshots with stages.Quantile (Prometheus' histogram_quantile). It
// returns NaN without observations.
func Quantile(q float64, from, to LatencySnapshot) (float64, uint64) {
	var total uint64
	var diff LatencySnapshot
	for i := range to {
		diff[i] = to[i] - from[i]
		total += diff[i]
	}
	if total == 0 {
		return math.NaN(), 0
	}
	return stages.Quantile(q, decisionBuckets[:], diff[:], total), total
}

// Window is the window over which the status page's rates and
// latency percentiles are computed: long enough that a page refreshed
// every second shows steady numbers, short enough that a spike or a stall
// shows within seconds (Grafana has the long view).
const Window = 15 * time.Second

// samplesMax bounds the samples kept for the rate window. Samples
// are kept at most one a second, so 15 s needs 16; the bound caps memory
// whatever the clock does.
const samplesMax = 64

// Sample is a point of the daemon's counters for rate windows.
type Sample struct {
	At                                 time.Time
	Events, Decisions, Approved, DeadN uint64
	Lat                                LatencySnapshot
	Stg                                stages.Snapshot // zero at the start
}

// window records cur and returns the sample to compute rates from: the
// oldest one at most Window old, or the start of the process.
func (o *Ops) Window(cur Sample) Sample {
	o.sampleMu.Lock()
	defer o.sampleMu.Unlock()
	base := Sample{At: o.Start}
	keep := o.samples[:0]
	for _, s := range o.samples {
		if cur.At.Sub(s.At) <= Window {
			keep = append(keep, s)
		}
	}
	o.samples = keep
	// A base younger than half a second gives rates from a handful of
	// events (two page loads in a row); the start of the process is the
	// better base then.
	if len(keep) > 0 && cur.At.Sub(keep[0].At) >= 500*time.Millisecond {
		base = keep[0]
	}
	// One sample a second at most, whatever the number of viewers: two
	// open pages must not shrink the window each other sees.
	if n := len(o.samples); (n == 0 || cur.At.Sub(o.samples[n-1].At) >= time.Second) && n < samplesMax {
		o.samples = append(o.samples, cur)
	}
	return base
}

// LatencyBetween summarises the decisions between two snapshots.
func LatencyBetween(from, to LatencySnapshot) httpapi.StatusLatency {
	p50, n := Quantile(0.5, from, to)
	if n == 0 {
		return httpapi.StatusLatency{P50Seconds: -1, P99Seconds: -1}
	}
	p99, _ := Quantile(0.99, from, to)
	return httpapi.StatusLatency{Decisions: n, P50Seconds: p50, P99Seconds: p99}
}
