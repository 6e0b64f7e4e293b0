package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster mode: several daemons share one NATS cluster, each running the
// workers of the partitions it owns. CLUSTER.md explains it for operators;
// this comment states the protocol and its invariants.
//
// Membership. Every daemon heartbeats its key in the KV bucket FR_MEMBERS
// (bucket TTL = LeaseTTL) every LeaseTTL/5 with a compare-and-set on its
// last revision; the first write is a Create, so two live daemons can never
// hold one member ID. The daemon's lease runs until the send time of its
// last successful heartbeat + LeaseTTL - LeaseTTL/5 on its own monotonic
// clock: the server stores the heartbeat after it was sent and expires it
// LeaseTTL after storing it, so the lease ends at least LeaseTTL/5 before
// any other daemon can see the member gone. Once the lease lapses, every
// worker of that lease generation is fenced for good (see below); a later
// successful heartbeat starts a new generation whose claims are new epochs.
//
// Assignment. Every daemon computes the same target owner of every
// partition from the sorted list of members present and not leaving
// ([assign]: rendezvous hashing bounded to a balanced load).
//
// Ownership. The KV bucket FR_OWNERS holds one record per partition
// (key p.<p>): the owning member ("" once released), the epoch, and the
// pointer to the partition's latest snapshot in the object store
// FR_SNAPSHOTS with its cursor. Every write is a compare-and-set on the
// record's revision. A daemon claims a partition targeted to it when the
// record is absent, released, its own, or names a member whose key is gone
// (its lease ran out before the key did); a claim increments the epoch, the
// fencing token. A daemon gives up a partition targeted elsewhere by
// stopping its worker (finish the batch in hand, commit, publish, ack),
// exporting a snapshot at its final cursor and releasing the record
// pointing at it; the new target claims it and restores from it. Releases
// go one partition at a time.
//
// Fencing. A worker checks before every commit and every publish that its
// lease generation is current and unexpired and that no newer record for
// its partition has been seen (the owners watcher revokes it); otherwise it
// stops without committing or publishing. Every output carries the epoch
// in the Flashreturn-Epoch header. Outputs are deterministic (same events,
// same state, same Nats-Msg-Id), so a batch that a paused process still
// manages to publish after its lease ended duplicates what the new owner
// publishes, and FR_OUT's duplicate window (2 min) keeps one copy.
//
// Handover. Badger state is local. A released partition's snapshot is
// exact (taken after the worker stopped); a daemon that dies leaves the
// last periodic snapshot (every SnapshotInterval while the partition's
// cursor moves). The new owner imports the snapshot when its cursor is
// ahead of its own local copy's, then resumes the consumer at cursor+1:
// FR_IN is the changelog, events after the snapshot are applied again and
// re-emit outputs with the same message IDs.

// ErrFenced is wrapped by a partition worker's error when it stopped
// because its daemon no longer holds the partition's claim (lease lapsed,
// or a newer claim seen).
var ErrFenced = errors.New("pipeline: partition fenced: claim no longer held")

// errFenced is the package's name for ErrFenced.
var errFenced = ErrFenced

// Names of the cluster's JetStream buckets and of the output header.
const (
	BucketMembers   = "FR_MEMBERS"
	BucketOwners    = "FR_OWNERS"
	BucketSnapshots = "FR_SNAPSHOTS"
	// EpochHeader carries, on every output published in cluster mode, the
	// epoch of the claim under which it was produced.
	EpochHeader = "Flashreturn-Epoch"
)

var memberIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// publishAckTimeout bounds the wait for one output's publish ack (see
// Daemon.connect).
const publishAckTimeout = 5 * time.Second

// ClusterOptions turn on cluster mode (Config.Cluster). The zero value of
// every field but MemberID means the default it documents.
type ClusterOptions struct {
	// MemberID names this daemon in the cluster (required;
	// [A-Za-z0-9_-]{1,64}). Keep it stable across restarts (a host or pod
	// name): the assignment depends only on the member IDs, so a restarted
	// daemon gets the same partitions back and can reuse its local state.
	MemberID string
	// LeaseTTL is the membership lease: a daemon that cannot heartbeat for
	// this long is considered gone and its partitions are taken over.
	// Heartbeats go every LeaseTTL/5; a daemon stops writing LeaseTTL/5
	// before its lease can be seen expired. Every member must use the same
	// value (it is the FR_MEMBERS bucket's TTL). Default 5s, at least 1s.
	LeaseTTL time.Duration
	// SnapshotInterval is how often each owned partition whose cursor moved
	// is snapshotted to FR_SNAPSHOTS, which bounds what a takeover after a
	// crash replays. Keep it well under FR_OUT's duplicate window (2 min).
	// Default 1 min; negative disables periodic snapshots (a release still
	// snapshots).
	SnapshotInterval time.Duration
	// MaxRestores bounds the restores (snapshot downloads and imports) run
	// at once. Default 2.
	MaxRestores int
}

