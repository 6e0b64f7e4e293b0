package state

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	badger "github.com/dgraph-io/badger/v4"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state/record"
)

// Errors callers can branch on with errors.Is.
var (
	// ErrClosed is returned by calls on a closed Store.
	ErrClosed = errors.New("state: store closed")
	// ErrPartitionBusy is returned by [Store.Partition], [Store.ImportPartition]
	// and [Store.DropPartition] when the partition is already open (or being
	// imported) in this Store: exactly one owner may write a partition.
	ErrPartitionBusy = errors.New("state: partition already open")
	// ErrImportIncomplete is returned by [Store.Partition] and
	// [Store.ExportPartition] when an earlier import of the partition did not
	// finish; import it again (or drop it) before using it.
	ErrImportIncomplete = errors.New("state: partition has an incomplete import")
	// ErrBatchTooBig is returned by [Partition.Commit] when the batch does not
	// fit one Badger transaction (badger.ErrTxnTooBig). Retrying cannot help:
	// Discard and redo the batch smaller; [Partition.StagedBytes] and
	// [Store.MaxBatchBytes] let the caller cut batches before this happens.
	ErrBatchTooBig = errors.New("state: batch too big for one transaction")
	// ErrCursorRegress is returned by [Partition.Commit] given a cursor lower
	// than the partition's current one.
	ErrCursorRegress = errors.New("state: cursor moved backwards")
	// ErrCorrupt is matched (errors.Is) by every [*CorruptError].
	ErrCorrupt = errors.New("state: corrupt record")
)

// CorruptError reports a stored record that cannot be decoded: damaged, or
// written by a newer release (Err wraps ErrUnsupportedVersion). The caller
// must not overwrite the record (that would lose what it holds); a worker
// typically dead-letters the event and alerts.
type CorruptError struct {
	Key string // the Badger key, raw bytes
	Err error  // why decoding failed
}

// Error describes the record and the cause.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("state: corrupt record %q: %v", e.Key, e.Err)
}

// Unwrap returns the decoding error.
func (e *CorruptError) Unwrap() error { return e.Err }

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Store is the Badger database holding the state of any number of
// partitions. Its methods are safe for concurrent use; a [Partition] it
// hands out is not (one goroutine owns it).
type Store struct {
	db   *badger.DB
	opts Options
	log  *slog.Logger
	m    *storeMetrics

	mu    sync.Mutex
	owned map[int]*Partition // open partitions; nil value = reserved by an import/drop

	// cacheShare is CacheBytes divided by the number of open partitions.
	cacheShare atomic.Int64
	cacheBytes atomic.Int64 // estimated bytes of all cached users
	cacheUsers atomic.Int64

	closed atomic.Bool
	ttl    uint64 // Retention in seconds

	pols interner // one *core.Policy per version, shared by partitions and readers
}

// Open opens (creating if needed) the store in opts.Dir. The caller must
// Close it.
func Open(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	log := opts.Logger.With("component", "state")
	compression, blockCache := opts.tables()
	bo := badger.DefaultOptions(opts.Dir).
		WithLogger(badgerLogger{l: opts.Logger.With("component", "badger")}).
		WithSyncWrites(opts.SyncWrites).
		WithMemTableSize(opts.memTableBytes).
		WithNumMemtables(numMemtables).
		WithNumLevelZeroTables(numLevelZeroTables).
		WithNumLevelZeroTablesStall(2 * numLevelZeroTables).
		WithBaseTableSize(baseTableBytes).
		// Keep values in the LSM tree (Badger's default of 1 MiB) unless the
		// memtable is so small that a transaction could not hold one.
		WithValueThreshold(min(1<<20, opts.memTableBytes*15/100/2)).
		// Snappy tables: about a third of the disk and under half the
		// file-backed RSS (Badger writes each table through its mmap, so
		// every table is resident once written) for 2-4 µs more per
		// Badger read (see tableCompression). Compression requires
		// Badger's block cache; it is kept small, since the user cache in
		// front of it already serves the hot shoppers.
		WithCompression(compression).
		WithBlockCacheSize(blockCache).
		WithIndexCacheSize(0).
		// One writer per partition and no read-modify-write inside a
		// transaction: conflict detection would only cost time.
		WithDetectConflicts(false).
		WithNumCompactors(2).
		WithMetricsEnabled(true)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", opts.Dir, err)
	}
	s := &Store{
		db:    db,
		opts:  opts,
		log:   log,
		owned: make(map[int]*Partition),
		ttl:   uint64((opts.Retention + time.Second - 1) / time.Second),
	}
	s.cacheShare.Store(opts.CacheBytes)
	if p := opts.LegacyPolicy; p != nil {
		k, _ := record.VersionKey(p.Version) // checked by Validate
		s.pols.intern(k, p)
	}
	s.m = newStoreMetrics(opts.Metrics, s)
	lsm, vlog := db.Size()
	log.Info("state store open", "dir", opts.Dir, "sync_writes", opts.SyncWrites,
		"cache_bytes", opts.CacheBytes, "retention", opts.Retention, "lsm_bytes", lsm, "vlog_bytes", vlog)
	return s, nil
}

