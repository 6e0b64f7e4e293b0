package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/state/record"
)

// entry is one partition's share of a round: a chunk of its oldest
// queued batch and the commit marker that ends it.
type entry struct {
	pt     *part
	b      *Batch
	to     int        // the chunk is b.out[b.sent:to]
	pos    record.Pos // what the marker covers
	marker Marker
	// settled: the chunk is stored (advance) or its partition fenced.
	settled bool
}

// round is one atomic batch in the making.
type round struct {
	entries []entry
	msgs    int // messages, markers included
	early   []jetstream.PubAckFuture
}

// next waits for queued batches and builds the next round from the
// oldest batch of each partition, in the order partitions first queued
// (a partition that had a chunk goes to the back). It reports false when
// ctx ended.
func (p *Publisher) next(ctx context.Context, r *round) bool {
	for {
		p.mu.Lock()
		p.build(r)
		p.mu.Unlock()
		if len(r.entries) > 0 {
			return true
		}
		select {
		case <-p.wake:
		case <-ctx.Done():
			return false
		}
	}
}

// build fills r. Locked.
func (p *Publisher) build(r *round) {
	r.entries, r.msgs = r.entries[:0], 0
	kept := p.order[:0]
	var later []int
	for _, id := range p.order {
		pt := p.parts[id]
		if len(pt.queue) == 0 {
			pt.listed = false
			continue
		}
		if pt.busy {
			// Its oldest batch is in a round still in flight (one chunk
			// per partition at a time: the next marker's check needs the
			// answer): it stays listed for a later round.
			kept = append(kept, id)
			continue
		}
		// A round takes the partition's oldest batch whole when it fits,
		// else as much as fits: a batch of more outputs than a round holds
		// (a clock that fires thousands of timers) goes out in chunks,
		// one per round, each with a marker at its last output, so a
		// crash between chunks leaves a marker that says exactly which
		// outputs are in. A batch of dead letters only (no outputs) still
		// gets a marker: it moves the position past them.
		room := p.max - r.msgs - 1 // one for the marker
		b := pt.queue[0]
		rest := len(b.out) - b.sent
		if room < 1 && rest > 0 || room < 0 {
			kept = append(kept, id)
			continue
		}
		to := b.sent + min(rest, room)
		pos := b.last
		if to < len(b.out) {
			pos = b.out[to-1].Pos // a chunk of a batch larger than a round
		}
		pt.busy = true
		r.entries = append(r.entries, entry{pt: pt, b: b, to: to, pos: pos, marker: Marker{
			Partition: pt.p, Kind: KindCommit, Owner: pt.owner, Epoch: pt.epoch, Claim: pt.claim,
			Seq: pos.Seq, Idx: pos.Idx, Outputs: to - b.sent,
		}})
		r.msgs += to - b.sent + 1
		later = append(later, id)
	}
	p.order = append(kept, later...)
}

// end marks the round's partitions idle again and wakes Release.
func (p *Publisher) end(r *round) {
	p.written(r) // a round that failed before it was written
	// Anything left queued is the next round's.
	p.poke()
}

// publish sends the round and settles its entries; false means retry
// after a backoff.
func (p *Publisher) publish(ctx context.Context, r *round) bool {
	if !p.publishEarly(ctx, r) {
		return false
	}
	start := time.Now()
	ack, err := p.send(ctx, r)
	if err == nil {
		p.m.roundSeconds.UpdateDuration(start)
		p.m.rounds.Inc()
		p.m.roundMsgs.Update(float64(r.msgs))
		// The batch is stored contiguously and ends with the last entry's
		// marker: the entries' markers are at fixed offsets before it.
		seq := ack.Sequence
		for i := len(r.entries) - 1; i >= 0; i-- {
			e := &r.entries[i]
			size := uint64(e.to-e.b.sent) + 1
			p.advance(e, seq)
			seq -= size
		}
		return true
	}
	// Refusals that say nothing about who owns the partitions: the
	// server allows smaller batches than ours (its max_batch_size), or
	// has too many atomic batches open on the stream (other publishers).
	// The round was not stored; it goes again after a backoff.
	var ae *jetstream.APIError
	if errors.As(err, &ae) && ae.ErrorCode == errBatchTooLarge && p.max > 2 {
		p.mu.Lock()
		p.max /= 2
		p.mu.Unlock()
		p.cfg.Log.Warn("FR_OUT refused a batch as too large; halving the batch size", "max", p.max, "err", err)
		return false
	}
	if errors.As(err, &ae) && ae.ErrorCode == errTooMany {
		return false
	}
	if errors.As(err, &ae) && ae.ErrorCode == errDuplicateID {
		// Either the round was stored and its answer lost before (the
		// markers say so), or an output's Msg-Id is in FR_OUT already
		// though no marker covers it: an outbox written before positions
		// existed, or markers purged by hand. Sent atomically again it
		// would be refused for ever; what the markers do not cover goes
		// out once without atomicity (the server drops the duplicate).
		progress := p.reconcile(ctx, r, err)
		return p.publishLenient(ctx, r) || progress
	}
	p.cfg.Log.Debug("atomic batch not acknowledged; reconciling from the markers", "messages", r.msgs, "err", err)
	return p.reconcile(ctx, r, err)
}

