package loadgen

import (
	"strings"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/loadgen/faults"
)

func TestConfigValidatesFaults(t *testing.T) {
	base := Config{Shape: Steady{EventsPerSec: 100, Duration: 10 * time.Second}, Spawn: "bin/flashreturnd --data-dir /tmp/x"}
	f := func(mod func(*Config), wantErr string) {
		t.Helper()
		c := base
		mod(&c)
		err := c.Validate()
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("%v", err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Fatalf("error %v, want one containing %q", err, wantErr)
		}
	}
	faults := func(s string) []faults.Fault { fs, _ := faults.ParseFaults(s); return fs }
	f(func(c *Config) { c.Faults = faults("kill9@5s,start@6s") }, "")
	f(func(c *Config) { c.Faults = faults("kill9@5s,start@10s") }, "not before the end")
	f(func(c *Config) { c.Faults = faults("kill9@5s,start@6s"); c.Spawn = "" }, "not spawned")
	f(func(c *Config) { c.Spawn = `bin/flashreturnd --data-dir "/tmp/x` }, "unterminated")
	f(func(c *Config) { c.RetryFor = 3 * time.Minute }, "retry-for")
	f(func(c *Config) { c.RetryFor = -time.Second }, "retry-for")
	f(func(c *Config) { c.Partitions = -1 }, "partitions")
	f(func(c *Config) { c.Thresholds = []Threshold{{Expr: "x<1", Metric: "x"}} }, "unknown metric")
}
