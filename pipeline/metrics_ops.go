package pipeline

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/pipeline/apply"
	"github.com/flashreturn/flashreturn/pipeline/httpapi"
	"github.com/flashreturn/flashreturn/pipeline/stages"
	"github.com/flashreturn/flashreturn/state"
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

// opsMetrics are the operator's metrics on top of [pipelineMetrics]: what
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
type opsMetrics struct {
	set             *metrics.Set
	start           time.Time
	decisionLatency *metrics.PrometheusHistogram
	releasedFen     *metrics.Counter
	outstandingFen  atomic.Int64
	promisedFen     atomic.Int64

	// latCounts mirrors decisionLatency's buckets (the last one is +Inf)
	// for the status page, which cannot read a PrometheusHistogram back.
	latCounts [len(decisionBuckets) + 1]atomic.Uint64

	policies sync.Map // "role\x00name\x00version" → struct{}: info gauges registered

	deadMu   sync.Mutex
	dead     []httpapi.DeadLetterInfo // ring buffer of the last deadLetterKeep
	deadNext int

	sampleMu sync.Mutex
	samples  []statusSample // the status page's rate window
}

// newOpsMetrics registers the operator's metrics on set; start is now,
// the origin of the status page's "since start" numbers.
func newOpsMetrics(set *metrics.Set) *opsMetrics {
	o := &opsMetrics{set: set, start: time.Now()}
	o.decisionLatency = set.NewPrometheusHistogramExt(`flashreturn_decision_latency_seconds`, decisionBuckets[:])
	o.releasedFen = set.NewCounter(`flashreturn_advance_released_fen_total`)
	set.NewGauge(`flashreturn_advanced_outstanding_fen`, func() float64 { return float64(o.outstandingFen.Load()) })
	set.NewGauge(`flashreturn_promised_outstanding_fen`, func() float64 { return float64(o.promisedFen.Load()) })
	return o
}

// observeLatency records one decision latency in seconds.
func (o *opsMetrics) observeLatency(sec float64) {
	o.decisionLatency.Update(sec)
	i := 0
	for i < len(decisionBuckets) && sec > decisionBuckets[i] {
		i++
	}
	o.latCounts[i].Add(1)
}

