package core

import "strings"

// Code is a stable reason code of the contract ("credit_low"). Codes are
// kept in a CodeSet bit set whose iteration order (ascending Code) is the
// order in which reasons are listed in a decision.
type Code uint8

// Reason codes, in the order decisions list them.
const (
	CodeCreditLow Code = iota
	CodeOutsideWindow
	CodeReasonNotEligible
	CodeAmountOverCap
	CodeNotSevenDay
	CodeMerchantAddressMismatch
	CodeCategoryExcluded
	CodeCityNotCovered
	CodeKindNotEligible
	CodeOrderUnknown
	CodeNotDelivered
	CodeExposureCap
	CodeVelocityCap
	CodeTrustFlagged
	CodeDuplicateRequest
	CodeAmountExceedsPaid
	CodeMerchantUnknown
	NumCodes
)

var codeNames = [NumCodes]string{
	"credit_low", "outside_window", "reason_not_eligible", "amount_over_cap",
	"not_seven_day", "merchant_address_mismatch", "category_excluded",
	"city_not_covered", "kind_not_eligible", "order_unknown", "not_delivered",
	"exposure_cap", "velocity_cap", "trust_flagged", "duplicate_request",
	"amount_exceeds_paid", "merchant_unknown",
}

// String returns the contract string of the code.
func (c Code) String() string { return enumName(codeNames[:], c) }

// CodeSet is a bit set of reason codes.
type CodeSet uint32

// Has reports whether c is in the set.
func (s CodeSet) Has(c Code) bool { return s&(1<<c) != 0 }

// With returns the set with c added.
func (s CodeSet) With(c Code) CodeSet { return s | 1<<c }

// AppendStrings appends the contract strings of the codes in ascending order.
func (s CodeSet) AppendStrings(dst []string) []string {
	for c := Code(0); c < NumCodes; c++ {
		if s.Has(c) {
			dst = append(dst, codeNames[c])
		}
	}
	return dst
}

// Verdict is the outcome of a decision.
type Verdict uint8

// Verdicts. VerdictNone means "not decided yet".
const (
	VerdictNone Verdict = iota
	VerdictApproved
	VerdictReview
	VerdictRejected
)

var verdictNames = [...]string{"", "approved", "review", "rejected"}

// String returns the contract string ("approved").
func (v Verdict) String() string { return enumName(verdictNames[:], v) }

// Trigger is what released a refund.
type Trigger uint8

// Refund triggers. TriggerNone means the policy pays no refund.
const (
	TriggerNone Trigger = iota
	TriggerPreShipment
	TriggerApproval
	TriggerTracking
	TriggerInspection
)

var triggerNames = [...]string{"", "pre_shipment", "approval", "tracking", "inspection"}

// String returns the contract string ("tracking").
func (t Trigger) String() string { return enumName(triggerNames[:], t) }

// Status is where a request stands in its life.
type Status uint8

// Request statuses.
const (
	// StatusOpen: decided approved or review, not yet ended.
	StatusOpen Status = iota + 1
	// StatusRejected: decided rejected, or resolved rejected after review.
	StatusRejected
	// StatusCancelled: return.cancelled before any refund.
	StatusCancelled
	// StatusFinished: inspection came back, or (no goods returned) refund sent.
	StatusFinished
	// StatusClosed: the return deadline passed with nothing sent back.
	StatusClosed
)

var statusNames = [...]string{"", "open", "rejected", "cancelled", "finished", "closed"}

// String returns a lower-case name of the status ("open").
func (s Status) String() string { return enumName(statusNames[:], s) }

// Resolution is how a request that went to review ended, or how an
// approved request was closed.
type Resolution uint8

// Resolutions. The zero value means "not resolved".
const (
	ResolutionNone Resolution = iota
	ResolutionApproved
	ResolutionRejected
	// ResolutionClosed: an approved request whose goods never came back,
	// closed by its return deadline.
	ResolutionClosed
)

