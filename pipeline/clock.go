package pipeline

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/wire"
)

// runClock publishes a clock event into every partition each
// ClockInterval, so that idle partitions still advance event time and fire
// their timers (missed pickup windows). Each tick's message ID is derived
// from the partition and the second, so several daemons publishing the
// same tick collapse into one stored event. The tick is published to
// fr.in.clock.<token> with a token that hashes to the partition, so it
// travels the same mapping as user events.
//
// Publishing is asynchronous and unacknowledged on purpose: a tick lost
// to a full buffer or a restart is replaced by the next one a second
// later, and waiting for acks would let one slow stream delay the ticks
// of all the others.
func (d *Daemon) runClock(ctx context.Context) {
	tokens := make([]string, d.cfg.Partitions)
	for p := range tokens {
		tokens[p] = wire.ClockSubject(p, d.cfg.Partitions)
	}
	t := time.NewTicker(d.cfg.ClockInterval)
	defer t.Stop()
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			// Whole seconds: the tick's message ID is derived from them,
			// so daemons whose tickers are out of phase still agree on it.
			now = now.Truncate(time.Second)
			for p, subj := range tokens {
				buf = wire.AppendClock(buf[:0], p, now)
				// PublishAsync keeps data until the ack: it needs a copy of
				// the reused buffer.
				data := append([]byte(nil), buf...)
				if _, err := d.js.PublishAsync(subj, data, jetstream.WithMsgID(wire.ClockMsgID(p, now)), jetstream.WithStallWait(time.Second)); err != nil {
					d.log.Debug("clock publish", "partition", p, "err", err)
				}
			}
		}
	}
}