func (o *ClusterOptions) validate(c *Config) error {
	if !memberIDRe.MatchString(o.MemberID) {
		return fmt.Errorf("pipeline: config: cluster MemberID %q must match [A-Za-z0-9_-]{1,64}", o.MemberID)
	}
	if c.NATSURL == "" {
		return errors.New("pipeline: config: cluster mode needs NATSURL (a NATS server or cluster shared by the members)")
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 5 * time.Second
	}
	if o.LeaseTTL < time.Second {
		return fmt.Errorf("pipeline: config: cluster LeaseTTL %s is under 1s", o.LeaseTTL)
	}
	if o.SnapshotInterval == 0 {
		o.SnapshotInterval = time.Minute
	}
	if o.MaxRestores <= 0 {
		o.MaxRestores = 2
	}
	return nil
}

// memberRecord is the value of a member's key in FR_MEMBERS.
type memberRecord struct {
	Member   string `json:"member"`
	Instance string `json:"instance"`
	// Leaving: the member is shutting down; it keeps its partitions until
	// it releases them but is no longer a target.
	Leaving bool `json:"leaving,omitempty"`
	// HTTP is the base URL of the member's query API
	// (Config.AdvertiseHTTP), where the others forward queries for its
	// partitions; "" when it advertises none. Optional: records without it
	// decode, and a bare host:port (older daemons) is read as http://.
	HTTP string `json:"http,omitempty"`
}

// ownerRecord is the value of a partition's key in FR_OWNERS.
type ownerRecord struct {
	// Member owns the partition; "" once released.
	Member string `json:"member"`
	// Epoch is incremented by every claim: the fencing token.
	Epoch uint64 `json:"epoch"`
	// Snapshot is the object in FR_SNAPSHOTS holding the latest snapshot,
	// Cursor a lower bound of its cursor (exact for a release's).
	Snapshot string    `json:"snapshot,omitempty"`
	Cursor   uint64    `json:"cursor"`
	At       time.Time `json:"at"`
}

func ownerKey(p int) string { return "p." + strconv.Itoa(p) }

func ownerKeyPartition(key string) (int, bool) {
	if len(key) < 3 || key[:2] != "p." {
		return 0, false
	}
	p, err := strconv.Atoi(key[2:])
	return p, err == nil
}

// ownerEntry is the latest record of a partition seen by the watcher.
type ownerEntry struct {
	rec ownerRecord
	rev uint64
	ok  bool // false: no record (never claimed, or deleted)
}

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

// slot is a partition this daemon claimed: its worker's lifetime.
type slot struct {
	c     *cluster
	p     int
	epoch uint64
	gen   uint64 // lease generation of the claim

	rev      atomic.Uint64 // revision of our latest write of the record
	revoked  atomic.Bool   // a newer record by someone else was seen
	stopping atomic.Bool
	running  atomic.Bool // the worker runs (restore done)
	ran      atomic.Bool // the worker was started

	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex // serialises record writes and snapshots
	rec        ownerRecord
	snapCursor uint64
	snapAt     time.Time
	restore    RestoreInfo
}

// check is the worker's fence.
func (s *slot) check() error {
	if s.revoked.Load() {
		return fmt.Errorf("%w (epoch %d superseded)", errFenced, s.epoch)
	}
	if !s.c.leaseValid(s.gen) {
		return fmt.Errorf("%w (lease lapsed, epoch %d)", errFenced, s.epoch)
	}
	return nil
}

func (s *slot) finished() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

type clusterMetrics struct {
	claims, releases, fenced, hbErrors, casConflicts *metrics.Counter
	snapshots, snapshotErrors, snapshotBytes         *metrics.Counter
	restoreSecs, snapshotSecs                        *metrics.PrometheusHistogram
	// Query routing (cluster_http.go).
	forwards, forwardErrors, queryUnavailable *metrics.Counter
}

