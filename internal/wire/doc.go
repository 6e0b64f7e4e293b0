// Package wire is flashreturn's wire contract in code (shared/contract.md):
// subject names and partitioning, decoding and validating inbound events
// into [core.Event] and [core.Merchant], and encoding outputs, dead letters
// and clock ticks as JSON with deterministic bytes.
//
// Callers: the pipeline decodes each stored message with [Decode] or
// [DecodeMerchant], dead-letters rejections with [AppendDLQ] on
// [DLQSubject]([ReasonOf](err)), and publishes each [core.Effect] as
// [AppendEffect] on [OutSubject] with [core.Effect.MsgID] as Nats-Msg-Id;
// the clock publisher uses [AppendClock], [ClockMsgID] and [ClockToken];
// publishers and the load generator use [InSubject], [KindOf],
// [AppendEvent] and [AppendMerchant]. The package does no IO and reads no
// clock: times come from payloads or from the caller.
//
// # Subjects
//
// Inbound user events are published on fr.in.<kind>.<user_id> with kind one
// of order, credit, return, logistics, inspection, review (and clock for
// the daemon's ticks). A partitioned layout maps them to
// fr.p.<p>.<kind>.<user_id> with [PartitionMapping], whose partition is
// [Partition](user_id, P): FNV-1a 32 of the token modulo P, the same number
// nats-server's partition() transform computes. Merchant profiles live on
// fr.merchant.<merchant_id>; outputs on fr.out.<effect kind>.<user_id>;
// dead letters on fr.dlq.<reason>, naming the subject an event was
// published to ([PublishedSubject]) whatever layout stored it.
//
// # Dead letters that are not Decode's
//
// Decode knows the payload only. Three reasons need more, and come from
// the caller: future_time (the pipeline compares at with the stream's
// stored timestamp), unknown_order and unknown_request (the core finds
// that the shopper has no such order or request: [FaultReason] turns its
// fault into the reason and the sentence), and poison.
//
// # Validation
//
// [Decode] checks, in this order, and reports the first failure as an
// *[Error] with a contract DLQ reason:
//
//  1. the payload is a JSON object (bad_json);
//  2. "type" is present (missing_field) and names a contract event type
//     (unknown_type) that belongs to the subject's kind (subject_mismatch);
//  3. event_id and at, then user_id (not for clock.tick) are present and
//     well formed (missing_field, bad_value); user_id equals the subject's
//     token (subject_mismatch);
//  4. the type's own fields in the contract's order: present when required
//     (missing_field), of the right JSON type and in their listed set
//     (bad_value).
//
// null counts as absent. Unknown fields are ignored, and so are fields
// that the type does not list, whatever their value. Keys match exactly
// (case-sensitive; case-insensitive only where sonic falls back to
// encoding/json, which [FastPath] reports). IDs match
// [A-Za-z0-9_-]{1,64}; "at" is RFC 3339 with an offset ("Z" or ±hh:mm)
// and any fraction; money is a non-negative JSON integer (no fraction or
// exponent), and a request's amount_fen at least 1; stars are 1..5; a
// review's by is merchant or platform. Strings holding raw control characters are
// bad_json; invalid UTF-8 is replaced by U+FFFD, as encoding/json does.
//
// # Invariants
//
//   - Decode and DecodeMerchant return nil or a *[Error] whose Reason is a
//     contract reason other than poison; they never panic on any input.
//   - ParseSubject, Partition and (when dst has room) the Append functions
//     do not allocate; Decode allocates once, for its copy of the payload,
//     so decoded strings never alias the caller's buffer.
//   - Encoded outputs depend only on their arguments: the same effect gives
//     the same bytes, with fields in a fixed order; IDs (refund_id,
//     pickup_id, ClockMsgID, DLQMsgID, and core's Effect.MsgID) derive from
//     user, request, kind, partition, second or stream sequence, never from
//     a counter or the wall clock.
//   - Decoding runs on sonic's JIT on supported platforms; [FastPath]
//     verifies it at run time.
//
// Everything in the package is safe for concurrent use.
package wire
