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

// outDecision is the part of fr.out.decision.<user> that loadgen reads.
type outDecision struct {
	RequestID    string   `json:"request_id"`
	UserID       string   `json:"user_id"`
	Decision     string   `json:"decision"`
	Reasons      []string `json:"reasons"`
	MerchantRule string   `json:"merchant_rule"`
	Policy       struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"policy"`
}

// outRefund is the part of fr.out.refund.<user> that loadgen reads.
type outRefund struct {
	RefundID  string `json:"refund_id"`
	RequestID string `json:"request_id"`
	AmountFen int64  `json:"amount_fen"`
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