// cluster is a daemon's membership, ownership and handover machinery.
type cluster struct {
	d        *Daemon
	o        ClusterOptions
	log      *slog.Logger
	instance string
	hbEvery  time.Duration
	margin   time.Duration

	members jetstream.KeyValue
	owners  jetstream.KeyValue
	snaps   jetstream.ObjectStore

	t0         time.Time
	leaseUntil atomic.Int64  // lease deadline, ns since t0 (0: none)
	leaseGen   atomic.Uint64 // incremented at every (re)join
	leaving    atomic.Bool
	hbPaused   atomic.Bool  // test hook: heartbeats are skipped
	settle     atomic.Int64 // no claims before this (ns since t0): see beat
	memberRev  uint64       // heartbeat goroutine only

	wake     chan struct{}
	beatNow  chan chan struct{} // asks the heartbeat goroutine for a beat now
	restores chan struct{}      // semaphore of MaxRestores
	httpc    *http.Client       // forwards queries to other members

	mu         sync.Mutex
	view       map[int]ownerEntry
	live       map[string]memberRecord
	slots      map[int]*slot
	assignKey  string
	assignment []string

	m clusterMetrics
}

func newCluster(d *Daemon) *cluster {
	o := *d.cfg.Cluster
	c := &cluster{
		d: d, o: o, log: d.log.With("component", "cluster", "member", o.MemberID),
		instance: strconv.FormatInt(time.Now().UnixNano(), 36),
		hbEvery:  o.LeaseTTL / 5, margin: o.LeaseTTL / 5,
		t0:   time.Now(),
		wake: make(chan struct{}, 1), beatNow: make(chan chan struct{}), restores: make(chan struct{}, o.MaxRestores),
		view: map[int]ownerEntry{}, live: map[string]memberRecord{}, slots: map[int]*slot{},
		httpc: newQueryClient(),
	}
	set := d.cfg.Metrics
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
	set.NewGauge(`flashreturn_cluster_owned_partitions`, func() float64 { return float64(len(c.ownedPartitions())) })
	set.NewGauge(`flashreturn_cluster_lease_valid`, func() float64 { return b2f(c.leaseValid(c.leaseGen.Load())) })
	set.NewGauge(`flashreturn_cluster_members`, func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return float64(len(c.live))
	})
	return c
}

func (c *cluster) now() int64 { return int64(time.Since(c.t0)) }

// leaseValid reports whether generation gen's lease is current and unexpired.
func (c *cluster) leaseValid(gen uint64) bool {
	return c.leaseGen.Load() == gen && c.now() < c.leaseUntil.Load()
}

func (c *cluster) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// setup creates (or opens) the buckets. Every member must use the same
// LeaseTTL: it is the members bucket's TTL.
func (c *cluster) setup(ctx context.Context) error {
	js := c.d.ctlJS // membership and ownership: the control connection
	if js == nil {
		js = c.d.js
	}
	replicas := max(c.d.cfg.Replicas, 1)
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
		return permanent(fmt.Errorf("cluster: lease TTL %s differs from the %s bucket's %s: every member must use the same lease", c.o.LeaseTTL, BucketMembers, st.TTL()))
	}
	c.members = kv
	c.owners, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketOwners, History: 8,
		Storage: jetstream.FileStorage, Replicas: replicas, Description: "flashreturn partition owners, epochs and snapshot pointers"})
	if err != nil {
		return fmt.Errorf("cluster: bucket %s: %w", BucketOwners, err)
	}
	// Snapshots are bulk transfers: the data connection.
	c.snaps, err = c.d.js.ObjectStore(ctx, BucketSnapshots)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		c.snaps, err = c.d.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: BucketSnapshots,
			Storage: jetstream.FileStorage, Replicas: replicas, Description: "flashreturn partition state snapshots"})
	}
	if err != nil {
		return fmt.Errorf("cluster: object store %s: %w", BucketSnapshots, err)
	}
	return nil
}

