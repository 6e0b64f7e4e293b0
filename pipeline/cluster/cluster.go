package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/ownership"
	"github.com/flashreturn/flashreturn/pipeline/streams"
	"github.com/flashreturn/flashreturn/state"
)

// Cluster mode: several daemons share one NATS cluster, each running the
// workers of the partitions it owns. CLUSTER.md explains it for
// operators; internal/ownership states the protocol and its invariants
// and makes every decision of it (which partition to claim or release,
// when a claim is fenced, where a restore takes its state from). This
// file is the IO around that state machine:
//
//   - the heartbeat goroutine renews the member key in FR_MEMBERS every
//     LeaseTTL/5 (a compare-and-set on its last revision; the first write
//     is a create, so two live daemons never hold one member ID) and
//     reports each success or the loss of the key;
//   - the owners watcher feeds every FR_OWNERS record to the machine,
//     which revokes a claim superseded by someone else;
//   - the reconcile loop ticks the machine every LeaseTTL/5 and whenever
//     a heartbeat or a record arrives, and carries the actions out:
//     member lists, compare-and-set claims and releases, stopping workers;
//   - one goroutine per claimed partition restores its state, runs its
//     worker (whose fence asks the machine before every commit and
//     publish), and once the worker ends carries out the release the
//     machine asks for (snapshot, record);
//   - the snapshotter reports the workers' progress, and writes the
//     periodic snapshots the machine asks for.
//
// The machine is guarded by cluster.mu, never held across IO; the work on
// one partition (a periodic snapshot and its pointer, the release) is
// serialised by the partition's slot.mu.
//
// Fencing here is time-based: a daemon's lease ends LeaseTTL/5 before
// its key can expire, and a worker checks its claim before every commit
// and publish. Every output carries the claim's epoch in the
// Flashreturn-Epoch header. Outputs are deterministic (same events, same
// state, same Nats-Msg-Id), so a batch a paused process still manages to
// publish after its lease ended duplicates what the new owner publishes,
// and FR_OUT's duplicate window (2 min) keeps one copy.

// clusterMetrics are cluster mode's metrics (flashreturn_cluster_*). The
// counters that matter on the night: claims and releases (a partition
// moving), fenced (a worker stopped because its claim was gone: a paused
// process, a lease lost to a slow network), claim conflicts (two members
// racing for one partition, normal during a rebalance, alarming when
// steady), heartbeat errors (the lease at risk).
type clusterMetrics struct {
	claims, releases, fenced, hbErrors, casConflicts *metrics.Counter
	snapshots, snapshotErrors, snapshotBytes         *metrics.Counter
	restoreSecs, snapshotSecs                        *metrics.PrometheusHistogram
	// Query routing (query.go).
	forwards, forwardErrors, queryUnavailable *metrics.Counter
}

// Cluster is a daemon's membership, ownership and handover machinery. The
// daemon makes one with [New] when it runs in cluster mode, calls
// [Cluster.Setup] while it creates its streams, then [Cluster.Run] in
// place of starting its workers: the Cluster starts and stops them
// through the daemon's [Hooks] as partitions are claimed and released. It
// never sees a worker: what it knows of one is what the hooks return.
type Cluster struct {
	o        Options
	h        Hooks
	parts    int
	replicas int
	drain    time.Duration
	log      *slog.Logger
	instance string
	hbEvery  time.Duration

	members jetstream.KeyValue
	owners  jetstream.KeyValue
	snaps   jetstream.ObjectStore
	data    jetstream.JetStream // the snapshots' connection (their downloads' consumers)
	store   *state.Store        // set by Setup: snapshots read and write it
	// hard is the daemon's hard deadline (set by Run): the context of
	// the work that must outlive the drain's start (releases, the member
	// key's deletion) but not the drain's end.
	hard context.Context

	t0       time.Time   // the machine's clock: ns since t0
	hbPaused atomic.Bool // test hook: heartbeats are skipped
	// beforeLeave, when set (by a test, before the daemon's context
	// ends), runs when the reconcile loop has ended and the leave has not
	// begun: the window in which the workers still run after the daemon's
	// other goroutines saw the context end.
	beforeLeave func()
	memberRev   uint64 // heartbeat goroutine only (and run, once it is gone)

	wake     chan struct{}
	beatNow  chan chan struct{} // asks the heartbeat goroutine for a beat now
	restores chan struct{}      // semaphore of MaxRestores
	httpc    *http.Client       // forwards queries to other members
	slotWG   sync.WaitGroup     // the slots' goroutines

	mu    sync.Mutex
	sm    *ownership.Machine      // the decisions (internal/ownership)
	live  map[string]memberRecord // the member records last read
	slots map[int]*slot

	m clusterMetrics
}

