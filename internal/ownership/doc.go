// Package ownership decides which cluster member runs which partition:
// membership leases, the assignment, claims, releases, fencing and where
// a claimed partition's state comes from. It is the etcd raft pattern
// applied to the riskiest logic of cluster mode: a deterministic state
// machine ([Machine]) that takes observations, results and the time as
// inputs and returns [Action] values; the caller (pipeline/cluster)
// does the IO, over NATS KV, the object store and the partition workers,
// and feeds the results back. No IO, no clock reads, no goroutines, no
// randomness, standard library only (internal/lint TestPurity).
//
// Because the time is an input, the protocol is tested in milliseconds
// instead of with real clusters and multi-second leases: scripts in
// testdata/ (members join, leave, pause, crash, restart; a release races
// a claim; the restore source; the hand-over bug of issue 16) run the
// machines in a simulated world (sim_test.go), and TestRandomized checks
// the invariants below over seeded random clusters with faults.
//
// # The protocol
//
// Membership. A member heartbeats its key in FR_MEMBERS (TTL = lease)
// every Lease/5 and reports each success ([Machine.HeartbeatOK]) or the
// loss of its key ([Machine.KeyLost]). Its lease runs until the send time
// of its last successful heartbeat + Lease - Lease/5: the key expires a
// full lease after the server stored it, so the member stops writing at
// least Lease/5 before anyone can see it gone. A lapsed lease ends a
// lease generation for good; the next heartbeat starts a new one.
//
// Assignment. [Assign]: every member computes the same target owner of
// every partition from the sorted IDs of the members present and not
// leaving (rendezvous hashing bounded to a balanced load).
//
// Ownership. FR_OWNERS holds one [Record] per partition: the owner ("" once
// released), the epoch (incremented by every claim: the fencing token
// every output carries) and the pointer to the latest snapshot. Every
// write is a compare-and-set on the revision last seen, so of two
// writers from one revision exactly one wins. A member claims a
// partition targeted to it when the record is absent, released, its own,
// or names a member whose key is gone; it gives up a partition targeted
// elsewhere by stopping its worker, snapshotting at the final cursor and
// releasing the record pointing at the snapshot, one partition at a time.
// Once the worker has stopped, its release goes ahead even if the lease
// lapsed meanwhile: the release is a compare-and-set on the member's own
// latest record, so it fails if anyone claimed since; only a newer record
// by someone else seen ([Machine.Observe]) cancels it (issue 16: a lapse
// during a drain used to drop the release, and the successor took the
// partition over from the claim's older snapshot without a word).
//
// Fencing. A worker asks [Machine.Check] before every commit and publish:
// the claim holds while its lease generation is current and unexpired and
// no newer record by someone else was seen ([Machine.Observe]).
//
// # Inputs and actions
//
// Every input method returns the actions to carry out, in order; each
// action's result is another input:
//
//	Tick(now)                 -> Stop (fenced), Fence, ReadMembers
//	ReadMembers               -> Members(now, list)         -> Stop (release) | Claim | WriteRecord (stale)
//	Claim                     -> ClaimDone(outcome, rev)    -> Start, next Claim ...
//	Start                     -> PlanRestore(local), Running, and once the worker ends, Stopped(cursor)
//	Stop                      -> Stopped(cursor)            -> Snapshot | WriteRecord (release) | Drop
//	Snapshot                  -> SnapshotDone(ok)           -> WriteRecord | DeleteSnapshot | Drop
//	WriteRecord               -> RecordDone(outcome, rev)   -> DeleteSnapshot, Drop, next Claim ...
//	Progress(now, cursor)     -> Snapshot (periodic)
//	Leave(now, deadline)      -> Heartbeat, Stop ... (each released as its worker stops)
//	Shutdown()                -> DeleteMember
//	Observe(record)           -> Fence
//	HeartbeatOK, KeyLost      (no actions: the lease)
//
// A write's [Outcome] is Written, Conflict (refused: certainly not
// stored) or Unknown (no answer: maybe stored). After an Unknown write the
// machine deletes no object either record might point at, and reuses
// rather than re-uploads a snapshot of that name; the owners watcher
// tells it later whether the write landed ([Machine.Observe] adopts our
// own newer record).
//
// The caller serialises the calls (one mutex, never held across IO) and
// may run the actions of different partitions concurrently; the work on
// one partition is carried out in order (pipeline holds a per-partition
// mutex across a snapshot and its record write). A Claim of a pass is
// emitted only after the previous one's result, each checked against the
// lease at that moment.
//
// # Invariants
//
// Checked by TestRandomized over random joins, leaves, crashes, restarts,
// pauses, lagging watchers, hung workers and failed writes:
//
//   - At no moment do two members both pass [Machine.Check] for one
//     partition with a worker running; FR_OUT never stores an output of
//     an epoch after one of a newer epoch of the same partition (given
//     publish latency under Lease/5, the documented limit of time-based
//     fencing).
//   - Every claim's epoch is above every earlier record's.
//   - A member gives up at most one partition at a time, unless leaving;
//     a leaving member releases each partition as soon as its own worker
//     has stopped, so one slow drain costs only its own snapshot.
//   - A restore never goes back below the release snapshot it claimed,
//     and never silently below the cursor the previous owner released at
//     ([Record.Released]; [RestorePlan.Short] says when it does).
//   - A partition whose worker was stopped to give it up is released,
//     unless its claim was superseded (then the Drop says so, with the
//     final cursor, and the caller logs it as an error).
//   - No record is left pointing at a snapshot the machine deleted, even
//     when writes' answers are lost.
//   - Once members are stable (no faults, keys renewed), every partition
//     ends up claimed and running on its target, exactly once, loads
//     within one.
//
// # Broker-enforced fencing (issue 16)
//
// The inputs and actions leave room for fencing by storage: each new
// owner first writes a claim marker to FR_OUT with an
// expected-last-subject-sequence check, and the KV lease stays for
// membership and assignment. That is one more step between ClaimDone and
// Start (an action "write the claim marker of P at Epoch, expecting
// sequence S", whose result, the marker's sequence or a conflict, is fed
// back like ClaimDone's), the marker's sequence kept in the slot beside
// the epoch and handed to the worker with Start, and a Check that no
// longer needs the lease to keep a zombie from writing: the server
// rejects its batch. Releases, snapshots, the assignment and the restore
// choice are unchanged; a restore additionally learns from the marker
// which outputs FR_OUT already holds.
//
// # Callers
//
// pipeline/cluster (membership, ownership and hand-over of a
// flashreturnd in cluster mode) is the only caller; CLUSTER.md explains
// the protocol for operators.
package ownership