// advance records that e's chunk and marker are stored, the marker at
// FR_OUT sequence seq, and finishes its batch when it is whole.
func (p *Publisher) advance(e *entry, seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pt := e.pt
	if pt.claim != e.marker.Claim {
		return // released meanwhile: the queue is gone
	}
	pt.last, pt.pos = seq, e.pos
	e.b.sent = e.to
	e.settled = true
	if e.b.sent < len(e.b.out) || len(pt.queue) == 0 || pt.queue[0] != e.b {
		return
	}
	pt.queue = pt.queue[1:]
	e.b.finish(nil)
}

// reconcile settles a round whose answer was an error or did not come:
// the round may be stored or not (atomically). Each entry's partition's
// last marker tells: a marker of this claim at or past the entry's
// position (stored), the marker the entry expected (not stored: retry),
// or another claim's (fenced). It reports whether it settled any entry:
// progress, after which the rest goes again at once, without a backoff.
func (p *Publisher) reconcile(ctx context.Context, r *round, cause error) bool {
	s, err := p.streamHandle(ctx)
	if err != nil {
		return false
	}
	progress := false
	// One deadline for the whole reconcile: a drain waits for it.
	rctx, cancel := context.WithTimeout(ctx, max(p.cfg.AckTimeout, markerReadTimeout))
	defer cancel()
	for i := range r.entries {
		e := &r.entries[i]
		if e.settled || p.claimOf(e.pt) != e.marker.Claim {
			// Released (and maybe claimed again) while the round was out:
			// nothing of this process waits for it any more.
			e.settled = true
			continue
		}
		m, seq, err := Last(rctx, s, e.pt.p)
		switch {
		case err != nil:
			p.cfg.Log.Warn("read marker to reconcile a batch", "partition", e.pt.p, "err", err)
			return false
		case m.Kind == KindCommit && m.Claim == e.marker.Claim && !e.pos.After(m.Pos()):
			p.advance(e, seq)
			progress = true
		case seq == p.lastOf(e.pt):
			// Not stored; it goes again with the next round.
		default:
			progress = true
			p.m.rejections.Inc()
			p.cfg.Log.Error("FR_OUT refused a batch: the partition was claimed by another owner; stopping its publishing",
				"partition", e.pt.p, "epoch", e.marker.Epoch, "new_owner", m.Owner, "new_epoch", m.Epoch, "marker_seq", seq, "err", cause)
			p.mu.Lock()
			e.settled = true
			if e.pt.claim == e.marker.Claim {
				p.failLocked(e.pt, fmt.Errorf("%w: partition %d: marker %d is %s's (epoch %d): %w", ErrFenced, e.pt.p, seq, m.Owner, m.Epoch, cause))
				e.pt.claim = 0
			}
			p.mu.Unlock()
		}
	}
	return progress
}

// publishLenient stores the round's unsettled chunks without an atomic
// batch: each output with its Msg-Id (a duplicate is dropped by the
// server, as before commit markers), awaited, then each marker alone with
// its check. It is the way out of a round FR_OUT refuses for a Msg-Id it
// holds already; counted in flashreturn_outbound_lenient_total. It
// reports false when something failed (the round goes again).
func (p *Publisher) publishLenient(ctx context.Context, r *round) bool {
	p.m.lenient.Inc()
	p.cfg.Log.Warn("FR_OUT holds an output of a round no marker covers; storing the round without atomicity", "messages", r.msgs)
	var futures []jetstream.PubAckFuture
	for i := range r.entries {
		e := &r.entries[i]
		if e.settled || p.claimOf(e.pt) != e.marker.Claim {
			continue
		}
		for j := e.b.sent; j < e.to; j++ {
			o := &e.b.out[j]
			f, err := p.cfg.JS.PublishMsgAsync(p.outMsg(o, e.b.epoch), jetstream.WithMsgID(o.MsgID), jetstream.WithStallWait(p.cfg.AckTimeout))
			if err != nil {
				return false
			}
			futures = append(futures, f)
		}
	}
	if err := p.awaitAll(ctx, futures); err != nil {
		return false
	}
	for i := range r.entries {
		e := &r.entries[i]
		if e.settled {
			continue
		}
		msg := nats.NewMsg(Subject(e.pt.p))
		msg.Data = e.marker.encode()
		mctx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
		ack, err := p.cfg.JS.PublishMsg(mctx, msg, jetstream.WithExpectLastSequencePerSubject(p.lastOf(e.pt)))
		cancel()
		if err != nil {
			return false // the next round's reconcile settles it
		}
		p.advance(e, ack.Sequence)
	}
	return true
}