// Close closes the database; it flushes Badger's memtables. Call it after
// every partition's owner and [Store.Run] have stopped; a Partition must not
// be used after Close. Closing twice returns ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	s.mu.Lock()
	for _, pt := range s.owned {
		if pt != nil {
			pt.unregisterGauges()
		}
	}
	s.mu.Unlock()
	s.m.unregister()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	s.log.Info("state store closed")
	return nil
}

// MaxBatchBytes is the largest transaction Badger accepts, in the units of
// [Partition.StagedBytes] plus [OutboxBytes]: a batch whose staged bytes
// plus outbox bytes stay under it commits without ErrBatchTooBig.
func (s *Store) MaxBatchBytes() int {
	return int(s.db.MaxBatchSize()) - batchMarginBytes
}

// Partition opens partition p for writing: it loads the cursor, clock,
// outbox and timer index. Exactly one goroutine may own the returned
// Partition; opening a partition that is already open in this Store returns
// ErrPartitionBusy until the owner calls [Partition.Release].
func (s *Store) Partition(p int) (*Partition, error) {
	if err := checkPartition(p); err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := s.reserve(p); err != nil {
		return nil, err
	}
	pt, err := loadPartition(s, p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		delete(s.owned, p)
		return nil, err
	}
	s.owned[p] = pt
	s.cacheShare.Store(s.opts.CacheBytes / int64(len(s.owned)))
	return pt, nil
}

// reserve marks p as taken (by an owner, an import or a drop).
func (s *Store) reserve(p int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.owned[p]; ok {
		return fmt.Errorf("partition %d: %w", p, ErrPartitionBusy)
	}
	s.owned[p] = nil
	return nil
}

// unreserve frees p and re-divides the cache budget among the partitions
// still open, so a process that gave partitions away lets the others
// cache more.
func (s *Store) unreserve(p int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.owned, p)
	if n := int64(len(s.owned)); n > 0 {
		s.cacheShare.Store(s.opts.CacheBytes / n)
	} else {
		s.cacheShare.Store(s.opts.CacheBytes)
	}
}

