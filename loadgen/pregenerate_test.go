package loadgen

import (
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/loadgen/world"
)

// A throughput run's pre-generated events are dated no later than the
// moment generation ends, so none is ahead of its send.
func TestPregeneratedNotAhead(t *testing.T) {
	cfg := Config{Mode: ModeThroughput, Events: 20000, World: WorldOptions{Seed: 3, RunID: "t", Shoppers: 2000, Merchants: 50,
		BadFraction: 0.05}}.withDefaults()
	g, err := world.NewGenerator(cfg.World)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{cfg: cfg, gen: g}
	r.pregenerate()
	done := time.Now()
	for i, e := range r.pre {
		if at := testkit.EventAt(t, e.payload); at.After(done) {
			t.Fatalf("seed 3: pre-generated event %d dated %v after generation ended", i, at.Sub(done))
		}
	}
	if len(g.Bads) != 0 {
		t.Fatalf("seed 3: a throughput run planned %d events that must be dead-lettered", len(g.Bads))
	}
}
