package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/apply"
	"github.com/flashreturn/flashreturn/pipeline/cluster"
	"github.com/flashreturn/flashreturn/pipeline/outbound"
	"github.com/flashreturn/flashreturn/pipeline/stages"
	"github.com/flashreturn/flashreturn/pipeline/streams"
	"github.com/flashreturn/flashreturn/state"
)

// worker owns one partition: its consumer, its state and its outbox. Exactly
// one goroutine runs a worker; nothing in it is shared except the atomics
// read by metrics and readiness.
type worker struct {
	p   int
	d   *Daemon
	log *slog.Logger
	pt  *state.Partition

	cursor    uint64 // last stream sequence applied (committed or staged)
	expiredTo uint64 // last inbound sequence reported expired this run (checkStream)
	rewound   bool   // the stream was reported behind the cursor this run (checkStream)
	s         apply.Stepper
	now       time.Time // wall clock of the batch in hand (decided_at)
	lastCon   uint64    // last consumer sequence seen
	// asOf is the ingest time (Unix ns) of the message being applied: the
	// merchant view is read as of it (merchantAt), and its event time may
	// not pass it by more than Config.MaxFuture.
	asOf       int64
	merchantAt func(id string) *core.Merchant
	// msg and seq are the message being applied and its stream sequence,
	// for the dead letters the core reports (unknown order or request).
	msg jetstream.Msg
	seq uint64

	in    chan delivery
	lost  chan error // the consume error handler reports a lost consumer
	carry []delivery // messages pulled but left for the next batch
	batch []delivery
	// r is the runner of the partition's group; rctx and detached are
	// the run's context and the runner's answer while the runner serves
	// the partition (runner.serve).
	r        *runner
	rctx     context.Context
	detached chan error
	// n, sent and next are the batch in hand: messages applied, when its
	// outputs went to the publisher, and its publish in flight.
	n    int
	sent time.Time
	next inflight
	// stg holds the batch's per-event stage timings until its apply
	// sticks (pipeline/stages): until the batch is committed and placed
	// in flight, since a commit too big for one transaction applies it
	// again. appliedAt is when the batch in hand was applied.
	stg       *stages.Events
	appliedAt time.Time
	ev        core.Event
	outbox    []state.OutMsg // outputs of the batch being applied
	arena     []byte         // encoded outputs of that batch
	// outBytes is the size the commit's outbox will have
	// (state.OutboxBytes): the outputs of the batches in flight, which
	// the commit stores again, plus outbox's, kept as they are appended.
	// A batch is cut on it and the staged state together.
	outBytes int
	// start is the partition's position before the batch in hand was
	// applied, to apply it again (smaller, or without an event).
	start struct {
		cursor uint64
		clock  int64
		con    uint64
	}
	// batch carries the batch in hand to the publisher; it swaps with
	// prev's, as the outbox does.
	outBatch *outbound.Batch
	// startBatch carries the outbox a former run left.
	startBatch *outbound.Batch
	// posSeq and posIdx give the next output its position (state.Pos):
	// the input being applied and how many outputs it made so far.
	posSeq uint64
	posIdx uint32
	// skip is the position the partition's last commit marker covered
	// when this run claimed it: outputs at or before it are in FR_OUT
	// already, and a replay from an older state does not make them again.
	skip state.Pos
	ops  batchOps // operator metrics staged until the batch is published (metrics_ops.go)
	// events is the partition's event counter, also held by both
	// batchOps. Status reads it from here: ops is swapped by value at
	// every batch, so reading through w.ops from another goroutine races
	// with the swap.
	events *metrics.Counter
	// prev and cur are the partition's committed batches whose outputs
	// are still being stored in FR_OUT, older first (cur is pending only
	// when prev is; see prepare).
	prev      inflight
	cur       inflight
	commitBuf []state.OutMsg // the outputs in flight and the new batch's, for one commit

	// ready, pending and applied are read by readiness, gauges and the
	// status page from other goroutines; everything else above is the
	// worker goroutine's alone.
	ready   atomic.Bool
	pending atomic.Int64
	applied atomic.Uint64
	// outboxLen is the number of committed outputs not yet acknowledged by
	// FR_OUT (read by the outbox gauge; len(outbox) is the worker's own).
	outboxLen atomic.Int64

	// Cluster mode (cluster.go) sets fence and epoch before each run; they
	// are nil and "" for a single daemon.
	// fence is checked before every commit and every publish: an error
	// (wrapping ErrFenced) means the daemon no longer holds the
	// partition's claim, and the worker stops without committing or
	// publishing.
	fence func() error
	// epoch is the claim's epoch, sent as the EpochHeader of every output.
	epoch string
	// committed is the cursor of the last commit (read by snapshots).
	committed atomic.Uint64
}

