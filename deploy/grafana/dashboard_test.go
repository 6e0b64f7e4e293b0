package grafana

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// committed is the generated dashboard as committed, next to this file.
const committed = "flashreturn.json"

// regenerate is what to do when the committed JSON is stale.
const regenerate = "run `make dashboards` (go generate ./deploy/...) and commit " + committed + "; never edit the JSON by hand, change the Go code in deploy/grafana"

func generated(t *testing.T) []byte {
	t.Helper()
	b, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCommittedDashboardIsGenerated regenerates the dashboard in-process
// and compares it with the committed file, byte for byte.
func TestCommittedDashboardIsGenerated(t *testing.T) {
	want := generated(t)
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatalf("%v: %s", err, regenerate)
	}
	if bytes.Equal(got, want) {
		return
	}
	t.Errorf("%s is not what the generator writes: %s\n%s", committed, regenerate, describeDiff(got, want))
}

// TestJSONIsStable: two runs give the same bytes (maps sorted, ids
// assigned in order), or the comparison above would be flaky.
func TestJSONIsStable(t *testing.T) {
	if !bytes.Equal(generated(t), generated(t)) {
		t.Fatal("JSON() returned different bytes on two calls")
	}
}

// TestSchema decodes the dashboard strictly into the SDK's types
// (generated from Grafana's schemas): every field known, of its type,
// required fields present, panel options and queries decoded by their
// plugin's types; then runs the SDK's validation.
func TestSchema(t *testing.T) {
	checkSchema(t, generated(t))
}

// laterRows are the rows of later.go, not in the dashboard yet.
func laterRows() []row {
	return []row{clusterRow()}
}

// TestLaterRows renders the dashboard with the rows that wait for their
// metrics, and holds them to the same checks, so that switching one on
// is a one-line change.
func TestLaterRows(t *testing.T) {
	b, err := render(append(rows(), laterRows()...))
	if err != nil {
		t.Fatal(err)
	}
	checkSchema(t, b)
	d := decode(t, b)
	checkQueries(t, d)
	checkLayout(t, d)
	checkUnits(t, d)
	for _, r := range laterRows() {
		if len(r.panels) == 0 {
			t.Errorf("row %q has no panels", r.title)
		}
	}
}

func checkSchema(t *testing.T, b []byte) {
	t.Helper()
	plugins.RegisterDefaultPlugins()
	//lint:ignore SA1019 the classic dashboard model is the one this package writes (see doc.go).
	var d dashboard.Dashboard
	if err := d.UnmarshalJSONStrict(b); !isEmpty(err) {
		t.Fatalf("not a valid dashboard per the SDK's schema types:\n%v", err)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("SDK validation: %v", err)
	}
	if d.Uid == nil || *d.Uid != uid || d.Title == nil || *d.Title != title {
		t.Fatalf("uid %v, title %v: want %q and %q", d.Uid, d.Title, uid, title)
	}
}

// isEmpty reports whether err is no error. The SDK's strict decoders
// return their error list even when it is empty (a nil cog.BuildErrors in
// a non-nil error).
func isEmpty(err error) bool {
	var list cog.BuildErrors
	if errors.As(err, &list) {
		return len(list) == 0
	}
	return err == nil
}

// panelJSON is what the checks below read of a panel.
type panelJSON struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Panels []panelJSON `json:"panels"`
}

type dashJSON struct {
	Panels []panelJSON `json:"panels"`
}

