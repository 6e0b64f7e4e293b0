package contract

// The JSON shapes of shared/contract.md as an outside client sees them.
// loadgen is written against the contract page, not against the daemon's
// code, so it keeps its own copies of the shapes it sends and reads.

// Inbound event types of the contract.
const (
	TypeOrderPaid       = "order.paid"
	TypeOrderShipped    = "order.shipped"
	TypeOrderDelivered  = "order.delivered"
	TypeCreditUpdated   = "credit.updated"
	TypeReturnRequested = "return.requested"
	TypeReturnCancelled = "return.cancelled"
	TypeTracking        = "logistics.tracking"
	TypePickupDone      = "pickup.done"
	TypeInspection      = "inspection.result"
	TypeMerchantUpdated = "merchant.updated"
	TypeReviewApproved  = "review.approved"
	TypeReviewRejected  = "review.rejected"
)

// Decision values of fr.out.decision.<user>.
const (
	DecisionApproved = "approved"
	DecisionReview   = "review"
	DecisionRejected = "rejected"
)

// Reason codes loadgen checks in its audit.
const (
	ReasonAmountExceedsPaid = "amount_exceeds_paid"
	ReasonOrderUnknown      = "order_unknown"
	ReasonDuplicateRequest  = "duplicate_request"
	ReasonExposureCap       = "exposure_cap"
	ReasonVelocityCap       = "velocity_cap"
	ReasonTrustFlagged      = "trust_flagged"
	ReasonMerchantUnknown   = "merchant_unknown"
)

// Dead-letter reasons of the well-formed events that cannot stand (and
// bad_value, shared with malformed ones).
const (
	ReasonUnknownOrder   = "unknown_order"
	ReasonUnknownRequest = "unknown_request"
	ReasonFutureTime     = "future_time"
	ReasonBadValue       = "bad_value"
)

// The no-op relay of bench/relay echoes every stored event to
// fr.out.relay.<kind>.<user> (not a contract subject: the relay is the
// benchmark's baseline, not the product). OutRelay is the <kind> loadgen
// sees there; RelayReturnFilter selects the echoes of fr.in.return.*,
// among them every return.requested, which a scenario run against the
// relay times as the relay's "answer".
const (
	OutRelay          = "relay"
	RelayReturnFilter = "fr.out.relay.return.>"
)

// Output kinds (the <kind> of fr.out.<kind>.<user>) and the values of
// their fields that the audit reads.
const (
	OutDecision     = "decision"
	OutRefund       = "refund"
	OutPickup       = "pickup"
	OutCompensation = "compensation"
	OutClawback     = "clawback"
	OutTrust        = "trust"
	OutResolution   = "resolution"

	ResolutionApproved = "approved"
	ResolutionRejected = "rejected"
	ResolutionClosed   = "closed"
	ByTimeout          = "timeout"
	OutcomeNotReturned = "not_returned"

	TriggerPreShipment = "pre_shipment"
	TriggerApproval    = "approval"
	TriggerTracking    = "tracking"
	TriggerInspection  = "inspection"
)

type OrderPaid struct {
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

type OrderEvent struct {
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	At      string `json:"at"`
	UserID  string `json:"user_id"`
	OrderID string `json:"order_id"`
}

type CreditUpdated struct {
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	At      string `json:"at"`
	UserID  string `json:"user_id"`
	Stars   int    `json:"stars"`
}

type ReturnRequested struct {
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

type RequestRef struct {
	EventID    string `json:"event_id"`
	Type       string `json:"type"`
	At         string `json:"at"`
	UserID     string `json:"user_id"`
	RequestID  string `json:"request_id"`
	TrackingNo string `json:"tracking_no,omitempty"`
	Outcome    string `json:"outcome,omitempty"`
}

type ReviewAnswer struct {
	EventID   string `json:"event_id"`
	Type      string `json:"type"`
	At        string `json:"at"`
	UserID    string `json:"user_id"`
	RequestID string `json:"request_id"`
	By        string `json:"by"`
	Note      string `json:"note,omitempty"`
}

type MerchantUpdated struct {
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

// Policy is the `policy` of an output: the policy that decided its
// request.
type Policy struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Output is the part of any output about a request (fr.out.<kind>.<user>:
// decision, refund, pickup, compensation, clawback, trust, resolution)
// that loadgen reads; each kind fills the fields it has.
type Output struct {
	// Type is set only in the relay's echoes (an inbound event's type).
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	UserID    string `json:"user_id"`
	Policy    Policy `json:"policy"`
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

// DeadLetter is the part of fr.dlq.<reason> that loadgen reads.
type DeadLetter struct {
	Reason     string `json:"reason"`
	Subject    string `json:"subject"`
	PayloadB64 string `json:"payload_b64"`
}

// EventIDOnly pulls the event id out of a dead-lettered payload.
type EventIDOnly struct {
	EventID string `json:"event_id"`
}

// Marshal encodes v as the contract's JSON with the package's codec
// (sonic; encoding/json under -race, see api). Every payload loadgen
// sends goes through it, so the race-enabled tests send the bytes a
// normal build sends.
func Marshal(v any) ([]byte, error) { return api.Marshal(v) }

// Unmarshal decodes the contract's JSON with the package's codec.
func Unmarshal(b []byte, v any) error { return api.Unmarshal(b, v) }