// newWorker makes partition p's worker; run starts it. A worker outlives
// its runs: in cluster mode the same worker runs each time its partition
// is claimed here, so its buffers and gauges are made once.
func newWorker(d *Daemon, p int) *worker {
	w := &worker{
		p:   p,
		d:   d,
		log: d.log.With("partition", p),
		in:  make(chan delivery, 2*d.cfg.BatchMax),
		stg: stages.NewEvents(d.m.Stages),
		ops: newBatchOps(d, p),
		// prev.ops and cur.ops swap with ops as batches go in flight (place).
		prev:       inflight{ops: newBatchOps(d, p), batch: outbound.NewBatch()},
		cur:        inflight{ops: newBatchOps(d, p), batch: outbound.NewBatch()},
		outBatch:   outbound.NewBatch(),
		startBatch: outbound.NewBatch(),
	}
	w.events = w.ops.events
	w.r = d.runners[p%len(d.runners)]
	// A stored batch wakes the runner: the partition may take its next
	// batch, and its inputs are acknowledged, without waiting for
	// anything else the runner waits on.
	for _, b := range []*outbound.Batch{w.prev.batch, w.cur.batch, w.outBatch, w.startBatch} {
		b.OnDone(w.r.poke)
	}
	w.merchantAt = func(id string) *core.Merchant { return d.merchants.LookupAt(id, w.asOf) }
	return w
}

// run consumes the partition until ctx is done, then drains the batch in
// hand. It returns nil on a clean drain.
func (w *worker) run(ctx context.Context) error {
	pt, err := w.d.store.Partition(w.p)
	if err != nil {
		return fmt.Errorf("partition %d: open state: %w", w.p, err)
	}
	w.pt = pt
	w.cursor = pt.Cursor()
	w.committed.Store(w.cursor)
	w.s = apply.Stepper{St: w.ops.track(pt), Clock: pt.Clock(), Log: w.log, Emit: w.emit, Shadow: w.d.shadow, OnFire: func(id string) {
		if fireHook != nil {
			fireHook(id)
		}
		w.ops.cnt.Add(w.d.m.TimersFired, 1)
	}}
	// Claim the partition on FR_OUT first: from here on a former
	// owner's batches fail at the server. The claim says what FR_OUT
	// holds already.
	epoch, _ := strconv.ParseUint(w.epoch, 10, 64)
	skip, err := w.d.out.Claim(ctx, w.p, epoch)
	if err != nil {
		if errors.Is(err, outbound.ErrFenced) {
			return w.publishErr(err)
		}
		return nil // shutting down
	}
	w.skip = w.checkSkip(ctx, skip)
	defer w.release()
	// The outbox left by the last run holds outputs that were committed
	// but maybe never stored in FR_OUT: publish the part the last marker
	// does not cover before consuming, so that nothing committed is lost
	// and nothing stored is stored twice.
	if all := pt.Outbox(); len(all) > 0 {
		left := w.uncovered(all)
		w.log.Info("publishing the outbox left by the last run", "messages", len(left), "covered_by_marker", len(all)-len(left))
		w.outboxLen.Store(int64(len(left)))
		if err := w.publishSync(ctx, left); err != nil {
			if errors.Is(err, cluster.ErrFenced) {
				return err
			}
			return nil // shutting down
		}
		w.outboxLen.Store(0)
		if err := w.clearOutbox(ctx); err != nil {
			if errors.Is(err, cluster.ErrFenced) {
				return err
			}
			return nil // shutting down
		}
	}
	for ctx.Err() == nil {
		err := w.consume(ctx)
		w.ready.Store(false)
		if errors.Is(err, cluster.ErrFenced) {
			return err
		}
		if err == nil || ctx.Err() != nil {
			return nil
		}
		// A fixed short pause, not a backoff: the usual cause (a node
		// restart, a leader move) passes in about a second, and every
		// moment without a consumer is the partition's latency.
		w.log.Warn("consumer restarting", "err", err)
		w.d.m.ConsumerReset.Inc()
		if !streams.Sleep(ctx, 200*time.Millisecond) {
			return nil
		}
	}
	return nil
}

