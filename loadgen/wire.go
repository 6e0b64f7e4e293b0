package loadgen

// The JSON shapes of shared/contract.md as an outside client sees them.
// loadgen is written against the contract page, not against the daemon's
// code, so it keeps its own copies of the shapes it sends and reads.

// Inbound event types of the contract.
const (
	typeOrderPaid       = "order.paid"
	typeOrderShipped    = "order.shipped"
	typeOrderDelivered  = "order.delivered"
	typeCreditUpdated   = "credit.updated"
	typeReturnRequested = "return.requested"
	typeReturnCancelled = "return.cancelled"
	typeTracking        = "logistics.tracking"
	typePickupDone      = "pickup.done"
	typeInspection      = "inspection.result"
	typeMerchantUpdated = "merchant.updated"
	typeReviewApproved  = "review.approved"
	typeReviewRejected  = "review.rejected"
)

// Decision values of fr.out.decision.<user>.
const (
	decisionApproved = "approved"
	decisionReview   = "review"
	decisionRejected = "rejected"
)

// Reason codes loadgen checks in its audit.
const (
	reasonAmountExceedsPaid = "amount_exceeds_paid"
	reasonOrderUnknown      = "order_unknown"
	reasonDuplicateRequest  = "duplicate_request"
	reasonExposureCap       = "exposure_cap"
	reasonVelocityCap       = "velocity_cap"
	reasonTrustFlagged      = "trust_flagged"
	reasonMerchantUnknown   = "merchant_unknown"
)

// Dead-letter reasons of the well-formed events that cannot stand (and
// bad_value, shared with malformed ones).
const (
	reasonUnknownOrder   = "unknown_order"
	reasonUnknownRequest = "unknown_request"
	reasonFutureTime     = "future_time"
	reasonBadValue       = "bad_value"
)

// Output kinds (the <kind> of fr.out.<kind>.<user>) and the values of
// their fields that the audit reads.
const (
	outDecisionKind     = "decision"
	outRefundKind       = "refund"
	outPickupKind       = "pickup"
	outCompensationKind = "compensation"
	outClawbackKind     = "clawback"
	outTrustKind        = "trust"
	outResolutionKind   = "resolution"

	resolutionApproved = "approved"
	resolutionRejected = "rejected"
	resolutionClosed   = "closed"
	byTimeout          = "timeout"
	outcomeNotReturned = "not_returned"

	triggerPreShipment = "pre_shipment"
	triggerApproval    = "approval"
	triggerTracking    = "tracking"
	triggerInspection  = "inspection"
)

type evOrderPaid struct {
	EventID          string `json:"event_id"`
	Type             string `json:"type"`
	At               string `json:"at"`
	UserID           string `json:"user_id"`
	OrderID          string `json:"order_id"`
	MerchantID       string `json:"merchant_id"`
	Category         string `json:"category"`
	Size             string `json:"size"`
	PaidFen          int64  `json:"paid_fen"`
	SevenDay         bool   `json:"seven_day"`
	FreightInsurance bool   `json:"freight_insurance"`
	City             string `json:"city,omitempty"`
}

type evOrder struct {
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	At      string `json:"at"`
	UserID  string `json:"user_id"`
	OrderID string `json:"order_id"`
}

type evCredit struct {
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	At      string `json:"at"`
	UserID  string `json:"user_id"`
	Stars   int    `json:"stars"`
}

type evReturnRequested struct {
	EventID   string `json:"event_id"`
	Type      string `json:"type"`
	At        string `json:"at"`
	UserID    string `json:"user_id"`
	RequestID string `json:"request_id"`
	OrderID   string `json:"order_id"`
	Kind      string `json:"kind"`
	Reason    string `json:"reason"`
	Pickup    bool   `json:"pickup"`
	AmountFen *int64 `json:"amount_fen,omitempty"`
}

type evRequestRef struct {
	EventID    string `json:"event_id"`
	Type       string `json:"type"`
	At         string `json:"at"`
	UserID     string `json:"user_id"`
	RequestID  string `json:"request_id"`
	TrackingNo string `json:"tracking_no,omitempty"`
	Outcome    string `json:"outcome,omitempty"`
}

type evReview struct {
	EventID   string `json:"event_id"`
	Type      string `json:"type"`
	At        string `json:"at"`
	UserID    string `json:"user_id"`
	RequestID string `json:"request_id"`
	By        string `json:"by"`
	Note      string `json:"note,omitempty"`
}

type evMerchant struct {
	EventID         string         `json:"event_id"`
	Type            string         `json:"type"`
	At              string         `json:"at"`
	MerchantID      string         `json:"merchant_id"`
	ReturnAddresses []string       `json:"return_addresses"`
	ShipAddresses   []string       `json:"ship_addresses"`
	Rules           []MerchantRule `json:"rules,omitempty"`
}

// MerchantRule is one of a merchant's own auto-approval rules (the
// "after-sales assistant") as merchant.updated carries it. An omitted
// condition (empty slice, zero number) matches anything.
type MerchantRule struct {
	Name         string   `json:"name"`
	Kinds        []string `json:"kinds,omitempty"`
	Reasons      []string `json:"reasons,omitempty"`
	MinStars     int      `json:"min_stars,omitempty"`
	MaxAmountFen int64    `json:"max_amount_fen,omitempty"`
	MaxDays      int      `json:"max_days,omitempty"`
	Categories   []string `json:"categories,omitempty"`
}

// outPolicy is the `policy` of an output: the policy that decided its
// request.
type outPolicy struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// outAny is the part of any output about a request (fr.out.<kind>.<user>:
// decision, refund, pickup, compensation, clawback, trust, resolution)
// that loadgen reads; each kind fills the fields it has.
type outAny struct {
	RequestID string    `json:"request_id"`
	UserID    string    `json:"user_id"`
	Policy    outPolicy `json:"policy"`
	// decision
	Decision     string   `json:"decision"`
	Reasons      []string `json:"reasons"`
	MerchantRule string   `json:"merchant_rule"`
	// refund, compensation, clawback
	AmountFen int64  `json:"amount_fen"`
	Trigger   string `json:"trigger"`
	Advance   bool   `json:"advance"`
	// pickup
	Replace bool `json:"replace"`
	// clawback, trust, resolution
	Outcome string `json:"outcome"`
	Penalty int64  `json:"penalty"`
	// resolution
	By string `json:"by"`
	At string `json:"at"`
}

// outDLQ is the part of fr.dlq.<reason> that loadgen reads.
type outDLQ struct {
	Reason     string `json:"reason"`
	Subject    string `json:"subject"`
	PayloadB64 string `json:"payload_b64"`
}

// eventIDOnly pulls the event id out of a dead-lettered payload.
type eventIDOnly struct {
	EventID string `json:"event_id"`
}