// run keeps membership, ownership and the workers of owned partitions
// until ctx ends, then leaves the cluster: stop the workers (drain),
// snapshot and release every partition, delete the member key.
func (c *cluster) run(ctx context.Context) error {
	var wg sync.WaitGroup
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { c.heartbeats(bg) })
	wg.Go(func() { c.watchOwners(bg) })
	if c.o.SnapshotInterval > 0 {
		wg.Go(func() { c.snapshotter(ctx) })
	}
	t := time.NewTicker(c.hbEvery)
	for ctx.Err() == nil {
		c.reconcile(ctx)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-c.wake:
		}
	}
	t.Stop()
	c.leave()
	stopBG()
	wg.Wait()
	// The heartbeat goroutine is gone: delete the member key so that the
	// others rebalance at once instead of after LeaseTTL.
	if c.memberRev != 0 && c.d.hard.Err() == nil {
		dctx, cancel := context.WithTimeout(c.d.hard, c.o.LeaseTTL)
		if err := c.members.Delete(dctx, c.o.MemberID, jetstream.LastRevision(c.memberRev)); err != nil {
			c.log.Debug("delete member key", "err", err)
		}
		cancel()
	}
	c.leaseUntil.Store(0)
	c.httpc.CloseIdleConnections()
	return nil
}

// heartbeats renews the member key every hbEvery.
func (c *cluster) heartbeats(ctx context.Context) {
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

// beat writes the member key once and extends the lease on success.
func (c *cluster) beat(ctx context.Context) {
	sent := c.now()
	bctx, cancel := context.WithTimeout(ctx, c.o.LeaseTTL)
	defer cancel()
	val, _ := json.Marshal(memberRecord{Member: c.o.MemberID, Instance: c.instance, Leaving: c.leaving.Load(), HTTP: c.d.advertisedHTTP()})
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
			c.leaseUntil.Store(0)
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
	if c.leaseGen.Load() == 0 {
		// First join: wait two heartbeats before claiming, so that daemons
		// started together see each other and the first assignment does
		// not move partitions around at once (Kafka's initial rebalance
		// delay).
		c.settle.Store(sent + int64(2*c.hbEvery))
	}
	if rejoin || sent >= c.leaseUntil.Load() {
		// A new lease generation: claims made under the previous one are
		// fenced for good (their workers may have stopped half-way).
		c.leaseGen.Add(1)
	}
	c.leaseUntil.Store(sent + int64(c.o.LeaseTTL-c.margin))
	c.wakeUp()
}

func memberInstance(v []byte) string {
	var r memberRecord
	_ = json.Unmarshal(v, &r)
	return r.Instance
}

// watchOwners keeps c.view current and revokes slots whose record was
// overwritten by someone else.
func (c *cluster) watchOwners(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := c.owners.WatchAll(ctx)
		if err != nil {
			c.log.Warn("owners watch", "err", err)
			sleepCtx(ctx, c.hbEvery)
			continue
		}
		for e := range w.Updates() {
			if e == nil {
				c.wakeUp()
				continue
			}
			p, ok := ownerKeyPartition(e.Key())
			if !ok || p >= c.d.cfg.Partitions {
				continue
			}
			oe := ownerEntry{rev: e.Revision()}
			if e.Operation() == jetstream.KeyValuePut {
				if err := json.Unmarshal(e.Value(), &oe.rec); err == nil {
					oe.ok = true
				}
			}
			c.mu.Lock()
			if old, ok := c.view[p]; !ok || old.rev < oe.rev {
				c.view[p] = oe
			}
			s := c.slots[p]
			c.mu.Unlock()
			if s != nil && oe.rev > s.rev.Load() && (!oe.ok || oe.rec.Member != c.o.MemberID || oe.rec.Epoch != s.epoch) {
				if !s.revoked.Swap(true) && !s.stopping.Load() {
					c.log.Warn("partition claimed by another member; fencing", "partition", p, "epoch", s.epoch, "by", oe.rec.Member, "their_epoch", oe.rec.Epoch)
				}
			}
			c.wakeUp()
		}
		_ = w.Stop()
	}
}

