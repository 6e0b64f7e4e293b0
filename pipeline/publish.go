package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/pipeline/cluster"
	"github.com/flashreturn/flashreturn/pipeline/outbound"
	"github.com/flashreturn/flashreturn/pipeline/streams"
	"github.com/flashreturn/flashreturn/state"
)

// inflight is a committed batch whose outputs were handed to the
// publisher (pipeline/outbound) and whose result is awaited.
type inflight struct {
	pending bool
	outbox  []state.OutMsg
	arena   []byte // backs outbox's data
	// batch carries outbox to the publisher; submitted says it was
	// handed over (a batch with no outputs is not), got that its result
	// (err) came.
	batch     *outbound.Batch
	submitted bool
	got       bool
	err       error
	sent      time.Time
	ack       jetstream.Msg // AckAll covers the batch's inputs; nil: none
	n         int
	ops       batchOps
	// acked is when the worker first saw the result (zero until then):
	// the end of the publish_ack stage.
	acked time.Time
}

// done reports whether the batch's result has come, without waiting.
func (f *inflight) done() bool {
	if f.got || !f.submitted {
		f.stamp()
		return true
	}
	select {
	case err := <-f.batch.Done():
		f.got, f.err = true, err
		f.stamp()
		return true
	default:
		return false
	}
}

// stamp notes the first moment the result was seen.
func (f *inflight) stamp() {
	if f.acked.IsZero() {
		f.acked = time.Now()
	}
}

// wait waits for the batch's result.
func (f *inflight) wait(ctx context.Context) error {
	if !f.got && f.submitted {
		select {
		case err := <-f.batch.Done():
			f.got, f.err = true, err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.stamp()
	return f.err
}

// publishSync publishes msgs (the outbox a former run left) through the
// publisher and waits for the result.
func (w *worker) publishSync(ctx context.Context, msgs []state.OutMsg) error {
	if len(msgs) == 0 {
		return nil
	}
	f := &inflight{batch: w.startBatch}
	if err := w.send(f, msgs); err != nil {
		return err
	}
	start := time.Now()
	if err := f.wait(ctx); err != nil {
		return w.publishErr(err)
	}
	w.d.m.PublishLat.UpdateDuration(start)
	return nil
}

// publishErr wraps a publisher's error for the worker: a batch FR_OUT
// refused because another owner claimed the partition is a fence (the
// worker stops, as when its lease lapses).
func (w *worker) publishErr(err error) error {
	if errors.Is(err, outbound.ErrFenced) {
		w.d.m.PublishErrs.Inc()
		return fmt.Errorf("partition %d: %w: %w", w.p, cluster.ErrFenced, err)
	}
	return fmt.Errorf("partition %d: publish: %w", w.p, err)
}

// send hands msgs to the publisher as f's batch (after checking the
// fence); a batch with no messages is not handed over.
func (w *worker) send(f *inflight, msgs []state.OutMsg) error {
	b, err := w.readyBatch(f, msgs)
	if b != nil {
		w.d.out.Submit(b)
	}
	return err
}

// readyBatch checks the fence and fills f's batch with msgs, to be
// submitted by the caller (nil: no messages, or fenced).
func (w *worker) readyBatch(f *inflight, msgs []state.OutMsg) (*outbound.Batch, error) {
	f.submitted, f.got, f.err = false, false, nil
	if len(msgs) == 0 {
		return nil, nil
	}
	if err := w.checkFence(); err != nil {
		return nil, err
	}
	if sendHook != nil {
		sendHook(w.p)
	}
	f.batch.Reset(w.p, w.epoch, msgs)
	f.submitted = true
	return f.batch, nil
}

// sendHook, when set (by tests, before the daemon starts), runs before a
// worker hands a batch to the publisher, after its fence check: a test
// pauses a worker there to play a process frozen between its check and
// its write.
var sendHook func(p int)

// checkFence runs the cluster fence (nil outside cluster mode).
func (w *worker) checkFence() error {
	if w.fence == nil {
		return nil
	}
	if err := w.fence(); err != nil {
		return fmt.Errorf("partition %d: %w", w.p, err)
	}
	return nil
}

// uncovered returns the outputs of msgs after the position the claim
// found covered (and those written before positions existed).
func (w *worker) uncovered(msgs []state.OutMsg) []state.OutMsg {
	out := msgs[:0:0]
	for _, m := range msgs {
		if m.Pos.IsZero() || m.Pos.After(w.skip) {
			out = append(out, m)
		}
	}
	return out
}

// checkSkip refuses a marker position past the partition's inbound
// stream: FR_IN was deleted and recreated under FR_OUT's markers (its
// sequences started again), and suppressing every output up to the old
// position would drop new outputs silently. It logs that at error level
// and publishes everything instead. A stream it cannot read keeps skip.
func (w *worker) checkSkip(ctx context.Context, skip state.Pos) state.Pos {
	if skip.IsZero() {
		return skip
	}
	name := streams.InStream(w.d.cfg.Layout, w.p)
	ictx, cancel := context.WithTimeout(ctx, streams.SetupCallTimeout)
	defer cancel()
	s, err := w.d.js.Stream(ictx, name)
	if err != nil {
		return skip
	}
	if last := s.CachedInfo().State.LastSeq; skip.Seq > last {
		w.log.Error("the last commit marker covers inputs past the inbound stream's end: was it recreated? publishing every output, none suppressed",
			"stream", name, "marker_seq", skip.Seq, "stream_last_seq", last)
		return state.Pos{}
	}
	return skip
}

// release ends the run's publishing: nothing of the partition is
// published by this process after it, and results nobody waited for are
// dropped so the batches can be reused.
func (w *worker) release() {
	w.d.out.Release(w.p)
	for _, b := range []*outbound.Batch{w.prev.batch, w.cur.batch, w.outBatch, w.startBatch} {
		select {
		case <-b.Done():
		default:
		}
	}
	w.prev.pending, w.cur.pending = false, false
}
