package policyfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/testkit"
)

func TestRoundTripPresets(t *testing.T) {
	for _, name := range core.PresetNames() {
		want, _ := core.Preset(name)
		for _, f := range []Format{FormatYAML, FormatJSON} {
			t.Run(name+"/"+f.String(), func(t *testing.T) {
				b, err := MarshalFormat(want, f)
				if err != nil {
					t.Fatal(err)
				}
				got, err := Parse(b, f)
				if err != nil {
					t.Fatalf("%v\n%s", err, b)
				}
				if got.Version != want.Version {
					t.Fatalf("version %s, want %s\n%s", got.Version, want.Version, b)
				}
				if !testkit.EqualNilEmpty(got, want) {
					t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
				}
				// Sniffing finds the format too.
				if again, err := Parse(b, FormatAuto); err != nil || again.Version != want.Version {
					t.Fatalf("auto: %v", err)
				}
			})
		}
	}
	b, _ := Marshal(mustPreset(t, core.PresetTmall))
	if !strings.Contains(string(b), "trust_window: 90d\n") || !strings.Contains(string(b), `service_hours: {start: "09:00", end: "20:00"}`) {
		t.Fatalf("unexpected YAML:\n%s", b)
	}
}

func mustPreset(t *testing.T, name string) *core.Policy {
	p, ok := core.Preset(name)
	if !ok {
		t.Fatal(name)
	}
	return p
}

const minimalYAML = `name: my-policy
kinds: [return_refund, exchange]
min_stars: 4
reasons: [no_reason]
refunds:
  return_refund: {trigger: tracking, advance: true}
`

