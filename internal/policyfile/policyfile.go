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
// YAML otherwise. YAML could read most JSON files too, but a JSON file
// read as JSON gets JSON's error messages and number rules (no 1_000, no
// 0x1f), which is what its writer expects. The sniff's one cost: a YAML
// file written as a single flow mapping ({name: x, ...}) is taken for
// JSON and refused as invalid JSON; Load avoids it for files named .yaml
// or .yml, whose extension decides.
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
//
// The line is unknown (0) for a value the file did not write, e.g. a
// window inherited from the base preset that core finds inconsistent
// with one the file set; the field still names it. Err keeps the cause
// for errors.Is: core.ErrInvalidPolicy for a parameter core refuses, the
// parser's error for a syntax error.
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

// maxFileSize bounds what Load reads. A real policy is under 2 KB (a
// marshalled preset is about 40 lines); 1 MiB is far above that and stops
// a --policy pointed at the wrong file (a log, a Badger value log) from
// being parsed at length before it fails. The file is read whole first, so
// the check is after the read: the bound protects the parser, not memory.
const maxFileSize = 1 << 20

// Load reads a policy file and parses it: format by extension (.json;
// .yaml or .yml), otherwise sniffed (see FormatAuto). Errors are *Error
// naming the path.
//
// Load is what `flashreturnd --policy <file>` and `flashreturnd policy
// check <file>` call; the check command prints the *Error and exits
// non-zero, so a bad file is refused before a daemon ever runs with it.
func Load(path string) (*core.Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policyfile: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, &Error{Path: path, Msg: fmt.Sprintf("file larger than %d bytes", maxFileSize)}
	}
	// The extension, when it says, wins over sniffing: a .yaml file that
	// happens to be a flow mapping is still reported with YAML's errors.
	f := FormatAuto
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		f = FormatJSON
	case ".yaml", ".yml":
		f = FormatYAML
	}
	p, err := Parse(data, f)
	// Parse knows no path; the error gains it here so that a message
	// printed by the check command names the file as the operator typed it.
	if e, ok := err.(*Error); ok {
		e.Path = path
	}
	return p, err
}

// Parse parses a policy file in the given format and returns the finished
// policy (Version set). Unknown fields are rejected; errors are *Error.
//
// Parsing is in two steps: the format's parser builds a neutral tree with
// lines (tree.go), then one walker checks it against the fields of
// core.Policy (decode.go). The split is what makes JSON and YAML files
// obey the same rules and report the same messages; the only
// format-specific errors are syntax errors. The first error found is
// returned; a file with several mistakes is fixed one run at a time, in
// the fixed order of topFields.
func Parse(data []byte, f Format) (*core.Policy, error) {
	if f == FormatAuto {
		// A UTF-8 byte order mark, which some editors write, is skipped
		// for the sniff only: yaml.v3 skips it itself, and encoding/json
		// refuses it with a syntax error on line 1, which names the
		// problem well enough.
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
// The JSON form is this struct through encoding/json, whose field order is
// the struct's; keep it in topFields order so that a JSON and a YAML file
// of the same policy read the same top to bottom. Durations and the
// service hours are strings in their file spelling ("90d", "09:00"), not
// nanoseconds and minutes, so that the JSON form is as readable as the
// YAML one and parses back through the same helpers.
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

// refundView is one kind's row of the refund table; Trigger is "none"
// rather than empty for a kind that pays nothing, so that the file says so.
type refundView struct {
	Trigger string `json:"trigger"`
	Advance bool   `json:"advance"`
}

// hoursView is service_hours as written: local "HH:MM" strings.
type hoursView struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// toView builds the file form of p. Lists start empty rather than nil so
// that JSON writes [] (an empty list the reader can fill in) and not null;
// every kind gets a refund row and every outcome a penalty, so that the
// output is a complete statement of the policy with nothing inherited.
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
	// YAML is written by hand, not with yaml.Marshal: the library would
	// sort map keys, could not place the explanatory comments, and would
	// write lists in block style, three times as long. Strings a reader
	// types (name, categories, cities) are quoted with strconv.Quote so
	// that a name like "yes" or "2024" stays a string when read back
	// (str refuses anything else); enum lists are left bare because their
	// values are fixed identifiers.
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
	// The version in the header is for the reader only: Parse ignores
	// comments and recomputes it, so an edited file never claims the
	// version it was copied from.
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
