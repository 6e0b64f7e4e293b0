package pipeline

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/flashreturn/flashreturn/pipeline/stages"
)

// scrapeHistograms reads d's /metrics over HTTP (what Prometheus reads),
// or its metrics set when it serves no HTTP, and returns every
// histogram's _count and _sum by metric name.
func scrapeHistograms(t *testing.T, d *Daemon) (count map[string]uint64, sum map[string]float64) {
	t.Helper()
	var body []byte
	if d.cfg.HTTPAddr == "off" {
		var b bytes.Buffer
		d.cfg.Metrics.WritePrometheus(&b)
		body = b.Bytes()
	} else {
		resp, err := http.Get("http://" + d.HTTPAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	count, sum = map[string]uint64{}, map[string]float64{}
	for _, l := range strings.Split(string(body), "\n") {
		name, val, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		if n, ok := strings.CutSuffix(name, "_count"); ok {
			var v uint64
			fmt.Sscan(val, &v)
			count[n] = v
		} else if n, ok := strings.CutSuffix(name, "_sum"); ok {
			var v float64
			fmt.Sscan(val, &v)
			sum[n] = v
		}
	}
	return count, sum
}

// TestStageHistograms: events flowing through a real daemon are timed in
// every stage: each applied event once in the per-event stages, each
// batch once in commit (as many as batch_size counts), each batch with
// outputs in publish_ack; and the figures are plausible durations.
func TestStageHistograms(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	h.merchant("m1", []string{"Hangzhou return desk"}, []string{"Hangzhou warehouse"}, nil)
	h.pub("credit", "u1", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 4})
	h.order("u1", "o1", "m1", 12900, "2026-11-11T15:00:00+08:00", nil)
	h.pub("return", "u1", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": true})
	h.pubRaw("fr.in.return.u2", "bad-json-1", []byte(`{"event_id":`)) // a dead letter is an event too
	h.waitOut("fr.out.decision.u1", 1)
	h.waitOut("fr.dlq.", 1)
	const events = 6 // credit, paid, shipped, delivered, request, bad JSON
	var count map[string]uint64
	var sum map[string]float64
	h.waitFor("every stage observed", func() bool {
		count, sum = scrapeHistograms(t, h.d)
		return count[stages.StoredPulled.Metric()] >= events && count[stages.PublishAck.Metric()] >= 1
	})
	for _, s := range []stages.Stage{stages.StoredPulled, stages.PulledApplied} {
		if n := count[s.Metric()]; n != events {
			t.Errorf("%s: %d events, want %d", s.Metric(), n, events)
		}
	}
	// Every runner round commits once (one transaction for all its
	// partitions) and counts its partitions once; every partition batch
	// counts once.
	c, rounds, b := count[stages.Commit.Metric()], count["flashreturn_round_size_partitions"], count["flashreturn_batch_size_events"]
	if c != rounds || c == 0 || b == 0 || b > events {
		t.Errorf("commit observed %d times, rounds %d, batches %d (events %d)", c, rounds, b, events)
	}
	if p := count[stages.PublishAck.Metric()]; p > b {
		t.Errorf("publish_ack observed %d times, more than the %d batches", p, b)
	}
	for s := range stages.NumStages {
		if v := sum[s.Metric()]; v < 0 || v > 60*float64(events) {
			t.Errorf("%s: sum %v s", s.Metric(), v)
		}
	}
	// The broker and the process share a clock here: every event waited
	// a little between storage and delivery, so the sum is not all zeros
	// (it would be if stored → pulled read the wrong timestamps).
	if sum[stages.StoredPulled.Metric()] <= 0 || sum[stages.Commit.Metric()] <= 0 {
		t.Errorf("stored_pulled sum %v, commit sum %v: want > 0", sum[stages.StoredPulled.Metric()], sum[stages.Commit.Metric()])
	}
}
