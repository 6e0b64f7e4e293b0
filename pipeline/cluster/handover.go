package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/ownership"
	"github.com/flashreturn/flashreturn/pipeline/streams"
	"github.com/flashreturn/flashreturn/state"
)

// A claimed partition's life on this daemon (its slot: restore, worker,
// release) and the handover of its state through the FR_SNAPSHOTS object
// store; internal/ownership decides each step.
//
// A snapshot is [state.Store.ExportPartition]'s stream (users, timers,
// traces, cursor, clock, outbox; CRC-checked), streamed into an object
// named p<p>-e<epoch>-c<cursor> (ownership.SnapshotName) without a
// temporary file. An object only becomes the partition's snapshot when the owner record in FR_OWNERS is
// switched to it by a compare-and-set under the writer's claim, so an
// upload by a daemon that lost its claim is never used (and is deleted by
// the next owner's clean-up). The object store writes a new object's
// chunks before its metadata, so a failed upload leaves the previous
// snapshot intact. A restore reads an object's chunks through a consumer
// of its own (objectReader), so that a stop, the stall watchdog or the
// deadline ends a stalled download at once, and checks the object's size
// and SHA-256 digest before the import can complete.

// RestoreInfo describes how a partition's state was brought in on its last
// claim by this daemon.
type RestoreInfo struct {
	// Source is "snapshot" (imported from FR_SNAPSHOTS), "local" (the local
	// copy was as new as the snapshot) or "empty" (no state anywhere).
	Source         string  `json:"source"`
	Snapshot       string  `json:"snapshot,omitempty"`
	SnapshotCursor uint64  `json:"snapshot_cursor"`
	LocalCursor    uint64  `json:"local_cursor"`
	Bytes          int64   `json:"bytes"`
	Seconds        float64 `json:"seconds"`
}

// slot is the IO side of a partition this daemon claimed: its worker's
// goroutine, from the claim until the release is written or the claim
// dropped. Its decision state lives in the machine.
type slot struct {
	c     *Cluster
	p     int
	epoch uint64
	rec   ownership.Record // the record claimed

	cancel context.CancelFunc
	done   chan struct{} // closed once the worker ended and its release is settled

	// mu serialises the snapshot and record writes of the partition: a
	// periodic snapshot and its pointer, then the release.
	mu        sync.Mutex
	stopAsked atomic.Int64 // ns since t0 when a stop was asked (0: none)
	restore   atomic.Pointer[RestoreInfo]
}

// check is the worker's fence: nil while the claim holds.
func (s *slot) check() error {
	switch r := s.c.fence(s.p, s.epoch); r {
	case "":
		return nil
	case ownership.ReasonSuperseded:
		return fmt.Errorf("%w (epoch %d superseded)", ErrFenced, s.epoch)
	default:
		return fmt.Errorf("%w (%s, epoch %d)", ErrFenced, r, s.epoch)
	}
}

// start registers the slot of a partition just claimed and starts its
// goroutine.
func (c *Cluster) start(ctx context.Context, a ownership.Action) {
	c.m.claims.Inc()
	c.log.Info("partition claimed", "partition", a.P, "epoch", a.Epoch, "snapshot", a.Record.Snapshot, "snapshot_cursor", a.Record.Cursor)
	s := &slot{c: c, p: a.P, epoch: a.Epoch, rec: a.Record, done: make(chan struct{})}
	var wctx context.Context
	wctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.mu.Lock()
	c.slots[a.P] = s
	c.mu.Unlock()
	c.slotWG.Go(func() { c.runSlot(wctx, s) })
}

// runSlot restores partition s.p, runs its worker until stopped or
// fenced, then reports the end to the machine and carries out what it
// asks (the release), before closing s.done.
func (c *Cluster) runSlot(ctx context.Context, s *slot) {
	defer close(s.done)
	if err := c.restore(ctx, s); err != nil {
		if ctx.Err() == nil {
			c.log.Error("partition restore failed", "partition", s.p, "err", err)
		}
	} else {
		c.cleanSnapshots(ctx, s.p, s.rec.Snapshot)
		c.mu.Lock()
		c.sm.Running(s.p, s.epoch)
		c.mu.Unlock()
		err := c.h.RunPartition(ctx, s.p, s.check, strconv.FormatUint(s.epoch, 10))
		if err != nil && !errors.Is(err, ErrFenced) {
			c.log.Error("partition worker stopped", "partition", s.p, "err", err)
		}
	}
	// The release (or the drop) of the claim, after any periodic snapshot
	// of the partition in flight.
	s.mu.Lock()
	defer s.mu.Unlock()
	cursor := c.h.Committed(s.p)
	c.drive(c.hard, c.step(func(m *ownership.Machine, now int64) []ownership.Action {
		return m.Stopped(now, s.p, s.epoch, cursor)
	}))
}

