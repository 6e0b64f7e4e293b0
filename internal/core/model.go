package core

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
func (c Code) String() string {
	if c < NumCodes {
		return codeNames[c]
	}
	return ""
}

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
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return ""
}

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
func (t Trigger) String() string {
	if int(t) < len(triggerNames) {
		return triggerNames[t]
	}
	return ""
}

// Status is where a request stands in its life.
type Status uint8

// Request statuses.
const (
	// StatusOpen: decided approved or review, not finished.
	StatusOpen Status = iota + 1
	// StatusRejected: decided rejected.
	StatusRejected
	// StatusCancelled: return.cancelled before any refund.
	StatusCancelled
	// StatusFinished: inspection came back, or (no goods returned) refund sent.
	StatusFinished
)

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
}

// Request is what the core keeps of one after-sales request.
type Request struct {
	ID        string  // request_id
	OrderID   string  // order_id as requested (the order may be unknown)
	Kind      Kind    // as requested
	Reason    Reason  // as requested
	At        int64   // request event time, Unix ns
	AmountFen int64   // amount to refund: amount_fen, default the order's paid_fen
	Status    Status  // where the request stands
	Verdict   Verdict // the decision
	Reasons   CodeSet // the decision's reasons (empty when approved)
	// MerchantRule names the merchant rule that approved it, if any.
	MerchantRule     string
	MerchantRevision uint64 // revision of the merchant profile the decision read; 0 if none

	// Refund state. RefundAt is the event time the refund was sent.
	RefundTrigger Trigger // what released the refund (TriggerNone until sent)
	RefundSent    bool    // the refund effect was emitted (at most once)
	RefundAdvance bool    // it was paid before the goods were back
	RefundAt      int64   // event time the refund was sent

	// Pickup state. WindowStart/End are Unix ns; 0 when no pickup.
	Pickup           bool  // a pickup effect was emitted
	PickupSize       Size  // the size the window was computed for
	Replace          bool  // pickup-and-replace (exchange)
	WindowStart      int64 // pickup window start
	WindowEnd        int64 // pickup window end: the compensation deadline
	PickupDone       bool  // pickup.done arrived
	CompensationSent bool  // the missed-window compensation was emitted

	Tracked    bool    // logistics.tracking arrived
	Inspection Outcome // inspection.result, OutcomeNone until then
	ClosedAt   int64   // event time the request left StatusOpen, 0 while open
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
	// OutstandingFen is advanced money not yet covered by an inspection.
	OutstandingFen int64
	// RecentRequests holds the event times of decided requests within the
	// velocity window (ascending arrival order).
	RecentRequests []int64
	// BadInspections holds event times of bad inspections that followed an
	// advance refund, within the trust window.
	BadInspections []int64
	// MaxAt is the largest event time applied to this user.
	MaxAt int64
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
)

var effectKindNames = [...]string{"", "decision", "refund", "pickup", "compensation", "clawback", "trust"}

// String returns the subject token of the kind ("decision").
func (k EffectKind) String() string {
	if int(k) < len(effectKindNames) {
		return effectKindNames[k]
	}
	return ""
}

// Check is one rule evaluated for a decision, with the values compared, for
// the rule trace (e.g. Rule "amount_cap", Got 30001, Limit 30000, Pass false).
type Check struct {
	Code  Code  // the code reported when the check fails
	Pass  bool  // the rule held
	Got   int64 // the shopper's or order's value (see Check.String per rule)
	Limit int64 // the policy's limit it was compared with
	// Text is the compared value when it is a string (the order's category
	// or city); empty otherwise. It shares the order's string (no copy).
	Text string
}

// MaxChecks bounds the trace of one decision.
const MaxChecks = 24

// Trace is the fixed-size rule trace of one decision (no allocation).
type Trace struct {
	N      int              // number of checks recorded
	Checks [MaxChecks]Check // Checks[:N] in evaluation order; the rest zero
}

// Effect is one output of Apply or Fire. Only the fields of its Kind are
// meaningful. IDs (MsgID, RefundID, PickupID) are derived from the user, the
// request and the kind, never from time or counters.
type Effect struct {
	Kind      EffectKind // which output, and which fields are meaningful
	UserID    string     // user_id
	RequestID string     // request_id
	OrderID   string     // order_id (as requested, even when unknown)

	// Decision.
	Verdict          Verdict
	Reasons          CodeSet // failed codes; empty when approved
	ReturnAddress    string  // the merchant's first return address, when approved and goods come back
	RequestAt        string  // the request's at, as received
	MerchantRule     string  // name of the merchant rule that approved, if any
	MerchantRevision uint64  // revision of the merchant profile read; 0 if none
	Trace            Trace   // the rules evaluated (decisions only)

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
}
