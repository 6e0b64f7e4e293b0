package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/streams"
)

// A partition's consumer: one durable pull consumer per partition,
// recreated from the cursor in Badger at every start and after every
// loss, feeding the partition's buffer, which its runner drains.

// errConsumerGap means a delivery went missing (consumer sequence jumped);
// the worker recreates its consumer from cursor+1.
var errConsumerGap = errors.New("pipeline: consumer sequence gap")

// pullExpiry bounds how long one pull request waits on the server. On a
// fresh 3-node cluster some first pull requests were lost: their
// partitions sat idle with messages pending until the client's default
// 30 s expiry (p99 28 s in 1 of 2 runs). With a short expiry the client
// notices the missing heartbeats and pulls again: the same runs stalled
// 3.7 s at most with 5 s, and this bounds it near 2 s. An idle partition
// costs one pull request per expiry.
const pullExpiry = 2 * time.Second

// delivery is a message as the consumer handed it to the worker, with
// the moment it did (Unix ns): where stored → pulled ends and pulled →
// applied begins (pipeline/stages).
type delivery struct {
	msg jetstream.Msg
	at  int64
}

// consume runs one consumer subscription from cursor+1 until ctx is done
// (nil) or the subscription must be rebuilt (error).
func (w *worker) consume(ctx context.Context) error {
	cons, err := w.d.resetConsumer(ctx, w.p, w.cursor)
	if err != nil {
		return err
	}
	w.checkStream(ctx)
	w.lastCon = 0
	w.carry = w.carry[:0]
	// Two batches of buffer: the client fills one while the worker applies
	// the other. A fresh channel per subscription, so that nothing a
	// stopped subscription delivered late leaks into the next one.
	in := make(chan delivery, 2*w.d.cfg.BatchMax)
	stop := make(chan struct{})
	lost := make(chan error, 1)
	w.lost = lost
	// Consumer probes (checkConsumer) belong to this subscription: they
	// run under pctx, cancelled when it ends, and are waited for then, so
	// a probe never outlives the consumer it looks up.
	pctx, cancelProbes := context.WithCancel(ctx)
	probes := &probeGroup{}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		// Stamped before the send: a full buffer is the worker's delay
		// (pulled → applied), not the broker's.
		select {
		case in <- delivery{m, time.Now().UnixNano()}:
			w.r.poke()
		case <-stop:
		}
	}, jetstream.PullMaxMessages(w.d.cfg.BatchMax), jetstream.PullExpiry(pullExpiry), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		w.log.Debug("consume", "err", err)
		w.checkConsumer(pctx, cons, err, lost, probes)
	}))
	if err != nil {
		cancelProbes()
		return fmt.Errorf("partition %d: consume: %w", w.p, err)
	}
	defer func() {
		cc.Stop()
		close(stop)
		cancelProbes()
		probes.close()
	}()
	w.in = in
	w.ready.Store(true)
	// The runner of the partition's group applies, commits and
	// publishes from here on, until ctx ends or the subscription must
	// be rebuilt (runner.go).
	return w.r.serve(ctx, w)
}

// errConsumerLost means the partition's consumer is gone (deleted, or
// held by a node that died or restarted: it is a single in-memory
// replica); the worker recreates it from cursor+1.
var errConsumerLost = errors.New("pipeline: consumer lost")

// checkConsumer runs on the consume error handler's goroutine. Errors
// that say the consumer is gone end the subscription; missing heartbeats
// (the pull went unanswered: a node restarted, a leader moved) end it only
// when the consumer cannot be looked up, so that a slow but healthy
// consumer is kept.
func (w *worker) checkConsumer(ctx context.Context, cons jetstream.Consumer, err error, lost chan<- error, probes *probeGroup) {
	signal := func(err error) {
		select {
		case lost <- fmt.Errorf("%w: %w", errConsumerLost, err):
			w.r.poke()
		default:
		}
	}
	switch {
	case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, nats.ErrNoResponders):
		signal(err)
	case errors.Is(err, jetstream.ErrNoHeartbeat):
		// Off the handler's goroutine: an info request may take up to
		// pullExpiry, and the client's handler must not block meanwhile.
		probes.Go(func() {
			ictx, cancel := context.WithTimeout(ctx, pullExpiry)
			defer cancel()
			if _, ierr := cons.Info(ictx); ierr != nil && ctx.Err() == nil {
				signal(fmt.Errorf("%w (info: %w)", err, ierr))
			}
		})
	}
}