// refreshMembers reads the member keys present (including leaving ones).
func (c *cluster) refreshMembers(ctx context.Context) (map[string]memberRecord, error) {
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

// targets returns the assignment for the active (present, not leaving)
// members, recomputed only when they change.
func (c *cluster) targets(live map[string]memberRecord) []string {
	active := make([]string, 0, len(live))
	for id, r := range live {
		if !r.Leaving {
			active = append(active, id)
		}
	}
	slices.Sort(active)
	key := fmt.Sprint(active)
	c.mu.Lock()
	defer c.mu.Unlock()
	if key != c.assignKey || c.assignment == nil {
		c.assignKey, c.assignment = key, assign(active, c.d.cfg.Partitions)
	}
	return c.assignment
}

// reconcile is one pass of the ownership loop: drop fenced slots, give
// up one partition targeted elsewhere, claim the partitions targeted here
// that are free.
func (c *cluster) reconcile(ctx context.Context) {
	me := c.o.MemberID
	for _, s := range c.slotList() {
		if s.stopping.Load() {
			continue
		}
		if err := s.check(); err != nil || (s.finished() && ctx.Err() == nil) {
			c.m.fenced.Inc()
			c.log.Warn("partition stopped", "partition", s.p, "epoch", s.epoch, "fence", err, "worker_exited", s.finished())
			c.stopSlot(s)
			c.removeSlot(s)
		}
	}
	gen := c.leaseGen.Load()
	if !c.leaseValid(gen) || c.leaving.Load() || c.now() < c.settle.Load() {
		return
	}
	live, err := c.refreshMembers(ctx)
	if err != nil {
		c.log.Debug("members", "err", err)
		return
	}
	if _, ok := live[me]; !ok {
		return
	}
	target := c.targets(live)
	view := c.viewCopy()

	// Give up one partition targeted elsewhere; the next pass continues.
	for _, s := range c.slotList() {
		if target[s.p] != me && !s.stopping.Load() {
			c.release(ctx, s)
			c.wakeUp()
			return
		}
	}
	for p := range c.d.cfg.Partitions {
		if ctx.Err() != nil || !c.leaseValid(gen) {
			return
		}
		if c.slot(p) != nil {
			continue
		}
		e := view[p]
		switch {
		case target[p] == me:
			if !e.ok || e.rec.Member == "" || e.rec.Member == me {
				c.claim(ctx, p, e, gen)
			} else if _, present := live[e.rec.Member]; !present {
				c.log.Info("taking over from a member whose lease expired", "partition", p, "from", e.rec.Member, "epoch", e.rec.Epoch)
				c.claim(ctx, p, e, gen)
			}
		case e.ok && e.rec.Member == me:
			// Our record from an earlier lease or run, targeted elsewhere
			// now: release it so that its target need not wait for expiry.
			rec := e.rec
			rec.Member, rec.At = "", time.Now().UTC()
			if _, err := c.writeRecord(ctx, p, rec, e.rev, true); err != nil {
				c.log.Debug("release stale record", "partition", p, "err", err)
			}
		}
	}
}

func (c *cluster) slot(p int) *slot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slots[p]
}

func (c *cluster) slotList() []*slot {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := make([]*slot, 0, len(c.slots))
	for _, s := range c.slots {
		l = append(l, s)
	}
	slices.SortFunc(l, func(a, b *slot) int { return cmp.Compare(a.p, b.p) })
	return l
}

func (c *cluster) removeSlot(s *slot) {
	c.mu.Lock()
	if c.slots[s.p] == s {
		delete(c.slots, s.p)
	}
	c.mu.Unlock()
}

func (c *cluster) viewCopy() map[int]ownerEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := make(map[int]ownerEntry, len(c.view))
	for p, e := range c.view {
		v[p] = e
	}
	return v
}

// writeRecord writes partition p's record with a compare-and-set on rev
// (0 with absent: create). It updates the view on success.
func (c *cluster) writeRecord(ctx context.Context, p int, rec ownerRecord, rev uint64, exists bool) (uint64, error) {
	val, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, c.o.LeaseTTL)
	defer cancel()
	var nrev uint64
	if exists {
		nrev, err = c.owners.Update(wctx, ownerKey(p), val, rev)
	} else {
		nrev, err = c.owners.Create(wctx, ownerKey(p), val)
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			c.m.casConflicts.Inc()
		}
		return 0, err
	}
	c.mu.Lock()
	if old, ok := c.view[p]; !ok || old.rev < nrev {
		c.view[p] = ownerEntry{rec: rec, rev: nrev, ok: true}
	}
	c.mu.Unlock()
	return nrev, nil
}