// New makes the Cluster of member o.MemberID (o is completed with
// [Options.WithDefaults]) over partitions partitions, and registers its
// metrics on set. Nothing runs until Setup and Run.
func New(o Options, partitions, replicas int, drain time.Duration, h Hooks, log *slog.Logger, set *metrics.Set) *Cluster {
	o = o.WithDefaults()
	c := &Cluster{
		o: o, h: h, parts: partitions, replicas: replicas, drain: drain,
		log:      log.With("component", "cluster", "member", o.MemberID),
		instance: strconv.FormatInt(time.Now().UnixNano(), 36),
		hbEvery:  o.LeaseTTL / 5,
		t0:       time.Now(),
		wake:     make(chan struct{}, 1), beatNow: make(chan chan struct{}), restores: make(chan struct{}, o.MaxRestores),
		sm:   ownership.New(ownership.Config{Member: o.MemberID, Partitions: partitions, Lease: o.LeaseTTL, SnapshotInterval: o.SnapshotInterval}),
		live: map[string]memberRecord{}, slots: map[int]*slot{},
		httpc: newQueryClient(),
	}
	c.m = clusterMetrics{
		claims:         set.NewCounter(`flashreturn_cluster_claims_total`),
		releases:       set.NewCounter(`flashreturn_cluster_releases_total`),
		fenced:         set.NewCounter(`flashreturn_cluster_fenced_total`),
		hbErrors:       set.NewCounter(`flashreturn_cluster_heartbeat_errors_total`),
		casConflicts:   set.NewCounter(`flashreturn_cluster_claim_conflicts_total`),
		snapshots:      set.NewCounter(`flashreturn_cluster_snapshots_total`),
		snapshotErrors: set.NewCounter(`flashreturn_cluster_snapshot_errors_total`),
		snapshotBytes:  set.NewCounter(`flashreturn_cluster_snapshot_bytes_total`),
		restoreSecs:    set.NewPrometheusHistogramExt(`flashreturn_cluster_restore_duration_seconds`, latencyBuckets),
		snapshotSecs:   set.NewPrometheusHistogramExt(`flashreturn_cluster_snapshot_duration_seconds`, latencyBuckets),

		forwards:         set.NewCounter(`flashreturn_cluster_query_forwards_total{result="ok"}`),
		forwardErrors:    set.NewCounter(`flashreturn_cluster_query_forwards_total{result="error"}`),
		queryUnavailable: set.NewCounter(`flashreturn_cluster_query_unavailable_total`),
	}
	set.NewGauge(`flashreturn_cluster_owned_partitions`, func() float64 { return float64(len(c.Owned())) })
	set.NewGauge(`flashreturn_cluster_lease_valid`, func() float64 {
		v, _ := c.lease()
		if v {
			return 1
		}
		return 0
	})
	set.NewGauge(`flashreturn_cluster_members`, func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return float64(len(c.live))
	})
	return c
}

// now is the machine's clock: monotonic ns since the cluster was made.
func (c *Cluster) now() int64 { return int64(time.Since(c.t0)) }

// step runs one input of the machine under the lock and returns the
// actions it asks for.
func (c *Cluster) step(f func(m *ownership.Machine, now int64) []ownership.Action) []ownership.Action {
	c.mu.Lock()
	defer c.mu.Unlock()
	return f(c.sm, c.now())
}

// fence is the machine's Check of partition p's claim of epoch, now.
func (c *Cluster) fence(p int, epoch uint64) ownership.Reason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sm.Check(p, epoch, c.now())
}

// lease reports whether the member's lease holds, and for how long.
func (c *Cluster) lease() (bool, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	valid, until := c.sm.LeaseValid(now)
	return valid, time.Duration(until - now)
}

// leaseGen is the current lease generation (tests log it).
func (c *Cluster) leaseGen() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sm.Gen()
}

