package policyfile

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
)

// decoder walks the tree into a policy, remembering the line of every
// field it set so that validation errors from core can name it.
type decoder struct {
	// p starts as the base preset's copy (core.Preset returns a fresh
	// one) or as defaults(), and each field of the file overwrites it.
	p *core.Policy
	// lines maps a field path ("refunds.exchange.trigger", "cities[2]")
	// to the line that set it. core.Policy.Finish knows fields, not
	// lines; this is how its error gets one (lineOf).
	lines map[string]int
}

// errAt returns an *Error at n's line naming field: every error the walk
// finds itself goes through here, so that none lacks a line.
func (d *decoder) errAt(n *node, field, format string, args ...any) error {
	return &Error{Line: n.line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// topFields are the keys of a policy file, in the order Marshal writes them.
// decode applies them in this order too, whatever the file's order, so
// that which of two bad fields is reported does not depend on how the
// file was laid out; "base" comes first because every other field
// overrides it.
var topFields = []string{
	"base", "name", "kinds", "min_stars", "reasons", "require_seven_day",
	"window_days", "amount_cap_fen", "excluded_categories",
	"require_single_address", "cities", "refunds", "pre_shipment_refund",
	"exchange_pickup", "service_hours", "small_window", "large_window",
	"compensation_fen", "pickup_grace", "review_deadline", "return_deadline",
	"exposure_cap_fen", "velocity_max", "velocity_window", "trust_window",
	"penalties",
}

// required lists the keys a file must set when it has no base: the ones
// with no sensible shared default (who may be fast-tracked, and what is
// paid). A file with a base inherits them, which is the point of a base.
var required = []string{"name", "kinds", "min_stars", "reasons", "refunds"}

// decode turns the tree into a finished policy.
func decode(root *node) (*core.Policy, error) {
	if root.kind != kindMap {
		return nil, &Error{Line: root.line, Msg: "a policy file is a mapping of parameters, got " + root.kind.String()}
	}
	fields, err := mapFields(root, "", topFields)
	if err != nil {
		return nil, err
	}
	d := &decoder{lines: make(map[string]int)}
	if b, ok := fields["base"]; ok {
		name, err := d.str(b, "base")
		if err != nil {
			return nil, err
		}
		p, ok := core.Preset(name)
		if !ok {
			return nil, d.errAt(b, "base", "unknown preset %q (presets: %s)", name, strings.Join(core.PresetNames(), ", "))
		}
		d.p = p
	} else {
		d.p = defaults()
	}
	// The version is a digest of the content that Finish computes; the
	// base's own version must not survive a file that changed anything,
	// or decisions would name the preset's version for another policy.
	d.p.Version = ""
	for _, k := range topFields[1:] {
		n, ok := fields[k]
		if !ok {
			continue
		}
		d.lines[k] = n.line
		if err := d.field(k, n); err != nil {
			return nil, err
		}
	}
	// Required fields are checked after the others so that a base-less
	// file with a bad value and a missing field reports the bad value,
	// which is usually the line the writer is looking at.
	if _, ok := fields["base"]; !ok {
		for _, k := range required {
			if _, ok := fields[k]; !ok {
				return nil, &Error{Line: root.line, Field: k, Msg: "missing (required unless the file names a base preset)"}
			}
		}
	}
	// Range and consistency checks are core's (Finish), not the file's, so
	// that a file and a preset are held to exactly the same rules; the
	// file's part is only to give the error a line.
	if err := d.p.Finish(); err != nil {
		var pe *core.PolicyError
		if errors.As(err, &pe) {
			return nil, &Error{Line: d.lineOf(pe.Field), Field: pe.Field, Msg: pe.Msg, Err: err}
		}
		return nil, &Error{Msg: err.Error(), Err: err}
	}
	return d.p, nil
}

// lineOf returns the line of field, or of its closest parent set in the
// file; 0 when it came from the defaults or the base. A parent's line is
// the honest answer when the file set a whole mapping ("refunds:") and
// core complains about one entry the file left out; no line at all is
// the honest answer for a value the file never wrote.
func (d *decoder) lineOf(field string) int {
	for {
		if l, ok := d.lines[field]; ok {
			return l
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			return 0
		}
		field = field[:i]
	}
}

// defaults is the starting point of a file without a base: the parameters
// the presets share, and no fast-track rules. It reads core's Default*
// constants rather than copying numbers so that a preset and a base-less
// file cannot drift apart when a default changes.
func defaults() *core.Policy {
	return &core.Policy{
		WindowDays:      core.DefaultWindowDays,
		ServiceStartMin: core.DefaultServiceStartMin,
		ServiceEndMin:   core.DefaultServiceEndMin,
		SmallWindow:     core.DefaultSmallWindow,
		LargeWindow:     core.DefaultLargeWindow,
		CompensationFen: core.DefaultCompensationFen,
		ExposureCapFen:  core.DefaultExposureCapFen,
		VelocityMax:     core.DefaultVelocityMax,
		VelocityWindow:  core.DefaultVelocityWindow,
		TrustWindow:     core.DefaultTrustWindow,
		PickupGrace:     core.DefaultPickupGrace,
		ReviewDeadline:  core.DefaultReviewDeadline,
		ReturnDeadline:  core.DefaultReturnDeadline,
		Penalties:       core.DefaultPenalties(),
	}
}

// mapFields checks a mapping's keys against known (rejecting unknown and
// repeated keys) and returns the values by key.
//
// An unknown key is an error, not ignored: a misspelt "window_dayz" would
// otherwise run the policy on the default window, the failure the check
// command exists to catch. A repeated key is an error because parsers
// disagree on which copy wins (encoding/json keeps the last) and the
// writer meant one of them. Integer and boolean keys are accepted as
// names only so that the message says "unknown field" with the key,
// rather than a type error about a key.
func mapFields(n *node, prefix string, known []string) (map[string]*node, error) {
	out := make(map[string]*node, len(n.keys))
	for i, k := range n.keys {
		if k.typ != typeString && k.typ != typeInt && k.typ != typeBool {
			return nil, &Error{Line: k.line, Field: prefix, Msg: "keys must be names"}
		}
		field := prefix + k.value
		if !slices.Contains(known, k.value) {
			return nil, &Error{Line: k.line, Field: field, Msg: fmt.Sprintf("unknown field (known: %s)", strings.Join(known, ", "))}
		}
		if _, dup := out[k.value]; dup {
			return nil, &Error{Line: k.line, Field: field, Msg: "set twice"}
		}
		out[k.value] = n.vals[i]
	}
	return out, nil
}

// field sets one top-level parameter from its node. The switch lists the
// fields in topFields order; each delegates the type check to a helper
// that names the field and the line.
func (d *decoder) field(k string, n *node) (err error) {
	p := d.p
	switch k {
	case "name":
		p.Name, err = d.str(n, k)
	case "kinds":
		// A list in the file replaces the base's list, never adds to it:
		// the file shows the whole set, so a reader of the file alone
		// knows what is fast-tracked. A duplicate entry is refused as a
		// likely copy-paste slip.
		p.Kinds = 0
		err = d.list(n, k, func(item *node, f string) error {
			s, err := d.str(item, f)
			if err != nil {
				return err
			}
			kind, ok := core.ParseKind(s)
			if !ok {
				return d.errAt(item, f, "unknown kind %q (want return_refund, refund_only or exchange)", s)
			}
			if p.Kinds.Has(kind) {
				return d.errAt(item, f, "kind %q listed twice", s)
			}
			p.Kinds |= core.KindSetOf(kind)
			return nil
		})
	case "reasons":
		// Replaces the base's list, like kinds.
		p.Reasons = 0
		err = d.list(n, k, func(item *node, f string) error {
			s, err := d.str(item, f)
			if err != nil {
				return err
			}
			r, ok := core.ParseReason(s)
			if !ok {
				return d.errAt(item, f, "unknown reason %q (want no_reason, dislike, wrong_order, quality, damaged, not_as_described or other)", s)
			}
			if p.Reasons.Has(r) {
				return d.errAt(item, f, "reason %q listed twice", s)
			}
			p.Reasons |= core.ReasonSetOf(r)
			return nil
		})
	case "min_stars":
		p.MinStars, err = d.smallInt(n, k)
	case "window_days":
		p.WindowDays, err = d.smallInt(n, k)
	case "velocity_max":
		p.VelocityMax, err = d.smallInt(n, k)
	case "amount_cap_fen":
		p.AmountCapFen, err = d.int(n, k)
	case "compensation_fen":
		p.CompensationFen, err = d.int(n, k)
	case "exposure_cap_fen":
		p.ExposureCapFen, err = d.int(n, k)
	case "require_seven_day":
		p.RequireSevenDay, err = d.bool(n, k)
	case "require_single_address":
		p.RequireSingleAddress, err = d.bool(n, k)
	case "pre_shipment_refund":
		p.PreShipmentRefund, err = d.bool(n, k)
	case "exchange_pickup":
		p.ExchangePickup, err = d.bool(n, k)
	case "excluded_categories":
		p.ExcludedCategories, err = d.strings(n, k)
	case "cities":
		p.Cities, err = d.strings(n, k)
	case "small_window":
		p.SmallWindow, err = d.duration(n, k)
	case "large_window":
		p.LargeWindow, err = d.duration(n, k)
	case "velocity_window":
		p.VelocityWindow, err = d.duration(n, k)
	case "trust_window":
		p.TrustWindow, err = d.duration(n, k)
	case "pickup_grace":
		p.PickupGrace, err = d.duration(n, k)
	case "review_deadline":
		p.ReviewDeadline, err = d.duration(n, k)
	case "return_deadline":
		p.ReturnDeadline, err = d.duration(n, k)
	case "service_hours":
		err = d.serviceHours(n, k)
	case "refunds":
		err = d.refunds(n, k)
	case "penalties":
		err = d.penalties(n, k)
	default:
		err = d.errAt(n, k, "unknown field")
	}
	return err
}

// scalar fails unless n is a scalar; want describes the expected value
// for the message ("an integer").
func (d *decoder) scalar(n *node, field, want string) error {
	if n.kind != kindScalar {
		return d.errAt(n, field, "want %s, got %s", want, n.kind)
	}
	return nil
}

// str returns a string value. A number or boolean where a string belongs
// is refused, not converted: name: 2024 would otherwise become "2024" in
// one format and fail in the other, and Marshal always quotes names so
// its output never needs the conversion.
func (d *decoder) str(n *node, field string) (string, error) {
	if err := d.scalar(n, field, "a string"); err != nil {
		return "", err
	}
	if n.typ != typeString {
		return "", d.errAt(n, field, "want a string, got %q (quote it)", n.value)
	}
	return n.value, nil
}

// int returns an integer value. YAML's integer forms are accepted because
// a YAML writer may use them (1_000_000 for a fen cap reads better), but
// base 10 is tried first so that 010 is ten, as a person writing a count
// means it, and not octal eight.
func (d *decoder) int(n *node, field string) (int64, error) {
	if err := d.scalar(n, field, "an integer"); err != nil {
		return 0, err
	}
	if n.typ != typeInt {
		return 0, d.errAt(n, field, "want an integer, got %q", n.value)
	}
	digits := strings.ReplaceAll(n.value, "_", "")
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		v, err = strconv.ParseInt(digits, 0, 64) // 0x1f, 0o17
	}
	if err != nil {
		return 0, d.errAt(n, field, "want an integer, got %q", n.value)
	}
	return v, nil
}

// smallInt returns an integer that fits in 32 bits, for counts (stars,
// days, velocity, penalty points). The bound is not the policy's range
// (Finish checks that); it keeps the int conversion lossless on every
// platform, so that 4294967297 days cannot wrap into one day.
func (d *decoder) smallInt(n *node, field string) (int, error) {
	v, err := d.int(n, field)
	if err != nil {
		return 0, err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, d.errAt(n, field, "%d out of range", v)
	}
	return int(v), nil
}

// bool returns a boolean value; only true and false are booleans (see
// fromYAML), so "yes" here is an error that says so.
func (d *decoder) bool(n *node, field string) (bool, error) {
	if err := d.scalar(n, field, "true or false"); err != nil {
		return false, err
	}
	if n.typ != typeBool {
		return false, d.errAt(n, field, "want true or false, got %q", n.value)
	}
	return n.value == "true", nil
}

// list calls each for every item of a list, with the item's field path
// ("cities[2]"), whose line it records for lineOf. A null (a YAML key with
// nothing after it) is an empty list, which is what such a line means.
func (d *decoder) list(n *node, field string, each func(item *node, field string) error) error {
	if n.kind == kindScalar && n.typ == typeNull {
		return nil // "cities:" with nothing: empty
	}
	if n.kind != kindSeq {
		return d.errAt(n, field, "want a list, got %s", n.kind)
	}
	for i, item := range n.items {
		f := fmt.Sprintf("%s[%d]", field, i)
		d.lines[f] = item.line
		if err := each(item, f); err != nil {
			return err
		}
	}
	return nil
}

// strings returns a list of strings (categories, cities). On error the
// partial list is returned with it, and the caller drops both.
func (d *decoder) strings(n *node, field string) ([]string, error) {
	var out []string
	err := d.list(n, field, func(item *node, f string) error {
		s, err := d.str(item, f)
		out = append(out, s)
		return err
	})
	return out, err
}

// duration parses a Go duration ("2h", "90m") or a whole number of days
// ("90d").
func (d *decoder) duration(n *node, field string) (time.Duration, error) {
	s, err := d.str(n, field)
	if err != nil {
		return 0, err
	}
	v, ok := parseDuration(s)
	if !ok {
		return 0, d.errAt(n, field, "want a duration such as \"2h\", \"30m\" or \"90d\", got %q", s)
	}
	return v, nil
}

// parseDuration reads what duration accepts. Days have their own suffix
// because Go durations stop at hours and policy periods are in days (a
// 90-day trust window as "2160h" is unreadable). The 100-year bound keeps
// n*24h inside time.Duration (about 292 years) so that a huge day count
// is an error and not an overflow into a negative duration.
func parseDuration(s string) (time.Duration, bool) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > 100*365 {
			return 0, false
		}
		return time.Duration(n) * 24 * time.Hour, true
	}
	v, err := time.ParseDuration(s)
	return v, err == nil
}