// claim takes partition p (compare-and-set against the record seen) and
// starts restoring and running it in its own goroutine.
func (c *cluster) claim(ctx context.Context, p int, e ownerEntry, gen uint64) {
	rec := ownerRecord{Member: c.o.MemberID, Epoch: e.rec.Epoch + 1, Snapshot: e.rec.Snapshot, Cursor: e.rec.Cursor, At: time.Now().UTC()}
	s := &slot{c: c, p: p, epoch: rec.Epoch, gen: gen, done: make(chan struct{}), rec: rec, snapCursor: rec.Cursor, snapAt: time.Now()}
	// Records up to the one compared against are older than the claim.
	s.rev.Store(e.rev)
	// Register before writing so that the watcher can revoke it at once.
	c.mu.Lock()
	c.slots[p] = s
	c.mu.Unlock()
	rev, err := c.writeRecord(ctx, p, rec, e.rev, e.ok)
	if err != nil {
		c.removeSlot(s)
		c.log.Debug("claim lost", "partition", p, "err", err)
		return
	}
	s.rev.Store(rev)
	c.m.claims.Inc()
	c.log.Info("partition claimed", "partition", p, "epoch", rec.Epoch, "snapshot", rec.Snapshot, "snapshot_cursor", rec.Cursor)
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go c.runSlot(wctx, s)
}

// runSlot restores partition s.p and runs its worker until cancelled or
// fenced; it releases the state partition before closing s.done.
func (c *cluster) runSlot(ctx context.Context, s *slot) {
	defer close(s.done)
	w := c.d.workers[s.p]
	if err := c.restore(ctx, s); err != nil {
		if ctx.Err() == nil {
			c.log.Error("partition restore failed", "partition", s.p, "err", err)
		}
		return
	}
	c.cleanSnapshots(ctx, s.p, s.rec.Snapshot)
	w.fence, w.epoch = s.check, strconv.FormatUint(s.epoch, 10)
	s.ran.Store(true)
	s.running.Store(true)
	err := w.run(ctx)
	s.running.Store(false)
	w.ready.Store(false)
	if pt := w.pt; pt != nil {
		if err == nil && w.outboxLen.Load() == 0 && len(pt.Outbox()) > 0 && s.check() == nil {
			// A clean stop: everything committed was published. Clear the
			// stored outbox, so that whoever resumes from this state (the
			// release snapshot, or this copy later) does not republish a
			// batch that may by then be older than FR_OUT's duplicate
			// window.
			if cerr := pt.Commit(pt.Cursor(), pt.Clock(), nil); cerr != nil {
				c.log.Warn("clear published outbox", "partition", s.p, "err", cerr)
			}
		}
		pt.Release()
		w.pt = nil
	}
	w.outboxLen.Store(0) // what a fenced worker left is in the local outbox only
	if err != nil && !errors.Is(err, errFenced) {
		c.log.Error("partition worker stopped", "partition", s.p, "err", err)
	}
}

// stopSlot stops a slot's worker (it finishes the batch in hand unless
// fenced) and waits for it.
func (c *cluster) stopSlot(s *slot) {
	s.stopping.Store(true)
	if s.cancel != nil {
		s.cancel()
	}
	<-s.done
}

// release stops partition s's worker, snapshots its final state and
// releases the record pointing at the snapshot. The local copy stays: it
// is a consistent state at its cursor, and if the partition comes back
// before anyone moved it further it is used as is (see restore).
func (c *cluster) release(ctx context.Context, s *slot) {
	start := time.Now()
	c.stopSlot(s)
	defer c.removeSlot(s)
	if s.check() != nil {
		return // fenced: the record is not ours to write
	}
	w := c.d.workers[s.p]
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.rec
	cursor := w.committed.Load()
	var newSnap string
	// Only a worker that ran has a cursor of this claim; a slot stopped
	// while restoring keeps the previous snapshot.
	if s.ran.Load() && (cursor > s.snapCursor || (rec.Snapshot == "" && cursor > 0)) {
		name := snapshotName(s.p, s.epoch, cursor)
		if _, err := c.putSnapshot(ctx, s.p, name, cursor); err != nil {
			c.log.Warn("release snapshot failed; the next owner replays from the previous one", "partition", s.p, "err", err)
		} else {
			newSnap = name
			rec.Snapshot, rec.Cursor = name, cursor
		}
	}
	old := s.rec.Snapshot
	rec.Member, rec.At = "", time.Now().UTC()
	if s.check() != nil {
		c.deleteSnapshot(newSnap)
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.o.LeaseTTL)
	defer cancel()
	if _, err := c.writeRecord(rctx, s.p, rec, s.rev.Load(), true); err != nil {
		c.log.Warn("release lost", "partition", s.p, "err", err)
		c.deleteSnapshot(newSnap)
		return
	}
	c.m.releases.Inc()
	if newSnap != "" && old != "" && old != newSnap {
		c.deleteSnapshot(old)
	}
	c.log.Info("partition released", "partition", s.p, "epoch", s.epoch, "cursor", cursor, "snapshot", rec.Snapshot, "seconds", time.Since(start).Seconds())
}

