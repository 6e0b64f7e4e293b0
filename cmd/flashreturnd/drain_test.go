package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/testkit"
)

// TestGracefulDrain: SIGTERM while events are in flight makes the daemon
// finish its batch and exit 0 within 10 seconds.
func TestGracefulDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("process test skipped in -short mode")
	}
	dir := t.TempDir()
	natsPort, httpPort := testkit.FreePort(t), testkit.FreePort(t)
	c := startChild(t, dir, natsPort, httpPort)
	publishAll(t, c.natsURL, world(0, 100))
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := c.cmd.Wait()
	if err != nil {
		t.Fatalf("daemon exit after SIGTERM: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("drain took %v, want under 10s", took)
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}