// wakeUp asks the reconcile loop for a pass now instead of at its next
// tick. The channel holds one wake-up: several asked while a pass runs
// collapse into one more pass, which sees everything they saw.
func (c *Cluster) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Setup creates (or opens) the buckets, and keeps the connections and the
// store the cluster works with: control carries membership and ownership
// (a connection of its own, so that a heartbeat never queues behind a
// busy worker's publishes), data the snapshots (bulk transfers), store
// the partitions' state. Every member must use the same LeaseTTL: it is
// the members bucket's TTL, and a mismatch is a permanent error. The
// daemon retries a failed Setup with its stream setup.
func (c *Cluster) Setup(ctx context.Context, control, data jetstream.JetStream, store *state.Store) error {
	js := control
	c.store = store
	replicas := max(c.replicas, 1)
	kv, err := js.KeyValue(ctx, BucketMembers)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketMembers, TTL: c.o.LeaseTTL,
			Storage: jetstream.FileStorage, Replicas: replicas, Description: "flashreturn cluster members (lease = TTL)"})
	}
	if err != nil {
		return fmt.Errorf("cluster: bucket %s: %w", BucketMembers, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("cluster: bucket %s: %w", BucketMembers, err)
	}
	if st.TTL() != c.o.LeaseTTL {
		return streams.Permanent(fmt.Errorf("cluster: lease TTL %s differs from the %s bucket's %s: every member must use the same lease", c.o.LeaseTTL, BucketMembers, st.TTL()))
	}
	c.members = kv
	c.owners, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketOwners, History: 8,
		Storage: jetstream.FileStorage, Replicas: replicas, Description: "flashreturn partition owners, epochs and snapshot pointers"})
	if err != nil {
		return fmt.Errorf("cluster: bucket %s: %w", BucketOwners, err)
	}
	// Snapshots are bulk transfers: the data connection.
	c.data = data
	c.snaps, err = data.ObjectStore(ctx, BucketSnapshots)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		c.snaps, err = data.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: BucketSnapshots,
			Storage: jetstream.FileStorage, Replicas: replicas, Description: "flashreturn partition state snapshots"})
	}
	if err != nil {
		return fmt.Errorf("cluster: object store %s: %w", BucketSnapshots, err)
	}
	return nil
}

// Run keeps membership, ownership and the workers of owned partitions
// until ctx ends, then leaves the cluster: stop the workers (drain),
// snapshot and release every partition, delete the member key. hard is
// the daemon's hard deadline: the leave's releases and snapshots run
// under it, after ctx has ended. Run returns once every goroutine it
// started has ended.
func (c *Cluster) Run(ctx, hard context.Context) error {
	c.hard = hard
	var wg sync.WaitGroup
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { c.heartbeats(bg) })
	wg.Go(func() { c.watchOwners(bg) })
	if c.o.SnapshotInterval > 0 {
		wg.Go(func() { c.snapshotter(ctx) })
	}
	t := time.NewTicker(c.hbEvery)
	for ctx.Err() == nil {
		c.drive(ctx, c.step((*ownership.Machine).Tick))
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-c.wake:
		}
	}
	t.Stop()
	if c.beforeLeave != nil {
		c.beforeLeave()
	}
	c.leave()
	stopBG()
	wg.Wait()
	c.slotWG.Wait()
	// The heartbeat goroutine is gone: delete the member key so that the
	// others rebalance at once instead of after LeaseTTL.
	c.drive(c.hard, c.step(func(m *ownership.Machine, _ int64) []ownership.Action { return m.Shutdown() }))
	c.httpc.CloseIdleConnections()
	return nil
}

// drive carries out actions, and the actions their results ask for, in
// order, until none is left.
func (c *Cluster) drive(ctx context.Context, acts []ownership.Action) {
	for len(acts) > 0 {
		a := acts[0]
		acts = append(acts[1:], c.do(ctx, a)...)
	}
}

