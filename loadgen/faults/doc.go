// Package faults carries out a run's disruptions: it parses and checks
// a fault schedule ([ParseFaults], [Validate]), starts and stops the
// processes loadgen spawns ([SpawnAll], [Children]), sends them the
// schedule's signals or hands the fault to a fault command
// ([Runner]), and measures the decision gaps each fault caused
// ([DecisionLog], [SetGaps]). The loadgen package documentation
// describes the schedule syntax and what a report says about faults.
//
// Invariants:
//
//   - A schedule is checked before the run: actions in an order that
//     makes sense for each target, the spawned processes running at the
//     end (a run cannot drain without them). A run never starts with a
//     schedule it would abandon half way.
//   - Every process started is waited for by a goroutine of its own and
//     stopped at the end (daemon before its NATS server, SIGTERM then
//     SIGKILL after 15 s) unless kept; a failed start stops what was
//     already started, so an aborted run leaves no orphan behind.
//   - Spawned processes get their own process group (Setpgid, and on
//     Linux Pdeathsig unless kept) so that a signal meant for loadgen's terminal does
//     not reach them and a dead loadgen does not leave them running.
//   - Decisions are mapped to partitions as the daemon maps users
//     (FNV-1a 32 of the user id modulo the partition count), so a
//     per-partition gap is the outage one partition's shoppers saw.
//
// Callers: loadgen (Config validation, the run loop), cmd/loadgen
// (ParseFaults for --faults). It imports nothing of loadgen.
package faults