// snapshot writes a snapshot the machine asked for. A release's is bound
// by the drain (and the machine's deadline), not by the reconcile loop.
func (c *Cluster) snapshot(ctx context.Context, a ownership.Action) []ownership.Action {
	sctx := ctx
	if a.Purpose == ownership.ForRelease {
		sctx = c.hard
		if a.Deadline != 0 {
			var cancel context.CancelFunc
			sctx, cancel = context.WithDeadline(sctx, c.t0.Add(time.Duration(a.Deadline)))
			defer cancel()
		}
	}
	_, err := c.putSnapshot(sctx, a.P, a.Object, a.Cursor)
	if err != nil {
		if a.Purpose == ownership.ForRelease {
			c.log.Warn("release snapshot failed; the next owner replays from the previous one", "partition", a.P, "err", err)
		} else {
			c.log.Warn("periodic snapshot failed", "partition", a.P, "err", err)
		}
	}
	return c.step(func(m *ownership.Machine, now int64) []ownership.Action {
		return m.SnapshotDone(now, a.P, a.Epoch, a.Object, err == nil)
	})
}

// snapshotter reports the owned partitions' progress, each at most every
// SnapshotInterval/4 (10 s at most), one at a time, and writes the
// periodic snapshots the machine asks for.
func (c *Cluster) snapshotter(ctx context.Context) {
	every := min(c.o.SnapshotInterval/4, 10*time.Second)
	t := time.NewTicker(max(every, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, s := range c.slotList() {
			if ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			cursor := c.h.Committed(s.p) // a lower bound of the export's cursor
			c.drive(ctx, c.step(func(m *ownership.Machine, now int64) []ownership.Action {
				return m.Progress(now, s.p, s.epoch, cursor)
			}))
			s.mu.Unlock()
		}
	}
}

// PutSnapshot exports partition p of store into obs under name and
// returns the bytes written. Metadata records the partition and cursor.
// The export reads one consistent Badger snapshot, so it may run while the
// partition's worker commits.
func PutSnapshot(ctx context.Context, store *state.Store, obs jetstream.ObjectStore, p int, name string, cursor uint64) (int64, error) {
	pr, pw := io.Pipe()
	exported := make(chan error, 1)
	go func() {
		err := store.ExportPartition(ctx, p, pw)
		pw.CloseWithError(err)
		exported <- err
	}()
	info, err := obs.Put(ctx, jetstream.ObjectMeta{
		Name:     name,
		Metadata: map[string]string{"partition": strconv.Itoa(p), "cursor": strconv.FormatUint(cursor, 10)},
	}, pr)
	pr.CloseWithError(errors.New("snapshot upload ended")) // unblocks the exporter if Put gave up
	if eerr := <-exported; eerr != nil && err == nil {
		err = eerr
	}
	if err != nil {
		return 0, fmt.Errorf("snapshot partition %d to %s: %w", p, name, err)
	}
	return int64(info.Size), nil
}

// GetSnapshot imports the snapshot name from obs (a bucket of js) into
// partition p of store (which must not be open) and returns the bytes
// read. The import replaces whatever p held; until it completes, the
// partition reports state.ErrImportIncomplete. The download ends within
// about a second of ctx's end (a cancel, its deadline) or of
// restoreStall without a byte, and an object whose chunks do not add up
// to its size and SHA-256 digest fails before the import can complete.
func GetSnapshot(ctx context.Context, store *state.Store, js jetstream.JetStream, obs jetstream.ObjectStore, p int, name string) (int64, error) {
	if _, ok := ctx.Deadline(); !ok {
		// Without a deadline nats.go would bound each request by its
		// default API timeout (5 s); restoreTimeout bounds the whole
		// download and import instead.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, restoreTimeout)
		defer cancel()
	}
	// A download whose chunks stop coming (the consumer behind it lost
	// with a NATS node) is abandoned after restoreStall without progress,
	// so that the caller retries instead of waiting for the deadline.
	ctx, cancel := context.WithCancelCause(ctx)
	// The watchdog is GetSnapshot's: it ends with ctx, cancelled on every
	// return (deferred cancel runs before the deferred Wait).
	var watchdog sync.WaitGroup
	defer watchdog.Wait()
	defer cancel(nil)
	cr := &countReader{}
	watchdog.Go(func() {
		t := time.NewTicker(restoreStall / 4)
		defer t.Stop()
		last, since := int64(-1), time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if n := cr.n.Load(); n != last {
					last, since = n, now
				} else if now.Sub(since) >= restoreStall {
					cancel(fmt.Errorf("no snapshot bytes for %s", restoreStall))
					return
				}
			}
		}
	})
	fail := func(err error) error {
		return fmt.Errorf("restore partition %d from %s: %w", p, name, errors.Join(err, context.Cause(ctx)))
	}
	info, err := obs.GetInfo(ctx, name)
	if err != nil {
		return 0, fail(err)
	}
	r, err := openObject(ctx, js, info)
	if err != nil {
		return 0, fail(err)
	}
	defer r.close()
	cr.r = r
	if err := store.ImportPartition(ctx, p, cr); err != nil {
		return cr.n.Load(), fail(err)
	}
	return cr.n.Load(), nil
}