// formatDuration renders d the way parseDuration reads it, in the largest
// whole unit (days from two days up, so a day reads "24h"). The output
// must parse back to exactly d: Marshal's round trip keeps the Version,
// which is a digest of the values, only if no rendering rounds.
func formatDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d != 0 && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d != 0 && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}

// serviceHours reads {start, end}, both required: a window with one end
// from the file and one from the base would be a window nobody wrote.
// Times are local HH:MM; 24:00 is allowed as an end, since the window is
// half-open [start, end).
func (d *decoder) serviceHours(n *node, field string) error {
	if n.kind != kindMap {
		return d.errAt(n, field, "want a mapping {start: \"09:00\", end: \"20:00\"}, got %s", n.kind)
	}
	fs, err := mapFields(n, field+".", []string{"start", "end"})
	if err != nil {
		return err
	}
	for _, k := range []string{"start", "end"} {
		v, ok := fs[k]
		f := field + "." + k
		if !ok {
			return d.errAt(n, f, "missing")
		}
		d.lines[f] = v.line
		if err := d.scalar(v, f, "a time of day such as \"09:00\""); err != nil {
			return err
		}
		m, ok := core.ParseClock(v.value)
		if !ok {
			return d.errAt(v, f, "want a time of day \"HH:MM\" (00:00 to 24:00), got %q", v.value)
		}
		if k == "start" {
			d.p.ServiceStartMin = m
		} else {
			d.p.ServiceEndMin = m
		}
	}
	return nil
}

