package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/loadgen/audit"
	"github.com/flashreturn/flashreturn/loadgen/contract"
	"github.com/flashreturn/flashreturn/loadgen/world"
)

func smallWorld(seed uint64) WorldOptions {
	return WorldOptions{Seed: seed, RunID: "t", Shoppers: 2000, Merchants: 50, ReturnFraction: 0.3}
}

func runAgainst(t *testing.T, f *fakeDaemon, cfg Config) *Report {
	t.Helper()
	srv, js := startServer(t)
	f.start(t, js)
	cfg.NATSURL = srv.ClientURL()
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 5 * time.Second
	}
	if cfg.QuietPeriod == 0 {
		cfg.QuietPeriod = 200 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("seed %d: run: %v", cfg.World.Seed, err)
	}
	return rep
}

func failures(rep *Report) string {
	var b strings.Builder
	_ = rep.WriteText(&b)
	return b.String()
}

func TestRunPassesAuditAgainstCorrectTarget(t *testing.T) {
	w := smallWorld(1)
	w.BadFraction = 0.02
	// More of the rarer lifecycle shapes than the defaults, so that a
	// 2-second run has each.
	w.InvalidFraction, w.SplurgeFraction, w.RepeatFraction, w.UnreturnedFraction, w.AgedFraction = 0.02, 0.02, 0.3, 0.1, 0.15
	rep := runAgainst(t, &fakeDaemon{}, Config{Shape: Steady{EventsPerSec: 600, Duration: 2 * time.Second}, World: w})
	if !rep.Passed || !rep.Drained {
		t.Fatalf("seed 1: audit failed against a correct target:\n%s", failures(rep))
	}
	if rep.Requests < 20 || rep.Decided != rep.Requests {
		t.Fatalf("seed 1: requests %d decided %d", rep.Requests, rep.Decided)
	}
	if rep.MalformedSent == 0 || rep.DeadLetters != rep.MalformedSent {
		t.Fatalf("seed 1: malformed sent %d, dead letters %d", rep.MalformedSent, rep.DeadLetters)
	}
	if rep.Decisions[contract.DecisionRejected] == 0 && rep.Decisions[contract.DecisionReview] == 0 {
		t.Fatalf("seed 1: every request approved: the world has no hard cases: %v", rep.Decisions)
	}
	l := rep.Lifecycle
	if l.Answers == 0 || l.Resolutions["approved/"+contract.ByTimeout] == 0 || l.Closes == 0 || l.DeadLetters[contract.ReasonUnknownRequest] == 0 ||
		l.SecondRequests == 0 || l.SplurgeRequests == 0 {
		t.Fatalf("seed 1: the lifecycle did not show (answers, timeouts, closes, unknown requests):\n%s", failures(rep))
	}
	for _, c := range rep.Audit {
		if c.Checked == 0 && c.Skipped == "" && strings.Contains("review_resolved resolution_has_reason return_deadline_close exposure_cap_kept order_refunds_within_paid policy_on_every_output dead_letter_subject order_ceiling_rejects valid_after_invalid", c.Name) {
			t.Errorf("seed 1: check %s applied to nothing", c.Name)
		}
	}
	var page strings.Builder
	if err := rep.WriteHTML(&page); err != nil || !strings.Contains(page.String(), "<svg") && !strings.Contains(page.String(), "createElementNS") {
		t.Fatalf("html report: %v", err)
	}
	if strings.Contains(page.String(), "http://") && !strings.Contains(page.String(), "http://www.w3.org/2000/svg") {
		t.Fatalf("html report references external assets")
	}
}

func TestLatencyShowsInjectedDelay(t *testing.T) {
	const delay = 30 * time.Millisecond
	rep := runAgainst(t, &fakeDaemon{delay: delay}, Config{Shape: Steady{EventsPerSec: 400, Duration: 2 * time.Second}, World: smallWorld(2)})
	if !rep.Passed {
		t.Fatalf("seed 2:\n%s", failures(rep))
	}
	l := rep.Latency
	if l.Count != rep.Requests || l.Count < 10 {
		t.Fatalf("seed 2: %d latencies for %d requests", l.Count, rep.Requests)
	}
	// Every decision waited at least the injected delay, and most of them
	// little more (loopback NATS, race detector).
	if min := l.Distribution[0].Ms; min < ms(delay) {
		t.Fatalf("seed 2: fastest decision %.2fms, below the injected %v", min, delay)
	}
	if l.P50Ms > ms(delay)+50 {
		t.Fatalf("seed 2: p50 %.2fms, want about %v", l.P50Ms, delay)
	}
	// The delay is the target's, before it stores the decision: the
	// stored -> seen stage times every decision and leaves the delay out.
	if v := rep.Visible; v == nil || v.Count != l.Count || v.P50Ms >= ms(delay) {
		t.Fatalf("seed 2: stored->seen %+v for %d decisions delayed %v before storing", v, l.Count, delay)
	}
}

