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
	ID               string
	MerchantID       string
	Category         string
	City             string
	Size             Size
	PaidFen          int64
	SevenDay         bool
	FreightInsurance bool
	PaidAt           int64
	ShippedAt        int64
	DeliveredAt      int64
}

// Request is what the core keeps of one after-sales request.
type Request struct {
	ID        string
	OrderID   string
	Kind      Kind
	Reason    Reason
	At        int64 // request event time, Unix ns
	AmountFen int64
	Status    Status
	Verdict   Verdict
	Reasons   CodeSet
	// MerchantRule names the merchant rule that approved it, if any.
	MerchantRule     string
	MerchantRevision uint64

	// Refund state. RefundAt is the event time the refund was sent.
	RefundTrigger Trigger
	RefundSent    bool
	RefundAdvance bool
	RefundAt      int64

	// Pickup state. WindowStart/End are Unix ns; 0 when no pickup.
	Pickup           bool
	PickupSize       Size
	Replace          bool
	WindowStart      int64
	WindowEnd        int64
	PickupDone       bool
	CompensationSent bool

	Tracked    bool
	Inspection Outcome
	ClosedAt   int64 // event time the request left StatusOpen, 0 while open
}

// User is one shopper's state: everything a decision reads. The caller owns
// it; Apply and Fire mutate it in place. Slices are kept in a deterministic
// order (insertion order), and pruned as event time advances.
type User struct {
	ID    string
	Stars int // 0: never rated
	// Orders and Requests in arrival order.
	Orders   []Order
	Requests []Request
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
	Code  Code // the code reported when the check fails
	Pass  bool
	Got   int64
	Limit int64
	// Text is the compared value when it is a string (the order's category
	// or city); empty otherwise. It shares the order's string (no copy).
	Text string
}

// MaxChecks bounds the trace of one decision.
const MaxChecks = 24

// Trace is the fixed-size rule trace of one decision (no allocation).
type Trace struct {
	N      int
	Checks [MaxChecks]Check
}

// Effect is one output of Apply or Fire. Only the fields of its Kind are
// meaningful. IDs (MsgID, RefundID, PickupID) are derived from the user, the
// request and the kind, never from time or counters.
type Effect struct {
	Kind      EffectKind
	UserID    string
	RequestID string
	OrderID   string

	// Decision.
	Verdict          Verdict
	Reasons          CodeSet
	ReturnAddress    string
	RequestAt        string // the request's at, as received
	MerchantRule     string
	MerchantRevision uint64
	Trace            Trace // the rules evaluated (decisions only)

	// Refund, compensation, clawback.
	AmountFen int64
	Trigger   Trigger
	Advance   bool

	// Pickup.
	Size        Size
	WindowStart int64
	WindowEnd   int64
	Replace     bool

	// Clawback and trust feedback.
	Outcome Outcome
	Penalty int
}
