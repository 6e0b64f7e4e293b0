package policyfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/flashreturn/flashreturn/internal/core"
)

// Format is the syntax of a policy file.
type Format uint8

// Formats. FormatAuto picks JSON when the first non-blank byte is '{',
// YAML otherwise.
const (
	FormatAuto Format = iota
	FormatJSON
	FormatYAML
)

// String returns "json", "yaml" or "auto".
func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatYAML:
		return "yaml"
	}
	return "auto"
}

// Error is a policy file that cannot be used: its syntax, an unknown or
// repeated field, a value of the wrong type, or a parameter that
// [core.Policy.Finish] rejects. It names the field (dotted path, e.g.
// "refunds.exchange.trigger", or "cities[2]") and the line when known.
type Error struct {
	Path  string // the file, when read by Load
	Line  int    // 1-based; 0 when unknown (e.g. a value from the base preset)
	Field string // "" for errors about the whole file
	Msg   string // what is wrong
	Err   error  // the underlying error (core.ErrInvalidPolicy, a syntax error), or nil
}

// Error returns "policyfile: <path>: line <n>: <field>: <msg>", leaving out
// the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("policyfile: ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// maxFileSize bounds what Load reads.
const maxFileSize = 1 << 20

// Load reads a policy file and parses it: format by extension (.json;
// .yaml or .yml), otherwise sniffed (see FormatAuto). Errors are *Error
// naming the path.
func Load(path string) (*core.Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policyfile: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, &Error{Path: path, Msg: fmt.Sprintf("file larger than %d bytes", maxFileSize)}
	}
	f := FormatAuto
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		f = FormatJSON
	case ".yaml", ".yml":
		f = FormatYAML
	}
	p, err := Parse(data, f)
	if e, ok := err.(*Error); ok {
		e.Path = path
	}
	return p, err
}

// Parse parses a policy file in the given format and returns the finished
// policy (Version set). Unknown fields are rejected; errors are *Error.
func Parse(data []byte, f Format) (*core.Policy, error) {
	if f == FormatAuto {
		f = FormatYAML
		if t := bytes.TrimLeft(data, " \t\r\n\ufeff"); len(t) > 0 && t[0] == '{' {
			f = FormatJSON
		}
	}
	var root *node
	var err error
	switch f {
	case FormatJSON:
		root, err = parseJSON(data)
	case FormatYAML:
		root, err = parseYAML(data)
	default:
		return nil, &Error{Msg: fmt.Sprintf("unknown format %d", f)}
	}
	if err != nil {
		return nil, err
	}
	return decode(root)
}

// view is a policy as a file shows it, in the order Marshal writes it.
type view struct {
	Name                 string                `json:"name"`
	Kinds                []string              `json:"kinds"`
	MinStars             int                   `json:"min_stars"`
	Reasons              []string              `json:"reasons"`
	RequireSevenDay      bool                  `json:"require_seven_day"`
	WindowDays           int                   `json:"window_days"`
	AmountCapFen         int64                 `json:"amount_cap_fen"`
	ExcludedCategories   []string              `json:"excluded_categories"`
	RequireSingleAddress bool                  `json:"require_single_address"`
	Cities               []string              `json:"cities"`
	Refunds              map[string]refundView `json:"refunds"`
	PreShipmentRefund    bool                  `json:"pre_shipment_refund"`
	ExchangePickup       bool                  `json:"exchange_pickup"`
	ServiceHours         hoursView             `json:"service_hours"`
	SmallWindow          string                `json:"small_window"`
	LargeWindow          string                `json:"large_window"`
	CompensationFen      int64                 `json:"compensation_fen"`
	PickupGrace          string                `json:"pickup_grace"`
	ReviewDeadline       string                `json:"review_deadline"`
	ReturnDeadline       string                `json:"return_deadline"`
	ExposureCapFen       int64                 `json:"exposure_cap_fen"`
	VelocityMax          int                   `json:"velocity_max"`
	VelocityWindow       string                `json:"velocity_window"`
	TrustWindow          string                `json:"trust_window"`
	Penalties            map[string]int        `json:"penalties"`
}