// The download of a snapshot object. nats.go's ObjectStore.Get (v1.55.0)
// is not used for it: its reader blocks in a pipe read bounded only by the
// context's deadline, and checks the context only around that read, so a
// download whose chunks stopped coming held its caller (a draining
// member) until the 10-minute restoreTimeout, whatever the cancel or the
// stall watchdog said. objectReader reads the chunks with a consumer of
// its own (what an ordered consumer creates: AckNone, one replica, in
// memory) through a pull iterator whose every wait takes the context.
// jetstream's OrderedConsumer is not used either: on a lost consumer it
// recreates it inside Next under context.Background (10 s per attempt,
// holding the lock Stop needs), which is again a wait the context cannot
// end. A lost consumer (missing heartbeats, its deletion, a gap in its
// deliveries) fails the download instead, and the restore retries it.
const (
	// objectPull is how many chunks the iterator asks for at once (at
	// most 2 MiB: chunks are 128 KiB at most), objectExpiry and
	// objectHeartbeat the life of its pull requests and the server's idle
	// heartbeat on them: two missed heartbeats (5 s) end the download.
	objectPull      = 16
	objectExpiry    = 10 * time.Second
	objectHeartbeat = 2500 * time.Millisecond
	// objectIdle deletes a consumer the download could not delete itself
	// (the server did not answer within objectDelete) once it has had no
	// pull request for that long.
	objectIdle   = time.Minute
	objectDelete = time.Second
)

// objectReader reads a snapshot object's chunks in order through its own
// consumer and checks them against the object's size and digest: the
// last chunk is handed out only once the whole object has matched, so a
// reader that needs the object's last bytes (an import needs its trailer
// and checksum) never completes on a wrong object.
type objectReader struct {
	ctx      context.Context
	js       jetstream.JetStream
	info     *jetstream.ObjectInfo
	stream   string
	consumer string
	msgs     jetstream.MessagesContext
	digest   []byte    // the SHA-256 the metadata promises
	h        hash.Hash // of the chunks received
	got      uint64    // bytes received
	seq      uint64    // the consumer's last delivery sequence
	buf      []byte    // the current chunk's bytes not read yet
	last     bool      // the last chunk was received and checked
}

// openObject starts the download of the object info describes. The caller
// must close the reader it returns.
func openObject(ctx context.Context, js jetstream.JetStream, info *jetstream.ObjectInfo) (*objectReader, error) {
	if info.Opts != nil && info.Opts.Link != nil {
		// PutSnapshot never makes links; a link here is not a snapshot.
		return nil, fmt.Errorf("object %s is a link to %s/%s, not a snapshot", info.Name, info.Opts.Link.Bucket, info.Opts.Link.Name)
	}
	if info.NUID == "" || info.Bucket == "" {
		return nil, fmt.Errorf("object %s: %w", info.Name, jetstream.ErrBadObjectMeta)
	}
	if info.Size == 0 {
		return nil, fmt.Errorf("object %s is empty, which no snapshot is", info.Name)
	}
	if !strings.HasPrefix(info.Digest, digestPrefix) {
		return nil, fmt.Errorf("object %s: digest %q is not %s: %w", info.Name, info.Digest, strings.TrimSuffix(digestPrefix, "="), jetstream.ErrInvalidDigestFormat)
	}
	digest, err := jetstream.DecodeObjectDigest(info.Digest)
	if err != nil || len(digest) != sha256.Size {
		return nil, fmt.Errorf("object %s: digest %q: %w", info.Name, info.Digest, jetstream.ErrInvalidDigestFormat)
	}
	r := &objectReader{ctx: ctx, js: js, info: info, stream: "OBJ_" + info.Bucket, digest: digest, h: sha256.New(),
		consumer: "fr_restore_" + rand.Text()}
	cons, err := js.CreateConsumer(ctx, r.stream, jetstream.ConsumerConfig{
		Name:              r.consumer,
		Description:       "flashreturn snapshot download of " + info.Name,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		FilterSubject:     "$O." + info.Bucket + ".C." + info.NUID,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: objectIdle,
	})
	if err != nil {
		r.close() // the request may have created it (a cancel, a lost answer)
		return nil, fmt.Errorf("object %s: consumer of its chunks: %w", info.Name, err)
	}
	r.msgs, err = cons.Messages(jetstream.PullMaxMessages(objectPull), jetstream.PullExpiry(objectExpiry),
		jetstream.PullHeartbeat(objectHeartbeat), jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		r.close()
		return nil, fmt.Errorf("object %s: read its chunks: %w", info.Name, err)
	}
	return r, nil
}