// probeGroup owns the consumer probes of one subscription. The client
// may still call the error handler after Stop, so Go after close is a
// no-op rather than a WaitGroup.Add racing its Wait.
type probeGroup struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go runs f on a goroutine of the group, unless the group is closed.
func (g *probeGroup) Go(f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.wg.Go(f)
	}
}

// close refuses new probes and waits for the running ones.
func (g *probeGroup) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// resetConsumer (re)creates partition p's durable pull consumer so that it
// delivers from cursor+1: the cursor in Badger is the truth, the
// consumer's ack floor only tells JetStream what it may discard.
func (d *Daemon) resetConsumer(ctx context.Context, p int, cursor uint64) (jetstream.Consumer, error) {
	stream := streams.InStream(d.cfg.Layout, p)
	name := fmt.Sprintf("flashreturn_p%d", p)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.js.DeleteConsumer(cctx, stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("partition %d: delete consumer: %w", p, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		FilterSubject: wire.PartitionFilter(p),
		AckPolicy:     jetstream.AckAllPolicy,
		// AckWait is long because redelivery is not how a worker recovers
		// (it recreates its consumer from the cursor); a short one would
		// only redeliver batches still waiting for their publish acks.
		AckWait:    5 * time.Minute,
		MaxDeliver: -1,
		// Four batches may be unacknowledged: the one in flight, the one
		// being applied and the client's buffer, with room to spare; any
		// more would only be redelivered after a reset.
		MaxAckPending: 4 * d.cfg.BatchMax,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// The authoritative cursor is in Badger, and the consumer is
		// recreated at cursor+1 on every start and gap, so its own state
		// need not survive anything: one in-memory replica. On an R3
		// stream this spares a Raft round per delivery and per ack (a
		// 3-node cluster measured 734 events/s with R3 consumers; see
		// bench/RESULTS.md). If the node holding it dies, the worker sees
		// the consumer vanish and recreates it on a live node.
		Replicas:      1,
		MemoryStorage: true,
	}
	if cursor > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = cursor + 1
	}
	c, err := d.js.CreateOrUpdateConsumer(cctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("partition %d: create consumer: %w", p, err)
	}
	return c, nil
}

// checkStream reports, loudly (ERROR and a counter) and once a run, what
// the partition's inbound stream lost under it. A last sequence behind
// the cursor: the stream was recreated or its store lost, and its events
// up to the cursor would never be delivered (flashreturn_stream_rewinds_total).
// A first sequence past what the partition processed (the larger of the
// cursor and the input its last commit marker covers, so that a rebuilt
// state is no loss): acknowledged events expired unprocessed
// (flashreturn_events_expired_total; streams layout only, since a shared
// FR_IN's gap holds every partition's events). A failed lookup skips both.
func (w *worker) checkStream(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream := streams.InStream(w.d.cfg.Layout, w.p)
	s, err := w.d.js.Stream(ctx, stream)
	if err != nil {
		w.log.Warn("inbound stream lookup failed; lost or skipped events not checked", "stream", stream, "err", err)
		return
	}
	st := s.CachedInfo().State
	if st.LastSeq < w.cursor && !w.rewound {
		w.rewound = true
		w.d.m.Rewound.Inc()
		w.log.Error("inbound stream is behind the partition's cursor: it was recreated or its store lost acknowledged events; events stored there up to the cursor's sequence will not be delivered",
			"stream", stream, "cursor", w.cursor, "last_stored_seq", st.LastSeq)
	}
	if w.d.cfg.Layout != streams.LayoutStreams {
		return
	}
	first := st.FirstSeq
	done := max(w.cursor, w.skip.Seq, w.expiredTo)
	if first <= done+1 {
		return
	}
	n := first - 1 - done
	w.expiredTo = first - 1
	w.d.m.Expired.Add(int(n))
	w.log.Error("inbound events expired before they were processed: acknowledged events lost (raise --in-max-age, or restart sooner)",
		"stream", stream, "cursor", w.cursor, "marker_seq", w.skip.Seq, "first_stored_seq", first, "events", n, "in_max_age", w.d.cfg.InMaxAge)
}
