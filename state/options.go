package state

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state/record"
)

// Defaults applied by [Open] to zero fields of [Options].
const (
	DefaultCacheBytes = 256 << 20
	DefaultRetention  = 180 * 24 * time.Hour
	DefaultGCInterval = 5 * time.Minute

	// defaultMemTableBytes is Badger's memtable size. Badger allows one
	// transaction up to 15% of it (so 1.2 MiB: [DefaultMaxBatchBytes]).
	// It also bounds what Badger's table builders keep: a full memtable is
	// flushed into one level-0 table, built in a z.Allocator whose buffers
	// double as the table grows, and Badger pools eight such allocators,
	// each kept at the largest size it reached, for as long as writes go
	// on. Measured under a sustained load of 3 M events (issue 15): with
	// 64 MiB memtables that pool held 1.8 GiB and was still growing, with
	// 16 MiB 488 MiB, with 8 MiB 188-224 MiB (8 allocators of 28 MiB).
	defaultMemTableBytes = 8 << 20
	// numMemtables bounds Badger's memtables (active + flushing). Each costs
	// its skiplist arena on the Go heap (MemTableBytes plus the largest
	// transaction) and its mmapped write-ahead log.
	numMemtables = 2
	// numLevelZeroTables is how many memtable flushes level 0 gathers
	// before they are compacted into level 1 (Badger's default: 5), and
	// twice it how many stall writes. Every compaction of level 0 rewrites
	// the level-1 tables it overlaps (with P partitions in one key space,
	// all of them), so what counts is the bytes gathered: 20 tables of
	// 8 MiB, like Badger's 5 of 64 MiB it replaces, not 5 of 8 MiB (four
	// times the compaction writes under a sustained load).
	numLevelZeroTables = 20

	// baseTableBytes is the size of the tables Badger's compactions write
	// at the base level (twice that a level further down; Badger's
	// default: 2 MiB). A compaction builds up to 8 + its splits tables at
	// once, each in an allocator of twice the table's size that grows as
	// it fills, and Badger pools the allocators: right after a million
	// shoppers were rewritten they held 96-356 MiB of the heap. With 1 MiB
	// tables the daemon's RSS after that load was 793-829 MiB against
	// 911-917 (peak 894-896 against 1032-1033; NATS outside, 128 MiB
	// cache), at the same rate (issue 15, bench/RESULTS.md).
	baseTableBytes = 1 << 20

	// blockCacheBytes is Badger's cache of decompressed table blocks,
	// which compressed tables require. The user cache in front of it
	// holds the hot shoppers, so it only spares a decompression when
	// neighbouring keys are read together (a partition's timer scan,
	// an export).
	blockCacheBytes = 16 << 20
)

// Compression is how Badger compresses the tables a [Store] writes: a
// trade between disk and file-backed memory on one side and the CPU of a
// Badger read (a miss of the user cache) on the other (see
// tableCompression for the figures). The zero value is [CompressSnappy].
type Compression int

const (
	// CompressSnappy compresses tables with Snappy (the default).
	CompressSnappy Compression = iota
	// CompressNone writes tables uncompressed, as before issue 15: three
	// times the disk and file-backed RSS, Badger reads straight from the
	// mmap (for a working set far larger than the user cache).
	CompressNone
)