// observePolicy makes sure flashreturn_policy_info exists for p in role.
// It is called at scrape time, so a policy swapped in by a reload shows up
// on the next scrape.
func (o *opsMetrics) observePolicy(role string, p *core.Policy, current func() *core.Policy) {
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

// addDeadLetters appends a published batch's dead letters to the ring the
// status page lists; the oldest are overwritten, the page only needs the
// latest few to show what is going wrong now.
func (o *opsMetrics) addDeadLetters(ds []httpapi.DeadLetterInfo) {
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

// recentDeadLetters returns the recent dead letters, newest first.
func (o *opsMetrics) recentDeadLetters() []httpapi.DeadLetterInfo {
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

// batchOps stages one partition batch's operator metrics until the batch's
// outputs are acknowledged (then [batchOps.published] folds them in). The
// worker goroutine owns it; it is not safe for concurrent use.
//
// Outstanding advanced money is measured exactly where the core keeps it:
// the worker's state is wrapped (see [batchOps.track]) so that the change
// of core.User.OutstandingFen across each Apply or Fire is added up (a
// refund paid in advance adds its amount, an inspection result releases
// it). The sum over partitions is therefore exact for everything this
// process applied, but it starts at 0 when the process starts: money
// advanced by an earlier run and still outstanding is not in it, and it can
// go negative when this run releases money an earlier run advanced. Its
// level is "exposure added during this run", its slope is exact. A
// restart-proof total needs the state store to persist a per-partition sum
// beside the cursor.
type batchOps struct {
	ops    *opsMetrics
	p      int
	events *metrics.Counter

	ingest      time.Time   // JetStream ingest time of the message being applied
	decided     []time.Time // ingest time of each request decided in the batch
	n           int         // inbound messages applied, clock ticks excluded
	outstanding int64       // change of advanced money outstanding, fen
	promised    int64       // change of advances promised, fen
	released    int64       // advanced money released by inspections, fen
	dead        []httpapi.DeadLetterInfo
	cnt         counts // the pipeline counters' increments (metrics.go)

	user            *core.User // the user being applied (see track)
	userOutstanding int64      // its OutstandingFen when read
	userPromised    int64      // its PromisedFen when read
}

// newBatchOps makes partition p's staging of operator metrics; a worker
// keeps two (the batch being applied and the one in flight) and swaps
// them, so staging allocates nothing per batch.
func newBatchOps(d *Daemon, p int) batchOps {
	return batchOps{ops: d.m.ops, p: p,
		events: d.m.set.GetOrCreateCounter(`flashreturn_partition_events_total` + partitionLabel(p))}
}

// reset drops what was staged (the batch is being applied again).
func (b *batchOps) reset() {
	b.decided = b.decided[:0]
	b.n = 0
	b.outstanding = 0
	b.promised = 0
	b.released = 0
	clear(b.dead)
	b.dead = b.dead[:0]
	b.cnt.reset()
	b.user, b.userOutstanding, b.userPromised = nil, 0, 0
}

// message notes that the message stored at ingest, on subject, is being
// applied.
func (b *batchOps) message(ingest time.Time, subject string) {
	b.ingest = ingest
	if !strings.Contains(subject, ".clock.") {
		b.n++
	}
}

// effect notes one effect of the message being applied.
func (b *batchOps) effect(e *core.Effect) {
	if e.Kind == core.EffectDecision {
		b.decided = append(b.decided, b.ingest)
	}
}

// track wraps a partition's state so that every Apply or Fire reports the
// change of the shopper's advanced money outstanding: the stepper reads a
// user (User), applies, then marks it dirty (MarkDirty).
func (b *batchOps) track(pt *state.Partition) apply.Store { return trackedStore{pt, b} }

// trackedStore is a *state.Partition that reports outstanding-money changes
// to its batchOps.
type trackedStore struct {
	*state.Partition
	b *batchOps
}

// User reads a user and remembers its outstanding advanced money.
func (t trackedStore) User(id string) (*core.User, error) {
	u, err := t.Partition.User(id)
	if err == nil {
		t.b.user, t.b.userOutstanding, t.b.userPromised = u, u.OutstandingFen, u.PromisedFen
	}
	return u, err
}

// MarkDirty notes the change since User, then stages the user.
func (t trackedStore) MarkDirty(u *core.User) {
	if b := t.b; u == b.user {
		d := u.OutstandingFen - b.userOutstanding
		b.outstanding += d
		if d < 0 {
			b.released -= d
		}
		b.userOutstanding = u.OutstandingFen
		b.promised += u.PromisedFen - b.userPromised
		b.userPromised = u.PromisedFen
	}
	t.Partition.MarkDirty(u)
}

// deadLetter notes one dead letter of the batch.
func (b *batchOps) deadLetter(reason, text, subject string, seq uint64) {
	b.dead = append(b.dead, httpapi.DeadLetterInfo{Partition: b.p, Reason: reason, Error: text, Subject: subject, StreamSeq: seq})
}

// published folds the batch in once its outputs are acknowledged.
func (b *batchOps) published() {
	now := time.Now()
	for _, t := range b.decided {
		b.ops.observeLatency(max(now.Sub(t).Seconds(), 0))
	}
	b.events.Add(b.n)
	b.cnt.flush()
	b.ops.outstandingFen.Add(b.outstanding)
	b.ops.promisedFen.Add(b.promised)
	b.ops.releasedFen.AddInt64(b.released)
	if len(b.dead) > 0 {
		at := now.UTC().Format(time.RFC3339Nano)
		for i := range b.dead {
			b.dead[i].At = at
		}
		b.ops.addDeadLetters(b.dead)
	}
	b.reset()
}

// latencySnapshot is a copy of the decision latency bucket counts.
type latencySnapshot [len(decisionBuckets) + 1]uint64

// latencySnapshot copies the decision latency buckets; two snapshots give
// the distribution between them (latencyBetween).
func (o *opsMetrics) latencySnapshot() latencySnapshot {
	var s latencySnapshot
	for i := range s {
		s[i] = o.latCounts[i].Load()
	}
	return s
}

// quantile estimates the q-quantile (0..1) of the decisions between two
// snapshots with stages.Quantile (Prometheus' histogram_quantile). It
// returns NaN without observations.
func quantile(q float64, from, to latencySnapshot) (float64, uint64) {
	var total uint64
	var diff latencySnapshot
	for i := range to {
		diff[i] = to[i] - from[i]
		total += diff[i]
	}
	if total == 0 {
		return math.NaN(), 0
	}
	return stages.Quantile(q, decisionBuckets[:], diff[:], total), total
}
