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
//     redelivery (a request_id the user still has), which gets none. A
//     rejection is a decision, never an error.
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
//     changes nothing and yields one [EffectDeadLetter].
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
// and [Effect] hold only values and strings, so the caller can encode them
// as it likes. Policies come from [Preset] or internal/policyfile and are
// validated and versioned by [Policy.Finish].
//
// The query API and the status page show a shopper and its requests
// through the query functions ([Request.Stage], [Request.Effects],
// [Request.RefundState], [Request.PickupState], [Request.Closed],
// [Request.Timer], [User.Trust], [User.Exposure], [User.OpenRequests]),
// never by re-reading fields: what "in review" or "flagged" means is a
// rule, and it lives here beside the decisions that apply it.
//
// # Decisions
//
// A return.requested is checked in three steps, each check recorded in the
// decision's [Trace] with the values compared ([Check.String]):
//
//  1. Rules that reject (order_unknown; amount_exceeds_paid, the
//     per-order ceiling: what the order already has reserved or refunded
//     plus this amount at most its paid_fen, "order ceiling 6000 + 4000 <=
//     paid 10000"; duplicate_request: the order already has an open
//     request). If any fails the verdict is rejected and lists only these.
//  2. Fast-track rules, as the policy enables them: kind, credit stars,
//     reason, 7-day support, delivery and the law window, the amount cap
//     on the order's paid_fen, excluded categories, the merchant's single
//     address, covered cities, and merchant_unknown for kinds that send
//     goods back. An undelivered order, or a request dated before the
//     sign-off, fails not_delivered alone (the window is not evaluated),
//     except a return_refund of an unshipped order under a policy with
//     PreShipmentRefund, which is exempt from both.
//  3. Safety rules, which merchant rules cannot override: exposure
//     (outstanding advances, plus advances promised, plus this amount, at
//     most ExposureCapFen: "exposure 400000 + 400000 promised + 400000 >
//     500000"), velocity (requests decided in (at-VelocityWindow, at],
//     this one included, at most VelocityMax), trust (no trust mark, a
//     bad inspection after an advance or a not_returned close, in
//     (at-TrustWindow, at]).
//
// With no failure the verdict is approved; otherwise review with every
// failed code, unless no safety rule and not merchant_unknown failed, the
// policy can pay the kind, and a rule of the order's merchant matches:
// then approved, naming the rule (the decision's reasons are empty, its
// trace still shows what failed). An approval of a kind that sends goods
// back carries the merchant's first return address.
//
// The 7-day window counts local calendar days: a request on the sign-off
// day is day 0 and one up to 24:00 of day WindowDays qualifies. Pickup
// windows follow [PickupWindow].
//
// # Money and the request's life
//
// A request is open from its decision until it is rejected, cancelled
// (return.cancelled before any refund or a replace exchange's handover),
// resolved rejected, closed by its
// return deadline, or finished (its inspection came back or, if no goods
// come back, its refund was sent). An approval fixes the request's terms
// (Request.PayTrigger, PayAdvance) and reserves its amount on the order;
// a tracking-triggered advance is promised (User.PromisedFen) until it is
// paid. The refund is paid once, by its trigger: at approval
// (pre_shipment for the exempt unshipped order, or the kind's approval
// rule), on the first logistics.tracking or pickup.done (tracking), or on
// an ok inspection when nothing was paid before (inspection, never an
// advance). An inspection releases what the request holds; a bad one
// after an advance (money, or the goods of a replace exchange) also
// sends a clawback of the advanced amount (recovered money goes back under
// the order's ceiling) and marks the shopper; every inspection sends
// trust feedback with the request policy's penalty.
//
// # After review
//
// A review is resolved once: by the first person's answer, or approved by
// timeout when it failed fast-track rules only ([DeadlineApproves]). A
// reviewed approval advances nothing, and the per-order ceiling applies
// at it; an approved request whose goods never come back is closed by
// its return deadline, and what it advanced is clawed back
// (not_returned). See lifecycle.go.
//
// # Timers
//
// Each open request has at most one armed timer ([Request.Timer]): the
// pickup window's end plus the grace (compensation), the review deadline
// (approval by timeout), the return deadline (close). [NextDeadline]
// returns a user's earliest; [Fire] fires every timer strictly before the
// given event time, in deadline order, each once, including timers that a
// fired timer arms before that time.
//
// # Bounded state
//
// Whenever an event moves User.MaxAt forward, Apply prunes: closed
// requests closed more than [Policy.Retention] ago (the longest rule
// window, at least 90 days), orders that no kept request refers to, that
// hold no reservation and whose last event is older than
// [OrderRetention] (400 days), velocity entries and trust marks outside
// their windows (never less than 24 h and 90 days, whatever the policy),
// and open requests decided more than [AbandonAfter] (a year) ago.
//
// Strings the state keeps (IDs, categories, notes) are copied into a
// per-user slab ([User] own), so that a cached shopper does not pin the
// decoded payloads, and a decision on a warm shopper allocates nothing.
//
// # Choices where the specification is silent
//
//   - A second order.paid for a known order is ignored, and so is a
//     second shipped or delivered time. A delivery implies shipment.
//   - A return_refund settled by a pre-shipment refund is finished at once:
//     the goods never left, so no pickup is sent and no inspection awaited.
//   - Pickups only for approved kinds that send goods back (never for
//     refund_only); fast-tracked exchanges are pickup-and-replace (the
//     new item is advanced) unless refunded in money, reviewed ones never.
//   - Tmall and douyin fast-track return_refund only; should a merchant
//     rule approve a refund_only there, it is refunded at approval (not an
//     advance), and an exchange gets no refund. A merchant rule does not
//     approve a kind the policy pays nothing for (except an exchange).
//   - Merchant rules compare max_amount_fen with the order's paid_fen (as
//     the platform cap does); max_days needs a sign-off.
//   - Exposure counts this request's amount whatever its kind and refund
//     trigger, as the preset table words it.
//   - An inspection of a request still in review sends its trust feedback
//     and is kept; the request stays in review, and its approval settles
//     it at once (an ok inspection pays the refund, a bad one pays
//     nothing). A cancellation of a request in review ends it without a
//     resolution.
//   - A courier's sign counts as on time when dated at or before the
//     window's end (a pickup before the window starts counts too).
//   - The review deadline approves what a merchant rule could approve: no
//     safety rule failed and the merchant is known (a merchant_unknown
//     request needs an address, so it waits for a person).
//   - The resolution of a review names who answered, even when the engine
//     turns an approval into a rejection (amount_exceeds_paid); the close
//     by the return deadline is a second resolution with its own ID
//     (resolution_id and Msg-Id end in ".closed").
//   - A reviewed approval's return address is the merchant's first, as of
//     the answer (or the deadline); none when the merchant has none then.
//   - An abandoned request (open a year) is dropped with its advance still
//     counted in OutstandingFen: the money was never recovered.
//   - A redelivery of a request already pruned (90 days after it closed)
//     is decided again; the order's ceiling remembers what was refunded,
//     so a refunded request cannot be paid twice that way.
//   - Review notes are kept up to [MaxNoteBytes].
package core
