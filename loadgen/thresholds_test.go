package loadgen

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flashreturn/flashreturn/loadgen/audit"
	"github.com/flashreturn/flashreturn/loadgen/faults"
)

func TestParseThreshold(t *testing.T) {
	f := func(in, metric, op string, value float64, unit string) {
		t.Helper()
		got, err := ParseThreshold(in)
		if err != nil {
			t.Fatalf("ParseThreshold(%q): %v", in, err)
		}
		if got.Metric != metric || got.Op != op || got.Value != value || got.Unit != unit {
			t.Fatalf("ParseThreshold(%q) = %+v, want %s %s %v %q", in, got, metric, op, value, unit)
		}
	}
	f("p99<10ms", "p99", "<", 10, "ms")
	f(" p99 < 10ms ", "p99", "<", 10, "ms")
	f("P99<10MS", "p99", "<", 10, "ms")
	f("p50<=500us", "p50", "<=", 0.5, "ms")
	f("p90<800µs", "p90", "<", 0.8, "ms")
	f("p99.9<1.5s", "p99.9", "<", 1500, "ms")
	f("p999<1s", "p99.9", "<", 1000, "ms")
	f("max<2s", "max", "<", 2000, "ms")
	f("mean<1m", "mean", "<", 60000, "ms")
	f("drain<2s", "drain", "<", 2000, "ms")
	f("drain<0s", "drain", "<", 0, "ms")
	f("backlog_clear<=5s", "backlog_clear", "<=", 5000, "ms")
	f("gap<3s", "gap", "<", 3000, "ms")
	f("decided>99.9%", "decided", ">", 99.9, "%")
	f("decided>=100%", "decided", ">=", 100, "%")
	f("decided>800/s", "decided", ">", 800, "/s")
	f("decided>=12000", "decided", ">=", 12000, "")
	f("dlq<10", "dlq", "<", 10, "")
	f("dlq<0.5%", "dlq", "<", 0.5, "%")
	f("dlq_unexpected==0", "dlq_unexpected", "==", 0, "")
	f("dlq_unexpected!=3", "dlq_unexpected", "!=", 3, "")
	f("p99>1ms", "p99", ">", 1, "ms")

	bad := func(in, wantErr string) {
		t.Helper()
		_, err := ParseThreshold(in)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("ParseThreshold(%q): error %v, want one containing %q", in, err, wantErr)
		}
	}
	bad("", "want <metric><op><value>")
	bad("p99", "want <metric><op><value>")
	bad("p99 10ms", "want <metric><op><value>")
	bad("p99=10ms", "op one of")
	bad("p99=<10ms", "op one of")
	bad("<10ms", "want <metric><op><value>")
	bad("p98<10ms", `unknown metric "p98"`)
	bad("latency<10ms", "unknown metric")
	bad("p99<10", "takes a duration")
	bad("p99<", "want <metric><op><value>")
	bad("p99<-1ms", "takes a duration")
	bad("p99<10%", "takes a duration")
	bad("p99<<10ms", "takes a duration")
	bad("drain<fast", "takes a duration")
	bad("decided>99.9", "takes a share")       // a count must be whole
	bad("decided>101%", "takes a share")       // over 100%
	bad("decided>-1%", "takes a share")        // negative
	bad("decided>ms", "takes a share")         // not a number
	bad("decided>1e999%", "takes a share")     // infinite
	bad("dlq<1/s", "takes a count or a share") // no rate of dead letters
	bad("dlq_unexpected<1%", "takes a count")
	bad("dlq_unexpected<1.5", "takes a count")
}