type refundView struct {
	Trigger string `json:"trigger"`
	Advance bool   `json:"advance"`
}

type hoursView struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

func toView(p *core.Policy) *view {
	v := &view{
		Name:                 p.Name,
		Kinds:                []string{},
		MinStars:             p.MinStars,
		Reasons:              []string{},
		RequireSevenDay:      p.RequireSevenDay,
		WindowDays:           p.WindowDays,
		AmountCapFen:         p.AmountCapFen,
		ExcludedCategories:   append([]string{}, p.ExcludedCategories...),
		RequireSingleAddress: p.RequireSingleAddress,
		Cities:               append([]string{}, p.Cities...),
		Refunds:              map[string]refundView{},
		PreShipmentRefund:    p.PreShipmentRefund,
		ExchangePickup:       p.ExchangePickup,
		ServiceHours:         hoursView{core.FormatClock(p.ServiceStartMin), core.FormatClock(p.ServiceEndMin)},
		SmallWindow:          formatDuration(p.SmallWindow),
		LargeWindow:          formatDuration(p.LargeWindow),
		CompensationFen:      p.CompensationFen,
		PickupGrace:          formatDuration(p.PickupGrace),
		ReviewDeadline:       formatDuration(p.ReviewDeadline),
		ReturnDeadline:       formatDuration(p.ReturnDeadline),
		ExposureCapFen:       p.ExposureCapFen,
		VelocityMax:          p.VelocityMax,
		VelocityWindow:       formatDuration(p.VelocityWindow),
		TrustWindow:          formatDuration(p.TrustWindow),
		Penalties:            map[string]int{},
	}
	for _, k := range p.Kinds.Kinds() {
		v.Kinds = append(v.Kinds, k.String())
	}
	for _, r := range p.Reasons.Reasons() {
		v.Reasons = append(v.Reasons, r.String())
	}
	for k := core.KindReturnRefund; int(k) < core.NumKinds; k++ {
		r := p.Refunds[k]
		t := r.Trigger.String()
		if t == "" {
			t = "none"
		}
		v.Refunds[k.String()] = refundView{Trigger: t, Advance: r.Advance}
	}
	for _, os := range penaltyOutcomes {
		v.Penalties[os] = p.Penalties[outcomeOf(os)]
	}
	return v
}

// Marshal renders p as a YAML policy file that Parse reads back into a
// policy with the same Version. Every parameter is written, so the output
// of a preset documents it.
func Marshal(p *core.Policy) ([]byte, error) { return MarshalFormat(p, FormatYAML) }

