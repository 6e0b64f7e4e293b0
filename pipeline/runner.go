package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/flashreturn/flashreturn/pipeline/outbound"
	"github.com/flashreturn/flashreturn/pipeline/stages"
	"github.com/flashreturn/flashreturn/pipeline/streams"
	"github.com/flashreturn/flashreturn/state"
)

// runner serves a group of partitions on one goroutine: partition p
// belongs to runner p mod Config.Runners. A round takes what each of its
// partitions has buffered (up to BatchMax each, until the round's staged
// state passes MaxTxnBytes), applies each partition's events in stored
// order, commits every touched partition (state, cursor, clock, outbox)
// in one Badger transaction (state.Store.CommitGroup), hands each
// partition's outputs to the publisher, whose next round carries them
// together, and then waits for the previous round's outputs and
// acknowledges its inputs, partition by partition (AckAll). So a busy
// process makes a few commits and wakes a few goroutines per round, not
// one of each per partition: the shape issue 15 measured as the tail's
// cause (64 consumers, 64 workers, 64 commits on two cores).
//
// Partitions stay the unit of everything else: a worker's own goroutine
// (worker.run) claims its partition, publishes the outbox a former run
// left, makes and remakes its consumer, and then lends the partition to
// its runner (serve) until its context ends, its consumer is lost, or it
// is fenced; only then does run go on (restart the consumer, release).
// A partition's error detaches that partition only; the others of the
// group go on.
type runner struct {
	id   int
	d    *Daemon
	wake chan struct{} // cap 1: something to do (a message, a lost consumer, a join, a cancel)
	stop chan struct{} // closed once no worker can join any more

	mu      sync.Mutex
	joining []*worker

	// The runner goroutine's own.
	ws      []*worker // attached partitions
	next    int       // where the next round starts taking (fairness)
	snap    []*worker
	round   []*worker // partitions applied in the round in hand
	items   []state.GroupCommit
	owner   []*worker // items[i] belongs to owner[i]
	batches []*outbound.Batch
}

