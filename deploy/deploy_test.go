package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/pipeline"
)

const (
	dashboardFile  = "grafana/flashreturn.json"
	alertsFile     = "prometheus/alerts.yml"
	alertTestsFile = "prometheus/alerts_test.yml"
	promConfigFile = "prometheus/prometheus.yml"
	// job is the scrape job name; FlashreturnDown matches on it.
	job = "flashreturn"
)

// grafanaVars replaces the dashboard's Grafana variables with what
// Grafana would send: $__rate_interval is at least 4 scrape intervals,
// and the instance selector matches every instance.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "${instance}", ".*", "$instance", ".*")

// expression is one PromQL expression to evaluate, with where it is from.
type expression struct {
	where string // "dashboard: <panel> / <refId>" or "alert: <name>"
	expr  string
	alert bool // an alert condition: may be empty; its signals may not
}

// dashboardExpressions returns every target expression of every panel
// (rows' nested panels included) and every templating query.
func dashboardExpressions(t *testing.T) []expression {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Title      string            `json:"title"`
		UID        string            `json:"uid"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Fatalf("%s: dashboard needs a uid and a title", dashboardFile)
	}
	var out []expression
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("%s: panel: %v", dashboardFile, err)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("dashboard panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("dashboard panel %q target %s has no expression", p.Title, tg.RefID)
					continue
				}
				out = append(out, expression{where: fmt.Sprintf("dashboard: %s / %s", p.Title, tg.RefID), expr: tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		out = append(out, expression{where: "dashboard variable: " + v.Name, expr: q})
	}
	return out
}

// alertRule is one rule of alerts.yml.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// TestAlertRulesConventions checks what promtool does not: every alert has
// a severity, a summary, a description and a runbook anchor that exists
// in README.md. It needs no tools.
func TestAlertRulesConventions(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(readme), -1) {
		anchors[githubAnchor(m[1])] = true
	}
	rules := alertRules(t)
	if len(rules) == 0 {
		t.Fatal("no rules")
	}
	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		if s := r.Labels["severity"]; s != "page" && s != "ticket" {
			t.Errorf("%s: severity %q, want page or ticket", r.Alert, s)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: needs summary and description annotations", r.Alert)
		}
		rb := r.Annotations["runbook"]
		_, anchor, _ := strings.Cut(rb, "#")
		if !strings.HasPrefix(rb, "deploy/README.md#") || !anchors[anchor] {
			t.Errorf("%s: runbook %q does not point at a heading of deploy/README.md", r.Alert, rb)
		}
		if !strings.Contains(r.Expr, "by (instance)") && !strings.Contains(r.Expr, "by (le, instance)") && !strings.HasPrefix(strings.TrimSpace(r.Expr), "up{") {
			t.Errorf("%s: aggregate by (instance) so that one alert is one process", r.Alert)
		}
	}
}

// githubAnchor is the anchor GitHub derives from a heading.
func githubAnchor(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	var b strings.Builder
	for _, r := range h {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestSignals checks the splitting of alert conditions into signals.
func TestSignals(t *testing.T) {
	f := func(expr string, want ...string) {
		t.Helper()
		got := signals(expr)
		if strings.Join(got, " | ") != strings.Join(want, " | ") {
			t.Errorf("signals(%q)\n got %q\nwant %q", expr, got, want)
		}
	}
	f(`up{job="x"} < 1`, `up{job="x"}`)
	f(`sum by (instance) (a) > 10000 and sum by (instance) (delta(a[10m])) > 0`, `sum by (instance) (a)`, `sum by (instance) (delta(a[10m]))`)
	f(`sum(rate(a[10m])) > 3 * sum(rate(a[2h])) and sum(rate(a[10m])) * 60 > 1e6`, `sum(rate(a[10m]))`, `3 * sum(rate(a[2h]))`, `sum(rate(a[10m])) * 60`)
	f(`(1 - x{le="1"} / y) > 0.144`, `(1 - x{le="1"} / y)`)
	f(`a{b=~"c|d",e!="f"} >= bool 2`, `a{b=~"c|d",e!="f"}`)
	f(`a or b`, `a`, `b`)
	f("(1 - x) > 0.144\nand\n(1 - y) > 0.144", `(1 - x)`, `(1 - y)`)
	f(`sum(x)`, `sum(x)`)
	f(`max(a) == 1 unless on() b`, `max(a)`, `on() b`)
}

// signals splits an alert condition into the expressions whose values
// it compares: the operands of the top-level and/or/unless, then each
// side of a top-level comparison, dropping number literals. "on()" or
// "ignoring()" modifiers of the set operators stay with the right operand.
func signals(expr string) []string {
	var out []string
	for _, part := range splitTop(expr, []string{" and ", " or ", " unless "}) {
		sides := splitTop(part, []string{"==", "!=", ">=", "<=", ">", "<"})
		for _, s := range sides {
			s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "bool "))
			if _, err := strconv.ParseFloat(s, 64); err == nil || s == "" {
				continue
			}
			out = append(out, s)
		}
	}
	return out
}

// splitTop splits s at the separators that occur outside (), {}, [] and
// quotes. Separators are tried in order at each position; a space in a
// separator matches any whitespace (rules span lines).
func splitTop(s string, seps []string) []string {
	norm := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
			continue
		case c == '"' || c == '\'' || c == '`':
			quote = c
			continue
		case c == '(' || c == '{' || c == '[':
			depth++
			continue
		case c == ')' || c == '}' || c == ']':
			depth--
			continue
		}
		if depth != 0 {
			continue
		}
		for _, sep := range seps {
			if strings.HasPrefix(norm[i:], sep) {
				out = append(out, strings.TrimSpace(s[start:i]))
				i += len(sep) - 1
				start = i + 1
				break
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// tools finds prometheus and promtool, or skips the test.
func tools(t *testing.T) (prometheus, promtool string) {
	t.Helper()
	p, err1 := exec.LookPath("prometheus")
	pt, err2 := exec.LookPath("promtool")
	if err1 != nil || err2 != nil {
		t.Skip("prometheus and promtool are not on PATH: run deploy/install-tools.sh (apt-get install -y prometheus) to evaluate the dashboard and the alert rules against a real Prometheus")
	}
	return p, pt
}

func run(t *testing.T, dir, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s: ok", filepath.Base(bin), strings.Join(args, " "))
}

// TestPromtool runs promtool on the rules, their unit tests and the
// example configuration.
func TestPromtool(t *testing.T) {
	_, promtool := tools(t)
	run(t, ".", promtool, "check", "rules", alertsFile)
	run(t, "prometheus", promtool, "test", "rules", filepath.Base(alertTestsFile))
	run(t, "prometheus", promtool, "check", "config", filepath.Base(promConfigFile))
}

// TestPrometheusEvaluatesEveryExpression is the end-to-end check of the
// dashboard and the alerts: a real flashreturnd (embedded NATS, Badger in
// a temp dir) under traffic, a real Prometheus scraping it every second
// with alerts.yml loaded, and every expression evaluated through
// /api/v1/query.
//
//   - A dashboard expression must succeed and return at least one series
//     (or a scalar), and no value may be NaN or ±Inf: the traffic keeps
//     every rate and ratio defined.
//   - An alert condition is a comparison whose result is rightly empty
//     while the system is healthy, so it must succeed (it parses and
//     runs), and each of its signals, the operands of its top-level
//     and/or/unless and the sides of each comparison (see signals), must
//     return data like a dashboard expression does. Prometheus itself
//     must also report every rule healthy after evaluating it
//     (/api/v1/rules).
func TestPrometheusEvaluatesEveryExpression(t *testing.T) {
	promBin, _ := tools(t)
	exprs := dashboardExpressions(t)
	for _, r := range alertRules(t) {
		exprs = append(exprs, expression{where: "alert: " + r.Alert + r.Record, expr: r.Expr, alert: r.Alert != ""})
	}
	abs, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}

	d := startDaemon(t)
	ld := startLoad(t, d)
	metricsURL := "http://" + d.HTTPAddr() + "/metrics"
	waitFor(t, "the initial traffic to be decided", 30*time.Second, func() bool {
		return metricValue(t, metricsURL, "flashreturn_decision_latency_seconds_count") >= float64(ld.initialRequests)
	})

	prom := startPrometheus(t, promBin, d.HTTPAddr(), abs)
	// Enough scrapes for every rate() to have two samples after the
	// traffic started, at least one evaluation of the rules, and the
	// trickle's decisions in the last minute.
	waitFor(t, "Prometheus to scrape the daemon 4 times", 30*time.Second, func() bool {
		v, ok := prom.scalar(t, `count_over_time(flashreturn_ready{job="`+job+`"}[1m])`)
		return ok && v >= 4
	})
	waitFor(t, "decisions in Prometheus' last minute", 30*time.Second, func() bool {
		v, ok := prom.scalar(t, `sum(increase(flashreturn_decisions_total[1m]))`)
		return ok && v > 0
	})
	waitFor(t, "every rule evaluated", 30*time.Second, func() bool { return prom.rulesEvaluated(t) })

	for _, r := range prom.rules(t) {
		if r.Health != "ok" || r.LastError != "" {
			t.Errorf("Prometheus reports rule %s: health %q, error %q", r.Name, r.Health, r.LastError)
		}
	}
	var checked, signalsChecked int
	for _, e := range exprs {
		q := grafanaVars.Replace(e.expr)
		if m := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`).FindStringSubmatch(strings.TrimSpace(q)); m != nil {
			q = fmt.Sprintf("count by (%s) (%s)", m[2], m[1])
		}
		res, err := prom.query(q)
		if err != nil {
			t.Errorf("%s: %v\n  %s", e.where, err, q)
			continue
		}
		checked++
		if !e.alert {
			if msg := res.problem(); msg != "" {
				t.Errorf("%s: %s\n  %s", e.where, msg, q)
			}
			continue
		}
		for _, s := range signals(q) {
			sr, err := prom.query(s)
			if err != nil {
				t.Errorf("%s: signal: %v\n  %s", e.where, err, s)
				continue
			}
			signalsChecked++
			if msg := sr.problem(); msg != "" {
				t.Errorf("%s: signal %s\n  %s", e.where, msg, s)
			}
		}
	}
	t.Logf("evaluated %d expressions (%d alert signals) against %d decisions", checked, signalsChecked, ld.decided(t, metricsURL))
}

// startDaemon runs flashreturnd in-process: embedded NATS on a free port,
// HTTP on a free port, state in a temp dir, 8 partitions, clock ticks every
// second, tmall-fast-return live and jd-lightning-refund as shadow.
func startDaemon(t *testing.T) *pipeline.Daemon {
	t.Helper()
	pol, _ := core.Preset("tmall-fast-return")
	shadow, _ := core.Preset("jd-lightning-refund")
	d, err := pipeline.New(pipeline.Config{
		DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", HTTPAddr: "127.0.0.1:0",
		Policy: pol, Shadow: shadow, Partitions: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("daemon did not drain within 15s")
		}
	})
	select {
	case <-d.Started():
	case err := <-done:
		t.Fatalf("daemon stopped before starting: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not start within 30s")
	}
	waitFor(t, "daemon ready", 30*time.Second, d.Ready)
	return d
}

// load publishes traffic into the daemon.
type load struct {
	initialRequests int
	stop            func()
}

func (l *load) decided(t *testing.T, metricsURL string) int {
	return int(metricValue(t, metricsURL, "flashreturn_decision_latency_seconds_count"))
}

// startLoad publishes merchants, then a burst of shoppers (credit, paid,
// shipped, delivered, return requested, tracking, inspection) with
// malformed events mixed in, then keeps a trickle of the same going until
// the test ends, so that every rate has data when Prometheus is asked.
func startLoad(t *testing.T, d *pipeline.Daemon) *load {
	t.Helper()
	nc, err := nats.Connect(d.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	for _, m := range []string{"m1", "m2", "m3"} {
		ev := map[string]any{"event_id": "merchant-" + m, "type": "merchant.updated", "at": "2026-11-01T00:00:00+08:00",
			"merchant_id": m, "return_addresses": []string{"Hangzhou return desk " + m}, "ship_addresses": []string{"Hangzhou warehouse"}}
		if _, err := js.Publish(ctx, "fr.merchant."+m, mustJSON(ev)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "merchants in the daemon's view", 20*time.Second, func() bool {
		return metricValue(t, "http://"+d.HTTPAddr()+"/metrics", "flashreturn_merchants") >= 3
	})

	var futures []jetstream.PubAckFuture
	collect := func(subject, id string, data []byte) error {
		f, err := js.PublishAsync(subject, data, jetstream.WithMsgID(id), jetstream.WithStallWait(5*time.Second))
		if err == nil {
			futures = append(futures, f)
		}
		return err
	}
	const burst = 120
	for i := range burst {
		if err := shopper(collect, fmt.Sprintf("u%d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("initial traffic not acknowledged within 30s")
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("publish %s: %v", f.Msg().Subject, err)
		}
	}

	// The trickle publishes without waiting for acks: a lost one would
	// only thin the traffic.
	trickle := func(subject, id string, data []byte) error {
		_, err := js.PublishAsync(subject, data, jetstream.WithMsgID(id), jetstream.WithStallWait(5*time.Second))
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(25 * time.Millisecond) // pacing of the trickle, not synchronisation
		defer tick.Stop()
		for i := burst; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := shopper(trickle, fmt.Sprintf("u%d", i), i); err != nil && ctx.Err() == nil {
				t.Logf("trickle: %v", err)
			}
		}
	}()
	l := &load{initialRequests: burst, stop: func() { cancel(); <-done }}
	t.Cleanup(l.stop)
	return l
}

// shopper publishes one shopper's story; i picks its variant. Every
// shopper files one return request (so one decision); some also send
// malformed events (dead letters).
func shopper(pub func(subject, id string, data []byte) error, user string, i int) error {
	at := func(h int) string { return fmt.Sprintf("2026-11-%02dT%02d:00:00+08:00", 10+h/24, h%24) }
	ev := func(typ string, h int, f map[string]any) []byte {
		m := map[string]any{"event_id": user + "-" + strings.ReplaceAll(typ, ".", "-"), "type": typ, "at": at(h), "user_id": user}
		for k, v := range f {
			m[k] = v
		}
		return mustJSON(m)
	}
	id := func(typ string) string { return user + "-" + strings.ReplaceAll(typ, ".", "-") }
	type msg struct {
		subject, id string
		data        []byte
	}
	merchant := fmt.Sprintf("m%d", 1+i%3)
	var msgs []msg
	add := func(kind, typ string, h int, f map[string]any) {
		msgs = append(msgs, msg{"fr.in." + kind + "." + user, id(typ), ev(typ, h, f)})
	}
	add("credit", "credit.updated", 0, map[string]any{"stars": 1 + i%5})
	if i%7 != 6 { // one in seven asks about an order the daemon never saw
		add("order", "order.paid", 10, map[string]any{"order_id": "o1", "merchant_id": merchant, "category": "apparel",
			"size": "small", "paid_fen": 1000 + 97*(i%100), "seven_day": true, "city": "shanghai"})
		add("order", "order.shipped", 12, map[string]any{"order_id": "o1"})
		add("order", "order.delivered", 30, map[string]any{"order_id": "o1"})
	}
	add("return", "return.requested", 40, map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund",
		"reason": "no_reason", "pickup": i%2 == 0})
	add("logistics", "logistics.tracking", 41, map[string]any{"request_id": "r1", "tracking_no": "SF" + user})
	if i%3 == 0 {
		outcome := "ok"
		if i%9 == 0 {
			outcome = "empty_box"
		}
		add("inspection", "inspection.result", 60, map[string]any{"request_id": "r1", "outcome": outcome})
	}
	switch i % 10 {
	case 1:
		msgs = append(msgs, msg{"fr.in.return." + user, user + "-bad-json", []byte(`{"event_id":`)})
	case 4:
		msgs = append(msgs, msg{"fr.in.credit." + user, user + "-bad-value", ev("credit.updated", 1, map[string]any{"stars": 9})})
	case 7:
		msgs = append(msgs, msg{"fr.in.order." + user, user + "-unknown", ev("order.exploded", 1, nil)})
	}
	for _, m := range msgs {
		if err := pub(m.subject, m.id, m.data); err != nil {
			return fmt.Errorf("publish %s: %w", m.subject, err)
		}
	}
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// metricValue scrapes url and returns the sum of the samples of the
// metric name (any labels); 0 when absent.
func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, name) || len(line) <= len(name) || (line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

// promServer is a running Prometheus.
type promServer struct {
	base string
	log  *bytes.Buffer
}

// startPrometheus runs prometheus on a free loopback port with a temp
// TSDB, scraping target every second and evaluating rules every second.
func startPrometheus(t *testing.T, bin, target, rules string) *promServer {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
`, rules, job, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// Prometheus cannot report the port it bound, so pick a free one and
	// retry with another if something took it in between.
	for attempt := 0; ; attempt++ {
		addr := freeAddr(t)
		var log bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
			"--web.listen-address="+addr, "--storage.tsdb.retention.time=1h", "--log.level=warn")
		cmd.Stdout, cmd.Stderr = &log, &log
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		p := &promServer{base: "http://" + addr, log: &log}
		ready := false
		deadline := time.Now().Add(30 * time.Second)
	poll:
		for time.Now().Before(deadline) {
			select {
			case err := <-exited:
				cancel()
				if attempt < 3 && strings.Contains(log.String(), "address already in use") {
					break poll
				}
				t.Fatalf("prometheus exited: %v\n%s", err, log.String())
			default:
			}
			if resp, err := http.Get(p.base + "/-/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ready = true
					break poll
				}
			}
			time.Sleep(50 * time.Millisecond) // polling interval
		}
		if !ready {
			if attempt < 3 && strings.Contains(log.String(), "address already in use") {
				continue
			}
			cancel()
			t.Fatalf("prometheus not ready within 30s\n%s", log.String())
		}
		t.Cleanup(func() {
			cancel()
			<-exited
			if t.Failed() {
				t.Logf("prometheus log:\n%s", log.String())
			}
		})
		return p
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// queryResult is the data of a /api/v1/query answer.
type queryResult struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// problem says what is wrong with a result that should carry data: empty,
// or a NaN or infinite value.
func (r *queryResult) problem() string {
	var values []string
	switch r.ResultType {
	case "scalar", "string":
		var v [2]any
		if err := json.Unmarshal(r.Result, &v); err != nil {
			return "undecodable " + r.ResultType
		}
		values = append(values, fmt.Sprint(v[1]))
	case "vector":
		var vs []struct {
			Value [2]any `json:"value"`
		}
		if err := json.Unmarshal(r.Result, &vs); err != nil {
			return "undecodable vector"
		}
		for _, v := range vs {
			values = append(values, fmt.Sprint(v.Value[1]))
		}
	case "matrix":
		var ms []struct {
			Values [][2]any `json:"values"`
		}
		if err := json.Unmarshal(r.Result, &ms); err != nil {
			return "undecodable matrix"
		}
		for _, m := range ms {
			for _, v := range m.Values {
				values = append(values, fmt.Sprint(v[1]))
			}
		}
	default:
		return "unexpected result type " + r.ResultType
	}
	if len(values) == 0 {
		return "returned no data"
	}
	for _, v := range values {
		f, err := strconv.ParseFloat(v, 64)
		if r.ResultType != "string" && (err != nil || math.IsNaN(f) || math.IsInf(f, 0)) {
			return fmt.Sprintf("returned %s among %d values", v, len(values))
		}
	}
	return ""
}

// query evaluates expr at the current time.
func (p *promServer) query(expr string) (*queryResult, error) {
	resp, err := http.PostForm(p.base+"/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ans struct {
		Status    string      `json:"status"`
		ErrorType string      `json:"errorType"`
		Error     string      `json:"error"`
		Data      queryResult `json:"data"`
		Warnings  []string    `json:"warnings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return nil, fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
	}
	if ans.Status != "success" {
		return nil, fmt.Errorf("status %s: %s: %s", ans.Status, ans.ErrorType, ans.Error)
	}
	if len(ans.Warnings) > 0 {
		return nil, fmt.Errorf("warnings: %s", strings.Join(ans.Warnings, "; "))
	}
	return &ans.Data, nil
}

// scalar evaluates expr and returns its single value, if it has exactly one.
func (p *promServer) scalar(t *testing.T, expr string) (float64, bool) {
	t.Helper()
	r, err := p.query(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	var vs []struct {
		Value [2]any `json:"value"`
	}
	if r.ResultType != "vector" || json.Unmarshal(r.Result, &vs) != nil || len(vs) != 1 {
		return 0, false
	}
	f, err := strconv.ParseFloat(fmt.Sprint(vs[0].Value[1]), 64)
	return f, err == nil
}

// ruleState is one rule as /api/v1/rules reports it.
type ruleState struct {
	Name           string `json:"name"`
	Health         string `json:"health"`
	LastError      string `json:"lastError"`
	LastEvaluation string `json:"lastEvaluation"`
}

func (p *promServer) rules(t *testing.T) []ruleState {
	t.Helper()
	resp, err := http.Get(p.base + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		Status string `json:"status"`
		Data   struct {
			Groups []struct {
				Rules []ruleState `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || ans.Status != "success" {
		t.Fatalf("/api/v1/rules: %v %s", err, ans.Status)
	}
	var out []ruleState
	for _, g := range ans.Data.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// rulesEvaluated reports whether Prometheus has loaded and evaluated every
// rule at least once.
func (p *promServer) rulesEvaluated(t *testing.T) bool {
	t.Helper()
	rs := p.rules(t)
	if len(rs) == 0 {
		return false
	}
	for _, r := range rs {
		ts, err := time.Parse(time.RFC3339Nano, r.LastEvaluation)
		if err != nil || ts.Year() < 2000 {
			return false
		}
	}
	return true
}
