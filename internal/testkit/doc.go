// Package testkit is the one test harness of the module's IO tests: a
// real nats-server with JetStream in a temp dir (one node or a cluster),
// a free port, WaitUntil (a condition with a deadline instead of a
// sleep), publishing with retry under the same Nats-Msg-Id, readers of
// output streams (ReadStream for a one-off read, Collect to follow) and
// of an event's time (EventAt), the test binary as its own child process
// (RunChild, ChildCommand), headless Chromium for pages and reports
// (Chromium, RenderDOM), and a deep equality that does not tell nil from
// empty lists (EqualNilEmpty, for codec round trips).
//
// It is a normal package so that tests of several packages can share it,
// but only _test.go files import it: nothing in a binary depends on it.
// It must not import any pipeline package either, or the internal tests
// of that package could not use it (an import cycle).
//
// # Invariants
//
//   - Real servers only: no mock of NATS or JetStream. Every server and
//     connection it makes is shut down by tb.Cleanup.
//   - Every wait has a deadline and fails the test when it passes; no
//     helper sleeps in place of synchronisation (the short sleeps left
//     are polling intervals between checks of a condition).
//   - Publish retries keep the message ID, so a retry after a lost ack is
//     deduplicated by the stream and never doubles an event.
//
// # Callers
//
// The tests of pipeline and its subpackages, cmd/flashreturnd,
// cmd/loadgen, loadgen and its subpackages, state, internal/policyfile,
// deploy and bench/relay.
package testkit