// markerReadTimeout bounds reading a partition's last marker to settle
// an unanswered round, however short AckTimeout is.
const markerReadTimeout = 5 * time.Second

// claimOf is pt's claim sequence (0: not claimed by this process).
func (p *Publisher) claimOf(pt *part) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return pt.claim
}

// lastOf is pt's last marker sequence.
func (p *Publisher) lastOf(pt *part) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return pt.last
}

// publishEarly publishes, before the atomic batch, the round's messages
// to other streams (dead letters) that are not stored yet, each with its
// deterministic Msg-Id, and waits for them: the markers then cover them.
func (p *Publisher) publishEarly(ctx context.Context, r *round) bool {
	r.early = r.early[:0]
	for i := range r.entries {
		b := r.entries[i].b
		if b.early {
			continue
		}
		for j := range b.other {
			o := &b.other[j]
			f, err := p.cfg.JS.PublishMsgAsync(p.outMsg(o, b.epoch), jetstream.WithMsgID(o.MsgID), jetstream.WithStallWait(p.cfg.AckTimeout))
			if err != nil {
				p.cfg.Log.Warn("publish dead letter", "subject", o.Subject, "err", err)
				return false
			}
			r.early = append(r.early, f)
		}
	}
	if err := p.awaitAll(ctx, r.early); err != nil {
		p.cfg.Log.Warn("publish dead letters", "err", err)
		return false
	}
	for i := range r.entries {
		r.entries[i].b.early = true
	}
	return true
}

