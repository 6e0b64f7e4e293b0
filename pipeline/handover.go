package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/state"
)

// Partition state handover through the FR_SNAPSHOTS object store.
//
// A snapshot is [state.Store.ExportPartition]'s stream (users, timers,
// traces, cursor, clock, outbox; CRC-checked), streamed into an object
// named p<p>-e<epoch>-c<cursor> without a temporary file. An object only
// becomes the partition's snapshot when the owner record in FR_OWNERS is
// switched to it by a compare-and-set under the writer's claim, so an
// upload by a daemon that lost its claim is never used (and is deleted by
// the next owner's clean-up). The object store writes a new object's
// chunks before its metadata, so a failed upload leaves the previous
// snapshot intact.

// snapshotName is the object holding partition p's state as exported by
// the owner of epoch at (at least) cursor.
func snapshotName(p int, epoch, cursor uint64) string {
	return "p" + strconv.Itoa(p) + "-e" + strconv.FormatUint(epoch, 10) + "-c" + strconv.FormatUint(cursor, 10)
}

// snapshotPartition parses the partition out of a snapshot object name.
func snapshotPartition(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "p")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	p, err := strconv.Atoi(num)
	return p, err == nil
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

// GetSnapshot imports the snapshot name from obs into partition p of
// store (which must not be open) and returns the bytes read. The import
// replaces whatever p held; until it completes, the partition reports
// state.ErrImportIncomplete.
func GetSnapshot(ctx context.Context, store *state.Store, obs jetstream.ObjectStore, p int, name string) (int64, error) {
	if _, ok := ctx.Deadline(); !ok {
		// Without a deadline the object store bounds the whole download by
		// its default API timeout (5 s), too short for a large partition.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, restoreTimeout)
		defer cancel()
	}
	// A download whose chunks stop coming (the consumer behind it lost
	// with a NATS node) is abandoned after restoreStall without progress,
	// so that the caller retries instead of waiting for the deadline.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cr := &countReader{}
	go func() {
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
	}()
	r, err := obs.Get(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("restore partition %d from %s: %w", p, name, errors.Join(err, context.Cause(ctx)))
	}
	defer r.Close()
	cr.r = r
	if err := store.ImportPartition(ctx, p, cr); err != nil {
		return cr.n.Load(), fmt.Errorf("restore partition %d from %s: %w", p, name, errors.Join(err, context.Cause(ctx)))
	}
	return cr.n.Load(), nil
}

// restoreTimeout bounds one snapshot download and import when the caller
// set no deadline; restoreStall bounds a download making no progress.
const (
	restoreTimeout = 10 * time.Minute
	restoreStall   = 15 * time.Second
)

type countReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// putSnapshot is PutSnapshot with the daemon's metrics.
func (c *cluster) putSnapshot(ctx context.Context, p int, name string, cursor uint64) (int64, error) {
	start := time.Now()
	n, err := PutSnapshot(ctx, c.d.store, c.snaps, p, name, cursor)
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
func (c *cluster) deleteSnapshot(name string) {
	if name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.d.hard), c.o.LeaseTTL)
	defer cancel()
	if err := c.snaps.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		c.log.Debug("delete snapshot", "object", name, "err", err)
	}
}

// cleanSnapshots deletes partition p's objects other than keep: uploads
// by earlier owners that never became the snapshot.
func (c *cluster) cleanSnapshots(ctx context.Context, p int, keep string) {
	lctx, cancel := context.WithTimeout(ctx, c.o.LeaseTTL)
	defer cancel()
	objs, err := c.snaps.List(lctx)
	if err != nil {
		return
	}
	for _, o := range objs {
		if q, ok := snapshotPartition(o.Name); ok && q == p && o.Name != keep {
			c.deleteSnapshot(o.Name)
		}
	}
}

// restore brings partition s.p's state in before its worker starts: the
// claimed record's snapshot when it is ahead of the local copy (or the
// local copy is an incomplete import), else the local copy. It retries a
// failed download until it succeeds or ctx ends, rather than fall back to
// replaying the whole stream (which would re-emit outputs far older than
// FR_OUT's duplicate window); a snapshot object that is gone falls back to
// the local copy, or to an empty partition, with an error logged.
func (c *cluster) restore(ctx context.Context, s *slot) error {
	select {
	case c.restores <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.restores }()
	start := time.Now()
	p, store := s.p, c.d.store
	s.mu.Lock()
	rec := s.rec
	s.mu.Unlock()
	info := RestoreInfo{Snapshot: rec.Snapshot, SnapshotCursor: rec.Cursor}
	incomplete := false
	pt, err := store.Partition(p)
	switch {
	case err == nil:
		info.LocalCursor = pt.Cursor()
		pt.Release()
	case errors.Is(err, state.ErrImportIncomplete):
		incomplete = true
	default:
		return fmt.Errorf("partition %d: open local state: %w", p, err)
	}
	info.Source = "local"
	if info.LocalCursor == 0 && !incomplete {
		info.Source = "empty"
	}
	if rec.Snapshot != "" && (incomplete || rec.Cursor > info.LocalCursor) {
		dropped := false
		for attempt := 0; ; attempt++ {
			var err error
			if !dropped {
				// Make sure the snapshot exists before giving up the local
				// copy, then drop the copy: the import then clears nothing,
				// so the download's stall watchdog times the download alone.
				if _, err = c.snaps.GetInfo(ctx, rec.Snapshot); err == nil {
					err = store.DropPartition(ctx, p)
					dropped = err == nil
				}
			}
			if err == nil {
				var n int64
				if n, err = GetSnapshot(ctx, store, c.snaps, p, rec.Snapshot); err == nil {
					info.Source, info.Bytes = "snapshot", n
					break
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrObjectNotFound) {
				c.log.Error("snapshot object missing; replaying what the local copy lacks from FR_IN", "partition", p, "object", rec.Snapshot, "local_cursor", info.LocalCursor, "local_dropped", dropped)
				if dropped || incomplete {
					if err := store.DropPartition(ctx, p); err != nil {
						return err
					}
					info.LocalCursor, info.Source = 0, "empty"
				}
				break
			}
			c.log.Warn("snapshot restore failed; retrying", "partition", p, "attempt", attempt, "err", err)
			if !sleepCtx(ctx, backoff(attempt)) {
				return ctx.Err()
			}
		}
	} else if incomplete {
		if err := store.DropPartition(ctx, p); err != nil {
			return err
		}
		info.Source = "empty"
	}
	info.Seconds = time.Since(start).Seconds()
	c.m.restoreSecs.UpdateDuration(start)
	s.mu.Lock()
	s.restore = info
	s.mu.Unlock()
	c.log.Info("partition restored", "partition", p, "epoch", s.epoch, "source", info.Source,
		"snapshot_cursor", info.SnapshotCursor, "local_cursor", info.LocalCursor, "bytes", info.Bytes, "seconds", info.Seconds)
	return nil
}
