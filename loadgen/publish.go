package loadgen

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashreturn/flashreturn/loadgen/audit"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxStallTime bounds how long one publish may wait for an in-flight slot
// before the wait counts as a failure of that publish.
// A minute matches RetryFor's default: a target that cannot take
// acks for that long is down, and the publish then goes the way of
// any failure (counted, re-sent) instead of blocking the sender for
// ever and hiding the outage from the failure counts.
const maxStallTime = 60 * time.Second

// inflight keeps the message with its future so that a failed ack can
// be re-sent byte for byte, Nats-Msg-Id included.
type inflight struct {
	f        jetstream.PubAckFuture
	msg      *nats.Msg
	req, bad int32
}

// retryItem is a publish that failed after it was handed to the server
// (its ack reported an error or never came) and awaits a re-send.
type retryItem struct {
	msg      *nats.Msg
	req, bad int32
	since    time.Time // when it first failed
}

// publisher sends events asynchronously with a bounded number in flight and
// settles their acks in a second goroutine. Its counters are atomics read by
// the sampler.
//
// A failed publish is re-sent with the same Nats-Msg-Id, as soon as the
// connection is back or after a backoff, until it is acknowledged or
// RetryFor has passed since it first failed (then it is given up and
// counted); the streams' duplicate window makes a re-send of
// an event that was stored after all a duplicate, not a second event. Order
// matters (a shopper's events must be stored in the order they were sent):
// the connection buffers nothing while it reconnects, so a publish during an
// outage fails at once and the sender waits and retries it in place; and
// before the sender publishes anything after a reconnect or after an ack
// failed, it waits until every earlier publish is settled and re-sends the
// failed ones, oldest first, one at a time. A failure that comes without a
// reconnect (an ack timeout, no responders) is learnt from the ack, so the
// few events sent between that publish and the settling of its ack may be
// stored before its re-send.
type publisher struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	stallWait time.Duration
	retryFor  time.Duration
	tr        *audit.Tracker

	sent, acked, dups, stalls, errs, retries, failed atomic.Int64
	late, maxLag                                     atomic.Int64 // count, nanoseconds
	recoveries                                       atomic.Int64

	futures chan inflight
	done    chan struct{}

	// Sender goroutine only.
	queued int64  // futures handed to settle
	epoch  uint64 // reconnects of nc as of the last recovery

	mu        sync.Mutex
	settled   int64         // futures settle has finished with
	wake      chan struct{} // closed and replaced when settled moves, if waiting
	waiting   bool
	failedQ   []retryItem // in publish order
	hasFailed atomic.Bool
}

func newPublisher(nc *nats.Conn, js jetstream.JetStream, tr *audit.Tracker, cfg Config) *publisher {
	return &publisher{nc: nc, js: js, stallWait: cfg.StallWait, retryFor: cfg.RetryFor, tr: tr,
		futures: make(chan inflight, cfg.MaxInFlight), done: make(chan struct{}), epoch: nc.Stats().Reconnects,
		wake: make(chan struct{})}
}

// noteLag records how far behind its schedule a send is.
func (p *publisher) noteLag(lag time.Duration) {
	// Up to 1 ms is scheduler jitter on a loaded machine, not a
	// sender falling behind; counting it would drown real lateness.
	if lag <= time.Millisecond {
		return
	}
	p.late.Add(1)
	for {
		cur := p.maxLag.Load()
		if int64(lag) <= cur || p.maxLag.CompareAndSwap(cur, int64(lag)) {
			return
		}
	}
}

// backoff is the wait before re-send attempt n (from 1): 50 ms doubling
// up to 1 s.
// 50 ms first, so a brief blip costs little; capped at 1 s, so that a
// target back after a long outage is used within a second (pause
// also watches the connection), and a minute of RetryFor still makes
// some sixty attempts.
func backoff(n int) time.Duration {
	return min(50*time.Millisecond<<min(n-1, 5), time.Second)
}

