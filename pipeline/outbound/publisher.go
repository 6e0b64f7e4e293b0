package outbound

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/pipeline/streams"
	"github.com/flashreturn/flashreturn/state/record"
)

// ErrFenced means FR_OUT refused a partition's batch or claim because the
// partition's marker chain moved on under another claim: another process
// owns the partition now.
var ErrFenced = errors.New("outbound: fenced by FR_OUT: another owner claimed the partition")

// Header names of JetStream's atomic batch publish (ADR-50) and of the
// per-subject sequence check.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
	hdrExpectSubj  = "Nats-Expected-Last-Subject-Sequence"
)

// JetStream error codes the publisher tells apart.
const (
	errWrongLastSeq  = 10071 // the chain moved: another owner, or our own earlier try landed
	errDuplicateID   = 10201 // an output is stored already: our own earlier try landed
	errBatchTooLarge = 10199 // the server's max_batch_size is below ours
	errTooMany       = 10210 // too many atomic batches in flight on the stream
)

// DefaultMaxBatch is the server's default (and largest usual) atomic
// batch size, markers included.
const DefaultMaxBatch = 1000

// Config is what a Publisher needs.
type Config struct {
	Conn *nats.Conn
	JS   jetstream.JetStream
	// Stream is FR_OUT's name: the stream that holds the outputs and the
	// markers.
	Stream string
	// Owner is the member name written into markers ("" for a single
	// daemon).
	Owner string
	// EpochHeader, when set, is the header that carries a batch's epoch on
	// every output (cluster.EpochHeader).
	EpochHeader string
	// MaxBatch bounds the messages of one atomic batch, markers included
	// (DefaultMaxBatch when 0).
	MaxBatch int
	// AckTimeout bounds the wait for a batch's commit answer (5 s when 0);
	// an unanswered batch is reconciled from the markers.
	AckTimeout time.Duration
	Log        *slog.Logger
	// Metrics is the set the publisher registers its metrics on.
	Metrics *metrics.Set
}

// part is the publisher's view of one partition it publishes for.
type part struct {
	p     int
	owner string
	epoch uint64
	claim uint64     // FR_OUT sequence of this process's claim marker; 0: not claimed
	last  uint64     // FR_OUT sequence of the partition's last marker
	pos   record.Pos // position the last marker covers
	queue []*Batch
	busy  bool // in the round in flight
	// listed says the partition is in Publisher.order (once at most).
	listed bool
}

// Publisher publishes every partition's outputs to FR_OUT as atomic
// batches ending with commit markers, one round at a time: a round takes
// the oldest queued batch of each partition that has one, up to MaxBatch
// messages, so that the cost of a batch (one commit on the server, a
// staging store fsynced on an R1 file stream) is shared by every
// partition with outputs. One goroutine runs it (Run); workers Claim,
// Submit and Release from theirs.
type Publisher struct {
	cfg    Config
	prefix string // random: batch IDs of two processes never collide

	mu     sync.Mutex
	parts  map[int]*part
	order  []int // partitions with a queue, in submit order (round fairness)
	idle   *sync.Cond
	wake   chan struct{}
	n      uint64
	stream jetstream.Stream
	max    int
	// inbox and replyCh receive the commits' answers (one subscription
	// for the publisher's life, made on first use).
	inbox   string
	replyCh chan *nats.Msg
	replySb *nats.Subscription

	m pubMetrics
}

