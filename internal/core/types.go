package core

import "time"

// EventType identifies an inbound event type of the wire contract.
type EventType uint8

// Inbound event types. The zero value is invalid.
const (
	EventInvalid EventType = iota
	EventOrderPaid
	EventOrderShipped
	EventOrderDelivered
	EventCreditUpdated
	EventReturnRequested
	EventReturnCancelled
	EventLogisticsTracking
	EventPickupDone
	EventInspectionResult
	// EventReviewApproved and EventReviewRejected are a person's answer
	// (the merchant's or a platform reviewer's) to a request in review.
	EventReviewApproved
	EventReviewRejected
	// EventClock is the partition clock tick the daemon publishes so that
	// idle partitions still advance event time. It carries no user data.
	EventClock
	numEventTypes
)

var eventTypeNames = [numEventTypes]string{
	"", "order.paid", "order.shipped", "order.delivered", "credit.updated",
	"return.requested", "return.cancelled", "logistics.tracking", "pickup.done",
	"inspection.result", "review.approved", "review.rejected", "clock.tick",
}

// String returns the contract name of the type ("order.paid").
func (t EventType) String() string { return enumName(eventTypeNames[:], t) }

// ParseEventType maps a contract type name to its EventType; ok is false for
// unknown names.
func ParseEventType(s string) (EventType, bool) {
	return parseEnum(s, eventTypeNames[:], EventInvalid)
}

// Kind is the kind of an after-sales request.
type Kind uint8

// Request kinds. The zero value is invalid.
const (
	KindInvalid Kind = iota
	KindReturnRefund
	KindRefundOnly
	KindExchange
	numKinds
)

var kindNames = [numKinds]string{"", "return_refund", "refund_only", "exchange"}

// String returns the contract name of the kind.
func (k Kind) String() string { return enumName(kindNames[:], k) }

// ParseKind maps a contract name to a Kind.
func ParseKind(s string) (Kind, bool) { return parseEnum(s, kindNames[:], KindInvalid) }

// NeedsReturnAddress reports whether goods travel back to the merchant.
func (k Kind) NeedsReturnAddress() bool { return k == KindReturnRefund || k == KindExchange }

// KindSet is a bit set of kinds (bit k set = Kind k included).
type KindSet uint8

// Has reports whether k is in the set.
func (s KindSet) Has(k Kind) bool { return s&(1<<k) != 0 }

// Reason is the shopper's stated reason for a request.
type Reason uint8

// Request reasons. The zero value is invalid.
const (
	ReasonInvalid Reason = iota
	ReasonNoReason
	ReasonDislike
	ReasonWrongOrder
	ReasonQuality
	ReasonDamaged
	ReasonNotAsDescribed
	ReasonOther
	numReasons
)

var reasonNames = [numReasons]string{"", "no_reason", "dislike", "wrong_order", "quality", "damaged", "not_as_described", "other"}

// String returns the contract name of the reason.
func (r Reason) String() string { return enumName(reasonNames[:], r) }

// ParseReason maps a contract name to a Reason.
func ParseReason(s string) (Reason, bool) { return parseEnum(s, reasonNames[:], ReasonInvalid) }

// ReasonSet is a bit set of request reasons (bit r set = Reason r included).
type ReasonSet uint16

// Has reports whether r is in the set.
func (s ReasonSet) Has(r Reason) bool { return s&(1<<r) != 0 }

// Size is the parcel size of an order, which sets the pickup window length.
type Size uint8

// Sizes. The zero value is invalid.
const (
	SizeInvalid Size = iota
	SizeSmall
	SizeLarge
	numSizes
)

var sizeNames = [numSizes]string{"", "small", "large"}

// String returns the contract name of the size.
func (s Size) String() string { return enumName(sizeNames[:], s) }

// ParseSize maps a contract name to a Size.
func ParseSize(s string) (Size, bool) { return parseEnum(s, sizeNames[:], SizeInvalid) }

// Outcome is the result of the merchant's inspection of returned goods.
type Outcome uint8

// Inspection outcomes, plus OutcomeNotReturned. The zero value means "no
// inspection yet".
const (
	OutcomeNone Outcome = iota
	OutcomeOK
	OutcomeDamaged
	OutcomeUsed
	OutcomeEmptyBox
	OutcomeWrongItem
	// OutcomeNotReturned is not an inspection result: it is the outcome of
	// the clawback and trust feedback sent when an approved request's
	// return deadline passed with nothing sent back. [ParseOutcome] does
	// not accept it (an inspection.result cannot carry it).
	OutcomeNotReturned
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"", "ok", "damaged", "used", "empty_box", "wrong_item", "not_returned"}

// String returns the contract name of the outcome.
func (o Outcome) String() string { return enumName(outcomeNames[:], o) }

// ParseOutcome maps the contract name of an inspection outcome to an
// Outcome; "not_returned" is not one (see [OutcomeNotReturned]).
func ParseOutcome(s string) (Outcome, bool) {
	return parseEnum(s, outcomeNames[:OutcomeNotReturned], OutcomeNone)
}

