// Package outbound publishes the daemon's outputs to FR_OUT with exactly
// once semantics that rest on the broker, not on time: atomic batches,
// commit markers and claim markers (issue 16, JetStream's ADR-50).
//
// # The protocol
//
// Every partition has a marker subject in FR_OUT, fr.commit.<p> (outside
// fr.out.>, so downstream consumers filtered on the contract's subjects
// never see it). Every marker is stored with an expected-last-subject-
// sequence check on the partition's previous marker, so the subject is a
// chain that one writer at a time can extend:
//
//   - a new owner (a start, a takeover, a hand-over) first writes a claim
//     marker after the last marker it read ([Publisher.Claim]); from then
//     on any batch of a former owner, whose marker expects the older
//     sequence, fails at the server whatever its clock says;
//   - outputs go out in rounds: one atomic batch (all or nothing) that
//     carries the oldest queued batch of every partition with outputs and
//     ends with one commit marker per partition. A marker names the
//     position (record.Pos: input sequence, index among that event's
//     outputs) of the last output FR_OUT now holds for its partition.
//
// Positions are deterministic, so the last marker is knowledge, not a
// guess: on start the worker drops the part of its stored outbox that
// the marker covers, publishes the rest, and when it replays from an
// older snapshot it publishes nothing up to the marker's position. No
// restart depends on FR_OUT's duplicate window; the deterministic
// Nats-Msg-Ids stay as a second line.
//
// # Invariants
//
//   - A partition's batches are published in submit order; a batch is
//     acknowledged (Batch.Done) only when every output of it and its
//     marker are stored.
//   - A partition has at most one chunk in a round, and one round is in
//     flight at a time, so each marker's check names the marker stored
//     just before it.
//   - An unanswered round is settled by reading the markers, never by
//     republishing blindly: stored (a marker of this claim at or past
//     the round's position), not stored (the marker it expected), or
//     fenced (another claim's marker: the partition's queue fails with
//     ErrFenced and flashreturn_fencing_rejections_total counts it).
//   - A round FR_OUT refuses because it holds one of its Msg-Ids though no
//     marker covers it (an outbox written before positions existed,
//     markers purged by hand) would be refused for ever; it is stored
//     without atomicity instead (each output with its Msg-Id, the server
//     dropping the duplicate, then each marker with its check), counted
//     in flashreturn_outbound_lenient_total.
//   - Dead letters go to FR_DLQ, another stream, so they cannot be in the
//     atomic batch: they are published first and awaited, so a marker
//     covers only stored dead letters; a crash between the two can store
//     a dead letter twice more than FR_DLQ's duplicate window apart.
package outbound