func decode(t *testing.T, b []byte) dashJSON {
	t.Helper()
	var d dashJSON
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// all returns every panel, rows' nested panels included, top to bottom.
func (d dashJSON) all() []panelJSON {
	var out []panelJSON
	var walk func([]panelJSON)
	walk = func(ps []panelJSON) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func TestQueriesFilterByInstance(t *testing.T) { checkQueries(t, decode(t, generated(t))) }
func TestLayout(t *testing.T)                  { checkLayout(t, decode(t, generated(t))) }
func TestUnits(t *testing.T)                   { checkUnits(t, decode(t, generated(t))) }

// metricSelector finds the metric selectors of a PromQL expression: a
// metric name of flashreturnd's (flashreturn_, process_, go_) and its
// label matchers, if any.
var metricSelector = regexp.MustCompile(`\b((?:flashreturn|process|go)_[a-z0-9_]+)(\{[^}]*\})?`)

// checkQueries: every panel but a row has queries, refIds are distinct,
// and every metric selector filters on the instance variable (otherwise
// the panel ignores the instance picker).
func checkQueries(t *testing.T, d dashJSON) {
	t.Helper()
	for _, p := range d.all() {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if refs[tg.RefID] {
				t.Errorf("panel %q: refId %q twice", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			sels := metricSelector.FindAllStringSubmatch(tg.Expr, -1)
			if len(sels) == 0 {
				t.Errorf("panel %q / %s: no flashreturnd metric in %s", p.Title, tg.RefID, tg.Expr)
			}
			for _, m := range sels {
				if !strings.Contains(m[2], `instance=~"$instance"`) {
					t.Errorf("panel %q / %s: %s does not select instance=~\"$instance\"", p.Title, tg.RefID, m[0])
				}
			}
		}
	}
}

// checkLayout: ids unique, panels inside the 24 columns, none overlapping.
func checkLayout(t *testing.T, d dashJSON) {
	t.Helper()
	ids := map[int]string{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range d.all() {
		if p.ID <= 0 {
			t.Errorf("panel %q: id %d", p.Title, p.ID)
		}
		if other, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, g)
		}
		if p.Type == "row" && (g.X != 0 || g.W != 24 || g.H != 1) {
			t.Errorf("row %q: gridPos %+v, want full width and 1 high", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Fatalf("panels %q and %q overlap at x=%d y=%d", other, p.Title, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
	}
}

// units are the Grafana unit ids the dashboard may use. Grafana shows an
// unknown id as a suffix after the number (as it did "currencyCNY"), so a
// new unit is added here after checking it in Grafana's unit picker.
var knownUnits = []string{
	unitSeconds, unitEvents, unitMessages, unitDecisions, unitOps,
	unitRatio, unitCount, unitBytes, unitYuan,
}

func checkUnits(t *testing.T, d dashJSON) {
	t.Helper()
	for _, p := range d.all() {
		if p.Type == "row" || p.Type == "table" {
			continue
		}
		if u := p.FieldConfig.Defaults.Unit; !slices.Contains(knownUnits, u) {
			t.Errorf("panel %q: unit %q is not one of %q", p.Title, u, knownUnits)
		}
	}
}

func TestUnescapeHTML(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got := string(unescapeHTML([]byte(in)))
		if got != want {
			t.Errorf("unescapeHTML(%s) = %s, want %s", in, got, want)
		}
		var a, b any
		if err := json.Unmarshal([]byte(in), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(got), &b); err != nil {
			t.Fatalf("unescapeHTML(%s) = %s: %v", in, got, err)
		}
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("unescapeHTML(%s) changed the value: %v, want %v", in, b, a)
		}
	}
	f(`"a \u003e 1 \u0026 b \u003c 2"`, `"a > 1 & b < 2"`)
	f(`"fr.dlq.\u003creason\u003e"`, `"fr.dlq.<reason>"`)
	f(`"\\u003c"`, `"\\u003c"`)       // an escaped backslash, then text
	f(`"\\\u003c"`, `"\\<"`)          // an escaped backslash, then an escape
	f(`"\"\u00e9\n"`, `"\"\u00e9\n"`) // other escapes stay
	f(`{"k\u003e":["\u0026"]}`, `{"k>":["&"]}`)
}

// describeDiff says where committed and generated differ: panels added,
// removed or changed (by title), other top-level fields, and the first
// differing line with its neighbours.
func describeDiff(committed, generated []byte) string {
	var sb strings.Builder
	var c, g map[string]json.RawMessage
	if json.Unmarshal(committed, &c) != nil || json.Unmarshal(generated, &g) != nil {
		sb.WriteString("(the committed file is not valid JSON)\n")
	} else {
		panelsOf := func(m map[string]json.RawMessage) (titles []string, byTitle map[string]string) {
			var ps []json.RawMessage
			_ = json.Unmarshal(m["panels"], &ps)
			byTitle = map[string]string{}
			for _, p := range ps {
				var h struct {
					Title string `json:"title"`
				}
				var v any
				_ = json.Unmarshal(p, &h)
				_ = json.Unmarshal(p, &v)
				canonical, _ := json.Marshal(v) // keys sorted, spacing gone
				titles = append(titles, h.Title)
				byTitle[h.Title] = string(canonical)
			}
			return titles, byTitle
		}
		ct, cp := panelsOf(c)
		gt, gp := panelsOf(g)
		for _, title := range gt {
			if old, ok := cp[title]; !ok {
				fmt.Fprintf(&sb, "  panel %q: only in the generated dashboard\n", title)
			} else if old != gp[title] {
				fmt.Fprintf(&sb, "  panel %q: differs\n", title)
			}
		}
		for _, title := range ct {
			if _, ok := gp[title]; !ok {
				fmt.Fprintf(&sb, "  panel %q: only in the committed file\n", title)
			}
		}
		if !slices.Equal(ct, gt) && sb.Len() == 0 {
			sb.WriteString("  panels in another order\n")
		}
		same := func(a, b json.RawMessage) bool {
			var va, vb any
			_ = json.Unmarshal(a, &va)
			_ = json.Unmarshal(b, &vb)
			ca, _ := json.Marshal(va)
			cb, _ := json.Marshal(vb)
			return bytes.Equal(ca, cb)
		}
		for _, k := range slices.Sorted(maps.Keys(g)) {
			if k != "panels" && (c[k] == nil || !same(c[k], g[k])) {
				fmt.Fprintf(&sb, "  field %q differs\n", k)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(c)) {
			if _, ok := g[k]; !ok {
				fmt.Fprintf(&sb, "  field %q: only in the committed file\n", k)
			}
		}
	}
	cl := strings.Split(string(committed), "\n")
	gl := strings.Split(string(generated), "\n")
	for i := 0; i < max(len(cl), len(gl)); i++ {
		if i < len(cl) && i < len(gl) && cl[i] == gl[i] {
			continue
		}
		at := func(lines []string) string {
			var out strings.Builder
			for j := max(0, i-2); j < min(len(lines), i+3); j++ {
				mark := "  "
				if j == i {
					mark = "> "
				}
				fmt.Fprintf(&out, "    %s%d: %s\n", mark, j+1, lines[j])
			}
			return out.String()
		}
		fmt.Fprintf(&sb, "first difference at line %d:\n  committed:\n%s  generated:\n%s", i+1, at(cl), at(gl))
		break
	}
	return sb.String()
}