// leave marks the member leaving, stops every worker at once (the
// daemon's drain), then snapshots and releases each partition within the
// drain budget. Heartbeats go on meanwhile, so the lease stays valid.
func (c *cluster) leave() {
	c.leaving.Store(true)
	// Tell the others first: they stop targeting us, and claim each
	// partition as soon as it is released below.
	ack := make(chan struct{})
	select {
	case c.beatNow <- ack:
		select {
		case <-ack:
		case <-c.d.hard.Done():
		}
	case <-c.d.hard.Done():
	}
	slots := c.slotList()
	var wg sync.WaitGroup
	for _, s := range slots {
		wg.Go(func() { c.stopSlot(s) })
	}
	wg.Wait()
	// Snapshots get what is left of three quarters of the drain budget;
	// releases go on without a fresh snapshot after that.
	budget, cancel := context.WithTimeout(c.d.hard, c.d.cfg.DrainTimeout*3/4)
	defer cancel()
	for _, s := range slots {
		ctx := budget
		if budget.Err() != nil {
			ctx = c.d.hard
		}
		c.release(ctx, s)
	}
}

// snapshotter snapshots owned partitions whose cursor moved, each at most
// every SnapshotInterval, one at a time.
func (c *cluster) snapshotter(ctx context.Context) {
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
			c.periodicSnapshot(ctx, s)
		}
	}
}

func (c *cluster) periodicSnapshot(ctx context.Context, s *slot) {
	if s.stopping.Load() || !s.running.Load() || s.check() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := c.d.workers[s.p]
	cursor := w.committed.Load() // a lower bound of the export's cursor
	if cursor <= s.snapCursor || time.Since(s.snapAt) < c.o.SnapshotInterval {
		return
	}
	name := snapshotName(s.p, s.epoch, cursor)
	if _, err := c.putSnapshot(ctx, s.p, name, cursor); err != nil {
		c.log.Warn("periodic snapshot failed", "partition", s.p, "err", err)
		return
	}
	rec := s.rec
	old := rec.Snapshot
	rec.Snapshot, rec.Cursor, rec.At = name, cursor, time.Now().UTC()
	if s.check() != nil || s.stopping.Load() {
		c.deleteSnapshot(name)
		return
	}
	rev, err := c.writeRecord(ctx, s.p, rec, s.rev.Load(), true)
	if err != nil {
		c.log.Warn("snapshot pointer not written", "partition", s.p, "err", err)
		c.deleteSnapshot(name)
		return
	}
	s.rev.Store(rev)
	s.rec, s.snapCursor, s.snapAt = rec, cursor, time.Now()
	if old != "" && old != name {
		c.deleteSnapshot(old)
	}
}

// ready reports whether the lease is valid and every owned partition is
// consuming.
func (c *cluster) ready() bool {
	if !c.leaseValid(c.leaseGen.Load()) {
		return false
	}
	for _, s := range c.slotList() {
		if !s.running.Load() || !c.d.workers[s.p].ready.Load() {
			return false
		}
	}
	return true
}

// ownedPartitions lists the partitions whose worker runs here.
func (c *cluster) ownedPartitions() []int {
	var ps []int
	for _, s := range c.slotList() {
		if s.running.Load() && !s.stopping.Load() {
			ps = append(ps, s.p)
		}
	}
	return ps
}

// ClusterStatus is a daemon's view of the cluster, the answer of
// GET /v1/cluster. Outside cluster mode that route answers Mode "single",
// no member, no lease, and every partition in Owned.
type ClusterStatus struct {
	// Mode is "cluster" or "single".
	Mode string `json:"mode"`
	// Member is this daemon's member ID ("" outside cluster mode).
	Member string `json:"member"`
	// HTTP is the base URL this daemon advertises to the others.
	HTTP string `json:"http,omitempty"`
	// Partitions is P.
	Partitions            int     `json:"partitions"`
	LeaseValid            bool    `json:"lease_valid"`
	LeaseRemainingSeconds float64 `json:"lease_remaining_seconds"`
	// Members are the IDs of the live members (FR_MEMBERS keys), sorted.
	Members []string `json:"members"`
	// Directory describes each live member as its record says.
	Directory []MemberInfo `json:"directory"`
	// Owners is the owner of each partition (index) as FR_OWNERS said when
	// this daemon last saw it; "" released or never claimed. Omitted
	// outside cluster mode.
	Owners []string `json:"owners,omitempty"`
	// Owned are the partitions this daemon has claimed.
	Owned []OwnedPartition `json:"owned"`
}

