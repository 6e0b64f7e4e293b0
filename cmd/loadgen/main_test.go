package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	f := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if got := run(args, &out, &errb); got != want {
			t.Fatalf("loadgen %v: exit %d, want %d; stderr:\n%s", args, got, want, errb.String())
		}
		return errb.String()
	}
	if s := f(0, "--help"); !strings.Contains(s, "--shape") && !strings.Contains(s, "-shape") {
		t.Fatalf("--help does not list the flags:\n%s", s)
	}
	f(2, "--shape", "sawtooth")
	f(2, "--mode", "bogus")
	f(2, "--run-id", "has space")
	f(2, "--progress", "sometimes")
	f(2, "extra-arg")
	// A valid configuration with nothing listening fails to run (3), fast.
	f(3, "--nats-url", "nats://127.0.0.1:1", "--duration", "1s")
}
