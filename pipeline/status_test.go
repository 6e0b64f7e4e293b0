package pipeline

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/pipeline/httpapi"
)

var statusScreenshot = flag.String("status-screenshot", "", "TestStatusPageChromium also saves a screenshot of the status page to this file (e.g. ../docs/status.png)")

// statusTraffic drives a small, known mix into a harness: with
// tmall-fast-return, "ua" is approved and refunded in advance on tracking
// (12900 fen stays outstanding), "ub" the same but its inspection is ok
// (9900 fen advanced then released), "uc" is rejected (order unknown), and
// two malformed events are dead-lettered.
func statusTraffic(h *harness) {
	h.t.Helper()
	h.merchant("m1", []string{"Hangzhou return desk"}, []string{"Hangzhou warehouse"}, nil)
	for _, u := range []struct {
		user  string
		paid  int
		inspt string
	}{{"ua", 12900, ""}, {"ub", 9900, "ok"}} {
		h.pub("credit", u.user, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 4})
		h.order(u.user, "o1", "m1", u.paid, "2026-11-11T15:00:00+08:00", nil)
		h.pub("return", u.user, "return.requested", "2026-11-12T10:00:00+08:00",
			map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": true})
		h.pub("logistics", u.user, "logistics.tracking", "2026-11-12T10:30:00+08:00", map[string]any{"request_id": "r1", "tracking_no": "SF1"})
		if u.inspt != "" {
			h.pub("inspection", u.user, "inspection.result", "2026-11-14T11:00:00+08:00", map[string]any{"request_id": "r1", "outcome": u.inspt})
		}
	}
	h.pub("return", "uc", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r9", "order_id": "nope", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	h.pubRaw("fr.in.return.ud", "bad-json-1", []byte(`{"event_id":`))
	h.pubRaw("fr.in.credit.ud", "bad-value-1", []byte(`{"event_id":"bv1","type":"credit.updated","at":"2026-11-12T10:00:00+08:00","user_id":"ud","stars":9}`))
	h.waitOut("fr.out.decision.", 3)
	h.waitOut("fr.dlq.", 2)
	h.waitOut("fr.out.trust.ub", 1)
	h.waitOut("fr.out.refund.", 2) // ua's advance, on its own partition, may come last
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, b)
	}
}