// Bad reports whether the outcome is a bad inspection (abuse signal):
// damaged, used, empty_box or wrong_item.
func (o Outcome) Bad() bool { return o > OutcomeOK && o < OutcomeNotReturned }

// Actor is who answered a request in review: the merchant, a platform
// reviewer, or nobody in time (the engine's deadline).
type Actor uint8

// Actors. The zero value means "nobody yet".
const (
	ActorNone Actor = iota
	ActorMerchant
	ActorPlatform
	// ActorTimeout: a deadline of the request's policy resolved it.
	ActorTimeout
	numActors
)

var actorNames = [numActors]string{"", "merchant", "platform", "timeout"}

// String returns the contract name ("merchant").
func (a Actor) String() string { return enumName(actorNames[:], a) }

// ParseActor maps the contract name of a person who answers a review
// ("merchant" or "platform") to an Actor; "timeout" is the engine's own
// and is not accepted.
func ParseActor(s string) (Actor, bool) { return parseEnum(s, actorNames[:ActorTimeout], ActorNone) }

// enumName returns names[v], or "" for a value outside the table (a
// corrupt record or a bad cast must print as nothing, not panic). Every
// enum's String is this one lookup, so a new enum cannot get the bounds
// check wrong.
func enumName[T ~uint8](names []string, v T) string {
	if int(v) < len(names) {
		return names[v]
	}
	return ""
}

// parseEnum maps a contract name to its value; index 0 (the invalid or
// "none" value) is never matched, so an empty string is not a name.
func parseEnum[T ~uint8](s string, names []string, invalid T) (T, bool) {
	for i := 1; i < len(names); i++ {
		if names[i] == s {
			return T(i), true
		}
	}
	return invalid, false
}

// Event is one decoded, validated inbound user event (or a clock tick). It is
// a flat struct so that decoding and applying it allocate nothing; only the
// fields of its Type are meaningful.
type Event struct {
	Type    EventType // which fields below are meaningful
	EventID string    // event_id (the inbound Nats-Msg-Id)
	// At is the event time in Unix nanoseconds; AtRaw is the original RFC 3339
	// text, echoed in decisions as request_at.
	At     int64
	AtRaw  string // the at field as received (RFC 3339)
	UserID string // user_id; empty for clock ticks

	OrderID          string // order.*, return.requested
	MerchantID       string // order.paid
	Category         string // order.paid
	Size             Size   // order.paid
	PaidFen          int64  // order.paid
	SevenDay         bool   // order.paid
	FreightInsurance bool   // order.paid
	City             string // order.paid

	Stars int // credit.updated, 1..5

	RequestID  string // return.*, logistics.*, pickup.done, inspection.result, review.*
	Kind       Kind   // return.requested
	Reason     Reason // return.requested
	Pickup     bool   // return.requested
	AmountFen  int64  // return.requested; valid when HasAmount
	HasAmount  bool   // return.requested: amount_fen was given
	TrackingNo string // logistics.tracking

	Outcome Outcome // inspection.result

	By   Actor  // review.*: who answered (ActorMerchant or ActorPlatform)
	Note string // review.*: optional free text, kept for the query API
}

// Merchant is a merchant profile from merchant.updated: reference data that
// every partition reads. Revision is the FR_MERCHANT stream sequence of the
// profile, recorded in decisions that used it.
type Merchant struct {
	ID              string         // merchant_id
	ReturnAddresses []string       // in the profile's order; the first is issued
	ShipAddresses   []string       // in the profile's order
	Rules           []MerchantRule // after-sales-assistant rules, first match wins
	Revision        uint64         // FR_MERCHANT stream sequence
}

// MerchantRule is one after-sales-assistant rule: a conjunction of
// conditions; a zero or empty condition matches anything.
type MerchantRule struct {
	Name         string    // named in the decisions it approves
	Kinds        KindSet   // 0: any kind
	Reasons      ReasonSet // 0: any reason
	MinStars     int       // 0: any
	MaxAmountFen int64     // 0 with HasMaxAmount false: any
	HasMaxAmount bool      // max_amount_fen was given (compared with the order's paid_fen)
	MaxDays      int       // days since the sign-off day; valid when HasMaxDays
	HasMaxDays   bool      // max_days was given (needs a sign-off to match)
	Categories   []string  // empty: any
}

// Env is what Apply needs besides the user's state and the event: the
// policy in force, the shoppers' time zone and the merchant view. The
// caller owns it; Apply only reads it.
type Env struct {
	// Policy is the platform policy in force for new decisions; must not
	// be nil. A request keeps the policy that decided it
	// ([Request.Policy]) for everything that follows from the decision.
	Policy *Policy
	// Loc is the shoppers' zone for calendar rules; nil means UTC (callers
	// normally pass Asia/Shanghai).
	Loc *time.Location
	// Merchant returns the profile of a merchant in force for the event
	// being applied (the daemon: the latest profile stored before the
	// event was), or nil when unknown. It must be safe to call from the
	// worker goroutine.
	Merchant func(id string) *Merchant
}