// refunds reads the per-kind refund table, which replaces the base's
// whole table: a kind left out pays no refund. Merging instead would let
// a base's advance payment survive in a file that never mentions it, and
// refunds are the money the platform pays before it has the goods.
//
// pre_shipment is refused as a trigger: it is not a per-kind choice but
// what core applies to unshipped orders when pre_shipment_refund is set.
func (d *decoder) refunds(n *node, field string) error {
	if n.kind != kindMap {
		return d.errAt(n, field, "want a mapping of kind to {trigger, advance}, got %s", n.kind)
	}
	kinds := []string{"return_refund", "refund_only", "exchange"}
	fs, err := mapFields(n, field+".", kinds)
	if err != nil {
		return err
	}
	d.p.Refunds = [core.NumKinds]core.RefundRule{}
	for _, ks := range kinds {
		v, ok := fs[ks]
		if !ok {
			continue // no refund for this kind
		}
		f := field + "." + ks
		d.lines[f] = v.line
		if v.kind != kindMap {
			return d.errAt(v, f, "want a mapping {trigger: ..., advance: ...}, got %s", v.kind)
		}
		rf, err := mapFields(v, f+".", []string{"trigger", "advance"})
		if err != nil {
			return err
		}
		var rule core.RefundRule
		tn, ok := rf["trigger"]
		if !ok {
			return d.errAt(v, f+".trigger", "missing")
		}
		d.lines[f+".trigger"] = tn.line
		ts, err := d.str(tn, f+".trigger")
		if err != nil {
			return err
		}
		t, ok := core.ParseTrigger(ts)
		if !ok || t == core.TriggerPreShipment {
			return d.errAt(tn, f+".trigger", "unknown trigger %q (want none, approval, tracking or inspection)", ts)
		}
		rule.Trigger = t
		if an, ok := rf["advance"]; ok {
			d.lines[f+".advance"] = an.line
			if rule.Advance, err = d.bool(an, f+".advance"); err != nil {
				return err
			}
		}
		kind, _ := core.ParseKind(ks)
		d.p.Refunds[kind] = rule
	}
	return nil
}