var resolutionNames = [...]string{"", "approved", "rejected", "closed"}

// String returns the contract string ("approved").
func (r Resolution) String() string { return enumName(resolutionNames[:], r) }

// Stage is where a request stands as the contract's query API names it.
type Stage uint8

// Stages of the after-sales flow (shared/domain.md: application, review,
// processing, feedback).
const (
	// StageApplication: filed, not decided. The core only knows a request
	// once it is decided, so [Request.Stage] never returns it.
	StageApplication Stage = iota
	// StageReview: waiting for a person or a deadline.
	StageReview
	// StageProcessing: approved and not finished.
	StageProcessing
	// StageFeedback: finished, rejected, cancelled or closed.
	StageFeedback
)

var stageNames = [...]string{"application", "review", "processing", "feedback"}

// String returns the contract string ("review").
func (s Stage) String() string { return enumName(stageNames[:], s) }

// Order is what the core keeps of one order. Times are Unix nanoseconds;
// 0 means "not yet".
type Order struct {
	ID               string // order_id
	MerchantID       string // merchant_id of order.paid
	Category         string // free text; presets exclude "fresh", "large_appliance"
	City             string // "" when not given
	Size             Size   // parcel size, sets the pickup window length
	PaidFen          int64  // actually paid amount, fen
	SevenDay         bool   // the product supports 7-day no-reason returns
	FreightInsurance bool   // return-shipping insurance bought
	PaidAt           int64  // order.paid event time
	ShippedAt        int64  // first order.shipped (or the sign-off, if no shipped event came)
	DeliveredAt      int64  // first order.delivered: the logistics sign-off
	// LastAt is the time of the last event about the order (its own
	// events, and the requests on it: decided, resolved, refunded,
	// closed); the order is remembered [OrderRetention] after it.
	LastAt int64

	// The per-order ceiling (shared/domain.md, Money safety): money
	// reserved by approved requests whose refund is promised but not sent,
	// and money refunded (minus what clawbacks recovered). Their sum plus
	// a new request's amount may never pass PaidFen.
	ReservedFen int64
	RefundedFen int64

	// Forgotten: IDs of requests on this order pruning dropped, and of
	// kept requests of another order redelivered naming this one (at most
	// [MaxForgotten], oldest first); a return.requested with one is none.
	Forgotten []string
}

// Request is what the core keeps of one after-sales request.
type Request struct {
	ID          string  // request_id
	OrderID     string  // order_id as requested (the order may be unknown)
	Kind        Kind    // as requested
	Reason      Reason  // as requested
	At          int64   // request event time, Unix ns
	AmountFen   int64   // amount to refund: amount_fen, default the order's paid_fen
	Status      Status  // where the request stands
	Verdict     Verdict // the decision
	Reasons     CodeSet // the decision's reasons (empty when approved)
	PickupAsked bool    // the request asked for a courier pickup
	// Policy decided the request; all that follows (refund, pickup,
	// compensation, deadlines, penalties) keeps it, whatever is in force
	// later, and every output names it. Never nil once decided.
	Policy           *Policy
	MerchantRule     string // the merchant rule that approved it, if any
	MerchantRevision uint64 // revision of the merchant profile the decision read; 0 if none

	// Review answer or deadline (ResolutionNone until one came).
	Resolution   Resolution
	ResolvedBy   Actor   // who resolved it
	ResolvedAt   int64   // event time of the resolution
	ResolveCodes CodeSet // the resolution's reasons (amount_exceeds_paid), usually empty
	Note         string  // the answer's note, at most [MaxNoteBytes]

	// Terms of an approval (fast track, merchant rule or review), fixed
	// at ApprovedAt: when the refund is paid and whether it is an advance.
	// TriggerNone for a kind that pays nothing (an exchange).
	ApprovedAt   int64   // event time of the approval; 0 while not approved
	PayTrigger   Trigger // what will release the refund
	PayAdvance   bool    // the refund is paid before the goods are back
	Reserved     bool    // AmountFen is reserved on the order (refund promised, not sent)
	Promised     bool    // AmountFen counts in User.PromisedFen (an advance promised, not paid)
	GoodsAdvance bool    // an exchange's new item goes out with the pickup: AmountFen counts in User.OutstandingFen until the inspection

	// Refund state. RefundAt is the event time the refund was sent.
	RefundTrigger Trigger // what released the refund (TriggerNone until sent)
	RefundSent    bool    // the refund effect was emitted (at most once)
	RefundAdvance bool    // it was paid before the goods were back
	RefundAt      int64   // event time the refund was sent

	// Pickup state. WindowStart/End are Unix ns; 0 when no pickup.
	Pickup           bool  // a pickup effect was emitted
	PickupSize       Size  // the size the window was computed for
	Replace          bool  // pickup-and-replace (the courier brings the new item)
	WindowStart      int64 // pickup window start
	WindowEnd        int64 // pickup window end (the compensation fires after it plus the policy's grace)
	PickupDone       bool  // pickup.done arrived
	CourierOnTime    bool  // a pickup.done or logistics.tracking dated at or before WindowEnd arrived
	CompensationSent bool  // the missed-window compensation was emitted

	Tracked      bool    // logistics.tracking arrived
	Inspection   Outcome // inspection.result, OutcomeNone until then
	ClawbackSent bool    // a clawback was emitted (bad inspection or not_returned after an advance)
	TrustSent    bool    // trust feedback was emitted (inspection or not_returned)
	ClosedAt     int64   // event time the request left StatusOpen, 0 while open
}

