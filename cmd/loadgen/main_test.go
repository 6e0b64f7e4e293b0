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
	if s := f(0, "--help"); !strings.Contains(s, "-shape") || !strings.Contains(s, "-classic-world") {
		t.Fatalf("--help does not list the flags:\n%s", s)
	}
	f(2, "--shape", "sawtooth")
	f(2, "--mode", "bogus")
	f(2, "--run-id", "has space")
	f(2, "--progress", "sometimes")
	f(2, "extra-arg")
	// Faults and thresholds are checked before anything runs.
	for _, args := range [][]string{
		{"--faults", "kill9"},                                              // no offset
		{"--faults", "kill9@15"},                                           // no unit
		{"--faults", "kill9@1s,start@2s"},                                  // nothing spawned, no --fault-cmd
		{"--spawn", "bin/flashreturnd", "--faults", "kill9@1s"},            // left stopped
		{"--spawn", "bin/flashreturnd", "--faults", "start@1s"},            // already running
		{"--spawn", "bin/flashreturnd", "--faults", "reboot@1s"},           // unknown action
		{"--spawn", "bin/flashreturnd", "--faults", "kill9@29s,start@30s"}, // after the 30s run
		{"--spawn", "bin/flashreturnd 'unterminated"},
		{"--threshold", "p99<10"},
		{"--threshold", "p98<10ms"},
		{"--threshold", "decided>101%"},
		{"--retry-for", "5m"},
		{"--partitions", "-2"},
	} {
		if s := f(2, args...); !strings.Contains(s, "loadgen: ") && !strings.Contains(s, "invalid value") {
			t.Fatalf("loadgen %q: no reason given:\n%s", args, s)
		}
	}
	if s := f(0, "--help"); !strings.Contains(s, "4 audit passed but a --threshold was broken") || !strings.Contains(s, "-faults") {
		t.Fatalf("--help does not document the exit codes and faults:\n%s", s)
	}
	// A valid configuration with nothing listening fails to run (3), fast.
	f(3, "--nats-url", "nats://127.0.0.1:1", "--duration", "1s")
}