// do carries out one action and feeds its result to the machine.
func (c *Cluster) do(ctx context.Context, a ownership.Action) []ownership.Action {
	switch a.Kind {
	case ownership.ReadMembers:
		live, err := c.refreshMembers(ctx)
		if err != nil {
			c.log.Debug("members", "err", err)
			return nil
		}
		list := make([]ownership.MemberInfo, 0, len(live))
		for id, r := range live {
			list = append(list, ownership.MemberInfo{ID: id, Leaving: r.Leaving})
		}
		slices.SortFunc(list, func(x, y ownership.MemberInfo) int { return cmp.Compare(x.ID, y.ID) })
		return c.step(func(m *ownership.Machine, now int64) []ownership.Action { return m.Members(now, list) })
	case ownership.Claim:
		if a.From != "" {
			c.log.Info("taking over from a member whose lease expired", "partition", a.P, "from", a.From, "epoch", a.Epoch-1)
		}
		// Shutting down: the pass's claims fail without a write.
		var rev uint64
		err := ctx.Err()
		if err == nil {
			rev, err = c.writeRecord(ctx, a.P, a.Record, a.Rev, !a.Create)
		}
		if err != nil {
			c.log.Debug("claim lost", "partition", a.P, "err", err)
		}
		return c.step(func(m *ownership.Machine, now int64) []ownership.Action {
			return m.ClaimDone(now, a.P, a.Epoch, rev, outcome(err))
		})
	case ownership.Start:
		c.start(ctx, a)
	case ownership.Stop:
		if s := c.slot(a.P); s != nil && s.epoch == a.Epoch {
			s.stopAsked.CompareAndSwap(0, c.now())
			s.cancel()
			<-s.done // the slot's goroutine carries out the release
			if a.Reason == ownership.ReasonRelease {
				c.wakeUp() // the next pass gives up the next one
			}
		}
	case ownership.Snapshot:
		return c.snapshot(ctx, a)
	case ownership.WriteRecord:
		wctx := ctx
		if a.Purpose == ownership.ForRelease {
			// A release is written even when the drain is over: the
			// successor would otherwise wait for the key to expire.
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), c.o.LeaseTTL)
			defer cancel()
		}
		rev, err := c.writeRecord(wctx, a.P, a.Record, a.Rev, true)
		if err != nil {
			switch a.Purpose {
			case ownership.ForRelease:
				c.log.Warn("release lost", "partition", a.P, "err", err)
			case ownership.ForPointer:
				c.log.Warn("snapshot pointer not written", "partition", a.P, "err", err)
			default:
				c.log.Debug("release stale record", "partition", a.P, "err", err)
			}
		}
		return c.step(func(m *ownership.Machine, now int64) []ownership.Action {
			return m.RecordDone(now, a.P, a.Epoch, a.Purpose, rev, outcome(err))
		})
	case ownership.DeleteSnapshot:
		c.deleteSnapshot(a.Object)
	case ownership.Drop:
		c.drop(a)
	case ownership.Fence:
		if a.P < 0 {
			c.log.Warn("lease lapsed; the partitions of its generation are fenced", "generation", a.Gen)
		} else {
			c.log.Warn("partition claimed by another member; fencing", "partition", a.P, "epoch", a.Epoch, "by", a.By, "their_epoch", a.ByEpoch)
		}
	case ownership.Heartbeat:
		// The machine wants a fresh heartbeat before it trusts its lease
		// (a claim after a long pause): ask the heartbeat goroutine for a
		// beat now and wait for it, bounded by the hard deadline, since
		// two goroutines writing the member key would race on revisions.
		ack := make(chan struct{})
		select {
		case c.beatNow <- ack:
			select {
			case <-ack:
			case <-c.hard.Done():
			}
		case <-c.hard.Done():
		}
	case ownership.DeleteMember:
		// Best effort: a key left behind expires within LeaseTTL anyway;
		// deleting it only spares the others that wait.
		if c.memberRev != 0 && c.hard.Err() == nil {
			dctx, cancel := context.WithTimeout(c.hard, c.o.LeaseTTL)
			if err := c.members.Delete(dctx, c.o.MemberID, jetstream.LastRevision(c.memberRev)); err != nil {
				c.log.Debug("delete member key", "err", err)
			}
			cancel()
		}
	}
	return nil
}

