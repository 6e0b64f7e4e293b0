// Package record is the byte format of everything state stores: a
// shopper's decision state (core.User), a partition's meta (cursor and
// clock) and outbox, and the policy records a partition keeps for its
// requests. It encodes and decodes; it does no IO and knows nothing of
// keys, transactions or partitions.
//
// # Invariants
//
//   - Every record starts with a format version byte. A decoder reads
//     every version up to its own and refuses a newer one with
//     [ErrUnsupportedVersion], so a record written by a newer release is
//     reported, never misread and then overwritten by an older one.
//   - Decoding never panics and never allocates in proportion to a
//     corrupt length (FuzzDecodeUser, FuzzDecodeOutbox); a record either
//     decodes completely or yields an error.
//   - AppendUser then DecodeUser gives back the same user, field for
//     field, with every request's policy resolved to the pointer the
//     [Resolver] holds (TestCodecRoundTrip over random users).
//     TestCodecCoversAllFields fails when core gains a field the codec
//     does not know: each new field is a new version.
//   - A policy is stored under its version only if its content hashes to
//     that version ([EncodePolicy]), and read back only if it does
//     ([DecodePolicy]): what a version names can never change.
//   - [EncodedSizeBound], [OutboxSizeBound] and [MetaSizeMax] bound the
//     encoded sizes without encoding, so the store can cut a batch before
//     it builds it.
//
// # Callers
//
// Package state: its partitions encode dirty users, meta and outbox at
// Commit and decode them on a cache miss or at open; Store.ReadUser
// decodes for the query API; the timer migration decodes version-1
// users. Tests use recordtest for fixtures and the frozen version-1
// encoder.
//
// # User records
//
// User states use a compact binary record (user.go): a version byte, then
// varints and length-prefixed strings, with times stored relative to the
// user's MaxAt (a request's approval and resolution times relative to its
// At) in seconds, milliseconds or nanoseconds, whichever is exact, and
// booleans in bit sets. A request's policy is stored as its version: each
// distinct version once per user (8 bytes), each request an index into
// that list. A typical shopper (3 orders, 1 request approved by tmall, its
// advance promised) takes 285 bytes (284 in version 3, 279 in version 2,
// 243 in version 1).
// Decoders read every version up to theirs; adding a field to core.User,
// Order or Request is a new version (see user.go);
// TestCodecCoversAllFields fails until the codec knows every field, and
// testdata/user_v1.golden to user_v4.golden pin versions 1 to 4
// (recordtest.AppendUserV1, a frozen version-1 encoder, still writes the
// first byte for byte; the version-2 and version-3 files are their own
// reference).
//
// # Version 3
//
// Version 4 added User.Forgotten, the IDs of pruned requests that no kept
// order holds (of an unknown order, or of an order pruned itself). A
// version-3 record decodes with it empty. Limit: a request of an unknown
// order pruned before the upgrade and then redelivered is decided again
// (rejected order_unknown, unless its order has become known since).
//
// # Versions 1 and 2
//
// Version 3 added what pruning forgets but the money rules still need:
// the IDs of pruned requests on their orders (Order.Forgotten) and the
// latest pruned velocity and trust times (User.VelocityPrunedTo,
// TrustPrunedTo). An older record did not keep them:
//
//   - Order.Forgotten stays empty. Limit: a request pruned before the
//     upgrade and then redelivered is decided again (the per-order
//     ceiling still counts what it was refunded).
//   - VelocityPrunedTo and TrustPrunedTo are MaxAt minus the windows the
//     older release kept: the longer of the spec's (24 h, 90 days) and
//     the legacy policy's (the daemon's --policy), taken to be the policy
//     that was in force. As far back as those, it may have pruned
//     anything. So a request dated before the shopper's last event at the
//     upgrade, whose window reaches past that, fails velocity_cap or
//     trust_flagged safe rather than be judged on a history with holes;
//     later requests are not affected. Limit: the derivation assumes the
//     --policy of the upgraded daemon is the one the older release ran.
//     Upgrading and switching to a policy with longer windows at the same
//     restart makes the migrated history look longer than it is, as
//     every release before this one assumed.
//
// # Version 1
//
// Version-1 user records (written before issue 14) still decode. Their
// requests get the resolver's legacy policy (without one,
// [ErrNoLegacyPolicy]), and the fields version 1 lacked are derived
// (deriveV1), exactly where version 1's rules leave no doubt and as an
// assumption otherwise:
//
//   - Policy: the legacy policy, for every request. Assumption: it is the
//     policy that decided them. A request decided under another policy
//     follows the legacy one's terms (refund trigger and advance, pickup
//     grace, deadlines, penalties) from now on. Once the user is committed
//     again, the legacy policy's record is stored and the request keeps it
//     whatever --policy later says.
//   - ApprovedAt = At for approved requests (version 1 approved only at the
//     decision: fast track or merchant rule). No request has a resolution:
//     a request in review stays in review.
//   - PayTrigger, PayAdvance: the legacy policy's refund rule for the kind,
//     or pre_shipment (not an advance) when the refund sent was
//     pre_shipment. For a request whose refund was sent they only describe
//     it; nothing reads them any more.
//   - Reserved when approved, open, refund not sent and the trigger is not
//     none; Promised when, in addition, the rule is tracking with advance
//     (tmall and douyin waiting for the tracking number). User.PromisedFen
//     is the sum of the promised amounts, Order.ReservedFen of the reserved
//     ones.
//   - Order.RefundedFen: the refunds sent on the order minus those clawed
//     back (a bad inspection after an advance), over the requests the
//     record holds. Limit: version 1 pruned requests 90 days after they
//     closed; refunds of pruned requests are not counted, so the per-order
//     ceiling does not see a refund made more than 90 days before the
//     upgrade.
//   - Order.LastAt: the latest time the record knows about the order: paid,
//     shipped, delivered, and its requests' decision, refund and close.
//     Limit: version 1 did not keep the time of a tracking or pickup of a
//     still open request, so LastAt may be earlier than the true last
//     event; the order is still kept at least 400 days after it.
//   - ClawbackSent: a bad inspection after an advance refund; TrustSent:
//     any inspection (version 1 sent feedback for each); TrustMarks: the
//     version-1 bad inspections after an advance (version 1 had no
//     not_returned).
//   - CourierOnTime: a pickup with pickup.done or tracking recorded and no
//     compensation sent (version 1 would have compensated had the window
//     passed first), so the new pickup timer does not compensate it now.
//     PickupAsked: a pickup was scheduled, except an exchange's under a
//     policy with exchange_pickup (it was not asked for). Limit: a request
//     in review that asked for a pickup is not known to have asked, and
//     gets none if a person approves it.
//   - GoodsAdvance stays false: version 1 did not count an exchange's new
//     item in OutstandingFen, so a version-1 replace exchange is not clawed
//     back if its goods never come back.
package record
