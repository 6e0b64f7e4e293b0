package pipeline

import (
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/pipeline/apply"
	"github.com/flashreturn/flashreturn/pipeline/httpapi"
	"github.com/flashreturn/flashreturn/pipeline/opsmetrics"
	"github.com/flashreturn/flashreturn/state"
)

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
	pm     *opsmetrics.Pipeline // the daemon's metrics (pm.Ops the operator set)
	p      int
	events *metrics.Counter

	ingest      time.Time   // JetStream ingest time of the message being applied
	decided     []time.Time // ingest time of each request decided in the batch
	n           int         // inbound messages applied, clock ticks excluded
	outstanding int64       // change of advanced money outstanding, fen
	promised    int64       // change of advances promised, fen
	released    int64       // advanced money released by inspections, fen
	dead        []httpapi.DeadLetterInfo
	cnt         opsmetrics.Counts // the pipeline counters' increments (metrics.go)
	size        int               // messages the batch took (flashreturn_batch_size_events)
	lags        []float64         // each applied message's lag, s (flashreturn_event_lag_seconds)
	applyDur    []float64         // each event's apply time, s (flashreturn_apply_duration_seconds)

	user            *core.User // the user being applied (see track)
	userOutstanding int64      // its OutstandingFen when read
	userPromised    int64      // its PromisedFen when read
}

// newBatchOps makes partition p's staging of operator metrics; a worker
// keeps two (the batch being applied and the one in flight) and swaps
// them, so staging allocates nothing per batch.
func newBatchOps(d *Daemon, p int) batchOps {
	return batchOps{pm: d.m, p: p,
		events: d.m.Set.GetOrCreateCounter(`flashreturn_partition_events_total` + partitionLabel(p))}
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
	b.cnt.Reset()
	b.size = 0
	b.lags = b.lags[:0]
	b.applyDur = b.applyDur[:0]
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
		b.pm.Ops.ObserveLatency(max(now.Sub(t).Seconds(), 0))
	}
	b.events.Add(b.n)
	b.cnt.Flush()
	if b.size > 0 {
		b.pm.BatchSize.Update(float64(b.size))
	}
	for _, l := range b.lags {
		b.pm.Lag.Update(l)
	}
	for _, d := range b.applyDur {
		b.pm.ApplyLatency.Update(d)
	}
	b.pm.Ops.OutstandingFen.Add(b.outstanding)
	b.pm.Ops.PromisedFen.Add(b.promised)
	b.pm.Ops.ReleasedFen.AddInt64(b.released)
	if len(b.dead) > 0 {
		at := now.UTC().Format(time.RFC3339Nano)
		for i := range b.dead {
			b.dead[i].At = at
		}
		b.pm.Ops.AddDeadLetters(b.dead)
	}
	b.reset()
}