// ReadUser returns the committed state of a user of partition p, read from
// Badger (never from a partition's cache, whose users are being changed by
// their owner), with the policies of its requests resolved from the
// partition's policy records in the same snapshot. ok is false when the
// user has no record. A record that cannot be decoded, or refers to a
// policy version the partition has not stored, is a [*CorruptError]. Safe
// for concurrent use, e.g. by the HTTP query API.
func (s *Store) ReadUser(p int, userID string) (u *core.User, ok bool, err error) {
	if err := checkPartition(p); err != nil {
		return nil, false, err
	}
	if s.closed.Load() {
		return nil, false, ErrClosed
	}
	key := userKey(p, userID)
	var decodeErr error
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		res := record.Resolver{Find: func(k record.PolicyKey) (*core.Policy, error) { return s.readPolicy(txn, p, k) }, Legacy: s.opts.LegacyPolicy}
		return item.Value(func(v []byte) error {
			u, decodeErr = record.DecodeUser(v, &res)
			if decodeErr == nil && u.ID != userID {
				decodeErr = fmt.Errorf("record holds user %q", u.ID)
			}
			return nil
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: read partition %d: %w", p, err)
	}
	if decodeErr != nil {
		s.m.corrupt.Inc()
		return nil, false, &CorruptError{Key: string(key), Err: decodeErr}
	}
	return u, true, nil
}

// readPolicy resolves version k for a reader of partition p: the
// partition must have its record (in txn's snapshot); the policy itself
// comes from the store's interner, or is parsed from the record.
func (s *Store) readPolicy(txn *badger.Txn, p int, k record.PolicyKey) (*core.Policy, error) {
	item, err := txn.Get(appendPolicyKey(nil, p, k))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, unknownPolicy(p, k)
	}
	if err != nil {
		return nil, err
	}
	if q := s.pols.get(k); q != nil {
		return q, nil
	}
	var q *core.Policy
	err = item.Value(func(v []byte) (err error) {
		q, err = record.DecodePolicy(k, v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("policy record %s: %w", k, err)
	}
	return s.pols.intern(k, q), nil
}

// ReadTrace returns the rule trace stored by [Partition.PutTrace], as
// committed. ok is false when there is none (never written, or expired).
// The returned slice is the caller's. Safe for concurrent use.
func (s *Store) ReadTrace(p int, userID, requestID string) ([]byte, bool, error) {
	return s.get(p, appendTraceKey(nil, p, userID, requestID))
}

// get reads a committed value; the returned slice is a copy.
func (s *Store) get(p int, key []byte) (val []byte, ok bool, err error) {
	if err := checkPartition(p); err != nil {
		return nil, false, err
	}
	if s.closed.Load() {
		return nil, false, ErrClosed
	}
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: read partition %d: %w", p, err)
	}
	return val, true, nil
}

// Run runs Badger's value-log garbage collection every GCInterval until ctx
// is done, then returns nil. Sizes are exported continuously by the
// flashreturn_state_*_bytes gauges, Run or not. Cancel ctx and wait for Run
// to return before Close.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.runGC(ctx)
		}
	}
}

// runGC rewrites value-log files while at least half of one is garbage.
func (s *Store) runGC(ctx context.Context) {
	s.m.gcRuns.Inc()
	for ctx.Err() == nil && !s.closed.Load() {
		err := s.db.RunValueLogGC(0.5)
		if err == nil {
			s.m.gcRewrites.Inc()
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			s.m.gcErrors.Inc()
			s.log.Warn("value log gc", "err", err)
		}
		return
	}
}

// badgerLogger routes Badger's logs to slog.
type badgerLogger struct{ l *slog.Logger }

// log forwards one Badger message with component=badger; Badger's format
// strings end in a newline, which slog would keep.
func (b badgerLogger) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return
	}
	b.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelInfo, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a) }

// storeMetrics are the metrics of one Store.
type storeMetrics struct {
	set           *metrics.Set
	names         []string
	commits       *metrics.Counter
	commitErrors  *metrics.Counter
	commitSeconds *metrics.PrometheusHistogram
	commitUsers   *metrics.Counter
	commitBytes   *metrics.Counter
	cacheHits     *metrics.Counter
	cacheMisses   *metrics.Counter
	cacheEvicted  *metrics.Counter
	readSeconds   *metrics.PrometheusHistogram
	corrupt       *metrics.Counter
	gcRuns        *metrics.Counter
	gcRewrites    *metrics.Counter
	gcErrors      *metrics.Counter
}

// newStoreMetrics registers the store's metrics in set (see the package
// doc, Metrics); unregister removes them when the store closes, so a
// process that reopens a store does not register twice.
func newStoreMetrics(set *metrics.Set, s *Store) *storeMetrics {
	m := &storeMetrics{set: set}
	counter := func(name string) *metrics.Counter {
		m.names = append(m.names, name)
		return set.NewCounter(name)
	}
	histogram := func(name string) *metrics.PrometheusHistogram {
		m.names = append(m.names, name)
		return set.NewPrometheusHistogram(name)
	}
	gauge := func(name string, f func() float64) {
		m.names = append(m.names, name)
		set.NewGauge(name, f)
	}
	m.commits = counter("flashreturn_state_commits_total")
	m.commitErrors = counter("flashreturn_state_commit_errors_total")
	m.commitSeconds = histogram("flashreturn_state_commit_seconds")
	m.commitUsers = counter("flashreturn_state_commit_users_total")
	m.commitBytes = counter("flashreturn_state_commit_bytes_total")
	m.cacheHits = counter("flashreturn_state_cache_hits_total")
	m.cacheMisses = counter("flashreturn_state_cache_misses_total")
	m.cacheEvicted = counter("flashreturn_state_cache_evictions_total")
	m.readSeconds = histogram("flashreturn_state_read_seconds")
	m.corrupt = counter("flashreturn_state_corrupt_records_total")
	m.gcRuns = counter("flashreturn_state_vlog_gc_runs_total")
	m.gcRewrites = counter("flashreturn_state_vlog_gc_rewrites_total")
	m.gcErrors = counter("flashreturn_state_vlog_gc_errors_total")
	gauge("flashreturn_state_cache_bytes", func() float64 { return float64(s.cacheBytes.Load()) })
	gauge("flashreturn_state_cache_users", func() float64 { return float64(s.cacheUsers.Load()) })
	gauge("flashreturn_state_cache_budget_bytes", func() float64 { return float64(s.opts.CacheBytes) })
	gauge("flashreturn_state_lsm_bytes", func() float64 {
		if s.closed.Load() {
			return 0
		}
		lsm, _ := s.db.Size()
		return float64(lsm)
	})
	gauge("flashreturn_state_vlog_bytes", func() float64 {
		if s.closed.Load() {
			return 0
		}
		_, vlog := s.db.Size()
		return float64(vlog)
	})
	set.RegisterMetricsWriter(func(w io.Writer) {
		if !s.closed.Load() {
			writeBadgerMetrics(w, s.opts.Dir)
		}
	})
	return m
}