// settle finishes the batches in flight, if any, within the drain bound,
// and clears the stored outbox.
func (w *worker) settle(ctx context.Context) error {
	if !w.prev.pending {
		return nil
	}
	dctx, cancel := w.d.drainContext(ctx)
	defer cancel()
	for w.prev.pending {
		if err := w.finishPrev(dctx); err != nil {
			return err
		}
	}
	w.outboxLen.Store(0)
	return w.clearOutbox(dctx)
}

// clearOutbox empties the stored outbox once every output in it is
// acknowledged and nothing is staged (the partition is idle or draining).
// Under load the next batch's commit replaces the outbox anyway; an idle
// partition would otherwise keep its last batch's outputs until the next
// start, which republishes them: more than FR_OUT's 2-minute duplicate
// window later (an idle night, a maintenance stop) each would be stored
// a second time, a clawback or compensation with no id downstream could
// catch. The price is one small commit (meta, outbox deleted) each time
// a partition goes idle, never under a backlog.
func (w *worker) clearOutbox(ctx context.Context) error {
	if w.pt.OutboxLen() == 0 {
		return nil
	}
	return w.commitRetry(ctx, nil)
}

// applyHook, when set (by tests, before the daemon starts), runs before
// each decoded event is applied; a panic in it is handled as a panic of
// the core (the event is dead-lettered as poison).
var applyHook func(ev *core.Event)

// fireHook, when set (by tests, before the daemon starts), runs before a
// shopper's timers fire; a panic in it is handled as a panic of the core
// while firing them (the shopper's timers are blocked, no event is
// dead-lettered).
var fireHook func(userID string)

