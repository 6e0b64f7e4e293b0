package opsmetrics

import (
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashreturn/flashreturn/pipeline/httpapi"
)

// TestStatusWindow checks the rate window and the quantile estimate.
func TestStatusWindow(t *testing.T) {
	var a, b LatencySnapshot
	if q, n := Quantile(0.99, a, b); n != 0 || q == q {
		t.Fatalf("empty: %v %d", q, n)
	}
	b[0] = 99 // ≤ 0.5 ms
	b[10] = 1 // (0.5 s, 1 s]
	if q, n := Quantile(0.5, a, b); n != 100 || q <= 0 || q > 0.0005 {
		t.Fatalf("p50 = %v (%d)", q, n)
	}
	if q, _ := Quantile(0.995, a, b); q <= 0.5 || q > 1 {
		t.Fatalf("p99.5 = %v", q)
	}
	b[len(b)-1] = 1000 // +Inf
	if q, _ := Quantile(0.99, a, b); q != decisionBuckets[len(decisionBuckets)-1] {
		t.Fatalf("p99 in +Inf = %v", q)
	}

	o := New(metrics.NewSet())
	t0 := o.Start
	if base := o.Window(Sample{At: t0.Add(100 * time.Millisecond)}); !base.At.Equal(t0) {
		t.Fatalf("first window base %v, want start", base.At)
	}
	o.Window(Sample{At: t0.Add(2 * time.Second), Events: 10})
	if base := o.Window(Sample{At: t0.Add(4 * time.Second), Events: 30}); base.Events != 0 || !base.At.Equal(t0.Add(100*time.Millisecond)) {
		t.Fatalf("base %+v", base)
	}
	if base := o.Window(Sample{At: t0.Add(18 * time.Second), Events: 90}); base.Events != 30 {
		t.Fatalf("after 18s base %+v, want the 4s sample", base)
	}
}

// TestDeadLetterRing checks the recent dead letters order and bound.
func TestDeadLetterRing(t *testing.T) {
	o := New(metrics.NewSet())
	for i := range deadLetterKeep + 7 {
		o.AddDeadLetters([]httpapi.DeadLetterInfo{{StreamSeq: uint64(i)}})
		got := o.RecentDeadLetters()
		if len(got) != min(i+1, deadLetterKeep) || got[0].StreamSeq != uint64(i) || got[len(got)-1].StreamSeq != uint64(max(0, i+1-deadLetterKeep)) {
			t.Fatalf("after %d: %d entries, newest %d, oldest %d", i, len(got), got[0].StreamSeq, got[len(got)-1].StreamSeq)
		}
	}
}