// String is the name ParseCompression reads.
func (c Compression) String() string {
	switch c {
	case CompressSnappy:
		return "snappy"
	case CompressNone:
		return "none"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// ParseCompression reads "snappy" or "none", wrapping ErrInvalidOption
// otherwise.
func ParseCompression(s string) (Compression, error) {
	for _, c := range []Compression{CompressSnappy, CompressNone} {
		if s == c.String() {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: table compression %q (want snappy or none)", ErrInvalidOption, s)
}

// tableCompression is how Badger compresses the tables it writes. Measured
// with TestFootprint at 1 000 000 typical shoppers (issue 15): None 307
// bytes per shopper in the tables and 310 MiB file-backed RSS, reading
// every shopper once 11.1-11.4 s; Snappy 111 bytes, 122 MiB, 13.0-13.3 s;
// ZSTD (level 1) 76 bytes, 89 MiB, but 23.6 s, too slow for the read on a
// cache miss. Badger records each table's compression in its manifest, so
// a store written with one setting reads as before with the other, and
// its tables change as compactions rewrite them.
const tableCompression = options.Snappy

// DefaultMaxBatchBytes is [Store.MaxBatchBytes] of a store opened with
// the default memtable size: the largest transaction Badger then accepts,
// in [Partition.StagedBytes] plus [OutboxBytes] units. A caller that cuts
// its batches when StagedBytes passes half of it leaves the other half for
// the batch's outbox and for the user that crossed the mark.
const DefaultMaxBatchBytes = defaultMemTableBytes*15/100 - batchMarginBytes

// batchMarginBytes is what [Store.MaxBatchBytes] keeps back from Badger's
// limit for the meta entry and Badger's transaction marker.
const batchMarginBytes = 1024

// ErrInvalidOption is wrapped by the errors of [Options.Validate] and of
// calls given an out-of-range argument (such as a partition number).
var ErrInvalidOption = errors.New("state: invalid option")

// Options configures a [Store]. The zero value of every field except Dir
// means its documented default.
type Options struct {
	// Dir is the directory of the Badger database. Required.
	Dir string

	// SyncWrites makes every commit fsync Badger's write-ahead log before it
	// returns. Off (the default), a commit survives a crash of the process
	// (the data is in the kernel's page cache) but not a power loss or kernel
	// crash, after which Badger recovers a prefix of the commits: the cursor
	// rolls back with the states and the pipeline replays the events. On, a
	// commit also survives power loss, at the cost measured in doc.go.
	SyncWrites bool

	// CacheBytes is the memory budget of the write-back user cache of the
	// whole store, shared equally among the partitions currently open. It
	// bounds the estimated size of cached users; users with uncommitted
	// changes are never evicted and may take a partition over its share
	// until its next Commit. 0 means DefaultCacheBytes (256 MiB); negative
	// is invalid.
	CacheBytes int64

	// Retention is the time-to-live of user records, timers and traces: a
	// shopper not written for Retention (wall-clock time, Badger TTL)
	// disappears. 0 means DefaultRetention (180 days); negative is invalid.
	Retention time.Duration

	// Logger receives the store's logs and Badger's. nil discards them.
	Logger *slog.Logger

	// Metrics is the set the store registers its flashreturn_state_* and
	// flashreturn_badger_* metrics in. nil means a private set nobody reads.
	// A set holds the metrics of one open Store at a time (Close removes
	// them, so a Store reopened later can use the same set).
	Metrics *metrics.Set

	// LegacyPolicy is the policy given to the requests of user records
	// written before requests kept their policy (record version 1), and to
	// requests stored with no policy; the fields version 1 lacked are
	// derived from it (see state/record's package doc, Version 1).
	// The daemon passes its --policy: the policy that decided those
	// requests, as far as anyone knows. Once such a user is committed
	// again, its requests follow this policy for good (its record is
	// stored in the partition). nil means version-1 records are reported
	// as a [*CorruptError] wrapping [ErrNoLegacyPolicy]. It must be a
	// finished policy ([core.Policy.Finish]) whose version matches its
	// content.
	LegacyPolicy *core.Policy

	// Compression is how Badger compresses the tables it writes; the zero
	// value is CompressSnappy. It applies to tables written from now on.
	Compression Compression

	// GCInterval is how often [Store.Run] runs Badger's value-log garbage
	// collection. 0 means DefaultGCInterval (5 minutes); negative is invalid.
	GCInterval time.Duration

	// memTableBytes overrides defaultMemTableBytes (tests use small
	// memtables to make flushes happen during the crash test).
	memTableBytes int64
}

// Validate reports whether the options are usable, wrapping ErrInvalidOption.
func (o *Options) Validate() error {
	switch {
	case o.Dir == "":
		return fmt.Errorf("%w: Dir is required", ErrInvalidOption)
	case o.CacheBytes < 0:
		return fmt.Errorf("%w: CacheBytes %d is negative", ErrInvalidOption, o.CacheBytes)
	case o.Retention < 0:
		return fmt.Errorf("%w: Retention %v is negative", ErrInvalidOption, o.Retention)
	case o.Retention > 0 && o.Retention < time.Second:
		return fmt.Errorf("%w: Retention %v is under Badger's TTL resolution of 1s", ErrInvalidOption, o.Retention)
	case o.Compression != CompressSnappy && o.Compression != CompressNone:
		return fmt.Errorf("%w: Compression %d", ErrInvalidOption, o.Compression)
	case o.GCInterval < 0:
		return fmt.Errorf("%w: GCInterval %v is negative", ErrInvalidOption, o.GCInterval)
	case o.memTableBytes < 0:
		return fmt.Errorf("%w: memtable size %d is negative", ErrInvalidOption, o.memTableBytes)
	}
	if o.LegacyPolicy != nil {
		if _, _, err := record.EncodePolicy(o.LegacyPolicy); err != nil {
			return fmt.Errorf("%w: LegacyPolicy: %w", ErrInvalidOption, err)
		}
	}
	return nil
}

// tables is the compression of the tables Badger writes and the size of
// its block cache: none for uncompressed tables, which are read straight
// from their mmap (a Snappy table written before still gets its own
// decompression, uncached).
func (o *Options) tables() (options.CompressionType, int64) {
	if o.Compression == CompressNone {
		return options.None, 0
	}
	return tableCompression, blockCacheBytes
}

// withDefaults returns a copy with zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.GCInterval == 0 {
		o.GCInterval = DefaultGCInterval
	}
	if o.memTableBytes == 0 {
		o.memTableBytes = defaultMemTableBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	return o
}