// MarshalFormat renders p as a JSON or YAML policy file (FormatAuto means
// YAML).
func MarshalFormat(p *core.Policy, f Format) ([]byte, error) {
	v := toView(p)
	if f == FormatJSON {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("policyfile: marshal %s: %w", p.Name, err)
		}
		return append(b, '\n'), nil
	}
	var b bytes.Buffer
	q := strconv.Quote
	list := func(l []string, quote bool) string {
		out := make([]string, len(l))
		for i, s := range l {
			out[i] = s
			if quote {
				out[i] = q(s)
			}
		}
		return "[" + strings.Join(out, ", ") + "]"
	}
	fmt.Fprintf(&b, "# flashreturn policy %s, version %s\n", p.Name, p.Version)
	fmt.Fprintf(&b, "name: %s\n", q(v.Name))
	fmt.Fprintf(&b, "# kinds that can be fast-tracked: return_refund, refund_only, exchange\n")
	fmt.Fprintf(&b, "kinds: %s\n", list(v.Kinds, false))
	fmt.Fprintf(&b, "min_stars: %d\n", v.MinStars)
	fmt.Fprintf(&b, "reasons: %s\n", list(v.Reasons, false))
	fmt.Fprintf(&b, "require_seven_day: %t\n", v.RequireSevenDay)
	fmt.Fprintf(&b, "# days after the sign-off day; the window ends at 24:00 local on the last one\n")
	fmt.Fprintf(&b, "window_days: %d\n", v.WindowDays)
	fmt.Fprintf(&b, "# cap on the order's paid_fen, inclusive; 0: no cap\n")
	fmt.Fprintf(&b, "amount_cap_fen: %d\n", v.AmountCapFen)
	fmt.Fprintf(&b, "excluded_categories: %s\n", list(v.ExcludedCategories, true))
	fmt.Fprintf(&b, "require_single_address: %t\n", v.RequireSingleAddress)
	fmt.Fprintf(&b, "# covered cities; empty: all\n")
	fmt.Fprintf(&b, "cities: %s\n", list(v.Cities, true))
	fmt.Fprintf(&b, "# per kind: trigger none|approval|tracking|inspection, advance (paid before the goods are back)\n")
	fmt.Fprintf(&b, "refunds:\n")
	for k := core.KindReturnRefund; int(k) < core.NumKinds; k++ {
		r := v.Refunds[k.String()]
		fmt.Fprintf(&b, "  %s: {trigger: %s, advance: %t}\n", k, r.Trigger, r.Advance)
	}
	fmt.Fprintf(&b, "# return_refund of an unshipped order: no window rule, refunded at once (pre_shipment)\n")
	fmt.Fprintf(&b, "pre_shipment_refund: %t\n", v.PreShipmentRefund)
	fmt.Fprintf(&b, "# exchanges always get a pickup that brings the new item (replace)\n")
	fmt.Fprintf(&b, "exchange_pickup: %t\n", v.ExchangePickup)
	fmt.Fprintf(&b, "# local time, [start, end)\n")
	fmt.Fprintf(&b, "service_hours: {start: %s, end: %s}\n", q(v.ServiceHours.Start), q(v.ServiceHours.End))
	fmt.Fprintf(&b, "small_window: %s\n", v.SmallWindow)
	fmt.Fprintf(&b, "large_window: %s\n", v.LargeWindow)
	fmt.Fprintf(&b, "compensation_fen: %d\n", v.CompensationFen)
	fmt.Fprintf(&b, "# how long after a window's end the compensation waits (a pickup stored late still counts)\n")
	fmt.Fprintf(&b, "pickup_grace: %s\n", v.PickupGrace)
	fmt.Fprintf(&b, "# after review: a merchant silent this long after the decision approves by timeout\n")
	fmt.Fprintf(&b, "# (only requests that failed fast-track rules); an approved return with nothing sent\n")
	fmt.Fprintf(&b, "# back this long after its approval is closed (advances clawed back: not_returned)\n")
	fmt.Fprintf(&b, "review_deadline: %s\n", v.ReviewDeadline)
	fmt.Fprintf(&b, "return_deadline: %s\n", v.ReturnDeadline)
	fmt.Fprintf(&b, "# safety rules, which merchant rules cannot override\n")
	fmt.Fprintf(&b, "exposure_cap_fen: %d\n", v.ExposureCapFen)
	fmt.Fprintf(&b, "velocity_max: %d\n", v.VelocityMax)
	fmt.Fprintf(&b, "velocity_window: %s\n", v.VelocityWindow)
	fmt.Fprintf(&b, "trust_window: %s\n", v.TrustWindow)
	fmt.Fprintf(&b, "# trust points by inspection outcome, and for a return closed as not_returned\n")
	fmt.Fprintf(&b, "penalties:\n")
	for _, os := range penaltyOutcomes {
		fmt.Fprintf(&b, "  %s: %d\n", os, v.Penalties[os])
	}
	return b.Bytes(), nil
}