// User is one shopper's state: everything a decision reads. The caller owns
// it; Apply and Fire mutate it in place. Slices are kept in a deterministic
// order (insertion order), and pruned as event time advances.
type User struct {
	ID    string // user_id
	Stars int    // 0: never rated
	// Orders and Requests in arrival order.
	Orders   []Order
	Requests []Request // every kept request, open or closed
	// OutstandingFen is what the platform has advanced and not got back:
	// advance refunds sent and goods advanced (replace exchanges) whose
	// inspection has not come back (plus those of abandoned requests, see
	// [AbandonAfter]). Never negative.
	OutstandingFen int64
	// PromisedFen is advance refunds promised at approval whose trigger has
	// not come yet (tmall waiting for tracking). Never negative.
	PromisedFen int64
	// RecentRequests holds the event times of decided requests within the
	// velocity window (ascending arrival order).
	RecentRequests []int64
	// TrustMarks holds the event times of what flags a shopper for the
	// trust rule: bad inspections after an advance (money or goods), and
	// closes as not_returned of an advanced request; kept within the trust
	// window.
	TrustMarks []int64
	// VelocityPrunedTo and TrustPrunedTo: the latest times pruned from
	// RecentRequests and TrustMarks (0: none). A rule window starting
	// before one of them cannot be counted: the rule fails safe.
	VelocityPrunedTo int64
	TrustPrunedTo    int64
	Forgotten        []string // Order.Forgotten for IDs no kept order holds (unknown or pruned orders)
	// MaxAt is the largest event time applied to this user.
	MaxAt int64

	// slab holds the bytes of the strings the state owns (see own); nil
	// until the first one. Never copied between users (Clone drops it).
	slab *strings.Builder
}

// EffectKind is the kind of an output effect; each maps to one fr.out subject.
type EffectKind uint8

// Effect kinds.
const (
	EffectDecision EffectKind = iota + 1
	EffectRefund
	EffectPickup
	EffectCompensation
	EffectClawback
	EffectTrust
	// EffectResolution: how a request in review ended, or an approved one
	// was closed by its return deadline.
	EffectResolution
	// EffectDeadLetter: the event refers to an order or request the
	// shopper does not have; it was not applied (see [Fault]). It is not
	// an output of fr.out: the caller dead-letters the event.
	EffectDeadLetter
)

var effectKindNames = [...]string{"", "decision", "refund", "pickup", "compensation", "clawback", "trust", "resolution", "dead_letter"}

