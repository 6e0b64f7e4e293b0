package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/pipeline/cluster"
	"github.com/flashreturn/flashreturn/pipeline/streams"
	"github.com/flashreturn/flashreturn/state"
)

// inflight is a committed batch whose outputs were sent to FR_OUT and
// whose acknowledgements are awaited.
type inflight struct {
	pending bool
	outbox  []state.OutMsg
	arena   []byte // backs outbox's data
	futures []jetstream.PubAckFuture
	next    int   // futures[:next] have answered
	err     error // the first error among them
	sent    time.Time
	ack     jetstream.Msg // AckAll covers the batch's inputs; nil: none
	n       int
	ops     batchOps
	// acked is when the worker first saw every publish answered (zero
	// until then): the end of the publish_ack stage.
	acked time.Time
}

// done reports whether every publish of the batch has been answered. A
// future's channels deliver their answer once, so the answers received
// here are kept (next, err) for wait.
func (f *inflight) done() bool {
	for ; f.next < len(f.futures); f.next++ {
		fu := f.futures[f.next]
		select {
		case <-fu.Ok():
		case err := <-fu.Err():
			f.keep(fu, err)
		default:
			return false
		}
	}
	f.stamp()
	return true
}

// stamp notes the first moment every answer was seen.
func (f *inflight) stamp() {
	if f.acked.IsZero() {
		f.acked = time.Now()
	}
}

// wait waits for the answers not yet received and returns the first
// error among all of them.
func (f *inflight) wait(ctx context.Context) error {
	for ; f.next < len(f.futures); f.next++ {
		fu := f.futures[f.next]
		select {
		case <-fu.Ok():
		case err := <-fu.Err():
			f.keep(fu, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.stamp()
	return f.err
}

// keep records a failed publish; the first failure is the one reported
// (the others usually share its cause).
func (f *inflight) keep(fu jetstream.PubAckFuture, err error) {
	if f.err == nil {
		f.err = fmt.Errorf("publish %s: %w", fu.Msg().Subject, err)
	}
}

// publishRetry publishes msgs with their deterministic message IDs and
// waits for every ack, republishing them all (deduplicated by the server)
// until it succeeds or ctx ends.
func (w *worker) publishRetry(ctx context.Context, msgs []state.OutMsg) error {
	if len(msgs) == 0 {
		return nil
	}
	for attempt := 0; ; attempt++ {
		start := time.Now()
		futures, err := w.send(w.retryFut[:0], msgs)
		w.retryFut = futures
		if err == nil {
			err = (&inflight{futures: futures}).wait(ctx)
		}
		if err == nil {
			w.d.m.publishLat.UpdateDuration(start)
			w.ready.Store(true)
			return nil
		}
		if errors.Is(err, cluster.ErrFenced) {
			return err
		}
		w.d.m.publishErrs.Inc()
		w.ready.Store(false)
		w.log.Warn("publish failed; retrying", "attempt", attempt, "messages", len(msgs), "err", err)
		if !streams.Sleep(ctx, streams.Backoff(attempt)) {
			return fmt.Errorf("partition %d: publish: %w", w.p, err)
		}
	}
}

// send publishes msgs asynchronously (after checking the fence) and
// appends their futures to futures.
func (w *worker) send(futures []jetstream.PubAckFuture, msgs []state.OutMsg) ([]jetstream.PubAckFuture, error) {
	if len(msgs) == 0 {
		return futures, nil
	}
	if err := w.checkFence(); err != nil {
		return futures, err
	}
	for i := range msgs {
		o := &msgs[i]
		msg := &nats.Msg{Subject: o.Subject, Data: o.Data, Header: nats.Header{}}
		if w.epoch != "" {
			msg.Header[cluster.EpochHeader] = []string{w.epoch}
		}
		f, err := w.d.js.PublishMsgAsync(msg, jetstream.WithMsgID(o.MsgID), jetstream.WithStallWait(5*time.Second))
		if err != nil {
			return futures, fmt.Errorf("publish %s: %w", o.Subject, err)
		}
		futures = append(futures, f)
	}
	return futures, nil
}

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