// collectNow takes what was carried over, then whatever else is
// already buffered, up to BatchMax; it never blocks (the runner calls it
// when the partition has something).
func (w *worker) collectNow(batch []delivery) []delivery {
	batch = append(batch, w.carry...)
	w.carry = w.carry[:0]
	for len(batch) < w.d.cfg.BatchMax {
		select {
		case m := <-w.in:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// A batch goes through three steps, each called by the partition's
// runner for every partition of its round (runner.go): prepare applies it
// and stages its commit; the runner commits the round (commitOutbox is
// what the partition's stored outbox becomes); sendNew readies its
// outputs for the publisher, and place makes it a batch in flight.
//
// Publishing is pipelined two batches deep and never waited for: a
// partition takes a new batch while at most one of its batches is in
// flight (ready: batch N+1 is applied, committed and handed over while N
// is stored), and one with two in flight waits, its messages buffered,
// while the runner serves the others. The runner finishes a batch (acks
// its inputs, folds its metrics in) once its result has come (advance).
// The stored outbox always holds the outputs of every batch in flight, so
// it covers every output FR_OUT may lack (a restart publishes the part
// its last commit marker does not cover). Inputs are acknowledged
// (AckAll) only once their batch's outputs are stored.

// canTake reports whether the partition may take a new batch: fewer than
// two of its batches are in flight.
func (w *worker) canTake() bool { return !w.cur.pending }

// prepare applies the batch the runner collected and stages its commit.
func (w *worker) prepare() error {
	if err := w.waitMerchants(w.d.hard); err != nil {
		return err
	}
	return w.applyTaken(nil)
}

// applyTaken applies the batch in hand (poison: events to dead-letter
// instead, by index) and carries what it did not take to the next batch.
func (w *worker) applyTaken(poison map[int]string) error {
	n, err := w.applyBatch(poison)
	if err != nil {
		return err
	}
	if n < len(w.batch) {
		w.carry = append(w.carry, w.batch[n:]...)
	}
	w.n = n
	w.ops.size = n // staged: a re-applied batch counts once
	return nil
}

// shrink applies the batch in hand again, smaller, after its commit did
// not fit one Badger transaction (state.ErrBatchTooBig, which retrying
// cannot cure). The size cut (txnBytes) makes this rare: it takes an
// event whose own change is most of a transaction. Each call makes
// progress, so commitAlone's loop ends:
//
//   - Several events: the first half is applied again, the rest carried
//     to the next batch, in order.
//   - One event, with batches in flight: they are waited for (ctx), since
//     the commit stores their outputs again until they are stored in
//     FR_OUT; then the event is applied again as it was.
//   - One event that fired timers: the largest shopper it fired is
//     blocked (apply.Stepper.Block, as for a timer that panics: logged,
//     counted, its timers kept for after a restart), since its state
//     alone fills the transaction and would otherwise fail every event of
//     the partition that moves the clock; the event is applied again.
//   - One event that fired nothing: its own change is too big; it is
//     dead-lettered as poison (a dead letter's payload is capped, so it
//     fits) and the partition moves on.
//
// Replay has no transaction limit: a blocked shopper or an event
// dead-lettered here makes the partition's replay differ from the live
// run from that event on. Both are logged at error level.
func (w *worker) shrink(ctx context.Context, cause error) error {
	w.pt.Discard()
	w.rewind()
	w.d.m.TooBig.Inc()
	var poison map[int]string
	keep := w.n
	switch fired := w.s.LastFired(); {
	case w.n > 1:
		keep = w.n / 2
		w.log.Warn("batch too big for one transaction; applying half of it", "events", w.n, "now", keep, "err", cause)
	case w.prev.pending:
		w.log.Warn("one event's commit too big with batches in flight; waiting for them", "err", cause)
		for w.prev.pending {
			if err := w.finishPrev(ctx); err != nil {
				return err
			}
		}
	case len(fired) > 0:
		big := fired[0]
		for _, f := range fired[1:] {
			if f.Bytes > big.Bytes {
				big = f
			}
		}
		w.d.m.Panics.Inc()
		w.log.Error("a shopper's timers make a change too big for one transaction; they are blocked until restart", "user", big.User, "state_bytes", big.Bytes, "err", cause)
		w.s.Block(big.User)
	default:
		w.log.Error("an event's change is too big for one transaction; dead-lettering it", "err", cause)
		poison = map[int]string{0: "its change does not fit one transaction: " + cause.Error()}
	}
	// batch holds everything collected: what is past keep waits, after
	// whatever the new application leaves of the first part.
	rest := append([]delivery(nil), w.batch[keep:]...)
	w.batch = w.batch[:keep]
	w.carry = w.carry[:0]
	if err := w.applyTaken(poison); err != nil {
		return err
	}
	w.carry = append(w.carry, rest...)
	return nil
}

// commitOutbox is the outbox the round's commit stores for the partition:
// the outputs of the batches in flight, then the new batch's.
func (w *worker) commitOutbox() []state.OutMsg {
	out := w.outbox
	if w.prev.pending {
		// Only batches still in flight: a finished slot keeps its
		// outputs until reused, and they are in FR_OUT already.
		out = append(w.commitBuf[:0], w.prev.outbox...)
		if w.cur.pending {
			out = append(out, w.cur.outbox...)
		}
		out = append(out, w.outbox...)
		w.commitBuf = out
	}
	w.outboxLen.Store(int64(len(out)))
	return out
}

// sendNew readies the committed batch's outputs for the publisher and
// returns the Batch to submit (nil: no outputs). The publisher keeps a
// partition's batches in order, so it may be handed over while the
// partition's older batch is in flight.
func (w *worker) sendNew() (*outbound.Batch, error) {
	w.next = inflight{batch: w.outBatch}
	w.sent = time.Now()
	return w.readyBatch(&w.next, w.outbox)
}

// place makes the committed batch in hand a batch in flight (the older
// slot when it is free, else the younger); its buffers swap with the
// slot's, which the next batch reuses.
func (w *worker) place() {
	w.stg.Applied(w.appliedAt)
	f := &w.prev
	if f.pending {
		f = &w.cur
	}
	f.outbox, w.outbox = w.outbox, f.outbox[:0]
	f.arena, w.arena = w.arena, f.arena[:0]
	f.batch, w.outBatch = w.outBatch, f.batch
	f.ops, w.ops = w.ops, f.ops
	f.sent, f.n, f.ack, f.pending, f.acked = w.sent, w.n, nil, true, time.Time{}
	f.submitted, f.got, f.err = w.next.submitted, false, nil
	if w.n > 0 {
		f.ack = w.batch[w.n-1].msg
	}
}

// waitMerchants waits until the merchant view has read every profile
// stored before the batch's last return event (the events that read it),
// so that the view as of each request's ingest time is complete.
func (w *worker) waitMerchants(ctx context.Context) error {
	var last int64
	for _, d := range w.batch {
		if _, kind, _, ok := wire.ParseSubject(d.msg.Subject()); !ok || kind != wire.KindReturn {
			continue
		}
		if meta, err := d.msg.Metadata(); err == nil {
			last = max(last, meta.Timestamp.UnixNano())
		}
	}
	if last == 0 {
		return nil
	}
	if err := w.d.merchants.WaitThrough(ctx, last); err != nil {
		return fmt.Errorf("partition %d: %w", w.p, err)
	}
	return nil
}

// finishPrev waits for the batch in flight: every output acknowledged
// (republishing the batch while any failed), then its inputs acknowledged
// and its metrics folded in.
func (w *worker) finishPrev(ctx context.Context) error {
	f := &w.prev
	if !f.pending {
		return nil
	}
	if err := f.wait(ctx); err != nil {
		// The publisher retries what can pass by itself: what comes back
		// is a fence, a release or the end of the daemon.
		return w.publishErr(err)
	}
	// The batch's own metrics first: a scrape that sees its publish
	// acknowledged sees the batch (TestStageHistograms compares them).
	f.ops.published()
	if len(f.outbox) > 0 {
		w.d.m.PublishLat.UpdateDuration(f.sent)
		w.d.m.Stages.Observe(stages.PublishAck, f.acked.Sub(f.sent))
	}
	if f.ack != nil {
		// AckAll: one ack covers the whole batch. A lost ack only means a
		// redelivery, which the cursor skips.
		_ = f.ack.Ack()
	}
	w.applied.Add(uint64(f.n))
	f.pending, f.ack = false, nil
	// The younger batch in flight, if any, is now the older one.
	w.prev, w.cur = w.cur, w.prev
	return nil
}

// advance finishes, without waiting, every batch in flight whose result
// has come, oldest first; it reports whether it finished any.
func (w *worker) advance() (bool, error) {
	did := false
	for w.prev.pending && w.prev.done() {
		if err := w.finishPrev(w.d.hard); err != nil {
			return did, err
		}
		did = true
	}
	return did, nil
}

// applyBatch applies the batch to the partition's state and stages the
// commit. It returns how many messages it consumed (it stops early when
// the staged transaction grows too large). Events that panic the core are
// dead-lettered as poison and the batch is re-applied without them.
func (w *worker) applyBatch(poison map[int]string) (int, error) {
	w.start.cursor, w.start.clock, w.start.con = w.cursor, w.s.Clock, w.lastCon
	for {
		n, bad, msg, err := w.tryApply(poison)
		if err != nil {
			// The attempt may have applied (and moved the cursor past) the
			// messages before the failing one, and its outputs are dropped
			// by the next attempt: keeping its staged state would commit
			// it with the next batch, without them.
			w.pt.Discard()
			w.rewind()
			return 0, err
		}
		if bad < 0 {
			// The stages are observed when the batch is placed (committed):
			// a commit too big for one transaction applies it again.
			w.appliedAt = time.Now()
			return n, nil
		}
		// A panic left the state half-mutated: drop everything staged, and
		// the cached users too (the one being changed when it panicked was
		// not marked dirty yet), then re-apply the batch.
		w.pt.DiscardAll()
		w.rewind()
		if user := w.s.Firing; user != "" {
			// The panic came from a shopper's timers, not from the event
			// that moved the clock: block them and re-apply the batch
			// whole (apply.Stepper.Block says why).
			w.d.m.Panics.Inc()
			w.log.Error("core panicked firing a shopper's timers; they are blocked until restart", "user", user, "panic", msg)
			w.s.Block(user)
			continue
		}
		// Otherwise the event is poison: re-apply without it, dead-lettered.
		w.d.m.Panics.Inc()
		w.log.Error("core panicked on an event; dead-lettering it", "stream_seq", w.seqOf(w.batch[bad].msg), "panic", msg)
		if poison == nil {
			poison = make(map[int]string)
		}
		poison[bad] = msg
	}
}

// rewind puts the partition's cursor, clock and consumer sequence back
// where they were before the batch in hand was applied (w.start), for a
// new application of it; the caller discards what was staged.
func (w *worker) rewind() {
	w.cursor, w.s.Clock, w.lastCon = w.start.cursor, w.start.clock, w.start.con
}

// seqOf is m's stream sequence, 0 when its metadata cannot be read (for
// logs only).
func (w *worker) seqOf(m jetstream.Msg) uint64 {
	meta, err := m.Metadata()
	if err != nil {
		return 0
	}
	return meta.Sequence.Stream
}

// tryApply applies the batch once. bad is the index of a message whose
// processing panicked (-1 if none).
func (w *worker) tryApply(poison map[int]string) (n, bad int, panicMsg string, err error) {
	w.outbox = w.outbox[:0]
	w.arena = w.arena[:0]
	w.s.ResetFired() // LastFired is about this application only
	w.outBytes = state.OutboxBytes(nil)
	for _, f := range []*inflight{&w.prev, &w.cur} {
		if f.pending {
			w.outBytes += state.OutboxBytes(f.outbox)
		}
	}
	w.ops.reset()
	w.stg.Reset()
	env := w.d.env(w.merchantAt)
	now := time.Now()
	for i, d := range w.batch {
		m := d.msg
		if w.txnBytes() > w.d.cfg.MaxTxnBytes && i > 0 {
			return i, -1, "", nil
		}
		meta, merr := m.Metadata()
		if merr != nil {
			return 0, -1, "", fmt.Errorf("partition %d: message metadata: %w", w.p, merr)
		}
		if meta.Sequence.Consumer != w.lastCon+1 && w.lastCon != 0 {
			if i == 0 {
				return 0, -1, "", fmt.Errorf("%w: got %d after %d", errConsumerGap, meta.Sequence.Consumer, w.lastCon)
			}
			// Keep what is before the gap; the next batch reports it.
			return i, -1, "", nil
		}
		w.lastCon = meta.Sequence.Consumer
		w.pending.Store(int64(meta.NumPending))
		seq := meta.Sequence.Stream
		w.posSeq, w.posIdx = seq, 0
		if seq <= w.cursor {
			w.ops.cnt.Add(w.d.m.Redelivered, 1) // staged: a re-applied batch counts once
			continue
		}
		w.ops.message(meta.Timestamp, m.Subject())
		w.stg.Add(meta.Timestamp.UnixNano(), d.at)
		// The stored time, not the wall clock: what the merchant lookup
		// and the future-time rule compare with must be the same in a
		// replay, a restart and on another member.
		w.asOf = meta.Timestamp.UnixNano()
		if msg, ok := poison[i]; ok {
			w.deadLetter(wire.ReasonPoison, "event could not be processed: "+msg, m.Subject(), seq, m.Data(), now)
			w.cursor = seq
			continue
		}
		if msg := w.applyOne(m, seq, env, now); msg != "" {
			return 0, i, msg, nil
		}
		w.cursor = seq
		w.ops.lags = append(w.ops.lags, now.Sub(meta.Timestamp).Seconds())
	}
	return len(w.batch), -1, "", nil
}

// applyOne decodes and applies one message; it returns a non-empty panic
// message when the core (or the codec) panicked.
func (w *worker) applyOne(m jetstream.Msg, seq uint64, env *core.Env, now time.Time) (panicMsg string) {
	defer func() {
		if r := recover(); r != nil {
			panicMsg = fmt.Sprint(r)
		}
	}()
	start := time.Now()
	_, kind, user, ok := wire.ParseSubject(m.Subject())
	if !ok {
		w.deadLetter(wire.ReasonSubjectMismatch, "subject "+strconv.Quote(wire.PublishedSubject(m.Subject()))+" is not fr.in.<kind>.<user_id> with a known kind", m.Subject(), seq, m.Data(), now)
		return ""
	}
	ev := &w.ev
	*ev = core.Event{}
	if err := wire.Decode(kind, user, m.Data(), ev); err != nil {
		reason, text := wire.DecodeReason(err)
		w.deadLetter(reason, text, m.Subject(), seq, m.Data(), now)
		return ""
	}
	if text := apply.FutureTime(ev, w.asOf, w.d.cfg.MaxFuture); text != "" {
		w.deadLetter(wire.ReasonFutureTime, text, m.Subject(), seq, m.Data(), now)
		return ""
	}
	w.msg, w.seq = m, seq
	w.ops.cnt.Add(w.d.m.EventsIn[ev.Type], 1)
	w.now = now
	if applyHook != nil {
		applyHook(ev)
	}
	if err := w.s.Step(ev, env); err != nil {
		w.deadLetter(wire.ReasonPoison, err.Error(), m.Subject(), seq, m.Data(), now)
		return ""
	}
	w.ops.applyDur = append(w.ops.applyDur, time.Since(start).Seconds()) // staged: a re-applied batch counts once
	return ""
}

// emit encodes one effect into the outbox (and a decision's trace into
// state). A dead letter from the core (the event refers to an order or
// request the shopper does not have) dead-letters the message being
// applied.
func (w *worker) emit(e *core.Effect, env *core.Env) {
	now := w.now
	if e.Kind == core.EffectDeadLetter {
		reason, text := wire.FaultReason(e)
		w.deadLetter(reason, text, w.msg.Subject(), w.seq, w.msg.Data(), now)
		return
	}
	if pos, ok := w.nextPos(); ok {
		start := len(w.arena)
		w.arena = wire.AppendEffect(w.arena, e, env.Loc, now)
		data := w.arena[start:len(w.arena):len(w.arena)]
		w.outbox = append(w.outbox, state.OutMsg{Subject: wire.OutSubject(e), MsgID: e.MsgID(), Data: data, Pos: pos})
		w.outBytes += state.OutMsgBytes(&w.outbox[len(w.outbox)-1])
	}
	w.d.m.Effect(&w.ops.cnt, e)
	w.ops.effect(e)
	if e.Kind == core.EffectDecision {
		w.d.m.Decision(&w.ops.cnt, e, e.Policy.Name)
		w.pt.PutTrace(e.UserID, e.RequestID, apply.EncodeTrace(e, now, w.d.cfg.Loc))
	}
}

// deadLetter stages a dead letter of the stored message seq into the
// outbox. Its subject field is the subject the event was published to,
// whatever layout stored it.
func (w *worker) deadLetter(reason, text, subject string, seq uint64, data []byte, _ time.Time) {
	subject = wire.PublishedSubject(subject)
	w.d.m.DeadLetter(&w.ops.cnt, reason)
	w.ops.deadLetter(reason, text, subject, seq)
	pos, ok := w.nextPos()
	if !ok {
		return
	}
	if len(data) > wire.MaxEventBytes {
		// Only an event stored before the inbound streams' size limit:
		// its dead letter must fit one transaction with the partition's
		// other changes.
		text += fmt.Sprintf(" (payload_b64 holds the first %d of its %d bytes)", wire.MaxEventBytes, len(data))
		data = data[:wire.MaxEventBytes]
	}
	start := len(w.arena)
	w.arena = wire.AppendDLQ(w.arena, reason, text, subject, seq, data)
	out := w.arena[start:len(w.arena):len(w.arena)]
	w.outbox = append(w.outbox, state.OutMsg{
		Subject: wire.DLQSubject(reason),
		MsgID:   wire.DLQMsgID(streams.InStream(w.d.cfg.Layout, w.p), seq),
		Data:    out,
		Pos:     pos,
	})
	w.outBytes += state.OutMsgBytes(&w.outbox[len(w.outbox)-1])
}

// txnBytes is the size of the partition's commit as staged so far: its
// state and its outbox (state.Store.MaxBatchBytes' units).
func (w *worker) txnBytes() int { return w.pt.StagedBytes() + w.outBytes }

// nextPos gives the next output of the input being applied its position,
// and reports whether to publish it: not when the claim found FR_OUT
// holding it already (a replay from older state makes it again).
func (w *worker) nextPos() (state.Pos, bool) {
	pos := state.Pos{Seq: w.posSeq, Idx: w.posIdx}
	w.posIdx++
	if !pos.After(w.skip) {
		w.ops.cnt.Add(w.d.m.Suppressed, 1) // staged: a re-applied batch counts once
		return pos, false
	}
	return pos, true
}

// commitAlone commits the partition's staged batch in a transaction of
// its own (the runner's round did not fit one), retrying while the store
// fails. A batch too big even alone is applied again smaller (shrink)
// when it is the batch in hand (inRound), until it fits.
func (w *worker) commitAlone(ctx context.Context, outbox []state.OutMsg, inRound bool) error {
	for {
		err := w.commitRetry(ctx, outbox)
		if !inRound || !errors.Is(err, state.ErrBatchTooBig) {
			return err
		}
		if err := w.shrink(ctx, err); err != nil {
			return err
		}
		outbox = w.commitOutbox()
	}
}

// commitRetry commits the staged batch, retrying with backoff while the
// store fails (disk full...). The worker reports not-ready meanwhile.
func (w *worker) commitRetry(ctx context.Context, outbox []state.OutMsg) error {
	for attempt := 0; ; attempt++ {
		if err := w.checkFence(); err != nil {
			return err
		}
		start := time.Now()
		err := w.pt.Commit(w.cursor, w.s.Clock, outbox)
		if err == nil {
			w.committed.Store(w.cursor)
			w.d.m.CommitLat.UpdateDuration(start)
			w.ready.Store(true)
			return nil
		}
		if errors.Is(err, state.ErrBatchTooBig) {
			return err // the same batch can never fit: see commitAlone
		}
		w.d.m.CommitErrors.Inc()
		w.ready.Store(false)
		w.log.Warn("commit failed; retrying", "attempt", attempt, "err", err)
		if !streams.Sleep(ctx, streams.Backoff(attempt)) {
			return fmt.Errorf("partition %d: commit: %w", w.p, err)
		}
	}
}
