package main

import (
	"context"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/loadgen"
)

// The relay, embedded in-process in each layout, relays every event of a
// loadgen throughput run exactly once (the audit checks the rest).
func TestRelayLayouts(t *testing.T) {
	for _, layout := range []string{"shared", "streams"} {
		t.Run(layout, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			urls := make(chan string, 1)
			done := make(chan error, 1)
			rctx, stop := context.WithCancel(ctx)
			go func() {
				done <- run(rctx, options{listen: "127.0.0.1:-1", dataDir: t.TempDir(), layout: layout, partitions: 4, batch: 64},
					func(url string) { urls <- url })
			}()
			var url string
			select {
			case url = <-urls:
			case err := <-done:
				t.Fatalf("relay exited before ready: %v", err)
			case <-ctx.Done():
				t.Fatal("relay not ready within 60s")
			}
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
			stop()
			if err := <-done; err != nil {
				t.Fatalf("layout %s: relay: %v", layout, err)
			}
		})
	}
}
