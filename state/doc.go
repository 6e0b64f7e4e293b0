// Package state keeps every shopper's decision state in Badger, partitioned
// the way the input stream is, and commits each batch of a partition worker
// atomically together with the partition's cursor and outbox, so that a
// crash at any point leaves the states and the cursor in agreement.
//
// # Callers
//
// The pipeline opens one [Store] per process ([Open], passing its --policy
// as Options.LegacyPolicy), runs [Store.Run] for housekeeping, and gives
// each partition worker the [Partition] it owns ([Store.Partition]). The
// HTTP query API reads committed state with [Store.ReadUser] and
// [Store.ReadTrace] from any goroutine, and the policies a partition's
// requests follow with [Partition.Policies]. Moving a partition between
// processes is [Store.ExportPartition] on the source,
// [Store.ImportPartition] on the destination, then [Store.DropPartition]
// on the source.
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
//   - One Badger transaction per Commit holds the dirty users, the records
//     of the policies they are the first to refer to, the timer changes,
//     the traces, the cursor and clock, and the outbox; nothing else is
//     written outside Commit than imports, drops and the one-off timer scan
//     of a partition written by the previous release (see Migration from
//     version 1). WriteBatch is not used: it splits a batch into several
//     transactions when one fills. A batch too big for one
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
//     wraps [ErrUnsupportedVersion] and must not be overwritten. So is a user
//     one of whose requests follows a policy version the partition has no
//     record of ([ErrUnknownPolicy], naming the version), and a version-1
//     user read without Options.LegacyPolicy ([ErrNoLegacyPolicy]).
//   - Every policy version a committed (version-2) user record refers to
//     has its record in the same partition, written by the same transaction as the first
//     user that referred to it (see Policies); policy records are never
//     deleted or expired while the partition exists.
//
// # Keys
//
// Every key of partition p starts with "p/" + p as 2 bytes big-endian + "/",
// followed by "meta" (cursor, clock), "outbox", "u/<user>" (state),
// "t/<user>" (deadline), "tr/<len><user>/<request>" (trace),
// "pol/<version>" (a policy), "timers-v2" (the timers of version-1 users
// are armed) or "importing" (an import under way). One prefix scan yields
// everything a partition owns, so exports carry all of it (keys.go).
//
// # Encoding
//
// Records (users, meta, outbox, policies) are encoded by state/record,
// which owns the format, its versions and the derivation of version-1
// users; this package owns where they are stored and when they are
// written. A typical shopper takes about 111 bytes per user in Badger's
// tables (Snappy-compressed, keys included; 307 uncompressed, 242 in
// version 1, measured with TestFootprint at 1 000 000 shoppers).
//
// # Policies
//
// A request keeps the policy that decided it (core.Request.Policy), and
// must keep it across a restart with another --policy, a takeover and a
// snapshot restore. So each partition has a policy table: every policy
// version its committed users refer to is stored under "pol/<version>"
// as its policy file in JSON (internal/policyfile), and read back with
// the version checked against the content (a record whose content has
// another version is refused). Persistence is automatic: when a dirty
// user is committed, every policy its requests follow that the partition
// has not stored is written in the same transaction (MarkDirty stages it
// and counts it in StagedBytes; Commit checks again). The partition
// remembers the last two policy pointers it found (the policy in force and
// the one before a switch), so the usual case costs a pointer comparison
// or two per request and no map lookup. A policy whose
// Version is not the digest of its content (not built by
// core.Policy.Finish, or changed since) cannot be stored: Commit fails and
// the batch must be discarded.
//
// The table is loaded when a partition opens. A policy record that does
// not parse or does not match its key is skipped, counted in
// _corrupt_records_total and logged; the users that refer to it read as
// corrupt, and the next commit of a request following that version writes
// the record again. [Store.ReadUser] resolves versions from the
// partition's records in the same snapshot as the user (each version is
// parsed once and its *core.Policy shared by the Store's partitions and
// readers), so cached and uncached users read alike. [Partition.Policies] lists the table.
//
// Versions nothing refers to any more are kept: there is one record per
// distinct policy version ever used in the partition, about 1.1 KiB each
// (the presets' JSON files take 1088-1131 bytes), counted by the
// flashreturn_state_policies{partition} gauge: a daemon that switched to a
// new policy every day for a year would keep about 400 KiB per partition. A request
// stored with no policy (Policy nil) is read back with the legacy policy
// (or nil without one); core sets a policy on every request it decides.
//
// # Migration from version 1
//
// Version-1 user records (written before issue 14) still load. Their
// requests get Options.LegacyPolicy, the daemon's --policy (without one
// they read as corrupt, [ErrNoLegacyPolicy]), and the fields version 1
// lacked are derived from it by state/record (its package doc lists each
// derivation and its limits). Once such a user is committed again, it is
// written as version 2 and the legacy policy's record is stored with it,
// so the request keeps that policy whatever --policy later says.
//
// The derived state arms core's new timers: the review deadline of a
// request in review (At + review_deadline) and the return deadline of an
// approved return with nothing sent back (At + return_deadline), both
// possibly already past at the upgrade, in which case they fire at the
// partition's next event time. Because the previous release's timer index
// held only pickup windows, a partition arms these deadlines for its
// version-1 users once, when it is first opened by this release (scanning
// its user records; the "timers-v2" marker records that it was done and
// travels with exports). Without a legacy policy the scan cannot read
// them, says so in the log, and runs again at the next open.
//
// # Cache and memory
//
// Each partition has a write-back cache of decoded users, bounded by its
// share of Options.CacheBytes (the budget divided by the partitions open)
// in estimated heap bytes, least recently used first. The estimate
// (allocator size classes included, review notes too; a policy is shared,
// so a request pays only its pointer) is within 5% of the measured heap
// (TestMemSizeEstimate, with and without notes): a typical shopper costs
// about 1.15 KiB in the cache (1 KiB before issue 14), so the default
// 256 MiB holds about 228 000 shoppers. A cache hit costs 13 ns and no allocation;
// a miss is a Badger point read, 2-4 µs (BenchmarkUserMiss), and 2-4 µs
// more from a Snappy table (TestFootprint; bench/RESULTS.md, issue 15).
//
// Badger is configured for a small footprint: two 8 MiB memtables (the
// skiplist arena is Go heap) gathered 20 to a level-0 compaction, 1 MiB
// tables at the base level (compactions build several at once, each in
// an allocator of its own: see baseTableBytes), Snappy-compressed tables
// with a 16 MiB block cache (about a third of the disk and under half the
// file-backed RSS of uncompressed tables, for 2-4 µs more per Badger
// read: see tableCompression; Options.Compression turns it off), no
// conflict detection (one writer per partition). Small memtables bound
// what Badger's table builders keep under a sustained write load (see
// defaultMemTableBytes: 64 MiB memtables let them hold 1.8 GiB after 3 M
// events); they cost
// bulk write speed, 73 k instead of 124 k users/s in TestFootprint, far
// above what a daemon commits. Measured with 1 000 000 typical shoppers
// over 16 partitions and the default cache budget (TestFootprint with
// FLASHRETURN_STATE_FOOTPRINT_USERS=1000000): RSS 1162-1209 MiB
// (1039-1086 anonymous, 122 file-backed: the mmapped tables, which the
// kernel can reclaim), peak 1220-1266 MiB, 654-710 MiB after the Go
// runtime returns free pages; with uncompressed tables 1107-1131 (797-820
// anonymous, 310 file-backed), peak 1216-1231, and 870-882 (issue 15;
// the compressed store's higher anonymous peak is the garbage of
// decompressed blocks, which a memory limit bounds). Without a memory
// limit the Go GC's headroom takes RSS above the live heap; the daemon
// sets one (cmd/flashreturnd --memory-limit-mb).
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
// flashreturn_state_outbox_messages{partition},
// flashreturn_state_timers{partition} and
// flashreturn_state_policies{partition} (policy records stored). Cache hit and miss counters are
// added at each Commit or Discard (the hot path touches no shared memory).
// Badger's own counters (process-wide, all Badger databases summed) appear
// as flashreturn_badger_*: gets, puts, bytes written to the write-ahead log,
// L0 and value log, bytes read, compaction bytes, bloom filter hits,
// compacting tables and pending writes.
package state
