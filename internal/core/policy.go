package core

import "time"

// RefundRule says when a policy pays the refund of an approved request of
// one kind, and whether that payment is an advance (before the goods are
// back).
type RefundRule struct {
	// Trigger is TriggerNone (no refund), TriggerApproval, TriggerTracking
	// (first logistics.tracking or pickup.done) or TriggerInspection (an ok
	// inspection). TriggerPreShipment is not a rule of its own: see
	// Policy.PreShipmentRefund.
	Trigger Trigger
	Advance bool // the refund is paid before the goods are back (counted in exposure)
}

// Policy is a platform policy: every parameter of the preset table in
// shared/domain.md. The presets are values of this type; files decode into
// it. A Policy is read-only once built (see Finish); it is safe to share
// between goroutines.
type Policy struct {
	Name string // preset or file name, [A-Za-z0-9_.-]{1,64}
	// Version is the hex digest of the policy's canonical content, set by
	// Finish.
	Version string

	Kinds           KindSet   // kinds that can be fast-tracked
	MinStars        int       // minimum credit stars
	Reasons         ReasonSet // eligible reasons
	RequireSevenDay bool      // product must support 7-day returns
	WindowDays      int       // the law window in days after the sign-off day
	// AmountCapFen caps the order's paid_fen (inclusive); 0 means no cap.
	AmountCapFen int64
	// ExcludedCategories lists categories that are never fast-tracked.
	ExcludedCategories []string
	// RequireSingleAddress: the merchant must have exactly one return
	// address equal to its one ship address.
	RequireSingleAddress bool
	// Cities lists covered cities; empty means all.
	Cities []string

	// Refunds by kind (indexed by Kind).
	Refunds [numKinds]RefundRule
	// PreShipmentRefund: a return_refund for an order not yet shipped is
	// exempt from the window rule and refunded at once (pre_shipment, not
	// advance) when approved.
	PreShipmentRefund bool
	// ExchangePickup: exchanges always get a pickup, with replace=true
	// unless the policy refunds the exchange in money.
	ExchangePickup bool

	// Pickup service hours, minutes after local midnight; [start, end).
	ServiceStartMin int           // 540 (09:00) in the presets
	ServiceEndMin   int           // 1200 (20:00) in the presets; 20:00 itself is outside
	SmallWindow     time.Duration // pickup window for small parcels (2h)
	LargeWindow     time.Duration // pickup window for large parcels (4h)
	CompensationFen int64         // paid once per missed pickup window (500)
	// PickupGrace is how long after a pickup window's end the compensation
	// waits (by partition event time), so that a pickup recorded on time
	// but stored a little late still counts (10 min).
	PickupGrace time.Duration

	// Deadlines after review (shared/domain.md, "After review").
	// ReviewDeadline: a request in review that failed fast-track rules
	// only and got no answer this long after its decision is approved by
	// timeout (72h). ReturnDeadline: an approved request whose goods must
	// come back and that saw neither tracking nor pickup this long after
	// its approval is closed (7 days).
	ReviewDeadline time.Duration
	ReturnDeadline time.Duration

	// Safety rules; merchant rules cannot override them.
	ExposureCapFen int64         // outstanding advances + this amount, inclusive (500000)
	VelocityMax    int           // requests allowed in VelocityWindow, this one included (5)
	VelocityWindow time.Duration // (24h)
	TrustWindow    time.Duration // how long a bad inspection after an advance flags (90 days)
	// Penalties by outcome (indexed by Outcome): the inspection outcomes,
	// and OutcomeNotReturned for a request closed by its return deadline
	// after an advance (50).
	Penalties [numOutcomes]int
}
