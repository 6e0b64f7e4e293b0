package pipeline

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/streams"
)

// TestRunnerCommitsPartitionsTogether: one runner serving all eight
// partitions takes what each has buffered into one round and commits it
// in one transaction. The runner is held on its first event until every
// other event is delivered to the process, so the next round finds
// several partitions with messages; every event is then applied once and
// the round histogram shows a round of more than one partition.
func TestRunnerCommitsPartitionsTogether(t *testing.T) {
	h, release := startHeld(t, func(c *Config) { c.Runners = 1 })
	const users = 40
	parts := map[int]int{} // partition → events published to it
	for i := range users {
		u := fmt.Sprintf("u%d", i)
		h.pub("credit", u, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 1 + i%5})
		parts[wire.Partition(u, h.d.cfg.Partitions)]++
	}
	if len(parts) < 2 {
		t.Fatalf("the users fall in %d partition(s); the test needs several", len(parts))
	}
	// Delivered to the client, not yet acknowledged: the events sit in
	// the partitions' buffers while the runner is held.
	h.waitFor("every event delivered to the process", func() bool {
		for p, n := range parts {
			ctx, cancel := context.WithTimeout(context.Background(), streams.SetupCallTimeout)
			c, err := h.js.Consumer(ctx, streams.InStream(h.d.cfg.Layout, p), fmt.Sprintf("flashreturn_p%d", p))
			if err != nil {
				cancel()
				return false
			}
			info, err := c.Info(ctx)
			cancel()
			if err != nil || info.NumPending != 0 || info.NumAckPending < n {
				return false
			}
		}
		return true
	})
	release()
	h.waitFor("every event applied", func() bool {
		return metricValue(h.d, `flashreturn_events_in_total{type="credit.updated"}`) >= users+1
	})
	count, sum := scrapeHistograms(t, h.d)
	rounds := count["flashreturn_round_size_partitions"]
	if rounds == 0 || sum["flashreturn_round_size_partitions"] <= float64(rounds) {
		t.Fatalf("%d rounds committing %v partitions in all: no round committed two partitions together", rounds, sum["flashreturn_round_size_partitions"])
	}
	if got := metricValue(h.d, `flashreturn_events_in_total{type="credit.updated"}`); got != users+1 {
		t.Fatalf("events in: %d, want %d", got, users+1)
	}
}

// startHeld starts a harness (mutate: its config) whose runner is held
// on the first event it applies, a credit.updated of user "first" that
// startHeld publishes: everything published after stays buffered in the
// process (delivered, not acknowledged) until release is called.
func startHeld(t *testing.T, mutate func(*Config)) (h *harness, release func()) {
	t.Helper()
	blocked, held := make(chan struct{}), make(chan struct{})
	var once sync.Once
	applyHook = func(*core.Event) { once.Do(func() { close(blocked); <-held }) }
	t.Cleanup(func() { applyHook = nil })
	h = startHarness(t, "tmall-fast-return", mutate)
	var rel sync.Once
	release = func() { rel.Do(func() { close(held) }) }
	t.Cleanup(release) // before the harness stops (cleanups run last first)
	h.pub("credit", "first", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 3})
	<-blocked
	return h, release
}
