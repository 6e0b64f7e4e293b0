package loadgen_test

import (
	"context"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/loadgen"
	"github.com/flashreturn/flashreturn/pipeline"
)

// TestSmokeAgainstDaemon runs loadgen for a few seconds at a small rate
// against the real daemon (embedded NATS and Badger in a temp dir) and
// requires the audit to pass: every request exactly one decision, no
// refund twice or over the paid amount, every malformed event
// dead-lettered with its reason.
func TestSmokeAgainstDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("smoke run skipped in -short mode")
	}
	pol, _ := core.Preset("tmall-fast-return")
	d, err := pipeline.New(pipeline.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", HTTPAddr: "off", Policy: pol, Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	select {
	case <-d.Started():
	case err := <-done:
		t.Fatalf("daemon stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not start")
	}
	rep, err := loadgen.Run(ctx, loadgen.Config{
		NATSURL: d.ClientURL(),
		Shape:   loadgen.Steady{EventsPerSec: 300, Duration: 4 * time.Second},
		World:   loadgen.WorldOptions{Seed: 7, Shoppers: 300, Merchants: 20, BadFraction: 0.02},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed {
		for _, c := range rep.Audit {
			t.Logf("%+v", c)
		}
		t.Fatal("audit failed")
	}
	if rep.Decisions["approved"] == 0 || rep.DeadLetters == 0 {
		t.Fatalf("smoke run too small to prove anything: decisions %v, %d dead letters", rep.Decisions, rep.DeadLetters)
	}
}