// pubAck is the server's answer to an atomic batch's commit.
type pubAck struct {
	Sequence uint64 `json:"seq"`
	Count    int    `json:"count"`
	Error    *struct {
		Code        int    `json:"code"`
		ErrorCode   int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// send publishes the round as one atomic batch (every message but the
// last without a reply; the last, a marker, commits it) and returns the
// commit's answer.
func (p *Publisher) send(ctx context.Context, r *round) (pubAck, error) {
	replies, err := p.replies()
	if err != nil {
		return pubAck{}, err
	}
	p.mu.Lock()
	p.n++
	id := p.prefix + "-" + strconv.FormatUint(p.n, 36)
	p.mu.Unlock()
	reply := p.inbox + "." + id
	// Every message but the last goes out without a reply subject: the
	// server answers only the commit, and a message lost on the way (a
	// reconnect mid-batch) shows as a gap in Nats-Batch-Sequence, which
	// makes the server abandon the whole batch ("incomplete"): the
	// commit's answer, or its absence, speaks for all of them. One
	// connection keeps them in order up to the stream's leader.
	n := 0
	publish := func(msg *nats.Msg) error {
		n++
		msg.Header.Set(hdrBatchID, id)
		msg.Header.Set(hdrBatchSeq, strconv.Itoa(n))
		if n == r.msgs {
			msg.Header.Set(hdrBatchCommit, "1")
			msg.Reply = reply
		}
		return p.cfg.Conn.PublishMsg(msg)
	}
	// Once written, the round no longer reads its batches' buffers (the
	// client copied every message): a partition being released need not
	// wait for the answer, which can take AckTimeout and a reconcile.
	defer p.written(r)
	for i := range r.entries {
		e := &r.entries[i]
		for j := e.b.sent; j < e.to && err == nil; j++ {
			o := &e.b.out[j]
			msg := p.outMsg(o, e.b.epoch)
			msg.Header.Set(jetstream.MsgIDHeader, o.MsgID)
			err = publish(msg)
		}
		if err != nil {
			return pubAck{}, fmt.Errorf("outbound: publish: %w", err)
		}
		// The marker is stored only if the partition's last marker is
		// still the one this process knows: its own previous marker or its
		// claim. A newer claim makes the check, and so the whole batch,
		// fail; the server checks it when the batch commits, so nothing of
		// the batch is visible to anyone before.
		msg := nats.NewMsg(Subject(e.pt.p))
		msg.Data = e.marker.encode()
		msg.Header.Set(hdrExpectSubj, strconv.FormatUint(p.lastOf(e.pt), 10))
		if err = publish(msg); err != nil {
			return pubAck{}, fmt.Errorf("outbound: commit batch of %d messages: %w", r.msgs, err)
		}
	}
	p.written(r)
	answer, err := awaitReply(ctx, replies, reply, p.cfg.AckTimeout)
	if err != nil {
		return pubAck{}, fmt.Errorf("outbound: commit batch of %d messages: %w", r.msgs, err)
	}
	var ack pubAck
	if err := json.Unmarshal(answer.Data, &ack); err != nil {
		return pubAck{}, fmt.Errorf("outbound: commit answer %q: %w", answer.Data, err)
	}
	if ack.Error != nil {
		return pubAck{}, &jetstream.APIError{Code: ack.Error.Code, ErrorCode: jetstream.ErrorCode(ack.Error.ErrorCode), Description: ack.Error.Description}
	}
	if ack.Count != r.msgs {
		return pubAck{}, fmt.Errorf("outbound: batch of %d messages acknowledged with count %d", r.msgs, ack.Count)
	}
	return ack, nil
}

// outMsg is the NATS message of a stored output, with the epoch header
// when the batch has one (its Msg-Id is set by the caller: as a header in
// an atomic batch, as a publish option otherwise).
func (p *Publisher) outMsg(o *record.OutMsg, epoch string) *nats.Msg {
	msg := nats.NewMsg(o.Subject)
	msg.Data = o.Data
	if epoch != "" && p.cfg.EpochHeader != "" {
		msg.Header.Set(p.cfg.EpochHeader, epoch)
	}
	return msg
}

// awaitAll waits for every future's answer, at most AckTimeout in all:
// the first error, a timeout or the end of ctx fails it.
func (p *Publisher) awaitAll(ctx context.Context, futures []jetstream.PubAckFuture) error {
	timeout := time.NewTimer(p.cfg.AckTimeout)
	defer timeout.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
		case <-timeout.C:
			return errNoAnswer
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// errNoAnswer means a round's commit got no answer in time: it may be
// stored or not (reconcile tells).
var errNoAnswer = errors.New("no answer in time")

// awaitReply waits up to timeout for the answer on subject, dropping the
// late answers of earlier rounds that come first.
func awaitReply(ctx context.Context, replies <-chan *nats.Msg, subject string, timeout time.Duration) (*nats.Msg, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case m := <-replies:
			if m.Subject == subject {
				return m, nil
			}
		case <-t.C:
			return nil, errNoAnswer
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// written marks the round's partitions as no longer being written (their
// batches' buffers are free) and wakes Release. Idempotent.
func (p *Publisher) written(r *round) {
	p.mu.Lock()
	for i := range r.entries {
		r.entries[i].pt.busy = false
	}
	p.mu.Unlock()
	p.idle.Broadcast()
}

// pubMetrics are the publisher's metrics.
type pubMetrics struct {
	rounds, retries, rejections, claims, lenient *metrics.Counter
	// publishErrs is the daemon's flashreturn_publish_errors_total (the
	// commit-or-publish alert reads it): a round that failed is one.
	publishErrs             *metrics.Counter
	roundMsgs, roundSeconds *metrics.PrometheusHistogram
}

func newPubMetrics(set *metrics.Set) pubMetrics {
	if set == nil {
		set = metrics.NewSet()
	}
	return pubMetrics{
		rounds:       set.GetOrCreateCounter("flashreturn_outbound_batches_total"),
		retries:      set.GetOrCreateCounter("flashreturn_outbound_retries_total"),
		rejections:   set.GetOrCreateCounter("flashreturn_fencing_rejections_total"),
		claims:       set.GetOrCreateCounter("flashreturn_fencing_claims_total"),
		lenient:      set.GetOrCreateCounter("flashreturn_outbound_lenient_total"),
		publishErrs:  set.GetOrCreateCounter("flashreturn_publish_errors_total"),
		roundMsgs:    set.GetOrCreatePrometheusHistogramExt("flashreturn_outbound_batch_messages", metrics.ExponentialBuckets(1, 2, 11)),
		roundSeconds: set.GetOrCreatePrometheusHistogramExt("flashreturn_outbound_batch_seconds", metrics.ExponentialBuckets(50e-6, 2, 20)),
	}
}