// drop forgets a slot the machine dropped, and says why.
func (c *Cluster) drop(a ownership.Action) {
	c.mu.Lock()
	s := c.slots[a.P]
	if s != nil && s.epoch == a.Epoch {
		delete(c.slots, a.P)
	}
	c.mu.Unlock()
	switch {
	case a.Reason == ownership.ReasonReleased:
		c.m.releases.Inc()
		var secs float64
		if s != nil {
			if t := s.stopAsked.Load(); t > 0 {
				secs = time.Duration(c.now() - t).Seconds()
			}
		}
		if a.Record.Released > a.Record.Cursor {
			c.log.Error("partition released without a snapshot at its final cursor: the next owner restores from the previous snapshot and replays the rest (the commit markers keep it from publishing them again)",
				"partition", a.P, "epoch", a.Epoch, "final_cursor", a.Record.Released, "snapshot", a.Record.Snapshot, "snapshot_cursor", a.Record.Cursor, "seconds", secs)
			break
		}
		c.log.Info("partition released", "partition", a.P, "epoch", a.Epoch, "cursor", a.Cursor, "snapshot", a.Record.Snapshot, "seconds", secs)
	case a.Reason == ownership.ReasonReleaseFenced && a.Cursor > a.Record.Cursor:
		// Another member claimed the partition (our key was gone to it)
		// before the release was written: it restores from the record's
		// snapshot and cannot know how far we had got.
		c.m.fenced.Inc()
		c.log.Error("partition given up without its release: another member claimed it first and restores it from the record's snapshot, replaying the rest (its outputs FR_OUT holds are not published again: the commit markers cover them)",
			"partition", a.P, "epoch", a.Epoch, "final_cursor", a.Cursor, "snapshot", a.Record.Snapshot, "snapshot_cursor", a.Record.Cursor)
	case a.Reason == ownership.ReasonReleaseLost && a.Cursor > a.Record.Cursor:
		// The release's write failed or went unanswered: unless it was
		// stored after all, the next owner takes over from the record's
		// snapshot once our key is gone, and cannot know how far we had
		// got.
		c.log.Error("partition release not written (or its answer lost): unless it was stored, the next owner restores from the record's snapshot and replays the rest (its outputs FR_OUT holds are not published again: the commit markers cover them)",
			"partition", a.P, "epoch", a.Epoch, "final_cursor", a.Cursor, "snapshot", a.Record.Snapshot, "snapshot_cursor", a.Record.Cursor)
	case a.Reason.Fenced():
		c.m.fenced.Inc()
		c.log.Warn("partition stopped", "partition", a.P, "epoch", a.Epoch, "fence", string(a.Reason))
	default:
		c.log.Debug("partition dropped", "partition", a.P, "epoch", a.Epoch, "reason", string(a.Reason))
	}
}

// heartbeats renews the member key every hbEvery.
func (c *Cluster) heartbeats(ctx context.Context) {
	t := time.NewTicker(c.hbEvery)
	defer t.Stop()
	var ack chan struct{}
	for {
		if !c.hbPaused.Load() {
			c.beat(ctx)
		}
		if ack != nil {
			close(ack)
			ack = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case ack = <-c.beatNow:
		}
	}
}

// beat writes the member key once and reports the result to the machine.
func (c *Cluster) beat(ctx context.Context) {
	sent := c.now()
	bctx, cancel := context.WithTimeout(ctx, c.o.LeaseTTL)
	defer cancel()
	c.mu.Lock()
	leaving := c.sm.Leaving()
	c.mu.Unlock()
	val, _ := json.Marshal(memberRecord{Member: c.o.MemberID, Instance: c.instance, Leaving: leaving, HTTP: c.h.AdvertisedHTTP()})
	id := c.o.MemberID
	rejoin := false
	var rev uint64
	var err error
	if c.memberRev != 0 {
		rev, err = c.members.Update(bctx, id, val, c.memberRev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) {
			// An earlier write of ours may have landed after a timeout.
			if e, gerr := c.members.Get(bctx, id); gerr == nil && memberInstance(e.Value()) == c.instance {
				c.memberRev = e.Revision()
				rev, err = c.members.Update(bctx, id, val, c.memberRev)
			}
		}
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) {
			// Our key expired: the lease is gone for good; join again.
			c.step(func(m *ownership.Machine, _ int64) []ownership.Action { m.KeyLost(); return nil })
			c.memberRev = 0
			c.log.Warn("member key expired or taken; rejoining")
		}
	}
	if c.memberRev == 0 {
		rejoin = true
		rev, err = c.members.Create(bctx, id, val)
		if errors.Is(err, jetstream.ErrKeyExists) {
			c.log.Warn("member ID held by a live key (another daemon, or this one's previous run); waiting for it to expire", "ttl", c.o.LeaseTTL)
		}
	}
	if err != nil {
		c.m.hbErrors.Inc()
		c.log.Debug("heartbeat", "err", err)
		return
	}
	c.memberRev = rev
	c.step(func(m *ownership.Machine, _ int64) []ownership.Action { m.HeartbeatOK(sent, rejoin); return nil })
	c.wakeUp()
}

// memberInstance is the instance of a member record: a value written by
// this process (same instance) is ours even when the revision we kept is
// stale, e.g. after an update that timed out but landed.
func memberInstance(v []byte) string {
	var r memberRecord
	_ = json.Unmarshal(v, &r)
	return r.Instance
}