func TestThresholdEvaluate(t *testing.T) {
	rep := &Report{
		Latency:  Latency{Count: 100, P50Ms: 2, P90Ms: 4, P99Ms: 9.5, P999Ms: 20, MaxMs: 40, MeanMs: 3},
		Requests: 1000, Decided: 999, SendSec: 10, Drained: true, DrainSec: 0.25,
		DeadLetters: 4, Publish: PublishStats{Sent: 2000},
		Series:          []Sample{{T: 1}},
		BacklogClearSec: 3,
		Audit:           []audit.Check{{Name: "valid_not_dead_lettered", Checked: 4, Failed: 1}},
		Faults:          []faults.FaultResult{{GapMs: 1200}, {GapMs: -1}, {GapMs: 2500}},
	}
	f := func(expr string, pass bool, text string) {
		t.Helper()
		th, err := ParseThreshold(expr)
		if err != nil {
			t.Fatal(err)
		}
		res := th.Evaluate(rep)
		if res.Passed != pass || res.MeasuredText != text {
			t.Fatalf("%s: passed %v measured %q, want %v %q", expr, res.Passed, res.MeasuredText, pass, text)
		}
	}
	f("p50<2ms", false, "2.00ms")
	f("p50<=2ms", true, "2.00ms")
	f("p90<5ms", true, "4.00ms")
	f("p99<10ms", true, "9.50ms")
	f("p99<9ms", false, "9.50ms")
	f("p99.9<20ms", false, "20.00ms")
	f("max<1s", true, "40.00ms")
	f("mean>=3ms", true, "3.00ms")
	f("drain<2s", true, "250.00ms")
	f("drain<200ms", false, "250.00ms")
	f("backlog_clear<5s", true, "3.00s")
	f("gap<3s", true, "2.50s")
	f("gap<2s", false, "2.50s")
	f("decided>99.9%", false, "99.900%")
	f("decided>=99.9%", true, "99.900%")
	f("decided>99/s", true, "99.9/s")
	f("decided==999", true, "999")
	f("dlq<5", true, "4")
	f("dlq<0.1%", false, "0.200%")
	f("dlq_unexpected==0", false, "1")

	// Figures the run did not measure fail; unbounded ones compare as +Inf.
	empty := &Report{Drained: false, BacklogClearSec: -1, Series: []Sample{{T: 1}}}
	g := func(expr string, pass bool, text string) {
		t.Helper()
		th, _ := ParseThreshold(expr)
		res := th.Evaluate(empty)
		if res.Passed != pass || res.MeasuredText != text || (res.Measured != nil) {
			t.Fatalf("%s on an empty run: %+v, want passed %v %q and no figure", expr, res, pass, text)
		}
	}
	g("p99<10ms", false, "not measured: no decisions measured")
	g("drain<2s", false, "never drained")
	g("drain>2s", true, "never drained")
	g("backlog_clear<5s", false, "backlog never cleared")
	g("gap<5s", false, "not measured: no faults in the run")
	g("decided>99%", false, "not measured: no requests sent")
	g("decided>1/s", false, "not measured: nothing sent")
	g("dlq<0.1%", false, "not measured: nothing sent")
	g("dlq_unexpected==0", false, "not measured: the audit did not count dead letters")
	empty.Faults = []faults.FaultResult{{GapMs: -1}}
	g("gap<5s", false, "no decision after any fault")
}

func TestApplyThresholds(t *testing.T) {
	rep := &Report{Latency: Latency{Count: 1, P99Ms: 5}, Drained: false}
	var ts []Threshold
	for _, s := range []string{"p99<10ms", "drain<2s"} {
		th, err := ParseThreshold(s)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, th)
	}
	rep.ApplyThresholds(nil)
	if !rep.ThresholdsPassed || len(rep.Thresholds) != 0 {
		t.Fatalf("no thresholds: %+v", rep.Thresholds)
	}
	rep.ApplyThresholds(ts)
	if rep.ThresholdsPassed || len(rep.Thresholds) != 2 || !rep.Thresholds[0].Passed || rep.Thresholds[1].Passed {
		t.Fatalf("thresholds: %+v", rep.Thresholds)
	}
	if b := rep.BrokenThresholds(); len(b) != 1 || b[0].Expr != "drain<2s" {
		t.Fatalf("broken: %+v", b)
	}
	// The JSON report carries them, with no figure for the unbounded one
	// (JSON has no infinity).
	var js strings.Builder
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false) // as cmd/loadgen writes it
	if err := enc.Encode(rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"threshold":"p99<10ms","metric":"p99","op":"<","value":10,"unit":"ms","measured":5,"measured_text":"5.00ms","passed":true`,
		`"threshold":"drain<2s","metric":"drain","op":"<","value":2000,"unit":"ms","measured":null,"measured_text":"never drained","passed":false`,
		`"thresholds_passed":false`} {
		if !strings.Contains(js.String(), want) {
			t.Fatalf("JSON report lacks %s:\n%s", want, js.String())
		}
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ok   p99<10ms", "measured 5.00ms", "FAIL drain<2s", "measured never drained", "1 of 2 thresholds broken"} {
		if !strings.Contains(text.String(), want) {
			t.Fatalf("text report lacks %q:\n%s", want, text.String())
		}
	}
	var page strings.Builder
	if err := rep.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="thresholds"`, "<td>drain&lt;2s</td><td>never drained</td>", "1 of 2 thresholds broken"} {
		if !strings.Contains(page.String(), want) {
			t.Fatalf("HTML report lacks %q", want)
		}
	}
}