// String returns the subject token of the kind ("decision").
func (k EffectKind) String() string { return enumName(effectKindNames[:], k) }

// Fault is why a well-formed event cannot stand: what it refers to does not
// exist in the shopper's state.
type Fault uint8

// Faults; each is a DLQ reason of the contract.
const (
	FaultNone Fault = iota
	// FaultUnknownOrder: order.shipped or order.delivered for an order
	// the shopper does not have.
	FaultUnknownOrder
	// FaultUnknownRequest: return.cancelled, logistics.tracking,
	// pickup.done, inspection.result or review.* for a request the
	// shopper does not have.
	FaultUnknownRequest
)

var faultNames = [...]string{"", "unknown_order", "unknown_request"}

// String returns the contract's DLQ reason ("unknown_order").
func (f Fault) String() string { return enumName(faultNames[:], f) }

// Check is one rule evaluated for a decision, with the values compared, for
// the rule trace (e.g. Rule "amount_cap", Got 30001, Limit 30000, Pass false).
type Check struct {
	Code  Code  // the code reported when the check fails
	Pass  bool  // the rule held
	Got   int64 // the shopper's or order's value (see Check.String per rule)
	Limit int64 // the policy's limit it was compared with
	// Held and Promised are what the sum Got is added to already holds:
	// for amount_exceeds_paid, Held is the order's reserved plus refunded
	// money; for exposure_cap, Held is the shopper's outstanding advances
	// and Promised the advances promised. Zero for other rules.
	Held     int64
	Promised int64
	// Text is the compared value when it is a string (the order's category
	// or city; it shares the order's string, no copy); for velocity_cap
	// and trust_flagged, why the rule failed safe (its window reaches past
	// pruned history, so Got is a lower bound); empty otherwise.
	Text string
}

// MaxChecks bounds the trace of one decision: one check per reason code
// at most, plus one spare.
const MaxChecks = int(NumCodes) + 1

// Trace is the fixed-size rule trace of one decision (no allocation).
type Trace struct {
	N      int              // number of checks recorded
	Checks [MaxChecks]Check // Checks[:N] in evaluation order; the rest zero
}

// Effect is one output of Apply or Fire. Only the fields of its Kind are
// meaningful. IDs (MsgID, RefundID, PickupID, ResolutionID) are derived
// from the user, the request and the kind, never from time or counters.
type Effect struct {
	Kind      EffectKind // which output, and which fields are meaningful
	UserID    string     // user_id
	RequestID string     // request_id
	OrderID   string     // order_id (as requested, even when unknown)
	// Policy is the policy of the request the effect is about (the one
	// that decided it): every output names it. Nil only for dead letters.
	Policy *Policy

	// Decision.
	Verdict          Verdict
	Reasons          CodeSet // failed codes; empty when approved (resolution: its reasons)
	ReturnAddress    string  // the merchant's first return address, when approved and goods come back (decision, resolution)
	RequestAt        string  // the request's at, as received
	MerchantRule     string  // name of the merchant rule that approved, if any
	MerchantRevision uint64  // revision of the merchant profile read; 0 if none
	Trace            Trace   // the rules evaluated (decisions; a resolution's ceiling check)

	// Refund, compensation, clawback.
	AmountFen int64   // fen
	Trigger   Trigger // refunds: what released it
	Advance   bool    // refunds: paid before the goods are back

	// Pickup.
	Size        Size
	WindowStart int64 // Unix ns
	WindowEnd   int64 // Unix ns
	Replace     bool  // the courier brings the new item (exchange)

	// Clawback and trust feedback.
	Outcome Outcome
	Penalty int // trust points; 0 for ok

	// Resolution.
	Resolution Resolution
	By         Actor  // who resolved it
	At         int64  // event time of the resolution (the answer's at, or the deadline), Unix ns
	Note       string // the answer's note, if any

	// Dead letter.
	Fault Fault
}