// A receiver that takes 20 ms per request, offered ~95 requests/s, falls
// behind; the sender must keep its schedule anyway and the latencies
// must show the queue (coordinated omission corrected), not the 20 ms
// service time.
func TestOpenLoopWithSlowReceiver(t *testing.T) {
	const dur = 2 * time.Second
	rep := runAgainst(t, &fakeDaemon{delay: 20 * time.Millisecond, serial: true},
		Config{Shape: Steady{EventsPerSec: 1000, Duration: dur}, World: smallWorld(3)})
	if !rep.Passed {
		t.Fatalf("seed 3:\n%s", failures(rep))
	}
	if rep.SendSec < dur.Seconds()-0.05 || rep.SendSec > dur.Seconds()+0.5 {
		t.Fatalf("seed 3: sending took %.2fs for a %v schedule: the sender waited for the receiver", rep.SendSec, dur)
	}
	if rep.Publish.Sent < 1900 {
		t.Fatalf("seed 3: sent %d events, want ~2000", rep.Publish.Sent)
	}
	if rep.Latency.P99Ms < 500 || rep.Latency.P50Ms < 100 {
		t.Fatalf("seed 3: p50 %.1fms p99 %.1fms max %.1fms: the queue behind a slow receiver does not show", rep.Latency.P50Ms, rep.Latency.P99Ms, rep.Latency.MaxMs)
	}
	if rep.DrainSec < 0.2 {
		t.Fatalf("seed 3: drained in %.2fs: the receiver was not behind", rep.DrainSec)
	}
}

func TestAuditCatchesPlantedViolations(t *testing.T) {
	f := &fakeDaemon{skipDecision: map[string]bool{"rt-0": true, "rt-3": true}, doubleRefund: map[string]bool{}}
	g, _ := world.NewGenerator(smallWorld(4))
	for i := range 2000 {
		f.doubleRefund[g.RequestID(int32(i))] = true
	}
	rep := runAgainst(t, f, Config{Shape: Steady{EventsPerSec: 600, Duration: 2 * time.Second}, World: smallWorld(4),
		DrainTimeout: 2 * time.Second})
	if rep.Passed {
		t.Fatalf("seed 4: planted faults passed the audit:\n%s", failures(rep))
	}
	failed := map[string]audit.Check{}
	for _, c := range rep.Failed() {
		failed[c.Name] = c
	}
	if c, ok := failed["decision_exactly_once"]; !ok || c.Failed != 2 {
		t.Errorf("seed 4: missing decisions: %+v", c)
	}
	if _, ok := failed["refund_at_most_once"]; !ok {
		t.Errorf("seed 4: double refunds not caught")
	}
	if _, ok := failed["drained"]; !ok {
		t.Errorf("seed 4: undrained run not reported")
	}
}

func TestStepFindsTheLimit(t *testing.T) {
	rep := runAgainst(t, &fakeDaemon{delay: 10 * time.Millisecond, serial: true},
		Config{Shape: Step{Start: 300, Increment: 600, StepDuration: 2 * time.Second, MaxSteps: 5}, World: smallWorld(6),
			P99Target: 200 * time.Millisecond})
	if len(rep.Steps) == 0 {
		t.Fatalf("seed 6: no step judged:\n%s", failures(rep))
	}
	t.Log(failures(rep))
	last := rep.Steps[len(rep.Steps)-1]
	if last.Sustained || len(rep.Steps) == 5 {
		t.Fatalf("seed 6: the step run never hit the receiver's limit:\n%s", failures(rep))
	}
	if rep.MaxSustainableRate >= 1500 {
		t.Fatalf("seed 6: max sustainable %.0f events/s is above the receiver's capacity (~1250):\n%s", rep.MaxSustainableRate, failures(rep))
	}
	if !rep.Passed {
		t.Fatalf("seed 6:\n%s", failures(rep))
	}
}

func TestBacklogClear(t *testing.T) {
	f := func(series []Sample, wantMax int64, wantAt, wantClear float64) {
		t.Helper()
		r := &Report{Series: series}
		r.setBacklog()
		if r.BacklogMax != wantMax || r.BacklogMaxAtSec != wantAt || r.BacklogClearSec != wantClear {
			t.Fatalf("backlog max %d at %v cleared %v, want %d at %v cleared %v", r.BacklogMax, r.BacklogMaxAtSec, r.BacklogClearSec,
				wantMax, wantAt, wantClear)
		}
	}
	s := func(t float64, offered float64, inbound, pending int64) Sample {
		return Sample{T: t, Offered: offered, Inbound: inbound, Pending: pending}
	}
	// Inbound backlog peaks at 2s, falls under 100 ms of traffic (100 of
	// 1000/s) at 5s.
	f([]Sample{s(1, 1000, 50, 0), s(2, 1000, 5000, 9), s(3, 1000, 900, 0), s(4, 1000, 101, 0), s(5, 1000, 100, 0)}, 5000, 2, 3)
	// Not visible inbound: requests without a decision; never cleared.
	f([]Sample{s(1, 100, -1, 5), s(2, 100, -1, 40), s(3, 100, -1, 30)}, 40, 2, -1)
	f(nil, 0, 0, -1)
}
