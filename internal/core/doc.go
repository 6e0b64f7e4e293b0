// Package core is flashreturn's decision core: a pure, deterministic state
// machine that, given a shopper's state ([User]), one inbound [Event], the
// policy in force and the merchant view ([Env]), mutates the state and
// appends the resulting [Effect] values (decision, refund, pickup,
// compensation, clawback, trust feedback, resolution).
//
// # Invariants
//
//   - No IO, no clock, no randomness, no goroutines: time is the event's At,
//     zones come from [Env].Loc (internal/lint TestPurity enforces it).
//   - Money is integer fen; nothing iterates a map into an output.
//   - Effects carry IDs derived from the user, the request and the effect
//     kind ([Effect.MsgID], [Effect.RefundID], [Effect.PickupID],
//     [Effect.ResolutionID]), so replaying the same events yields the same
//     effects byte for byte.
//   - Every return.requested gets exactly one decision, except a
//     redelivery (a request_id the user has, or had: Order.Forgotten,
//     User.Forgotten), which gets none. A rejection is a decision.
//   - Money safety (domain.md), under any order of events, redelivery or
//     policy change: per order, refunds minus the clawbacks of refunded
//     money never pass paid_fen (Order.ReservedFen + Order.RefundedFen <=
//     PaidFen); a shopper's advanced plus promised money never passes the
//     exposure cap of the policy that approves; at most one refund per
//     request, never for a request that was not approved; every approval
//     of a kind that pays money pays, unless the request is cancelled,
//     closed by its return deadline or its inspection comes back bad.
//   - Promises keep their policy: a request follows [Request.Policy], the
//     policy that decided it, for everything that follows (refund trigger
//     and advance, pickup, compensation and grace, deadlines, penalties),
//     and every effect about it names that policy ([Effect.Policy]).
//   - At most one compensation, clawback and trust feedback per request;
//     one resolution answering its review, and one close.
//   - User.OutstandingFen and User.PromisedFen are the sums of what the
//     open requests hold (plus those of abandoned requests, see
//     [AbandonAfter]); never negative.
//   - An event that refers to an order or request the user does not have
//     changes nothing and yields one [EffectDeadLetter] (if its own time
//     pruned it, after that time moved the user's clock: see [Apply]).
//
// # Callers
//
// The pipeline's partition worker owns every User of its partition and
// calls, in stream order: [Fire] for every user whose [NextDeadline] the
// partition's event time has passed, then [Apply] for the event, then
// [NextDeadline] again to re-arm the user's timer. An [EffectDeadLetter]
// is not an output: the caller dead-letters the event. Apply and Fire append
// to a caller-owned slice and allocate nothing on a warm user (one whose
// slices have room), so a decision costs well under a microsecond. [User]
// and [Effect] hold only values and strings. Policies come from [Preset]
// or internal/policyfile, validated and versioned by [Policy.Finish].
//
// The query API and the status page show a shopper and its requests
// through the query functions ([Request.Stage], [Request.Effects],
// [Request.RefundState], [Request.PickupState], [Request.Closed],
// [Request.Timer], [User.Trust], [User.Exposure], [User.OpenRequests]),
// never by re-reading fields: what "in review" or "flagged" means is a
// rule, and it lives here beside the decisions that apply it.
//
// # Decisions, money, review, timers, bounded state
//
// RULES.md, next to this file, walks through how a return.requested is
// checked (rules that reject, fast-track rules, safety rules, merchant
// rules), how a request's money moves from approval to refund, clawback
// or release, how a review is resolved, how timers fire ([Fire]), what
// pruning drops and keeps (the state is bounded: Apply prunes whenever
// User.MaxAt moves), and what the package does where the specification
// leaves a question open (redeliveries of pruned requests, late requests).
//
// Strings the state keeps (IDs, categories, notes) are copied into a
// per-user slab ([User] own), so that a cached shopper does not pin the
// decoded payloads, and a decision on a warm shopper allocates nothing.
package core
