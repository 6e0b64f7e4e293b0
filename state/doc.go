// Package state keeps every shopper's decision state in Badger, partitioned
// the way the input stream is, and commits each batch of a partition worker
// atomically together with the partition's cursor and outbox, so that a
// crash at any point leaves the states and the cursor in agreement.
//
// # Callers
//
// The pipeline opens one [Store] per process ([Open]), runs [Store.Run] for
// housekeeping, and gives each partition worker the [Partition] it owns
// ([Store.Partition]). The HTTP query API reads committed state with
// [Store.ReadUser] and [Store.ReadTrace] from any goroutine. Moving a
// partition between processes is [Store.ExportPartition] on the source,
// [Store.ImportPartition] on the destination, then [Store.DropPartition] on
// the source.
//
// # A batch
//
//	u, err := pt.User(id)     // cache, else Badger, else fresh
//	core.Apply(u, ev, env)    // mutate in place
//	pt.MarkDirty(u)           // after every change
//	pt.SetDeadline(id, next)  // timer index, 0 clears
//	pt.PutTrace(id, req, js)  // rule trace, own key, TTL
//	... until pt.StagedBytes()+OutboxBytes(out) nears s.MaxBatchBytes()
//	err = pt.Commit(lastSeq, clock, out) // one transaction, or Discard()
//
// then publish out, await the acks, ack the inputs. On start a worker
// republishes [Partition.Outbox] and resumes at [Partition.Cursor]+1.
//
// # Invariants
//
//   - One Badger transaction per Commit holds the dirty users, the timer
//     changes, the traces, the cursor and clock, and the outbox; nothing is
//     written outside Commit (WriteBatch is not used: it splits a batch into
//     several transactions when one fills). A batch too big for one
//     transaction fails whole with [ErrBatchTooBig]; callers cut batches with
//     [Partition.StagedBytes] and [Store.MaxBatchBytes].
//   - The cursor never moves backwards ([ErrCursorRegress]); states, timers,
//     outbox and cursor are always those of the same batch. TestCrashRecovery
//     SIGKILLs a committing child process 20 times at random moments and
//     checks exactly this after every restart, and that no commit that
//     returned was lost.
//   - A failed Commit leaves everything staged (retry); Discard drops the
//     staged changes and the dirty users' cache entries (they were mutated in
//     place), so the next User reads the committed state.
//   - Exactly one owner writes a partition: opening it twice in a Store is
//     [ErrPartitionBusy]. Two processes cannot open one directory (Badger's
//     lock); two processes must not own the same partition in different
//     directories (the pipeline's assignment guarantees it).
//   - Users with uncommitted changes are never evicted from the cache.
//   - A record that cannot be decoded is returned as a [*CorruptError] with
//     its key (never a panic; FuzzDecodeUser); one written by a newer release
//     wraps [ErrUnsupportedVersion] and must not be overwritten.
//
// # Keys
//
// Every key of partition p starts with "p/" + p as 2 bytes big-endian + "/",
// followed by "meta" (cursor, clock), "outbox", "u/<user>" (state),
// "t/<user>" (deadline), "tr/<len><user>/<request>" (trace) or "importing"
// (an import under way). One prefix scan yields everything a partition owns.
//
// # Encoding
//
// User states use a compact binary record (codec.go): a version byte, then
// varints and length-prefixed strings, with times stored relative to the
// user's MaxAt in seconds, milliseconds or nanoseconds, whichever is exact.
// A typical shopper (3 orders, 1 request) takes 243 bytes, and 242 bytes
// per user in Badger's tables (uncompressed; keys included). Decoders read
// every version up to theirs; adding a field to core.User, Order or Request
// is a new version (see codec.go); TestCodecCoversAllFields fails until the
// codec knows every field, and testdata/user_v1.golden pins version 1.
//
// # Cache and memory
//
// Each partition has a write-back cache of decoded users, bounded by its
// share of Options.CacheBytes (the budget divided by the partitions open)
// in estimated heap bytes, least recently used first. The estimate
// (allocator size classes included) is within 5% of the measured heap: a
// typical shopper costs about 1 KiB in the cache, so the default 256 MiB
// holds about 260 000 shoppers. A cache hit costs 13 ns and no allocation;
// a miss is a Badger point read, about 2 µs.
//
// Badger is configured for a small footprint: two 64 MiB memtables (the
// skiplist arena is Go heap), no block cache (tables uncompressed, read from
// their mmap), no conflict detection (one writer per partition). Measured
// with 1 000 000 typical shoppers over 16 partitions and the default cache
// budget (TestFootprint with FLASHRETURN_STATE_FOOTPRINT_USERS=1000000):
// RSS 1056 MiB (782 anonymous, 274 file-backed: the mmapped tables, which
// the kernel can reclaim), 846 MiB after the Go runtime returns free pages;
// with GOMEMLIMIT=640MiB, RSS 879 MiB and peak 942 MiB. So 1 M shoppers fit
// in 1 GiB when the daemon sets a memory limit (recommended: GOMEMLIMIT of
// about 2.5x CacheBytes); without one the Go GC's headroom takes RSS above
// 1 GiB.
//
// # Durability
//
// Options.SyncWrites is off by default. Off, a returned Commit survives a
// crash of the process (Badger's write-ahead log is in the kernel's page
// cache), which is what TestCrashRecovery checks, but not a power loss or
// kernel crash: Badger then recovers a prefix of the commits, the cursor
// rolls back with the states, and the pipeline re-applies the events, which
// the deterministic core turns into the same effects and message IDs. On,
// every Commit waits for an fsync. Measured on the development VM (2 vCPU,
// virtual disk, quiet) for a 256-user commit with a 256-message outbox:
// 0.76 ms off, 1.38 ms on (1.8x; ~1300 vs ~720 commits/s, i.e. 340 k vs
// 185 k user writes/s). A raw Badger transaction setting the same bytes
// takes 0.74 ms and 1.14 ms; BenchmarkCommitVsRaw256, which alternates the
// two so that noise hits both, puts Commit at 0.9-1.1x of it either way.
// With other processes loading the VM, sync=on went to 3-13 ms a commit:
// the fsync cost depends on the disk and its neighbours, so measure on the
// target with BenchmarkCommit256.
// Off is the default because JetStream's own default (fsync every 2
// minutes) already bounds what a power loss keeps; turn both on together.
//
// # Housekeeping
//
// [Store.Run] runs Badger's value-log GC every Options.GCInterval. User
// records, timers and traces carry a TTL of Options.Retention (180 days by
// default, wall-clock, renewed by every write), so shoppers inactive longer
// disappear; the cursor, clock and outbox never expire. Badger's logs go to
// Options.Logger with component=badger.
//
// # Metrics
//
// Registered in Options.Metrics: flashreturn_state_commits_total,
// _commit_errors_total, _commit_seconds (Prometheus histogram),
// _commit_users_total, _commit_bytes_total, _cache_hits_total,
// _cache_misses_total, _cache_evictions_total, _cache_bytes, _cache_users,
// _cache_budget_bytes, _read_seconds (cache misses), _corrupt_records_total,
// _lsm_bytes, _vlog_bytes, _vlog_gc_runs_total, _vlog_gc_rewrites_total,
// _vlog_gc_errors_total, and per open partition
// flashreturn_state_outbox_messages{partition} and
// flashreturn_state_timers{partition}. Cache hit and miss counters are
// added at each Commit or Discard (the hot path touches no shared memory).
// Badger's own counters (process-wide, all Badger databases summed) appear
// as flashreturn_badger_*: gets, puts, bytes written to the write-ahead log,
// L0 and value log, bytes read, compaction bytes, bloom filter hits,
// compacting tables and pending writes.
package state