// publish hands one event to the server. It blocks while the in-flight
// bound is reached (each StallWait spent there counts as a stall), while
// earlier failures are re-sent, and while the server cannot be reached
// (retrying with backoff); an event it gives up on is counted as failed.
// It returns an error only when ctx ends.
func (p *publisher) publish(ctx context.Context, subject, id string, payload []byte, req, bad int32) error {
	// Nats-Msg-Id = event_id, and the same on every re-send: when an
	// ack is lost but the event was stored, the server's duplicate
	// window turns the re-send into a duplicate ack instead of a second
	// event. A fresh id would double the event, and the audit would
	// (rightly) fail the target for two decisions it was sent twice.
	msg := &nats.Msg{Subject: subject, Data: payload, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}
	var stallStart, since time.Time
	attempts := 0
	for {
		// Nothing newer goes out before the failures are re-sent: a
		// shopper's events must be stored in send order (contract.md,
		// Streams), or a request could arrive before its order.
		if p.hasFailed.Load() || p.nc.Stats().Reconnects != p.epoch {
			if err := p.recover(ctx); err != nil {
				p.giveUp(req, bad)
				return err
			}
		}
		f, err := p.js.PublishMsgAsync(msg, jetstream.WithStallWait(p.stallWait))
		if err == nil {
			p.sent.Add(1)
			p.queued++
			select {
			case p.futures <- inflight{f: f, msg: msg, req: req, bad: bad}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if ctx.Err() != nil {
			p.giveUp(req, bad)
			return ctx.Err()
		}
		// A full in-flight window is back-pressure, not an error: the
		// send waits, and since latency is measured from the schedule
		// the wait is charged to the target (coordinated omission).
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			p.stalls.Add(1)
			if stallStart.IsZero() {
				stallStart = time.Now()
			}
			if time.Since(stallStart) < maxStallTime {
				continue
			}
		}
		p.errs.Add(1)
		if since.IsZero() {
			since = time.Now()
		}
		// RetryFor is at most the streams' 2-minute duplicate
		// window (Config.Validate): a re-send after it could be
		// stored twice.
		if time.Since(since) >= p.retryFor {
			p.giveUp(req, bad)
			return nil
		}
		attempts++
		p.retries.Add(1)
		if err := p.pause(ctx, attempts, since); err != nil {
			p.giveUp(req, bad)
			return err
		}
	}
}

// pause waits before re-send attempt n of a publish that first failed at
// since: while the connection is down, until it is up again (the client
// reconnects every 100 ms; polling every 10 ms, so a target back up is
// used at once and not after a backoff step), else the backoff.
func (p *publisher) pause(ctx context.Context, n int, since time.Time) error {
	if p.nc.IsConnected() {
		return sleepCtx(ctx, backoff(n))
	}
	until := since.Add(p.retryFor)
	for !p.nc.IsConnected() && time.Now().Before(until) {
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// giveUp counts an event the target will never have: the tracker
// stops waiting for it, and events_accepted fails the audit.
func (p *publisher) giveUp(req, bad int32) {
	p.failed.Add(1)
	if req >= 0 {
		p.tr.RequestFailed(req)
	}
	if bad >= 0 {
		p.tr.BadFailed(bad)
	}
}

// settle waits for the acks of everything published, in publish order,
// and queues what failed for the sender to re-send. It returns when
// futures is closed and drained.
func (p *publisher) settle(ctx context.Context) {
	defer close(p.done)
	for in := range p.futures {
		select {
		case ack := <-in.f.Ok():
			p.acked.Add(1)
			if ack.Duplicate {
				p.dups.Add(1)
			}
			p.settleOne(nil)
		case <-in.f.Err():
			p.errs.Add(1)
			p.settleOne(&retryItem{msg: in.msg, req: in.req, bad: in.bad, since: time.Now()})
		case <-ctx.Done():
			// Cancelled: an unsettled ack is given up rather than waited
			// for, so an interrupted run ends promptly.
			p.giveUp(in.req, in.bad)
			p.settleOne(nil)
		}
	}
}

func (p *publisher) settleOne(failed *retryItem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if failed != nil {
		p.failedQ = append(p.failedQ, *failed)
		p.hasFailed.Store(true)
	}
	p.settled++
	if p.waiting {
		close(p.wake)
		p.wake, p.waiting = make(chan struct{}), false
	}
}

// waitSettled blocks until settle has finished with the first n futures.
func (p *publisher) waitSettled(ctx context.Context, n int64) error {
	for {
		p.mu.Lock()
		if p.settled >= n {
			p.mu.Unlock()
			return nil
		}
		p.waiting = true
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// recover re-sends, in publish order and one at a time, every publish that
// failed after it was handed to the server. It first waits until every
// earlier publish is settled (acks fail at once on a disconnect, or time
// out), so that all failures are known. Sender goroutine only.
func (p *publisher) recover(ctx context.Context) error {
	epoch := p.nc.Stats().Reconnects
	if err := p.waitSettled(ctx, p.queued); err != nil {
		return err
	}
	p.mu.Lock()
	items := p.failedQ
	p.failedQ = nil
	p.hasFailed.Store(false)
	p.mu.Unlock()
	p.epoch = epoch
	if len(items) > 0 {
		p.recoveries.Add(1)
	}
	for i, it := range items {
		if err := p.resend(ctx, it); err != nil {
			for _, rest := range items[i+1:] {
				p.giveUp(rest.req, rest.bad)
			}
			return err
		}
	}
	return nil
}

// resend publishes one failed event synchronously with its Nats-Msg-Id
// until it is acknowledged or RetryFor has passed since it first failed.
func (p *publisher) resend(ctx context.Context, it retryItem) error {
	for attempt := 1; ; attempt++ {
		p.retries.Add(1)
		// Synchronous and one at a time: re-sends keep their
		// original order only if each is stored before the next goes.
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := p.js.PublishMsg(actx, it.msg)
		cancel()
		if err == nil {
			p.acked.Add(1)
			if ack.Duplicate {
				p.dups.Add(1)
			}
			return nil
		}
		if ctx.Err() != nil {
			p.giveUp(it.req, it.bad)
			return ctx.Err()
		}
		p.errs.Add(1)
		if time.Since(it.since) >= p.retryFor {
			p.giveUp(it.req, it.bad)
			return nil
		}
		if err := p.pause(ctx, attempt, it.since); err != nil {
			p.giveUp(it.req, it.bad)
			return err
		}
	}
}

// finish closes the future queue, waits until every ack is settled and
// re-sends what failed at the end.
func (p *publisher) finish(ctx context.Context) error {
	close(p.futures)
	<-p.done
	return p.recover(ctx)
}

func (p *publisher) stats() PublishStats {
	return PublishStats{Sent: p.sent.Load(), Acked: p.acked.Load(), Duplicates: p.dups.Load(), Stalls: p.stalls.Load(),
		Errors: p.errs.Load(), Retries: p.retries.Load(), Failed: p.failed.Load(), Recoveries: p.recoveries.Load(), MaxLagMs: ms(time.Duration(p.maxLag.Load())),
		LateSends: p.late.Load()}
}

// sleepCtx sleeps for d or until ctx ends. A stopped timer rather than
// time.After, so that the many short waits of a long outage do not
// leave timers behind until they fire.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
