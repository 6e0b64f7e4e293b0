package loadgen

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Retry bounds of a publish that the server refused or never acknowledged.
const (
	maxPublishAttempts = 5
	maxStallTime       = 60 * time.Second
)

type inflight struct {
	f        jetstream.PubAckFuture
	req, bad int32
}

// publisher sends events asynchronously with a bounded number in flight and
// settles their acks in a second goroutine. Its counters are atomics read by
// the sampler.
type publisher struct {
	js        jetstream.JetStream
	stallWait time.Duration
	tr        *tracker

	sent, acked, dups, stalls, errs, retries, failed atomic.Int64
	late, maxLag                                     atomic.Int64 // count, nanoseconds

	futures chan inflight
	done    chan struct{}
}

func newPublisher(js jetstream.JetStream, tr *tracker, cfg Config) *publisher {
	return &publisher{js: js, stallWait: cfg.StallWait, tr: tr, futures: make(chan inflight, cfg.MaxInFlight), done: make(chan struct{})}
}

// noteLag records how far behind its schedule a send is.
func (p *publisher) noteLag(lag time.Duration) {
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

// publish hands one event to the server. It blocks while the in-flight
// bound is reached (each StallWait spent there counts as a stall) and
// retries refused publishes; an event it gives up on is counted as failed.
// It returns an error only when ctx ends.
func (p *publisher) publish(ctx context.Context, subject, id string, payload []byte, req, bad int32) error {
	msg := &nats.Msg{Subject: subject, Data: payload, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}
	var stallStart time.Time
	attempts := 0
	for {
		f, err := p.js.PublishMsgAsync(msg, jetstream.WithStallWait(p.stallWait))
		if err == nil {
			p.sent.Add(1)
			select {
			case p.futures <- inflight{f: f, req: req, bad: bad}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
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
		attempts++
		if attempts >= maxPublishAttempts {
			p.giveUp(req, bad)
			return nil
		}
		if err := sleepCtx(ctx, time.Duration(attempts)*50*time.Millisecond); err != nil {
			return err
		}
	}
}

func (p *publisher) giveUp(req, bad int32) {
	p.failed.Add(1)
	if req >= 0 {
		p.tr.requestFailed(req)
	}
	if bad >= 0 {
		p.tr.badFailed(bad)
	}
}

// settle waits for the acks of everything published, in publish order,
// and re-sends (synchronously, with the same Nats-Msg-Id) what failed. It
// returns when futures is closed and drained.
func (p *publisher) settle(ctx context.Context) {
	defer close(p.done)
	for in := range p.futures {
		select {
		case ack := <-in.f.Ok():
			p.acked.Add(1)
			if ack.Duplicate {
				p.dups.Add(1)
			}
		case <-in.f.Err():
			p.errs.Add(1)
			p.resend(ctx, in)
		case <-ctx.Done():
			p.giveUp(in.req, in.bad)
		}
	}
}

func (p *publisher) resend(ctx context.Context, in inflight) {
	for attempt := 1; attempt < maxPublishAttempts; attempt++ {
		p.retries.Add(1)
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := p.js.PublishMsg(actx, in.f.Msg())
		cancel()
		if err == nil {
			p.acked.Add(1)
			if ack.Duplicate {
				p.dups.Add(1)
			}
			return
		}
		p.errs.Add(1)
		if sleepCtx(ctx, time.Duration(attempt)*100*time.Millisecond) != nil {
			break
		}
	}
	p.giveUp(in.req, in.bad)
}

// finish closes the future queue and waits until every ack is settled.
func (p *publisher) finish() {
	close(p.futures)
	<-p.done
}

func (p *publisher) stats() PublishStats {
	return PublishStats{Sent: p.sent.Load(), Acked: p.acked.Load(), Duplicates: p.dups.Load(), Stalls: p.stalls.Load(),
		Errors: p.errs.Load(), Retries: p.retries.Load(), Failed: p.failed.Load(), MaxLagMs: ms(time.Duration(p.maxLag.Load())),
		LateSends: p.late.Load()}
}

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
