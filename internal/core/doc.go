// Package core is flashreturn's decision core: a pure, deterministic state
// machine that, given a shopper's state ([User]), one inbound [Event], the
// policy in force and the merchant view ([Env]), mutates the state and
// appends the resulting [Effect] values (decision, refund, pickup,
// compensation, clawback, trust feedback).
//
// # Invariants
//
//   - No IO, no clock, no randomness, no goroutines: time is the event's At,
//     zones come from [Env].Loc (TestNoIOImports enforces the imports).
//   - Money is integer fen; nothing iterates a map into an output.
//   - Effects carry IDs derived from the user, the request and the effect
//     kind ([Effect.MsgID], [Effect.RefundID], [Effect.PickupID]), so
//     replaying the same events yields the same effects byte for byte.
//   - Every return.requested gets exactly one decision, except a
//     redelivery (a request_id the user still has), which gets none. A
//     rejection is a decision, never an error.
//   - At most one refund per request, never more than the order's paid
//     amount, never for a request that is not approved; at most one
//     compensation, clawback and trust feedback per request.
//   - User.OutstandingFen is the sum of the advance refunds whose
//     inspection has not come back (plus those of abandoned requests, see
//     below); it is never negative.
//
// # Callers
//
// The pipeline's partition worker owns every User of its partition and
// calls, in stream order: [Fire] for every user whose [NextDeadline] the
// partition's event time has passed, then [Apply] for the event, then
// [NextDeadline] again to re-arm the user's timer. Apply and Fire append
// to a caller-owned slice and allocate nothing on a warm user (one whose
// slices have room), so a decision costs well under a microsecond. [User]
// and [Effect] hold only values and strings, so the caller can encode them
// as it likes. Policies come from [Preset] or internal/policyfile and are
// validated and versioned by [Policy.Finish].
//
// # Decisions
//
// A return.requested is checked in three steps, each check recorded in the
// decision's [Trace] with the values compared ([Check.String]):
//
//  1. Rules that reject (order_unknown, amount_exceeds_paid,
//     duplicate_request: the order already has an open request). If any
//     fails the verdict is rejected and lists only these.
//  2. Fast-track rules, as the policy enables them: kind, credit stars,
//     reason, 7-day support, delivery and the law window, the amount cap
//     on the order's paid_fen, excluded categories, the merchant's single
//     address, covered cities, and merchant_unknown for kinds that send
//     goods back. An undelivered order fails not_delivered alone (the
//     window is not evaluated), except a return_refund of an unshipped
//     order under a policy with PreShipmentRefund, which is exempt from
//     both.
//  3. Safety rules, which merchant rules cannot override: exposure
//     (outstanding advances plus this amount at most ExposureCapFen),
//     velocity (requests decided in (at-VelocityWindow, at], this one
//     included, at most VelocityMax), trust (no bad inspection after an
//     advance refund in (at-TrustWindow, at]).
//
// With no failure the verdict is approved; otherwise review with every
// failed code, unless no safety rule and not merchant_unknown failed and a
// rule of the order's merchant matches: then approved, naming the rule
// (the decision's reasons are empty, its trace still shows what failed).
// An approval of a kind that sends goods back carries the merchant's first
// return address.
//
// The 7-day window counts local calendar days: a request on the sign-off
// day is day 0 and one up to 24:00 of day WindowDays qualifies. Pickup
// windows follow [PickupWindow].
//
// # Money and the request's life
//
// A request is open from its decision until it is rejected, cancelled
// (return.cancelled before any refund), or finished (its inspection came
// back or, if no goods come back, its refund was sent). An approved
// request is refunded once, by the first trigger its policy allows: at
// approval (pre_shipment for the exempt unshipped order, or the kind's
// approval rule), on the first logistics.tracking or pickup.done
// (tracking), or on an ok inspection when nothing was paid before
// (inspection, never an advance). An inspection releases the request's
// advance from OutstandingFen; a bad one after an advance also sends a
// clawback of the advanced amount and is remembered for the trust rule;
// every inspection sends trust feedback with the policy's penalty.
//
// # Timers
//
// The only timer is the pickup window end of an approved, open request
// that is neither picked up nor compensated. [NextDeadline] returns the
// earliest; [Fire] fires every window whose end is strictly before the
// given event time, once each.
//
// # Bounded state
//
// Whenever an event moves User.MaxAt forward, Apply prunes: closed
// requests closed more than [Policy.Retention] ago (the longest rule
// window, at least 90 days), orders that no kept request refers to and
// whose last event is older than that, velocity entries outside the
// velocity window, bad inspections outside the trust window, and open
// requests decided more than [AbandonAfter] (a year) ago.
//
// # Choices where the specification is silent
//
//   - Logistics events (order.shipped, order.delivered) for an order the
//     user does not know are ignored, not stubbed: the order's merchant,
//     price and category are unknown, and publishers send order.paid
//     first. A second order.paid for a known order is ignored, and so is a
//     second shipped or delivered time. A delivery implies shipment.
//   - A return_refund settled by a pre-shipment refund is finished at once:
//     the goods never left, so no pickup is sent and no inspection awaited.
//   - Pickups only for approved kinds that send goods back (never for
//     refund_only); exchanges are always pickup-and-replace (Replace).
//   - Tmall and douyin fast-track return_refund only; should a merchant
//     rule approve a refund_only there, it is refunded at approval (not an
//     advance), and an exchange gets no refund. An approved request that
//     returns nothing and that the policy pays nothing for is finished at
//     approval.
//   - Merchant rules compare max_amount_fen with the order's paid_fen (as
//     the platform cap does); max_days needs a sign-off.
//   - Exposure counts this request's amount whatever its kind and refund
//     trigger, as the preset table words it.
//   - An inspection of an open request under review finishes it and sends
//     trust feedback; with no refund sent there is nothing to claw back,
//     and only bad inspections after an advance count for the trust rule.
//   - An abandoned request (open a year) is dropped with its advance still
//     counted in OutstandingFen: the money was never recovered.
//   - A redelivery of a request already pruned (90 days after it closed)
//     is decided again; the stream's duplicate window is 2 minutes.
//   - Policy changes apply to pending triggers: a refund waiting for
//     tracking follows the policy in force when the tracking arrives.
package core
