// Package replay answers "what would policy B have decided over the
// stored inbound log?": it reads FR_IN partition by partition in stream
// order and applies each policy to a fresh in-memory state with the
// daemon's own Stepper (pipeline/apply), then reports the policies side
// by side (decisions, reasons, money, reviews sent to people, what the
// deadlines approved or closed) and lists the requests whose outcome
// changes. It publishes nothing and writes no state.
//
// # Invariants
//
//   - A replay of the whole stream with the live policy decides every
//     request as the daemon did (the tests compare the encoded effects
//     byte for byte, decided_at aside): same Stepper, same future-time
//     rule, merchants as of each event's ingest time from FR_MERCHANT's
//     history.
//   - Partitions are independent: each starts from empty state, and so
//     does a replay that starts mid-stream (its decisions can then differ
//     for shoppers with earlier history; the report does not hide that).
//   - Options defaults are pipeline/defaults', the daemon's: a replay run
//     with no flags reads the streams as a daemon run with no flags wrote
//     them.
//
// # Callers
//
// cmd/flashreturnd (`flashreturnd replay`) and pipeline's determinism
// tests.
package replay
