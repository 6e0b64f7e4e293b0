package core

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Names of the shipped presets (see shared/domain.md, "The presets,
// exactly").
const (
	PresetTmall  = "tmall-fast-return"
	PresetDouyin = "douyin-lightning"
	PresetJD     = "jd-lightning-refund"
)

// Defaults shared by the three presets; a policy file that omits the
// parameter gets the same value (see internal/policyfile).
const (
	DefaultWindowDays      = 7
	DefaultServiceStartMin = 9 * 60  // 09:00
	DefaultServiceEndMin   = 20 * 60 // 20:00
	DefaultSmallWindow     = 2 * time.Hour
	DefaultLargeWindow     = 4 * time.Hour
	DefaultCompensationFen = 500
	DefaultExposureCapFen  = 500000
	DefaultVelocityMax     = 5
	DefaultVelocityWindow  = 24 * time.Hour
	DefaultTrustWindow     = 90 * 24 * time.Hour
	DefaultPickupGrace     = 10 * time.Minute
	DefaultReviewDeadline  = 72 * time.Hour
	DefaultReturnDeadline  = 7 * 24 * time.Hour
)

// DefaultPenalties returns the trust penalties (points) by outcome that
// the presets use: damaged 20, used 30, wrong_item 50, empty_box 100,
// not_returned 50, ok 0.
func DefaultPenalties() [NumOutcomes]int {
	return [NumOutcomes]int{
		OutcomeDamaged:     20,
		OutcomeUsed:        30,
		OutcomeWrongItem:   50,
		OutcomeEmptyBox:    100,
		OutcomeNotReturned: 50,
	}
}

// allReasons is the set of every valid reason.
const allReasons = ReasonSet(1)<<numReasons - 1 - 1<<ReasonInvalid

// NumOutcomes is the length of Policy.Penalties (OutcomeNone included).
const NumOutcomes = int(numOutcomes)

// NumKinds is the length of Policy.Refunds (KindInvalid included).
const NumKinds = int(numKinds)

// ErrInvalidPolicy is wrapped by every error of [Policy.Finish].
var ErrInvalidPolicy = errors.New("core: invalid policy")

// KindSetOf returns the set holding the given kinds.
func KindSetOf(kinds ...Kind) KindSet {
	var s KindSet
	for _, k := range kinds {
		s |= 1 << k
	}
	return s
}

// ReasonSetOf returns the set holding the given reasons.
func ReasonSetOf(reasons ...Reason) ReasonSet {
	var s ReasonSet
	for _, r := range reasons {
		s |= 1 << r
	}
	return s
}

// Kinds returns the kinds in the set, in ascending order.
func (s KindSet) Kinds() []Kind { return members(uint64(s), KindReturnRefund, numKinds) }

// Reasons returns the reasons in the set, in ascending order.
func (s ReasonSet) Reasons() []Reason { return members(uint64(s), ReasonNoReason, numReasons) }

// members returns the values v in [first, end) whose bit 1<<v is set in
// s, ascending: the one walk behind every bit set's listing, so that a
// policy's canonical form and its trace list members in the same order.
func members[T ~uint8](s uint64, first, end T) []T {
	var out []T
	for v := first; v < end; v++ {
		if s&(1<<v) != 0 {
			out = append(out, v)
		}
	}
	return out
}

// ParseTrigger maps a contract trigger name ("tracking") to a Trigger; ""
// and "none" map to TriggerNone.
func ParseTrigger(s string) (Trigger, bool) {
	if s == "" || s == "none" {
		return TriggerNone, true
	}
	return parseEnum(s, triggerNames[:], TriggerNone)
}

// PresetNames returns the names of the shipped presets in the order of the
// preset table.
func PresetNames() []string {
	return []string{PresetTmall, PresetDouyin, PresetJD}
}

// Preset returns a fresh, finished copy of the named preset; ok is false for
// an unknown name. The caller may modify the copy (and must call Finish
// again if it does).
func Preset(name string) (*Policy, bool) {
	p := basePreset(name)
	switch name {
	case PresetTmall:
		p.Kinds = KindSetOf(KindReturnRefund)
		p.MinStars = 3
		p.Reasons = ReasonSetOf(ReasonNoReason, ReasonDislike, ReasonWrongOrder)
		p.RequireSevenDay = true
		p.ExcludedCategories = []string{"fresh", "large_appliance"}
		p.Refunds[KindReturnRefund] = RefundRule{Trigger: TriggerTracking, Advance: true}
		p.Refunds[KindRefundOnly] = RefundRule{Trigger: TriggerApproval}
	case PresetDouyin:
		p.Kinds = KindSetOf(KindReturnRefund)
		p.MinStars = 3
		p.Reasons = ReasonSetOf(ReasonNoReason, ReasonDislike, ReasonWrongOrder)
		p.RequireSevenDay = true
		p.AmountCapFen = 30000
		p.RequireSingleAddress = true
		p.Refunds[KindReturnRefund] = RefundRule{Trigger: TriggerTracking, Advance: true}
		p.Refunds[KindRefundOnly] = RefundRule{Trigger: TriggerApproval}
		p.PreShipmentRefund = true
	case PresetJD:
		p.Kinds = KindSetOf(KindReturnRefund, KindRefundOnly, KindExchange)
		p.MinStars = 2
		p.Reasons = ReasonSetOf(ReasonQuality, ReasonDamaged, ReasonNotAsDescribed)
		p.AmountCapFen = 20000
		p.Refunds[KindReturnRefund] = RefundRule{Trigger: TriggerApproval, Advance: true}
		p.Refunds[KindRefundOnly] = RefundRule{Trigger: TriggerApproval}
		p.ExchangePickup = true
	default:
		return nil, false
	}
	if err := p.Finish(); err != nil {
		panic("core: preset " + name + ": " + err.Error()) // a bug in this file
	}
	return p, true
}

// basePreset returns a policy with every parameter the presets share.
func basePreset(name string) *Policy {
	return &Policy{
		Name:            name,
		WindowDays:      DefaultWindowDays,
		ServiceStartMin: DefaultServiceStartMin,
		ServiceEndMin:   DefaultServiceEndMin,
		SmallWindow:     DefaultSmallWindow,
		LargeWindow:     DefaultLargeWindow,
		CompensationFen: DefaultCompensationFen,
		ExposureCapFen:  DefaultExposureCapFen,
		VelocityMax:     DefaultVelocityMax,
		VelocityWindow:  DefaultVelocityWindow,
		TrustWindow:     DefaultTrustWindow,
		PickupGrace:     DefaultPickupGrace,
		ReviewDeadline:  DefaultReviewDeadline,
		ReturnDeadline:  DefaultReturnDeadline,
		Penalties:       DefaultPenalties(),
	}
}

// Retention is how long closed history is kept: the longest rule window of
// the policy, at least [MinRetention]. Closed requests, orders no request
// refers to, velocity and trust entries older than this (relative to the
// user's MaxAt) are pruned.
func (p *Policy) Retention() time.Duration {
	r := MinRetention
	r = max(r, p.TrustWindow, p.VelocityWindow, time.Duration(p.WindowDays+1)*24*time.Hour)
	return r
}

// PolicyError is the error of [Policy.Finish]: the field (its policy-file
// key, dotted for nested keys, e.g. "refunds.exchange.advance", with an
// index for list items, e.g. "cities[2]") and what is wrong with it. It
// wraps [ErrInvalidPolicy].
type PolicyError struct {
	Field string // policy-file key of the bad parameter
	Msg   string // what is wrong with it
}

// Error returns "core: invalid policy: <field>: <msg>".
func (e *PolicyError) Error() string {
	return ErrInvalidPolicy.Error() + ": " + e.Field + ": " + e.Msg
}

// Unwrap returns ErrInvalidPolicy.
func (e *PolicyError) Unwrap() error { return ErrInvalidPolicy }

// RefundRule returns the policy's refund rule for kind k; the zero rule (no
// refund) for an invalid kind.
func (p *Policy) RefundRule(k Kind) RefundRule {
	if k >= numKinds {
		return RefundRule{}
	}
	return p.Refunds[k]
}

// policyError builds a *PolicyError naming field.
func policyError(field, format string, args ...any) error {
	return &PolicyError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// maxDuration bounds the durations of a policy (10 years), so that event
// time arithmetic never overflows.
const maxDuration = 10 * 365 * 24 * time.Hour

// MaxPenalty bounds a trust penalty (points).
const MaxPenalty = 1000

// Finish validates the policy and sets Version to the first 16 hex digits
// of the SHA-256 of its canonical encoding (every field but Version, sets
// in ascending order, lists sorted). The error wraps [ErrInvalidPolicy] and
// names the bad field with the policy file's key (e.g. "min_stars").
// Finish does not modify anything but Version.
func (p *Policy) Finish() error {
	if err := p.validate(); err != nil {
		return err
	}
	sum := sha256.Sum256(p.canonical())
	p.Version = hex.EncodeToString(sum[:8])
	return nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func validList(field string, list []string) error {
	for i, s := range list {
		if s == "" {
			return policyError(fmt.Sprintf("%s[%d]", field, i), "empty string")
		}
		if slices.Contains(list[:i], s) {
			return policyError(fmt.Sprintf("%s[%d]", field, i), "%q listed twice", s)
		}
	}
	return nil
}

func (p *Policy) validate() error {
	switch {
	case !validName(p.Name):
		return policyError("name", "%q must match [A-Za-z0-9_.-]{1,64}", p.Name)
	case p.Kinds == 0:
		return policyError("kinds", "empty: no kind can be fast-tracked (list at least one)")
	case p.Kinds&^KindSetOf(KindReturnRefund, KindRefundOnly, KindExchange) != 0:
		return policyError("kinds", "unknown kind bits %#x", uint8(p.Kinds))
	case p.MinStars < 0 || p.MinStars > 5:
		return policyError("min_stars", "%d outside 0..5", p.MinStars)
	case p.Reasons == 0:
		return policyError("reasons", "empty: no reason can be fast-tracked (list at least one)")
	case p.Reasons&^allReasons != 0:
		return policyError("reasons", "unknown reason bits %#x", uint16(p.Reasons))
	case p.WindowDays < 0 || p.WindowDays > 3650:
		return policyError("window_days", "%d outside 0..3650", p.WindowDays)
	case p.AmountCapFen < 0:
		return policyError("amount_cap_fen", "%d is negative (0 means no cap)", p.AmountCapFen)
	}
	if err := validList("excluded_categories", p.ExcludedCategories); err != nil {
		return err
	}
	if err := validList("cities", p.Cities); err != nil {
		return err
	}
	if r := p.Refunds[KindInvalid]; r != (RefundRule{}) {
		return policyError("refunds", "rule set for the invalid kind")
	}
	for k := KindReturnRefund; k < numKinds; k++ {
		r := p.Refunds[k]
		field := "refunds." + k.String()
		switch {
		case r.Trigger > TriggerInspection:
			return policyError(field+".trigger", "unknown trigger %d", r.Trigger)
		case r.Trigger == TriggerPreShipment:
			return policyError(field+".trigger", "pre_shipment is not a per-kind trigger (use pre_shipment_refund)")
		case r.Trigger == TriggerNone && r.Advance:
			return policyError(field+".advance", "set, but the trigger is none (no refund)")
		case r.Trigger == TriggerInspection && r.Advance:
			return policyError(field+".advance", "an inspection refund is paid after the goods are back, so it cannot be an advance")
		case !k.NeedsReturnAddress() && r.Advance:
			return policyError(field+".advance", "no goods come back for %s, so its refund cannot be an advance", k)
		case !k.NeedsReturnAddress() && r.Trigger != TriggerNone && r.Trigger != TriggerApproval:
			return policyError(field+".trigger", "%s: no goods come back for %s, so only approval or none can pay it", r.Trigger, k)
		case k.NeedsReturnAddress() && (r.Trigger == TriggerApproval || r.Trigger == TriggerTracking) && !r.Advance:
			// Paid before the goods are back is what advance means; a
			// false one would pay outside the exposure cap and escape the
			// clawback of a bad inspection or a not_returned close.
			return policyError(field+".advance", "%s pays %s before the goods are back, so it must be an advance", r.Trigger, k)
		case r.Trigger == TriggerNone && p.Kinds.Has(k) && k != KindExchange:
			// Every approval pays, or says why not (domain.md, Money
			// safety): a fast-tracked kind that returns money must say
			// when it is paid.
			return policyError(field+".trigger", "none, but %s is fast-tracked (kinds): a fast-tracked %s must have a refund trigger", k, k)
		}
	}
	switch {
	case p.ServiceStartMin < 0 || p.ServiceStartMin >= 24*60:
		return policyError("service_hours.start", "%d minutes outside 00:00..23:59", p.ServiceStartMin)
	case p.ServiceEndMin <= p.ServiceStartMin || p.ServiceEndMin > 24*60:
		return policyError("service_hours.end", "%s must be after the start %s and at most 24:00", FormatClock(p.ServiceEndMin), FormatClock(p.ServiceStartMin))
	case p.SmallWindow <= 0 || p.SmallWindow > maxDuration:
		return policyError("small_window", "%s must be positive and at most 10 years", p.SmallWindow)
	case p.LargeWindow <= 0 || p.LargeWindow > maxDuration:
		return policyError("large_window", "%s must be positive and at most 10 years", p.LargeWindow)
	case p.CompensationFen < 0:
		return policyError("compensation_fen", "%d is negative", p.CompensationFen)
	case p.ExposureCapFen <= 0:
		return policyError("exposure_cap_fen", "%d must be positive", p.ExposureCapFen)
	case p.VelocityMax <= 0:
		return policyError("velocity_max", "%d must be positive", p.VelocityMax)
	case p.VelocityWindow <= 0 || p.VelocityWindow > maxDuration:
		return policyError("velocity_window", "%s must be positive and at most 10 years", p.VelocityWindow)
	case p.TrustWindow <= 0 || p.TrustWindow > maxDuration:
		return policyError("trust_window", "%s must be positive and at most 10 years", p.TrustWindow)
	case p.PickupGrace < 0 || p.PickupGrace > maxDuration:
		return policyError("pickup_grace", "%s must be zero or positive and at most 10 years", p.PickupGrace)
	case p.ReviewDeadline <= 0 || p.ReviewDeadline > maxDuration:
		return policyError("review_deadline", "%s must be positive and at most 10 years", p.ReviewDeadline)
	case p.ReturnDeadline <= 0 || p.ReturnDeadline > maxDuration:
		return policyError("return_deadline", "%s must be positive and at most 10 years", p.ReturnDeadline)
	case p.Penalties[OutcomeNone] != 0:
		return policyError("penalties", "penalty set for the empty outcome")
	case p.Penalties[OutcomeOK] != 0:
		return policyError("penalties.ok", "%d: an ok inspection carries penalty 0", p.Penalties[OutcomeOK])
	}
	for o := OutcomeDamaged; o < numOutcomes; o++ {
		if p.Penalties[o] < 0 || p.Penalties[o] > MaxPenalty {
			return policyError("penalties."+o.String(), "%d outside 0..%d", p.Penalties[o], MaxPenalty)
		}
	}
	return nil
}

// canonical is the content Version hashes: one "key=value" line per field,
// in a fixed order, with sets in ascending order and lists sorted.
func (p *Policy) canonical() []byte {
	var b strings.Builder
	line := func(k, v string) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
		b.WriteByte('\n')
	}
	list := func(l []string) string {
		s := slices.Clone(l)
		slices.Sort(s)
		q := make([]string, len(s))
		for i, v := range s {
			q[i] = strconv.Quote(v)
		}
		return "[" + strings.Join(q, ",") + "]"
	}
	itoa := func(v int64) string { return strconv.FormatInt(v, 10) }
	line("format", "flashreturn-policy/1")
	line("name", strconv.Quote(p.Name))
	line("kinds", joinNames(p.Kinds.Kinds(), ","))
	line("min_stars", itoa(int64(p.MinStars)))
	line("reasons", joinNames(p.Reasons.Reasons(), ","))
	line("require_seven_day", strconv.FormatBool(p.RequireSevenDay))
	line("window_days", itoa(int64(p.WindowDays)))
	line("amount_cap_fen", itoa(p.AmountCapFen))
	line("excluded_categories", list(p.ExcludedCategories))
	line("require_single_address", strconv.FormatBool(p.RequireSingleAddress))
	line("cities", list(p.Cities))
	for k := KindReturnRefund; k < numKinds; k++ {
		line("refunds."+k.String(), p.Refunds[k].Trigger.String()+","+strconv.FormatBool(p.Refunds[k].Advance))
	}
	line("pre_shipment_refund", strconv.FormatBool(p.PreShipmentRefund))
	line("exchange_pickup", strconv.FormatBool(p.ExchangePickup))
	line("service_hours", itoa(int64(p.ServiceStartMin))+"-"+itoa(int64(p.ServiceEndMin)))
	line("small_window", itoa(int64(p.SmallWindow)))
	line("large_window", itoa(int64(p.LargeWindow)))
	line("compensation_fen", itoa(p.CompensationFen))
	line("exposure_cap_fen", itoa(p.ExposureCapFen))
	line("velocity_max", itoa(int64(p.VelocityMax)))
	line("velocity_window", itoa(int64(p.VelocityWindow)))
	line("trust_window", itoa(int64(p.TrustWindow)))
	line("pickup_grace", itoa(int64(p.PickupGrace)))
	line("review_deadline", itoa(int64(p.ReviewDeadline)))
	line("return_deadline", itoa(int64(p.ReturnDeadline)))
	for o := OutcomeOK; o < numOutcomes; o++ {
		line("penalties."+o.String(), itoa(int64(p.Penalties[o])))
	}
	return []byte(b.String())
}

// FormatClock renders minutes after midnight as "HH:MM" (1440 is "24:00").
func FormatClock(min int) string {
	return fmt.Sprintf("%02d:%02d", min/60, min%60)
}

// ParseClock parses "HH:MM" (00:00 to 24:00) into minutes after midnight.
func ParseClock(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, false
	}
	return h*60 + m, true
}
