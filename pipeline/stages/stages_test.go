package stages

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

var testBuckets = metrics.ExponentialBuckets(50e-6, 2, 20)

// scrape returns set's exposition text.
func scrape(set *metrics.Set) string {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	return b.String()
}

// TestEvents: per-event timings are observed once, when the batch is
// applied; a reset apply is dropped; negative durations count as 0.
func TestEvents(t *testing.T) {
	set := metrics.NewSet()
	h := New(set, testBuckets)
	e := NewEvents(h)
	base := time.Unix(1000, 0)
	// An apply thrown away (a core panic) counts nothing.
	e.Add(base.UnixNano(), base.Add(time.Millisecond).UnixNano())
	e.Reset()
	// stored 3 ms before pulled; pulled 2 ms before the batch applied.
	e.Add(base.UnixNano(), base.Add(3*time.Millisecond).UnixNano())
	// The server's clock ahead of ours: counted as 0, not dropped.
	e.Add(base.Add(time.Second).UnixNano(), base.Add(3*time.Millisecond).UnixNano())
	e.Applied(base.Add(5 * time.Millisecond))
	e.Applied(base.Add(time.Hour)) // nothing staged any more
	h.Observe(Commit, 4*time.Millisecond)
	out := scrape(set)
	for _, want := range []string{
		"flashreturn_stage_stored_pulled_seconds_count 2\n",
		"flashreturn_stage_stored_pulled_seconds_sum 0.003\n",
		"flashreturn_stage_pulled_applied_seconds_count 2\n",
		"flashreturn_stage_pulled_applied_seconds_sum 0.004\n",
		"flashreturn_stage_commit_seconds_count 1\n",
		"flashreturn_stage_publish_ack_seconds_count 0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q in:\n%s", want, out)
		}
	}
}

// TestNoAllocs: staging and observing allocate nothing once the buffer
// has grown to a batch's size (the worker's hot path).
func TestNoAllocs(t *testing.T) {
	h := New(metrics.NewSet(), testBuckets)
	e := NewEvents(h)
	now := time.Now()
	batch := func() {
		for i := range 64 {
			e.Add(now.UnixNano(), now.UnixNano()+int64(i))
		}
		e.Applied(now)
		h.Observe(Commit, time.Millisecond)
	}
	batch()
	if n := testing.AllocsPerRun(100, batch); n != 0 {
		t.Fatalf("%v allocations per batch, want 0", n)
	}
}

// TestNames: the metric names the dashboard queries (deploy/grafana's
// pipelineStages) are these; a rename must fail here first.
func TestNames(t *testing.T) {
	var got []string
	for s := range NumStages {
		got = append(got, s.Metric())
	}
	want := "[flashreturn_stage_stored_pulled_seconds flashreturn_stage_pulled_applied_seconds flashreturn_stage_commit_seconds flashreturn_stage_publish_ack_seconds]"
	if fmt.Sprint(got) != want {
		t.Fatalf("names %v, want %s", got, want)
	}
}

// TestBetween: the status page's mirror counts what the histograms count,
// per stage, and summarises only what happened between two snapshots.
func TestBetween(t *testing.T) {
	h := New(metrics.NewSet(), []float64{0.001, 0.01, 0.1})
	idle := h.Between(Snapshot{}, h.Snapshot())
	for _, s := range idle {
		if s.Count != 0 || s.P50 != -1 || s.P99 != -1 {
			t.Fatalf("idle %v: %+v", s.Stage, s)
		}
	}
	h.Observe(Commit, 50*time.Millisecond) // before the window
	from := h.Snapshot()
	for range 99 {
		h.Observe(Commit, 500*time.Microsecond) // (0, 1 ms]
	}
	h.Observe(Commit, 10*time.Millisecond) // on a bound: its bucket, (1, 10 ms]
	h.Observe(PublishAck, time.Minute)     // +Inf
	h.Observe(StoredPulled, -time.Second)  // counted as 0
	got := h.Between(from, h.Snapshot())
	if c := got[Commit]; c.Count != 100 || c.P50 <= 0 || c.P50 > 0.001 || c.P99 <= 0 || c.P99 > 0.001 {
		t.Fatalf("commit %+v", c)
	}
	// p99.5 lies in the (1, 10 ms] bucket only if the 10 ms was counted there.
	to := h.Snapshot()[Commit]
	diff := []uint64{to[0] - from[Commit][0], to[1] - from[Commit][1], to[2] - from[Commit][2], to[3] - from[Commit][3]}
	if q := Quantile(0.995, h.bounds, diff, 100); q <= 0.001 || q > 0.01 {
		t.Fatalf("p99.5 %v, want in (1, 10 ms]", q)
	}
	if p := got[PublishAck]; p.Count != 1 || p.P99 != 0.1 {
		t.Fatalf("publish_ack in +Inf %+v, want p99 at the last bound", p)
	}
	if s := got[StoredPulled]; s.Count != 1 || s.P99 < 0 || s.P99 > 0.001 {
		t.Fatalf("stored_pulled %+v", s)
	}
	if p := got[PulledApplied]; p.Count != 0 || p.P50 != -1 || p.Stage != PulledApplied {
		t.Fatalf("pulled_applied %+v", p)
	}
	if all := h.Between(Snapshot{}, h.Snapshot()); all[Commit].Count != 101 {
		t.Fatalf("since start %+v", all[Commit])
	}
}