// newRunners makes the daemon's n runners (not started).
func newRunners(d *Daemon, n int) []*runner {
	rs := make([]*runner, n)
	for i := range rs {
		rs[i] = &runner{id: i, d: d, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	}
	return rs
}

// poke wakes the runner; it never blocks.
func (r *runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// serve lends w's partition to the runner until the runner gives it
// back: when ctx ends (after the batch in hand and the one in flight are
// finished, within the drain bound), or with the error that ended it (a
// lost consumer, a fence, a failed publish).
func (r *runner) serve(ctx context.Context, w *worker) error {
	w.rctx = ctx
	w.detached = make(chan error, 1)
	r.mu.Lock()
	r.joining = append(r.joining, w)
	r.mu.Unlock()
	r.poke()
	stop := context.AfterFunc(ctx, r.poke)
	defer stop()
	return <-w.detached
}

// run is the runner's goroutine; it returns once stop is closed and
// every partition was given back.
func (r *runner) run() {
	for {
		r.join()
		if r.pass() {
			continue
		}
		select {
		case <-r.wake:
		case <-r.stop:
			r.join()
			if len(r.ws) == 0 {
				return
			}
		}
	}
}

// join attaches the partitions lent since the last round.
func (r *runner) join() {
	r.mu.Lock()
	r.ws = append(r.ws, r.joining...)
	clear(r.joining)
	r.joining = r.joining[:0]
	r.mu.Unlock()
}

// detach gives w back to its run with err (nil: a clean drain).
func (r *runner) detach(w *worker, err error) {
	for i, x := range r.ws {
		if x == w {
			r.ws = append(r.ws[:i], r.ws[i+1:]...)
			break
		}
	}
	w.detached <- err
}

// pass runs one round over the attached partitions and reports whether
// it did anything (applied a batch, finished one, gave a partition back).
// It never waits for the publisher: a partition whose two batches are in
// flight sits this round out, and the others go on.
func (r *runner) pass() bool {
	did := false
	// A snapshot: detach changes r.ws.
	ws := append(r.snap[:0], r.ws...)
	r.snap = ws
	r.round, r.items, r.owner, r.batches = r.round[:0], r.items[:0], r.owner[:0], r.batches[:0]
	staged := 0
	for k := range ws {
		w := ws[(r.next+k)%len(ws)]
		if w.rctx.Err() != nil {
			// The partition's run ended: finish what is in flight and
			// give it back. Its buffered messages were never applied nor
			// acknowledged; its next consumer delivers them again.
			r.detach(w, w.settle(w.rctx))
			did = true
			continue
		}
		finished, err := w.advance()
		if err != nil {
			r.detach(w, err)
			did = true
			continue
		}
		did = did || finished
		switch {
		case len(w.carry) == 0 && len(w.in) == 0:
			select {
			case err := <-w.lost:
				if serr := w.settle(w.rctx); serr != nil {
					err = serr
				}
				r.detach(w, err)
				did = true
				continue
			default:
			}
			if finished && !w.prev.pending && w.pt.OutboxLen() > 0 {
				// Gone quiet with everything stored: clear its outbox in
				// the round's transaction, so that a restart much later
				// does not publish it again.
				w.outboxLen.Store(0)
				r.add(w, nil)
			}
			continue
		case !w.canTake():
			continue
		case staged > r.d.cfg.MaxTxnBytes:
			// The round's transaction is full: this one goes first next
			// round.
			r.next = (r.next + k) % len(ws)
			continue
		}
		w.batch = w.collectNow(w.batch[:0])
		if err := w.prepare(); err != nil {
			r.detach(w, err)
			did = true
			continue
		}
		r.round = append(r.round, w)
		staged += w.txnBytes()
	}
	if len(r.items) == 0 && len(r.round) == 0 {
		return did
	}
	for _, w := range r.round {
		r.add(w, w.commitOutbox())
	}
	if err := r.commit(); err != nil {
		// Only the end of the daemon (its hard deadline) gets here.
		for _, w := range r.round {
			r.detach(w, err)
		}
		return true
	}
	// Hand every partition's outputs over together: one publisher round
	// carries them.
	for _, w := range r.round {
		b, err := w.sendNew()
		if err != nil {
			r.detach(w, err)
			continue
		}
		w.place()
		if b != nil {
			r.batches = append(r.batches, b)
		}
	}
	r.d.out.SubmitAll(r.batches)
	return true
}

// add puts w's commit (outbox: what its stored outbox becomes) into the
// round's transaction.
func (r *runner) add(w *worker, outbox []state.OutMsg) {
	r.items = append(r.items, state.GroupCommit{Pt: w.pt, Cursor: w.cursor, Clock: w.s.Clock, Outbox: outbox})
	r.owner = append(r.owner, w)
}

// commit stores the round's items in one transaction, retrying with
// backoff while the store fails, checking every partition's fence before
// each attempt (a fenced partition's batch is dropped and the partition
// given back). A group too large for one transaction is committed
// partition by partition.
func (r *runner) commit() error {
	for attempt := 0; ; attempt++ {
		for i := 0; i < len(r.items); {
			w := r.owner[i]
			if err := w.checkFence(); err != nil {
				w.pt.Discard()
				r.items = append(r.items[:i], r.items[i+1:]...)
				r.owner = append(r.owner[:i], r.owner[i+1:]...)
				r.dropRound(w)
				r.detach(w, err)
				continue
			}
			i++
		}
		if len(r.items) == 0 {
			return nil
		}
		start := time.Now()
		err := r.d.store.CommitGroup(r.items)
		if errors.Is(err, state.ErrBatchTooBig) {
			// Too large together: each partition on its own, and one
			// still too large alone is applied again smaller (shrink).
			for i, w := range r.owner {
				if err := w.commitAlone(w.d.hard, r.items[i].Outbox, slices.Contains(r.round, w)); err != nil {
					if r.d.hard.Err() != nil {
						return err
					}
					// That partition only (fenced, or its batch could
					// not be applied again): the others go on.
					w.pt.Discard()
					r.dropRound(w)
					r.detach(w, err)
				}
			}
			return nil
		}
		if err == nil {
			d := time.Since(start)
			r.d.m.CommitLat.Update(d.Seconds())
			r.d.m.Stages.Observe(stages.Commit, d)
			r.d.m.RoundParts.Update(float64(len(r.items)))
			for _, w := range r.owner {
				w.committed.Store(w.cursor)
				w.ready.Store(true)
			}
			return nil
		}
		r.d.m.CommitErrors.Inc()
		for _, w := range r.owner {
			w.ready.Store(false)
		}
		r.d.log.Warn("commit failed; retrying", "runner", r.id, "partitions", len(r.items), "attempt", attempt, "err", err)
		if !streams.Sleep(r.d.hard, streams.Backoff(attempt)) {
			return fmt.Errorf("runner %d: commit: %w", r.id, err)
		}
	}
}

// dropRound takes w out of the round in hand.
func (r *runner) dropRound(w *worker) {
	for i, x := range r.round {
		if x == w {
			r.round = append(r.round[:i], r.round[i+1:]...)
			return
		}
	}
}