func TestParseDefaultsAndBase(t *testing.T) {
	p, err := Parse([]byte(minimalYAML), FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "my-policy" || p.MinStars != 4 || p.Kinds != core.KindSetOf(core.KindReturnRefund, core.KindExchange) ||
		p.WindowDays != 7 || p.ExposureCapFen != 500000 || p.TrustWindow != 90*24*time.Hour ||
		p.ServiceStartMin != 540 || p.Penalties != core.DefaultPenalties() || p.Refunds[core.KindExchange] != (core.RefundRule{}) {
		t.Fatalf("defaults not applied: %+v", p)
	}
	// A base preset supplies everything the file leaves out.
	b, err := Parse([]byte("base: douyin-lightning\nname: douyin-hz\ncities: [Hangzhou]\npenalties: {used: 35}\n"), FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	dy := mustPreset(t, core.PresetDouyin)
	if b.AmountCapFen != 30000 || !b.RequireSingleAddress || !b.PreShipmentRefund || b.Cities[0] != "Hangzhou" ||
		b.Penalties[core.OutcomeUsed] != 35 || b.Penalties[core.OutcomeEmptyBox] != 100 || b.Version == dy.Version {
		t.Fatalf("base not applied: %+v", b)
	}
	// JSON with the same content has the same version as YAML.
	j, err := Parse([]byte(`{"name":"my-policy","kinds":["exchange","return_refund"],"min_stars":4,"reasons":["no_reason"],
		"refunds":{"return_refund":{"trigger":"tracking","advance":true}}}`), FormatJSON)
	if err != nil || j.Version != p.Version {
		t.Fatalf("json: %v, version %s vs %s", err, j.Version, p.Version)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		format Format
		data   string
		field  string
		line   int
		msg    string // substring
	}{
		{"unknown field", FormatYAML, minimalYAML + "colour: red\n", "colour", 7, "unknown field"},
		{"unknown nested field", FormatYAML, minimalYAML + "service_hours: {start: \"09:00\", end: \"20:00\", tz: x}\n", "service_hours.tz", 7, "unknown field"},
		{"unknown refund field", FormatYAML, strings.Replace(minimalYAML, "advance: true", "advance: true, when: now", 1), "refunds.return_refund.when", 6, "unknown field"},
		{"repeated field", FormatYAML, minimalYAML + "min_stars: 3\n", "min_stars", 7, "set twice"},
		{"bad stars", FormatYAML, strings.Replace(minimalYAML, "min_stars: 4", "min_stars: 6", 1), "min_stars", 3, "outside 0..5"},
		{"stars as string", FormatYAML, strings.Replace(minimalYAML, "min_stars: 4", `min_stars: "4"`, 1), "min_stars", 3, "want an integer"},
		{"bad kind", FormatYAML, strings.Replace(minimalYAML, "exchange]", "swap]", 1), "kinds[1]", 2, `unknown kind "swap"`},
		{"bad reason", FormatYAML, strings.Replace(minimalYAML, "[no_reason]", "[no_reason, meh]", 1), "reasons[1]", 4, `unknown reason "meh"`},
		{"bad trigger", FormatYAML, strings.Replace(minimalYAML, "trigger: tracking", "trigger: soon", 1), "refunds.return_refund.trigger", 6, `unknown trigger "soon"`},
		{"advance with inspection", FormatYAML, strings.Replace(minimalYAML, "trigger: tracking", "trigger: inspection", 1), "refunds.return_refund.advance", 6, "cannot be an advance"},
		{"bad duration", FormatYAML, minimalYAML + "small_window: 2 hours\n", "small_window", 7, "want a duration"},
		{"bad clock", FormatYAML, minimalYAML + "service_hours: {start: \"9am\", end: \"20:00\"}\n", "service_hours.start", 7, "time of day"},
		{"end before start", FormatYAML, minimalYAML + "service_hours: {start: \"20:00\", end: \"09:00\"}\n", "service_hours.end", 7, "after the start"},
		{"negative cap", FormatYAML, minimalYAML + "amount_cap_fen: -5\n", "amount_cap_fen", 7, "negative"},
		{"zero exposure", FormatYAML, minimalYAML + "exposure_cap_fen: 0\n", "exposure_cap_fen", 7, "positive"},
		{"empty city", FormatYAML, minimalYAML + "cities:\n  - Hangzhou\n  - \"\"\n", "cities[1]", 9, "empty"},
		{"ok penalty", FormatYAML, minimalYAML + "penalties: {ok: 5}\n", "penalties.ok", 7, "penalty 0"},
		{"negative not_returned penalty", FormatYAML, minimalYAML + "penalties: {not_returned: -1}\n", "penalties.not_returned", 7, "outside 0..1000"},
		{"fast-tracked kind without a refund", FormatYAML, strings.Replace(minimalYAML, "trigger: tracking, advance: true", "trigger: none", 1), "refunds.return_refund.trigger", 6, "return_refund is fast-tracked"},
		{"zero review deadline", FormatYAML, minimalYAML + "review_deadline: 0s\n", "review_deadline", 7, "positive"},
		{"negative grace", FormatYAML, minimalYAML + "pickup_grace: -1m\n", "pickup_grace", 7, "zero or positive"},
		{"advance for refund_only", FormatYAML, strings.Replace(minimalYAML, "}\n", "}\n  refund_only: {trigger: approval, advance: true}\n", 1), "refunds.refund_only.advance", 7, "no goods come back"},
		{"missing name", FormatYAML, strings.Replace(minimalYAML, "name: my-policy\n", "", 1), "name", 1, "missing"},
		{"bad name", FormatYAML, strings.Replace(minimalYAML, "my-policy", `"my policy"`, 1), "name", 1, "must match"},
		{"unknown base", FormatYAML, "base: amazon\nname: x\n", "base", 1, "unknown preset"},
		{"not a mapping", FormatYAML, "- a\n- b\n", "", 1, "mapping of parameters"},
		{"yaml syntax", FormatYAML, "name: [x\n", "", 0, ""},
		{"alias", FormatYAML, "name: &n x\nkinds: *n\n", "", 2, "aliases"},
		{"json unknown field", FormatJSON, "{\n  \"name\": \"x\",\n  \"bogus\": 1\n}", "bogus", 3, "unknown field"},
		{"json bad value", FormatJSON, "{\n  \"name\": \"x\",\n  \"kinds\": [\"return_refund\"],\n  \"min_stars\": 2.5\n}", "min_stars", 4, "want an integer"},
		{"json syntax", FormatJSON, "{\n  \"name\": \"x\",\n  oops\n}", "", 3, "invalid JSON"},
		{"json trailing", FormatJSON, "{\"name\": \"x\"} {}", "", 1, "data after"},
		{"json duplicate", FormatJSON, "{\"name\": \"x\", \"name\": \"y\"}", "name", 1, "set twice"},
		{"empty", FormatYAML, "", "", 0, "empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.data), c.format)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("want *Error, got %v", err)
			}
			if e.Field != c.field || (c.line != 0 && e.Line != c.line) || !strings.Contains(e.Msg, c.msg) {
				t.Fatalf("got field %q line %d msg %q (%v); want field %q line %d msg ~%q", e.Field, e.Line, e.Msg, err, c.field, c.line, c.msg)
			}
			if c.field != "" && !strings.Contains(err.Error(), c.field+": ") {
				t.Fatalf("message does not name the field: %v", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := mustPreset(t, core.PresetJD)
	y, _ := Marshal(p)
	j, _ := MarshalFormat(p, FormatJSON)
	for name, data := range map[string][]byte{"p.yaml": y, "p.yml": y, "p.json": j, "p.policy": j, "noext": y} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Load(path)
		if err != nil || got.Version != p.Version {
			t.Fatalf("%s: %v", name, err)
		}
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(minimalYAML+"velocity_max: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	if err == nil || !strings.Contains(err.Error(), bad+": line 7: velocity_max: ") || !errors.Is(err, core.ErrInvalidPolicy) {
		t.Fatalf("got %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file loaded")
	}
}

func TestDurations(t *testing.T) {
	for _, d := range []time.Duration{time.Hour, 90 * time.Minute, 24 * time.Hour, 90 * 24 * time.Hour, 1500 * time.Millisecond, 36 * time.Hour} {
		got, ok := parseDuration(formatDuration(d))
		if !ok || got != d {
			t.Errorf("%s → %q → %s %t", d, formatDuration(d), got, ok)
		}
	}
	for _, s := range []string{"", "d", "-1d", "1.5d", "3 days", "1w"} {
		if _, ok := parseDuration(s); ok {
			t.Errorf("%q parsed", s)
		}
	}
}

// FuzzParse: no input panics; every rejection is an *Error; every accepted
// policy round-trips to the same version.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimalYAML))
	for _, n := range core.PresetNames() {
		p, _ := core.Preset(n)
		y, _ := Marshal(p)
		j, _ := MarshalFormat(p, FormatJSON)
		f.Add(y)
		f.Add(j)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, FormatAuto)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("unclassified error %T: %v", err, err)
			}
			return
		}
		b, err := Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse(b, FormatYAML)
		if err != nil || q.Version != p.Version {
			t.Fatalf("round trip: %v\n%s", err, b)
		}
	})
}