// unregister removes the store's metrics from the set (at Close), so that a
// Store opened later can register them again.
func (m *storeMetrics) unregister() {
	for _, n := range m.names {
		m.set.UnregisterMetric(n)
	}
}

// badgerCounters maps Badger's expvar counters (process-wide: the sum over
// every Badger database in the process) to flashreturn names.
var badgerCounters = [...][2]string{
	{"badger_get_num_user", "flashreturn_badger_gets_total"},
	{"badger_get_with_result_num_user", "flashreturn_badger_gets_found_total"},
	{"badger_put_num_user", "flashreturn_badger_puts_total"},
	{"badger_write_bytes_user", "flashreturn_badger_user_written_bytes_total"},
	{"badger_write_bytes_l0", "flashreturn_badger_l0_written_bytes_total"},
	{"badger_write_bytes_vlog", "flashreturn_badger_vlog_written_bytes_total"},
	{"badger_read_bytes_lsm", "flashreturn_badger_lsm_read_bytes_total"},
	{"badger_read_bytes_vlog", "flashreturn_badger_vlog_read_bytes_total"},
	{"badger_get_num_memtable", "flashreturn_badger_memtable_gets_total"},
	{"badger_iterator_num_user", "flashreturn_badger_iterators_total"},
	{"badger_get_num_lsm", "flashreturn_badger_lsm_gets_total"},
	{"badger_write_bytes_compaction", "flashreturn_badger_compaction_written_bytes_total"},
	{"badger_hit_num_lsm_bloom_filter", "flashreturn_badger_bloom_hits_total"},
}

// writeBadgerMetrics writes Badger's expvar counters and the sizes of
// dir's LSM and value log as flashreturn_badger_* and _lsm/_vlog_bytes.
// Badger publishes process-wide expvars, so with two stores the
// counters are their sum.
func writeBadgerMetrics(w io.Writer, dir string) {
	for _, c := range badgerCounters {
		if v, ok := expvarSum(c[0]); ok {
			metrics.WriteCounterUint64(w, c[1], uint64(max(v, 0)))
		}
	}
	if v, ok := expvarSum("badger_compaction_current_num_lsm"); ok {
		metrics.WriteGaugeUint64(w, "flashreturn_badger_compacting_tables", uint64(max(v, 0)))
	}
	if m, ok := expvar.Get("badger_write_pending_num_memtable").(*expvar.Map); ok {
		if v, ok := m.Get(dir).(*expvar.Int); ok {
			metrics.WriteGaugeUint64(w, "flashreturn_badger_pending_writes", uint64(max(v.Value(), 0)))
		}
	}
}

// expvarSum reads an expvar Int, or sums the Ints of an expvar Map.
func expvarSum(name string) (int64, bool) {
	switch v := expvar.Get(name).(type) {
	case *expvar.Int:
		return v.Value(), true
	case *expvar.Map:
		var sum int64
		v.Do(func(kv expvar.KeyValue) {
			if i, ok := kv.Value.(*expvar.Int); ok {
				sum += i.Value()
			}
		})
		return sum, true
	}
	return 0, false
}