// MemberInfo is one live member as its FR_MEMBERS record describes it.
type MemberInfo struct {
	Member string `json:"member"`
	// HTTP is the member's advertised query API base URL ("" none).
	HTTP string `json:"http,omitempty"`
	// Leaving: the member is shutting down and is no longer a target.
	Leaving bool `json:"leaving,omitempty"`
}

// OwnedPartition is one partition claimed by this daemon.
type OwnedPartition struct {
	Partition int         `json:"partition"`
	Epoch     uint64      `json:"epoch"`
	Running   bool        `json:"running"`
	Ready     bool        `json:"ready"`
	Snapshot  string      `json:"snapshot,omitempty"`
	Restore   RestoreInfo `json:"restore"`
}

// ClusterStatus returns the cluster view; ok is false outside cluster
// mode. Safe for concurrent use.
func (d *Daemon) ClusterStatus() (st ClusterStatus, ok bool) {
	c := d.cluster
	if c == nil {
		return st, false
	}
	st.Mode, st.Member, st.HTTP, st.Partitions = "cluster", c.o.MemberID, d.advertisedHTTP(), d.cfg.Partitions
	st.LeaseValid = c.leaseValid(c.leaseGen.Load())
	if st.LeaseValid {
		st.LeaseRemainingSeconds = time.Duration(c.leaseUntil.Load() - c.now()).Seconds()
	}
	st.Members, st.Directory, st.Owned = []string{}, []MemberInfo{}, []OwnedPartition{}
	st.Owners = make([]string, d.cfg.Partitions)
	c.mu.Lock()
	for id, r := range c.live {
		st.Members = append(st.Members, id)
		st.Directory = append(st.Directory, MemberInfo{Member: id, HTTP: memberBase(r.HTTP), Leaving: r.Leaving})
	}
	for p, e := range c.view {
		if e.ok && p < len(st.Owners) {
			st.Owners[p] = e.rec.Member
		}
	}
	c.mu.Unlock()
	slices.Sort(st.Members)
	slices.SortFunc(st.Directory, func(a, b MemberInfo) int { return cmp.Compare(a.Member, b.Member) })
	for _, s := range c.slotList() {
		s.mu.Lock()
		op := OwnedPartition{Partition: s.p, Epoch: s.epoch, Running: s.running.Load(), Ready: d.workers[s.p].ready.Load(), Snapshot: s.rec.Snapshot, Restore: s.restore}
		s.mu.Unlock()
		st.Owned = append(st.Owned, op)
	}
	return st, true
}

// assign returns the target owner of each of parts partitions among the
// sorted, distinct members: rendezvous (highest random weight) hashing
// with bounded loads. Every (partition, member) pair gets a hash score;
// pairs are taken from the highest score down, a partition going to the
// first member that still has room, where room is parts/n for every
// member plus one for the first parts%n members to fill up. So loads
// differ by at most one, the result depends only on the member set (every
// daemon computes the same), and a membership change moves about the
// partitions it must (TestAssignSticky measures it): a partition stays
// with its top-scored member unless that member is full.
func assign(members []string, parts int) []string {
	out := make([]string, parts)
	n := len(members)
	if n == 0 {
		return out
	}
	base, extra := parts/n, parts%n
	type pair struct {
		score uint64
		p, m  int
	}
	pairs := make([]pair, 0, parts*n)
	hs := make([]uint64, n)
	for m, id := range members {
		hs[m] = fnv64(id)
	}
	for p := range parts {
		for m := range members {
			pairs = append(pairs, pair{mix64(hs[m] ^ (uint64(p)+1)*0x9e3779b97f4a7c15), p, m})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if c := cmp.Compare(a.p, b.p); c != 0 {
			return c
		}
		return cmp.Compare(members[a.m], members[b.m])
	})
	load := make([]int, n)
	big, left := 0, parts
	for _, pr := range pairs {
		if out[pr.p] != "" {
			continue
		}
		l := load[pr.m]
		if l < base || (l == base && big < extra) {
			if l == base {
				big++
			}
			load[pr.m]++
			out[pr.p] = members[pr.m]
			if left--; left == 0 {
				break
			}
		}
	}
	return out
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is splitmix64's finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