// digestPrefix starts an object's digest: SHA-256 is the only one.
const digestPrefix = "SHA-256="

// Read reads the object's bytes, waiting for its next chunk (until ctx
// ends) when it has handed out the previous one.
func (r *objectReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.last {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// next receives the next chunk into r.buf, and checks the object when it
// is the last.
func (r *objectReader) next() error {
	m, err := r.msgs.Next(jetstream.NextContext(r.ctx))
	if err != nil {
		return fmt.Errorf("download of %s stopped after %d of %d bytes: %w", r.info.Name, r.got, r.info.Size, err)
	}
	md, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("download of %s: chunk %d: %w", r.info.Name, r.seq+1, err)
	}
	if md.Sequence.Consumer != r.seq+1 {
		return fmt.Errorf("download of %s: chunk %d lost (delivery %d came next)", r.info.Name, r.seq+1, md.Sequence.Consumer)
	}
	r.seq++
	data := m.Data()
	r.got += uint64(len(data))
	if r.got > r.info.Size {
		return fmt.Errorf("object %s: its chunks hold more than its %d bytes", r.info.Name, r.info.Size)
	}
	r.h.Write(data)
	if md.NumPending == 0 || r.got == r.info.Size {
		if r.got != r.info.Size {
			return fmt.Errorf("object %s truncated: its %d chunks hold %d of its %d bytes", r.info.Name, r.seq, r.got, r.info.Size)
		}
		if !bytes.Equal(r.h.Sum(nil), r.digest) {
			return fmt.Errorf("object %s: %w: its chunks hash to %s, its metadata says %s",
				r.info.Name, jetstream.ErrDigestMismatch, jetstream.GetObjectDigestValue(r.h), r.info.Digest)
		}
		r.last = true
	}
	r.buf = data
	return nil
}

// close stops the iterator and deletes the consumer, waiting at most
// objectDelete for the server (objectIdle removes what it leaves).
func (r *objectReader) close() {
	if r.msgs != nil {
		r.msgs.Stop()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), objectDelete)
	defer cancel()
	_ = r.js.DeleteConsumer(ctx, r.stream, r.consumer)
}

// restoreTimeout bounds one snapshot download and import when the caller
// set no deadline; restoreStall bounds a download making no progress (a
// variable for its test, which shortens it; nothing else sets it).
const restoreTimeout = 10 * time.Minute

var restoreStall = 15 * time.Second

// countReader counts the bytes read through it, for the restore's stall
// watchdog (which runs on another goroutine, hence the atomic) and its
// metrics.
type countReader struct {
	r io.Reader
	n atomic.Int64
}

// Read reads from the wrapped reader and counts what it got.
func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// putSnapshot is PutSnapshot with the daemon's metrics.
func (c *Cluster) putSnapshot(ctx context.Context, p int, name string, cursor uint64) (int64, error) {
	start := time.Now()
	n, err := PutSnapshot(ctx, c.store, c.snaps, p, name, cursor)
	if err != nil {
		c.m.snapshotErrors.Inc()
		return 0, err
	}
	c.m.snapshots.Inc()
	c.m.snapshotBytes.Add(int(n))
	c.m.snapshotSecs.UpdateDuration(start)
	c.log.Debug("snapshot stored", "partition", p, "object", name, "bytes", n, "seconds", time.Since(start).Seconds())
	return n, nil
}

// deleteSnapshot removes an object, best effort ("" is a no-op).
func (c *Cluster) deleteSnapshot(name string) {
	if name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.hard), c.o.LeaseTTL)
	defer cancel()
	if err := c.snaps.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		c.log.Debug("delete snapshot", "object", name, "err", err)
	}
}

