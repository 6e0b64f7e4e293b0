// Package cluster is cluster mode's IO: membership (FR_MEMBERS leases),
// partition ownership and hand-over (FR_OWNERS records, FR_SNAPSHOTS
// objects), and the routing of queries to a partition's owner. Every
// decision (which partition to claim or release, when a claim is fenced,
// where a restore takes its state from) is made by the pure state machine
// in internal/ownership; this package carries its actions out and feeds
// it what it observes. CLUSTER.md explains cluster mode for operators.
//
// The package never sees a partition worker. The daemon (pipeline) hands
// it Hooks: run a partition under a fence until stopped, its committed
// cursor, its readiness, the advertised HTTP address. Snapshots and
// restores go through state.Store directly (ExportPartition,
// ImportPartition), which is the one piece of the runtime both sides
// share.
//
// # Invariants
//
//   - At most one member runs a partition's worker with a valid claim: a
//     worker checks its fence (the machine's Check) before every commit
//     and every publish, and a lease ends LeaseTTL/5 before its key can
//     expire.
//   - Every output of a claimed partition carries the claim's epoch
//     (EpochHeader); outputs are deterministic, so what a paused former
//     owner still publishes duplicates the new owner's and FR_OUT's
//     duplicate window keeps one.
//   - A snapshot object becomes a partition's snapshot only when the
//     owner record is switched to it by a compare-and-set under the
//     writer's claim; an upload by a member that lost its claim is never
//     used.
//   - A query is answered from the owner's state only: locally under a
//     valid claim, else forwarded once to the owner, else 503. Never from
//     a stale local copy, never forwarded twice.
//   - A restore's snapshot download ends within about a second of a stop
//     (its context's cancel), of its deadline, or of 15 s without a byte,
//     however its chunks' consumer fares; an object whose chunks do not
//     match its size and SHA-256 digest never completes an import.
//   - Run returns only once every goroutine it started has ended.
//
// # Callers
//
// pipeline (New, Setup, Run, Ready, the fence's ErrFenced and
// EpochHeader), pipeline/httpapi (RouteQuery, Status, SingleStatus) and
// cmd/flashreturnd (Options, DefaultAdvertiseHTTP).
package cluster
