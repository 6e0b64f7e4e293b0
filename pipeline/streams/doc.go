// Package streams is the JetStream plumbing of the contract: the
// embedded nats-server, the streams FR_IN (or FR_IN_<p>), FR_OUT, FR_DLQ
// and FR_MERCHANT with their retention and duplicate windows, the
// inbound layouts and the partition mapping, and the retry discipline of
// calls to JetStream (which setup errors may pass, how long to wait).
//
// It is the leaf of the pipeline packages: it knows nothing of
// partitions' state, decisions or the cluster, only how the contract's
// subjects are stored. Everything that decides how messages are laid out
// on the server changes here and nowhere else; the names themselves
// (streams, filters, the partition mapping, the duplicate window) come
// from internal/wire, the contract's one home, so that a renamed subject
// cannot leave the daemon's streams and the contract disagreeing.
//
// # Invariants
//
//   - P is fixed for the life of the streams: EnsureStreams refuses a
//     partition count that contradicts the existing inbound streams (a
//     permanent error), since a changed P would route a shopper's events
//     to another partition than their state.
//   - The duplicate window (wire.MinDuplicateWindow, 2 minutes) of FR_IN, FR_OUT and
//     FR_DLQ is what makes republished outputs effectively-once; the
//     daemon's outbox republish relies on it.
//   - EnsureStreams is idempotent: a stream that exists as configured is
//     only read, so N daemons starting at once propose nothing to the
//     meta layer but their first creation.
//   - Retryable is false only for errors that retrying cannot mend
//     (Permanent, an API error 400 other than an offline peer): a daemon
//     waits out a cluster still electing its leaders.
//
// # Callers
//
// pipeline (the daemon's setup, consumers and embedded server),
// pipeline/cluster (bucket setup errors, retry waits), pipeline/replay
// (which stream holds a partition) and cmd/flashreturnd (layout flags).
package streams
