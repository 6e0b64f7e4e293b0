package loadgen

import (
	"fmt"
	"io"
	"time"
)

// Modes of a run.
const (
	// ModeScenario sends the world's traffic on a [Shape]'s schedule and
	// audits the outputs.
	ModeScenario = "scenario"
	// ModeThroughput pre-generates Config.Events valid events, sends them
	// at Config.Rate (or as fast as the in-flight bound allows) and
	// measures how fast the target processes them.
	ModeThroughput = "throughput"
)

// What a throughput run waits for before it calls the events processed.
const (
	// ExpectDecisions: every request has its decision and the inbound
	// consumers have nothing pending (flashreturnd).
	ExpectDecisions = "decisions"
	// ExpectOutputs: one output on fr.out.> per event sent (the relay).
	ExpectOutputs = "outputs"
)

// Config is one run's configuration. The zero value, apart from Shape,
// means the documented defaults; see each field.
type Config struct {
	// NATSURL is the server to publish to and read from; empty means
	// nats://127.0.0.1:4222 (flashreturnd's embedded server).
	NATSURL string
	// Mode is ModeScenario (default) or ModeThroughput.
	Mode string
	// Shape is the traffic shape of a scenario run; nil means Steady at
	// 1000 events/s for 30 s. A Step shape stops at the first step the
	// target cannot sustain.
	Shape Shape
	// World seeds and sizes the simulated marketplace.
	World WorldOptions
	// Events is the number of events of a throughput run; 0 means 1000000.
	Events int
	// Rate is the offered rate of a throughput run in events/s; 0 means
	// as fast as MaxInFlight allows.
	Rate float64
	// Expect is what a throughput run waits for: ExpectDecisions (default)
	// or ExpectOutputs.
	Expect string
	// P99Target is the p99 request-to-decision latency a step must stay
	// under to count as sustained; 0 means 10 ms.
	P99Target time.Duration
	// MaxInFlight bounds unacknowledged asynchronous publishes; 0 means
	// 4096.
	MaxInFlight int
	// StallWait is how long one publish may wait for an in-flight slot
	// before it is retried (and counted as a stall); 0 means 200 ms.
	StallWait time.Duration
	// ReadyTimeout bounds the wait for the target's streams (FR_OUT,
	// FR_DLQ, FR_MERCHANT) to exist; 0 means 30 s.
	ReadyTimeout time.Duration
	// DrainTimeout bounds the wait for outputs after the last send; 0
	// means 30 s for a scenario, 10 minutes for a throughput run.
	DrainTimeout time.Duration
	// QuietPeriod is how long no output may arrive before a drained run
	// stops listening (catching late duplicates); 0 means 1 s.
	QuietPeriod time.Duration
	// Policy names the daemon's platform policy for the audit's
	// expectations; empty means the policy the decisions name.
	Policy string
	// InboundPrefix is the name prefix of the target's inbound streams,
	// whose consumers' pending counts are the inbound backlog; empty means
	// "FR_IN".
	InboundPrefix string
	// Progress, when not nil, gets one progress line per second.
	Progress io.Writer
}

func (c Config) withDefaults() Config {
	if c.NATSURL == "" {
		c.NATSURL = "nats://127.0.0.1:4222"
	}
	if c.Mode == "" {
		c.Mode = ModeScenario
	}
	if c.Shape == nil {
		c.Shape = Steady{EventsPerSec: 1000, Duration: 30 * time.Second}
	}
	if d, ok := c.Shape.(Double11); ok {
		c.Shape = d.withDefaults()
	}
	if c.Events == 0 {
		c.Events = 1_000_000
	}
	if c.Expect == "" {
		c.Expect = ExpectDecisions
	}
	if c.P99Target == 0 {
		c.P99Target = 10 * time.Millisecond
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 4096
	}
	if c.StallWait == 0 {
		c.StallWait = 200 * time.Millisecond
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 30 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
		if c.Mode == ModeThroughput {
			c.DrainTimeout = 10 * time.Minute
		}
	}
	if c.QuietPeriod == 0 {
		c.QuietPeriod = time.Second
	}
	if c.InboundPrefix == "" {
		c.InboundPrefix = "FR_IN"
	}
	c.World = c.World.withDefaults()
	return c
}

// Validate reports the first invalid setting of a defaulted config.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch c.Mode {
	case ModeScenario:
		if err := validateShape(c.Shape); err != nil {
			return err
		}
	case ModeThroughput:
		if c.Events < 1 || c.Rate < 0 {
			return fmt.Errorf("loadgen: throughput needs events >= 1 and rate >= 0")
		}
	default:
		return fmt.Errorf("loadgen: unknown mode %q (want %s or %s)", c.Mode, ModeScenario, ModeThroughput)
	}
	if c.Expect != ExpectDecisions && c.Expect != ExpectOutputs {
		return fmt.Errorf("loadgen: unknown expectation %q (want %s or %s)", c.Expect, ExpectDecisions, ExpectOutputs)
	}
	if c.MaxInFlight < 1 {
		return fmt.Errorf("loadgen: max in-flight %d must be positive", c.MaxInFlight)
	}
	return c.World.validate()
}