// penaltyOutcomes are the keys of penalties: the inspection outcomes and
// not_returned (a return closed by its deadline after an advance).
var penaltyOutcomes = []string{"ok", "damaged", "used", "wrong_item", "empty_box", "not_returned"}

// outcomeOf maps a key of penaltyOutcomes to its Outcome. not_returned is
// handled first because it is no inspection result, so ParseOutcome (which
// reads inspection.result payloads) rightly does not accept it.
func outcomeOf(name string) core.Outcome {
	if name == core.OutcomeNotReturned.String() {
		return core.OutcomeNotReturned
	}
	o, _ := core.ParseOutcome(name)
	return o
}

// penalties overrides only the outcomes the file lists, unlike refunds:
// penalty points have sensible shared defaults, and a file that tunes one
// outcome should not have to restate the other five (or silently make
// them free by leaving them out).
func (d *decoder) penalties(n *node, field string) error {
	if n.kind != kindMap {
		return d.errAt(n, field, "want a mapping of outcome to points, got %s", n.kind)
	}
	fs, err := mapFields(n, field+".", penaltyOutcomes)
	if err != nil {
		return err
	}
	for _, os := range penaltyOutcomes {
		v, ok := fs[os]
		if !ok {
			continue // keeps the default (or the base's)
		}
		f := field + "." + os
		d.lines[f] = v.line
		pts, err := d.smallInt(v, f)
		if err != nil {
			return err
		}
		d.p.Penalties[outcomeOf(os)] = pts
	}
	return nil
}
