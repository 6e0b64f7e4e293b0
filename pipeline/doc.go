// Package pipeline is flashreturn's partition runtime, the IO shell around
// the decision core: the daemon (connections, setup, drain), one durable
// pull consumer per partition, a fixed pool of runners that apply, commit
// and publish the partitions in groups, the clock that advances idle
// partitions, policy reload, and the runtime's metrics and status
// numbers.
//
// The jobs around it live in packages below it, each with its own doc:
//
//   - pipeline/streams: the embedded server, the contract's streams and
//     the retry discipline of JetStream calls;
//   - pipeline/apply: deterministic application of events (clock, timers,
//     future time, merchants as of ingest, shadow), shared with replay;
//   - pipeline/cluster: membership, ownership, hand-over and query
//     routing in cluster mode, driven through func-typed hooks;
//   - pipeline/httpapi: the HTTP endpoint, built by cmd/flashreturnd over
//     what the Daemon exposes (Config.HTTP);
//   - pipeline/replay: what another policy would have decided;
//   - pipeline/stages: the per-stage latency histograms of an event's
//     way through a worker (flashreturn_stage_<stage>_seconds);
//   - pipeline/outbound: the publisher: atomic batches, commit and claim
//     markers, recovery and fencing by marker;
//   - pipeline/merchants: the merchant view, read as of ingest;
//   - pipeline/opsmetrics: the operator's numbers the status page reads
//     back (decision latency, money gauges, recent dead letters);
//   - pipeline/defaults: the defaults shared by Config, flags and replay.
//
// Imports point down: pipeline imports all of them; none imports
// pipeline. The cut follows what changes together: a change to how
// partitions move between members touches pipeline/cluster and the
// ownership machine, not the worker; a new route touches httpapi, not the
// runtime; a rule that must hold alike live and in replay goes in apply.
//
// # Goroutines
//
// Run owns every goroutine of the daemon and returns only once each has
// ended: the runners (Config.Runners, GOMAXPROCS by default), one per
// partition worker's life cycle (or, in cluster mode, the cluster's
// loop, which owns one per claimed partition), the merchant view and its
// refresher, the publisher (stopped after the workers, whose last batches
// it publishes), state housekeeping, the clock and the policy watcher, the
// HTTP server. Each carries pprof labels (component, and partition for a
// worker), so a CPU or goroutine profile taken from /debug/pprof splits
// by partition. A daemon that returned from Run has left nothing running
// on its data directory or its connections.
//
// # Callers
//
// cmd/flashreturnd builds a Daemon from flags (with httpapi.New as its
// HTTP handler) and runs it; deploy's and loadgen's tests run one
// in-process; bench/ runs the built binary. Nothing else should need the
// runtime: the query API, cluster mode and replay each have a package of
// their own.
//
// # Effectively-once
//
// A partition's consumer fills the partition's buffer; the partition's
// runner (partition p is served by runner p mod Runners) takes, in each
// round, what every partition of its group has buffered (one message
// when idle, up to Config.BatchMax each under load), applies it to the
// shoppers' state in memory through [core.Apply], then commits in one
// Badger transaction for the whole round ([state.Store.CommitGroup]) each
// touched partition's changed states, cursor (last stream sequence
// applied), event-time clock, decision traces and outbox, each output
// with its position (input sequence, index). It then hands every
// partition's outputs to the daemon's publisher (pipeline/outbound)
// together, which stores them in FR_OUT in an atomic batch ending with
// each partition's commit marker; once a partition's batch is stored its
// inputs are acknowledged with one AckAll. The runner never waits for
// the publisher while it has work: a partition may have two batches in
// flight (the next is applied and committed while one is stored), and
// one with two in flight sits the round out. Until a batch is stored, the
// partition's next commit stores its outputs again with the new batch's,
// so the stored outbox covers every output FR_OUT may lack. On start the
// worker claims its partition on FR_OUT (a claim marker, which fences
// any former owner at the server), publishes the part of the outbox after
// the last marker's position, recreates its consumer at cursor+1, and
// publishes nothing a replay makes at or before that position. A crash
// at any point therefore yields neither a lost nor a doubled effect,
// however long the daemon stays down.
//
// # Invariants
//
//   - Exactly one goroutine applies a partition at a time: its runner,
//     while the partition's worker has lent it (runner.serve); the
//     worker's own goroutine owns the consumer's life cycle and the claim.
//     Events of one user are applied in stream order.
//   - A message is acknowledged only after its outputs, and the commit
//     marker covering them, are stored in FR_OUT.
//   - Malformed input goes to fr.dlq.<reason> (in the same outbox, so it is
//     effectively-once too) and processing goes on; an event that panics the
//     core is dead-lettered as poison and the batch re-applied without it.
//   - Failures to commit or publish are retried with backoff, never skipped;
//     the partition reports not-ready meanwhile. The one failure a retry
//     cannot cure, a commit larger than one Badger transaction, is applied
//     again smaller (worker.shrink): half the batch; for one event, after
//     its batches in flight are stored; then by blocking the largest
//     shopper whose timers it fired; last, by dead-lettering the event as
//     poison. The last two are logged as errors and make a replay of the
//     partition differ from the live run from that event on.
//   - Timers fire from the partition's event time (the largest at seen,
//     clock events included), before the event that moved it is applied,
//     at most apply.FireMaxUsers shoppers (and about apply.FireMaxBytes of
//     their state) per event.
package pipeline