// New makes a Publisher; Run starts it.
func New(cfg Config) *Publisher {
	if cfg.MaxBatch <= 1 || cfg.MaxBatch > DefaultMaxBatch {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	p := &Publisher{cfg: cfg, prefix: hex.EncodeToString(b[:]), parts: make(map[int]*part), wake: make(chan struct{}, 1), max: cfg.MaxBatch}
	p.idle = sync.NewCond(&p.mu)
	p.m = newPubMetrics(cfg.Metrics)
	return p
}

// Batch is one partition's outputs of one worker batch, in position
// order, handed to the Publisher. A worker reuses its Batch values: the
// result comes once per Submit on Done.
type Batch struct {
	p     int
	epoch string
	out   []record.OutMsg // to FR_OUT, in the atomic batch
	other []record.OutMsg // to other streams (FR_DLQ): published first, one by one
	last  record.Pos      // the position of the batch's last output
	sent  int             // out[:sent] are stored (with a marker)
	early bool            // other is stored
	res   chan error
	// Acked is when the batch's last marker was stored (or it failed).
	Acked  time.Time
	notify func() // OnDone's
}

// OnDone makes f be called, on the publisher's goroutine, right after
// each result is delivered on Done (a runner's wake-up: it must not
// block). Set it before the first Submit.
func (b *Batch) OnDone(f func()) { b.notify = f }

// NewBatch makes a reusable Batch.
func NewBatch() *Batch { return &Batch{res: make(chan error, 1)} }

// Reset makes b partition p's batch of msgs (which stay the caller's and
// must not change until the result) under epoch (the header's value; ""
// for none). Messages whose subject is not an output (fr.out.) go to
// their own streams first.
func (b *Batch) Reset(p int, epoch string, msgs []record.OutMsg) {
	b.p, b.epoch, b.sent, b.early, b.Acked = p, epoch, 0, false, time.Time{}
	b.out, b.other, b.last = b.out[:0], b.other[:0], record.Pos{}
	for i := range msgs {
		if strings.HasPrefix(msgs[i].Subject, "fr.out.") {
			b.out = append(b.out, msgs[i])
		} else {
			b.other = append(b.other, msgs[i])
		}
		if msgs[i].Pos.After(b.last) {
			b.last = msgs[i].Pos
		}
	}
}

// Done delivers the batch's result once: nil when FR_OUT holds all of it
// (and its markers), ErrFenced (wrapped) when another owner claimed the
// partition, or why it was dropped (Release, shutdown).
func (b *Batch) Done() <-chan error { return b.res }

// Len is the number of messages in the batch.
func (b *Batch) Len() int { return len(b.out) + len(b.other) }

// finish delivers err.
func (b *Batch) finish(err error) {
	b.Acked = time.Now()
	b.res <- err
	if b.notify != nil {
		b.notify()
	}
}

// Claim makes this process partition p's publisher under (owner, epoch):
// it writes a claim marker after the partition's last marker, checked by
// the server against it, so that from then on every batch of a former
// owner fails at FR_OUT. It returns the position the last marker
// covered: every output at or before it is in FR_OUT already.
func (p *Publisher) Claim(ctx context.Context, partition int, epoch uint64) (record.Pos, error) {
	s, err := p.streamHandle(ctx)
	if err != nil {
		return record.Pos{}, err
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	mk := Marker{Partition: partition, Kind: KindClaim, Owner: p.cfg.Owner, Epoch: epoch, Nonce: hex.EncodeToString(nonce[:])}
	// Read the last marker, write the claim after it with the server
	// checking that nothing came between, and retry on any failure: the
	// answer to a stored claim can be lost (then the next read finds it,
	// by its nonce), and a marker written between read and write (a
	// former owner's last batch landing) just moves the claim after it.
	// Only a newer epoch's marker ends the attempt: another member holds
	// the partition, and writing after it would fence a rightful owner.
	for attempt := 0; ; attempt++ {
		last, seq, err := Last(ctx, s, partition)
		if err == nil && last.Kind == KindClaim && last.Nonce == mk.Nonce {
			// Our own claim, whose answer was lost.
			return p.claimed(partition, epoch, seq, last.Pos()), nil
		}
		if err == nil && p.cfg.Owner != "" && last.Owner != "" && last.Epoch > epoch {
			p.m.rejections.Inc()
			return record.Pos{}, fmt.Errorf("%w: partition %d: claim of epoch %d after %s's epoch %d", ErrFenced, partition, epoch, last.Owner, last.Epoch)
		}
		if err == nil {
			mk.setPos(last.Pos())
			msg := nats.NewMsg(Subject(partition))
			msg.Data = mk.encode()
			var ack *jetstream.PubAck
			ack, err = p.cfg.JS.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(seq))
			if err == nil {
				return p.claimed(partition, epoch, ack.Sequence, last.Pos()), nil
			}
			err = fmt.Errorf("outbound: partition %d: claim marker: %w", partition, err)
		}
		p.cfg.Log.Warn("claim marker failed; retrying", "partition", partition, "attempt", attempt, "err", err)
		if !streams.Sleep(ctx, streams.Backoff(attempt)) {
			return record.Pos{}, err
		}
	}
}

// claimed records a stored claim.
func (p *Publisher) claimed(partition int, epoch, seq uint64, pos record.Pos) record.Pos {
	p.mu.Lock()
	defer p.mu.Unlock()
	pt := p.parts[partition]
	if pt == nil {
		pt = &part{p: partition}
		p.parts[partition] = pt
	}
	pt.owner, pt.epoch, pt.claim, pt.last, pt.pos = p.cfg.Owner, epoch, seq, seq, pos
	p.m.claims.Inc()
	return pos
}

// Submit queues b for publishing after the partition's earlier batches.
// Its result comes on b.Done().
func (p *Publisher) Submit(b *Batch) {
	p.mu.Lock()
	err := p.enqueue(b)
	p.mu.Unlock()
	if err != nil {
		b.finish(err)
		return
	}
	p.poke()
}

// SubmitAll submits every batch of bs, as Submit would one by one, but
// under one lock and with one wake-up: a runner hands its round's
// batches over together, so that the publisher's next round carries
// them all rather than the first alone.
func (p *Publisher) SubmitAll(bs []*Batch) {
	if len(bs) == 0 {
		return
	}
	var refused []*Batch
	var errs []error
	p.mu.Lock()
	for _, b := range bs {
		if err := p.enqueue(b); err != nil {
			refused, errs = append(refused, b), append(errs, err)
		}
	}
	p.mu.Unlock()
	for i, b := range refused {
		b.finish(errs[i])
	}
	p.poke()
}

// enqueue queues b behind its partition's batches; p.mu is held.
func (p *Publisher) enqueue(b *Batch) error {
	pt := p.parts[b.p]
	if pt == nil || pt.claim == 0 {
		return fmt.Errorf("outbound: partition %d: not claimed by this process", b.p)
	}
	if !pt.listed {
		p.order = append(p.order, b.p)
		pt.listed = true
	}
	pt.queue = append(pt.queue, b)
	return nil
}

// poke wakes Run; it never blocks.
func (p *Publisher) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Release stops publishing for partition p: its queued batches fail, and
// once Release returns nothing more of p is published by this process
// until it claims p again. A round that carries p and is still being
// written is waited for (it reads the worker's buffers); one already
// written may still be stored, or not, without anyone waiting for it:
// the next claim's marker settles which.
func (p *Publisher) Release(partition int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pt := p.parts[partition]
	if pt == nil {
		return
	}
	for pt.busy {
		p.idle.Wait()
	}
	p.failLocked(pt, fmt.Errorf("outbound: partition %d released", partition))
	pt.claim = 0
}

// failLocked fails every queued batch of pt.
func (p *Publisher) failLocked(pt *part, err error) {
	for _, b := range pt.queue {
		b.finish(err)
	}
	pt.queue = pt.queue[:0]
}

// replies returns the channel of the commits' answers, subscribing on
// first use.
func (p *Publisher) replies() (<-chan *nats.Msg, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.replySb == nil {
		p.inbox = p.cfg.Conn.NewInbox()
		p.replyCh = make(chan *nats.Msg, 64)
		sub, err := p.cfg.Conn.ChanSubscribe(p.inbox+".*", p.replyCh)
		if err != nil {
			return nil, fmt.Errorf("outbound: subscribe to the commits' answers: %w", err)
		}
		p.replySb = sub
	}
	return p.replyCh, nil
}

// streamHandle is FR_OUT's handle, looked up once.
func (p *Publisher) streamHandle(ctx context.Context) (jetstream.Stream, error) {
	p.mu.Lock()
	s := p.stream
	p.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := p.cfg.JS.Stream(ctx, p.cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("outbound: look up %s: %w", p.cfg.Stream, err)
	}
	p.mu.Lock()
	p.stream = s
	p.mu.Unlock()
	return s, nil
}

// Run publishes rounds until ctx ends, then fails what is still queued.
// Stop it only after the workers that submit to it have stopped.
//
// One round is in flight at a time: its answer gives each partition's
// new marker sequence, which the next round's checks name. Under load
// the queue fills while a round is out, so rounds grow (up to MaxBatch)
// and the per-batch cost is shared; idle, a round is one batch. A round
// that fails for a reason that passes (a timeout, a leader change, too
// many batches open) is retried with a backoff, so a partition's
// batches are stored in submit order or not at all.
func (p *Publisher) Run(ctx context.Context) {
	var r round
	attempt := 0
	for {
		if !p.next(ctx, &r) {
			p.mu.Lock()
			for _, pt := range p.parts {
				p.failLocked(pt, fmt.Errorf("outbound: partition %d: %w", pt.p, context.Cause(ctx)))
			}
			p.order = p.order[:0]
			for _, pt := range p.parts {
				pt.listed = false
			}
			if p.replySb != nil {
				_ = p.replySb.Unsubscribe()
				p.replySb = nil
			}
			p.mu.Unlock()
			return
		}
		ok := p.publish(ctx, &r)
		p.end(&r)
		if ok {
			attempt = 0
			continue
		}
		p.m.retries.Inc()
		p.m.publishErrs.Inc()
		if !streams.Sleep(ctx, streams.Backoff(attempt)) {
			continue // the next call to next sees ctx done
		}
		attempt++
	}
}