// cleanSnapshots deletes partition p's objects other than keep: uploads
// by earlier owners that never became the snapshot.
func (c *Cluster) cleanSnapshots(ctx context.Context, p int, keep string) {
	lctx, cancel := context.WithTimeout(ctx, c.o.LeaseTTL)
	defer cancel()
	objs, err := c.snaps.List(lctx)
	if err != nil {
		return
	}
	for _, o := range objs {
		if q, ok := ownership.SnapshotPartition(o.Name); ok && q == p && o.Name != keep {
			c.deleteSnapshot(o.Name)
		}
	}
}

// restore brings partition s.p's state in before its worker starts, as
// the machine's plan says (ownership.Machine.PlanRestore: the claimed
// record's snapshot when it is ahead of the local copy or the local copy
// is an incomplete import, else the local copy). It retries a failed
// download until it succeeds or ctx ends, rather than fall back to
// replaying the whole stream (correct, since the commit markers keep the
// replay from publishing what FR_OUT holds, but slow); a snapshot object
// that is gone falls back to the local copy, or to an empty partition,
// with an error logged.
func (c *Cluster) restore(ctx context.Context, s *slot) error {
	select {
	case c.restores <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.restores }()
	start := time.Now()
	p, store := s.p, c.store
	var local ownership.Local
	pt, err := store.Partition(p)
	switch {
	case err == nil:
		local.Cursor = pt.Cursor()
		pt.Release()
	case errors.Is(err, state.ErrImportIncomplete):
		local.Incomplete = true
	default:
		return fmt.Errorf("partition %d: open local state: %w", p, err)
	}
	c.mu.Lock()
	plan, ok := c.sm.PlanRestore(p, s.epoch, local)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("partition %d: %w (epoch %d gone before its restore)", p, ErrFenced, s.epoch)
	}
	info := RestoreInfo{Source: string(plan.Source), Snapshot: plan.Snapshot, SnapshotCursor: plan.SnapshotCursor, LocalCursor: plan.LocalCursor}
	switch {
	case plan.Source == ownership.SourceSnapshot:
		dropped := false
		for attempt := 0; ; attempt++ {
			var err error
			if !dropped {
				// Make sure the snapshot exists before giving up the local
				// copy, then drop the copy: the import then clears nothing,
				// so the download's stall watchdog times the download alone.
				if _, err = c.snaps.GetInfo(ctx, plan.Snapshot); err == nil {
					err = store.DropPartition(ctx, p)
					dropped = err == nil
				}
			}
			if err == nil {
				var n int64
				if n, err = GetSnapshot(ctx, store, c.data, c.snaps, p, plan.Snapshot); err == nil {
					info.Bytes = n
					break
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrObjectNotFound) {
				c.log.Error("snapshot object missing; replaying what the local copy lacks from FR_IN", "partition", p, "object", plan.Snapshot, "local_cursor", info.LocalCursor, "local_dropped", dropped)
				info.Source = string(ownership.SourceLocal)
				if dropped || local.Incomplete {
					if err := store.DropPartition(ctx, p); err != nil {
						return err
					}
					info.LocalCursor = 0
				}
				if info.LocalCursor == 0 {
					info.Source = string(ownership.SourceEmpty)
				}
				break
			}
			c.log.Warn("snapshot restore failed; retrying", "partition", p, "attempt", attempt, "err", err)
			if !streams.Sleep(ctx, streams.Backoff(attempt)) {
				return ctx.Err()
			}
		}
	case plan.DropLocal:
		if err := store.DropPartition(ctx, p); err != nil {
			return err
		}
	}
	info.Seconds = time.Since(start).Seconds()
	c.m.restoreSecs.UpdateDuration(start)
	s.restore.Store(&info)
	found := uint64(0)
	switch ownership.Source(info.Source) {
	case ownership.SourceSnapshot:
		found = info.SnapshotCursor
	case ownership.SourceLocal:
		found = info.LocalCursor
	}
	if plan.Expected > found {
		// A hand-over restores exactly where the old owner stopped; here
		// the events in between are applied again (their outputs at or
		// before the last commit marker are not published again).
		c.log.Error("partition restored below the cursor its previous owner released it at", "partition", p, "epoch", s.epoch,
			"expected_cursor", plan.Expected, "found_cursor", found, "source", info.Source, "snapshot", info.Snapshot)
	}
	c.log.Info("partition restored", "partition", p, "epoch", s.epoch, "source", info.Source,
		"snapshot_cursor", info.SnapshotCursor, "local_cursor", info.LocalCursor, "bytes", info.Bytes, "seconds", info.Seconds)
	return nil
}
