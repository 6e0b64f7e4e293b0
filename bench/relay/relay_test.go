package main

import (
	"context"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/loadgen"
)

// startRelay runs the relay in-process with 4 partitions in layout until
// the test ends and returns its URL; stop ends it and returns its error.
func startRelay(ctx context.Context, t *testing.T, layout string) (url string, stop func() error) {
	t.Helper()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	rctx, cancel := context.WithCancel(ctx)
	go func() {
		done <- run(rctx, options{listen: "127.0.0.1:-1", dataDir: t.TempDir(), layout: layout, partitions: 4, batch: 64},
			func(url string) { urls <- url })
	}()
	select {
	case url = <-urls:
	case err := <-done:
		cancel()
		t.Fatalf("relay exited before ready: %v", err)
	case <-ctx.Done():
		cancel()
		t.Fatal("relay not ready within 60s")
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return url, stop
}

// The relay, embedded in-process in each layout, relays every event of a
// loadgen throughput run exactly once (the audit checks the rest).
func TestRelayLayouts(t *testing.T) {
	for _, layout := range []string{"shared", "streams"} {
		t.Run(layout, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			url, stop := startRelay(ctx, t, layout)
			const events = 5000
			rep, err := loadgen.Run(ctx, loadgen.Config{NATSURL: url, Mode: loadgen.ModeThroughput, Events: events, Expect: loadgen.ExpectOutputs,
				World:        loadgen.WorldOptions{Seed: 9, RunID: "relay", Shoppers: 1000, Merchants: 20},
				DrainTimeout: 30 * time.Second, QuietPeriod: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Passed || !rep.Throughput.Completed {
				t.Fatalf("layout %s: relay run failed: passed=%v completed=%v failed=%+v", layout, rep.Passed, rep.Throughput.Completed, rep.Failed())
			}
			if rep.OutputsTotal != events {
				t.Fatalf("layout %s: %d relay outputs for %d events (duplicates or losses)", layout, rep.OutputsTotal, events)
			}
			if rep.Throughput.ProcessedPerSec <= 0 {
				t.Fatalf("layout %s: no processing rate: %+v", layout, rep.Throughput)
			}
			if err := stop(); err != nil {
				t.Fatalf("layout %s: relay: %v", layout, err)
			}
		})
	}
}

// A scenario run against the relay (--expect outputs) times each
// request's echo as its answer: every request is answered once and
// timed, nothing is audited as a decision or a dead letter (the relay
// echoes malformed events too), and the run passes. This is
// the transport's own latency that make bench puts next to the
// daemon's.
func TestRelayScenarioLatency(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url, stop := startRelay(ctx, t, "streams")
	rep, err := loadgen.Run(ctx, loadgen.Config{NATSURL: url, Shape: loadgen.Steady{EventsPerSec: 800, Duration: 2 * time.Second},
		Expect:       loadgen.ExpectOutputs,
		World:        loadgen.WorldOptions{Seed: 11, RunID: "relaylat", Shoppers: 500, Merchants: 20, ReturnFraction: 0.3, BadFraction: 0.01},
		DrainTimeout: 30 * time.Second, QuietPeriod: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed || !rep.Drained {
		t.Fatalf("relay scenario failed: passed=%v drained=%v failed=%+v", rep.Passed, rep.Drained, rep.Failed())
	}
	if rep.Requests == 0 || rep.Decided != rep.Requests || rep.Latency.Count != rep.Requests {
		t.Fatalf("requests %d, answered %d, timed %d: want every request answered and timed once", rep.Requests, rep.Decided, rep.Latency.Count)
	}
	if len(rep.Decisions) != 0 {
		t.Fatalf("decisions counted against the relay: %v", rep.Decisions)
	}
	// Only the echoes of fr.in.return.* were read, never one per event.
	if n := rep.Outputs["relay"]; n < rep.Requests || n >= int64(rep.Publish.Acked) {
		t.Fatalf("%d relay echoes read for %d requests and %d events: want the return echoes only", n, rep.Requests, rep.Publish.Acked)
	}
	if rep.Params.Expect != loadgen.ExpectOutputs {
		t.Fatalf("report's expect %q", rep.Params.Expect)
	}
	if err := stop(); err != nil {
		t.Fatalf("relay: %v", err)
	}
}