// TestStatusAPI checks /api/status and the operator metrics against a
// known mix of traffic.
func TestStatusAPI(t *testing.T) {
	shadow, _ := core.Preset("jd-lightning-refund")
	h := startHarness(t, "tmall-fast-return", func(c *Config) { c.Shadow = shadow })
	statusTraffic(h)
	base := "http://" + h.d.HTTPAddr()
	// Everything is folded in after the publish ack, and the harness saw the
	// outputs, but the worker may not have returned from step yet: poll.
	var st httpapi.Status
	h.waitFor("status counts the traffic", func() bool {
		getJSON(t, base+"/api/status", &st)
		return st.Totals.Decisions == 3 && len(st.DeadLetters) == 2 && st.Latency.Decisions == 3 && st.Totals.AdvancedFen == 12900+9900
	})
	// Every stage saw the traffic, in the window (the window starts at the
	// process's start until a sample is half a second old, and the poll
	// above began right after the traffic) and since start.
	for _, ss := range [][]httpapi.StageLatency{st.Stages, st.StagesAll} {
		var names []string
		for _, s := range ss {
			names = append(names, s.Stage)
			if s.Count == 0 || s.P50Seconds < 0 || s.P99Seconds < s.P50Seconds || s.P99Seconds > 60 {
				t.Errorf("stage %+v, want observations with 0 <= p50 <= p99", s)
			}
		}
		if got := strings.Join(names, " "); got != "stored_pulled pulled_applied commit publish_ack" {
			t.Fatalf("stages %q", got)
		}
	}
	if st.Policy.Name != "tmall-fast-return" || st.Shadow == nil || st.Shadow.Policy.Name != "jd-lightning-refund" {
		t.Fatalf("policy %v shadow %v", st.Policy, st.Shadow)
	}
	if st.Decisions["approved"] != 2 || st.Decisions["rejected"] != 1 {
		t.Fatalf("decisions %v", st.Decisions)
	}
	if !st.Ready || st.Partitions != 8 || st.PartitionsReady != 8 || len(st.Backlog) != 8 {
		t.Fatalf("ready %v partitions %d/%d backlog %d", st.Ready, st.PartitionsReady, st.Partitions, len(st.Backlog))
	}
	if st.Totals.AdvancedFen != 12900+9900 || st.Totals.AdvancedOutstandingFen != 12900 {
		t.Fatalf("advanced %d outstanding %d, want 22800 and 12900", st.Totals.AdvancedFen, st.Totals.AdvancedOutstandingFen)
	}
	if st.Latency.P99Seconds <= 0 || st.Latency.P99Seconds > 60 || st.Latency.P50Seconds > st.Latency.P99Seconds {
		t.Fatalf("latency %+v", st.Latency)
	}
	reasons := map[string]bool{}
	for _, d := range st.DeadLetters {
		reasons[d.Reason] = true
		if d.Subject == "" || d.Error == "" || d.StreamSeq == 0 || d.At == "" {
			t.Fatalf("dead letter %+v", d)
		}
	}
	if !reasons["bad_json"] || !reasons["bad_value"] || st.DeadByReason["bad_json"] != 1 {
		t.Fatalf("dead letters %+v by reason %v", st.DeadLetters, st.DeadByReason)
	}
	var events uint64
	for _, p := range st.Backlog {
		events += p.Events
	}
	// 2 × (credit, paid, shipped, delivered, request, tracking) + 1
	// inspection + uc's request + 2 malformed.
	if want := uint64(2*6 + 1 + 1 + 2); events != want {
		t.Fatalf("partition events %d, want %d", events, want)
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"flashreturn_advanced_outstanding_fen 12900\n",
		"flashreturn_advance_released_fen_total 9900\n",
		"flashreturn_decision_latency_seconds_count 3\n",
		`flashreturn_decision_latency_seconds_bucket{le="1"} `,
		`flashreturn_policy_info{role="live",policy="tmall-fast-return",version="` + st.Policy.Version + `"} 1` + "\n",
		`flashreturn_policy_info{role="shadow",policy="jd-lightning-refund",version="` + st.Shadow.Policy.Version + `"} 1` + "\n",
		`flashreturn_partition_events_total{partition="0"} `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestStatusPageServed checks that / and its assets are served.
func TestStatusPageServed(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	base := "http://" + h.d.HTTPAddr()
	for path, want := range map[string]string{
		"/":                 `id="decisions-total"`,
		"/static/app.js":    "/api/status",
		"/static/style.css": ".cards",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Fatalf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Get(base + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /nope: %d, want 404", resp.StatusCode)
	}
}

// TestStatusPageChromium renders the status page in headless Chromium
// against a daemon with traffic and checks that the daemon's numbers and a
// request's rule trace appear in the DOM. With -status-screenshot it also
// saves a screenshot.
func TestStatusPageChromium(t *testing.T) {
	bin := testkit.Chromium(t, "run the status page in a browser")
	shadow, _ := core.Preset("jd-lightning-refund")
	h := startHarness(t, "tmall-fast-return", func(c *Config) { c.Shadow = shadow })
	statusTraffic(h)
	base := "http://" + h.d.HTTPAddr()
	h.waitFor("status counts the traffic", func() bool {
		var st httpapi.Status
		getJSON(t, base+"/api/status", &st)
		return st.Totals.Decisions == 3 && len(st.DeadLetters) == 2
	})
	page := base + "/?user=ua&request=r1"
	// The virtual-time budget lets the page's fetches and its first polls
	// finish before the DOM is dumped; Chromium waits for network while
	// virtual time is paused, so this is not a wall-clock sleep.
	dom := testkit.RenderDOM(t, bin, page, 5*time.Second)
	text := func(id string) string {
		m := regexp.MustCompile(`id="` + id + `"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
		if m == nil {
			t.Fatalf("no #%s in the rendered DOM:\n%s", id, dom)
		}
		return m[1]
	}
	if !strings.Contains(dom, `data-rendered="`) || strings.Contains(dom, `data-rendered="0"`) {
		t.Fatalf("the page never rendered a status:\n%s", dom)
	}
	if n, err := strconv.Atoi(strings.ReplaceAll(text("decisions-total"), ",", "")); err != nil || n != 3 {
		t.Fatalf("decisions-total %q, want 3", text("decisions-total"))
	}
	if got := text("policy-name"); got != "tmall-fast-return" {
		t.Fatalf("policy-name %q", got)
	}
	if got := text("partitions-ready"); got != "8/8 ready" {
		t.Fatalf("partitions-ready %q", got)
	}
	if got := text("lookup-decision"); got != "approved" {
		t.Fatalf("lookup-decision %q", got)
	}
	if got := text("latency-p99"); got == "–" || !regexp.MustCompile(`^[0-9.]+ (µs|ms|s)$`).MatchString(got) {
		t.Fatalf("latency-p99 %q", got)
	}
	// The stages panel: every stage has observations (the window's, or
	// since start when the page's window is already past the traffic).
	for _, stage := range []string{"stored_pulled", "pulled_applied", "commit", "publish_ack"} {
		if n, err := strconv.Atoi(strings.ReplaceAll(text("stage-"+stage+"-n"), ",", "")); err != nil || n <= 0 {
			t.Errorf("stage-%s-n %q, want > 0", stage, text("stage-"+stage+"-n"))
		}
		if got := text("stage-" + stage + "-p99"); !regexp.MustCompile(`^[0-9.]+ (µs|ms|s)$`).MatchString(got) {
			t.Errorf("stage-%s-p99 %q", stage, got)
		}
	}
	for _, want := range []string{`id="lookup-trace"`, "<td>credit</td>", "bad_json", "bad_value", "jd-lightning-refund", "¥129.00"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	if *statusScreenshot != "" {
		// Keep requests flowing so that the screenshot shows live rates.
		stop := startTrickle(h)
		defer stop()
		h.waitFor("trickle traffic decided", func() bool {
			var st httpapi.Status
			getJSON(t, base+"/api/status", &st)
			return st.Totals.Decisions >= 150
		})
		out, err := filepath.Abs(*statusScreenshot)
		if err != nil {
			t.Fatal(err)
		}
		testkit.RunChromium(t, bin, "--virtual-time-budget=5000", "--window-size=1280,1900", "--screenshot="+out, page)
		if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
			t.Fatalf("screenshot %s: %v", out, err)
		}
		t.Logf("screenshot saved to %s", out)
	}
}

// startTrickle publishes a steady mix of requests (approved, rejected,
// malformed) from a goroutine until the returned stop is called.
func startTrickle(h *harness) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pub := func(subject, id string, ev map[string]any) {
			b, _ := json.Marshal(ev)
			_, _ = h.js.Publish(ctx, subject, b, jetstream.WithMsgID(id))
		}
		for i := 0; ctx.Err() == nil; i++ {
			u := fmt.Sprintf("t%d", i)
			at := "2026-11-12T10:00:00+08:00"
			ev := func(typ string, f map[string]any) map[string]any {
				id := u + "-" + strings.ReplaceAll(typ, ".", "-")
				m := map[string]any{"event_id": id, "type": typ, "at": at, "user_id": u}
				for k, v := range f {
					m[k] = v
				}
				return m
			}
			switch {
			case i%17 == 16:
				_, _ = h.js.Publish(ctx, "fr.in.order."+u, []byte(`{"event_id":"x`+u+`","type":"order.paid"}`), jetstream.WithMsgID("x"+u))
				continue
			case i%23 == 22:
				pub("fr.in.credit."+u, u+"-mismatch", ev("credit.updated", map[string]any{"stars": 4, "user_id": "someone_else"}))
				continue
			case i%8 != 7:
				stars := 3 + i%3
				if i%5 == 0 {
					stars = 2
				}
				pub("fr.in.credit."+u, u+"c", ev("credit.updated", map[string]any{"stars": stars}))
				pub("fr.in.order."+u, u+"p", ev("order.paid", map[string]any{"order_id": "o1", "merchant_id": "m1", "category": "apparel",
					"size": "small", "paid_fen": 2000 + 137*(i%50), "seven_day": true, "city": "shanghai"}))
				pub("fr.in.order."+u, u+"d", ev("order.delivered", map[string]any{"order_id": "o1"}))
			}
			pub("fr.in.return."+u, u+"r", ev("return.requested", map[string]any{"request_id": "r1", "order_id": "o1",
				"kind": "return_refund", "reason": "no_reason", "pickup": i%2 == 0}))
			if i%2 == 0 {
				pub("fr.in.logistics."+u, u+"t", ev("logistics.tracking", map[string]any{"request_id": "r1", "tracking_no": "SF" + u}))
			}
			if i%6 == 0 {
				outcome := "ok"
				if i%12 == 0 {
					outcome = "empty_box"
				}
				pub("fr.in.inspection."+u, u+"i", ev("inspection.result", map[string]any{"request_id": "r1", "outcome": outcome}))
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// TestStatusWhileBusy reads the status while the workers process traffic:
// under the race detector (make test) it fails if Status reads anything a
// worker swaps or writes per batch without synchronisation (it did: the
// partition event counter was read through the per-batch staging).
func TestStatusWhileBusy(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	stop := make(chan struct{})
	polled := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				polled <- n
				return
			default:
				h.d.Status()
				n++
			}
		}
	}()
	statusTraffic(h)
	h.waitFor("every partition event counted", func() bool {
		var events uint64
		for _, p := range h.d.Status().Backlog {
			events += p.Events
		}
		return events == 2*6+1+1+2 // as in TestStatusAPI
	})
	close(stop)
	if n := <-polled; n == 0 {
		t.Fatal("the status was never read during the traffic")
	}
}