// watchOwners feeds every FR_OWNERS record to the machine.
func (c *Cluster) watchOwners(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := c.owners.WatchAll(ctx)
		if err != nil {
			c.log.Warn("owners watch", "err", err)
			streams.Sleep(ctx, c.hbEvery)
			continue
		}
		for e := range w.Updates() {
			if e == nil {
				c.wakeUp()
				continue
			}
			p, ok := ownerKeyPartition(e.Key())
			if !ok || p >= c.parts {
				continue
			}
			oe := ownership.Entry{Rev: e.Revision()}
			if e.Operation() == jetstream.KeyValuePut {
				var rec OwnerRecord
				if err := json.Unmarshal(e.Value(), &rec); err == nil {
					oe.Record, oe.OK = toRecord(rec), true
				}
			}
			c.drive(ctx, c.step(func(m *ownership.Machine, _ int64) []ownership.Action { return m.Observe(p, oe) }))
			c.wakeUp()
		}
		_ = w.Stop()
	}
}

// refreshMembers reads the member keys present (including leaving ones).
func (c *Cluster) refreshMembers(ctx context.Context) (map[string]memberRecord, error) {
	mctx, cancel := context.WithTimeout(ctx, c.o.LeaseTTL)
	defer cancel()
	keys, err := c.members.Keys(mctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		keys, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	live := make(map[string]memberRecord, len(keys))
	for _, k := range keys {
		e, err := c.members.Get(mctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var r memberRecord
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			r = memberRecord{Member: k}
		}
		live[k] = r
	}
	c.mu.Lock()
	c.live = live
	c.mu.Unlock()
	return live, nil
}

// slot is partition p's slot on this member, nil when none.
func (c *Cluster) slot(p int) *slot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slots[p]
}

// slotList is the slots in partition order, copied under the lock so the
// caller may block on each (a snapshot) without holding it.
func (c *Cluster) slotList() []*slot {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := make([]*slot, 0, len(c.slots))
	for _, s := range c.slots {
		l = append(l, s)
	}
	slices.SortFunc(l, func(a, b *slot) int { return cmp.Compare(a.p, b.p) })
	return l
}

// writeRecord writes partition p's record with a compare-and-set on rev
// (a create unless exists) and returns the new revision.
func (c *Cluster) writeRecord(ctx context.Context, p int, rec ownership.Record, rev uint64, exists bool) (uint64, error) {
	val, err := json.Marshal(fromRecord(rec))
	if err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, c.o.LeaseTTL)
	defer cancel()
	var nrev uint64
	if exists {
		nrev, err = c.owners.Update(wctx, OwnerKey(p), val, rev)
	} else {
		nrev, err = c.owners.Create(wctx, OwnerKey(p), val)
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		c.m.casConflicts.Inc()
	}
	return nrev, err
}

// leave marks the member leaving, stops every worker at once (the
// daemon's drain); each partition is snapshotted and released as soon as
// its own worker has stopped, its snapshot due within three quarters of
// the drain budget (from now). Heartbeats go on meanwhile, so the lease
// stays valid.
func (c *Cluster) leave() {
	deadline := c.now() + int64(c.drain*3/4)
	var stops []ownership.Action
	for _, a := range c.step(func(m *ownership.Machine, now int64) []ownership.Action { return m.Leave(now, deadline) }) {
		if a.Kind == ownership.Stop {
			stops = append(stops, a)
			continue
		}
		// Tell the others first: they stop targeting us, and claim each
		// partition as soon as it is released.
		c.drive(c.hard, []ownership.Action{a})
	}
	var wg sync.WaitGroup
	for _, a := range stops {
		wg.Go(func() { c.drive(c.hard, []ownership.Action{a}) })
	}
	wg.Wait()
}

// Ready reports whether the lease is valid and every owned partition is
// consuming (the daemon's readiness in cluster mode).
func (c *Cluster) Ready() bool {
	c.mu.Lock()
	valid, _ := c.sm.LeaseValid(c.now())
	slots := c.sm.Slots()
	c.mu.Unlock()
	if !valid {
		return false
	}
	for _, si := range slots {
		if si.Phase != ownership.Running || !c.h.Ready(si.P) {
			return false
		}
	}
	return true
}

// Owned lists the partitions whose worker runs here, in order.
func (c *Cluster) Owned() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ps []int
	for _, si := range c.sm.Slots() {
		if si.Phase == ownership.Running {
			ps = append(ps, si.P)
		}
	}
	return ps
}
