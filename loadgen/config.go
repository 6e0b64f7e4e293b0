package loadgen

import (
	"fmt"
	"io"
	"time"

	"github.com/flashreturn/flashreturn/loadgen/contract"
	"github.com/flashreturn/flashreturn/loadgen/faults"
	"github.com/flashreturn/flashreturn/loadgen/world"
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
	// ExpectOutputs: the target is the no-op relay, which echoes every
	// event to fr.out.relay.<kind>.<user>. A throughput run counts one
	// output per event; a scenario run times each return.requested's echo
	// as its answer (the transport's own latency, the baseline of the
	// daemon's) and audits neither decisions nor dead letters, since the
	// relay echoes malformed events as it echoes the rest.
	ExpectOutputs = "outputs"
)

// WorldOptions sizes and seeds the simulated marketplace; it is
// [world.Options], named here so that callers that configure a run
// (cmd/loadgen, bench/relay) need only this package.
type WorldOptions = world.Options

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
	// Expect is what the target answers: ExpectDecisions (flashreturnd,
	// the default) or ExpectOutputs (the relay).
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

	// Spawn, when not empty, is the command line of the target (a
	// flashreturnd) that Run starts as its child before the first send
	// and stops at the end (SIGTERM, SIGKILL after 15 s). It is split
	// into words as a shell would for plain words and quotes, without
	// expansions. Its data directory, named on the command line, lives on
	// across the faults' kills and restarts.
	Spawn string
	// SpawnNATS, when not empty, is the command line of a nats-server
	// Run starts before Spawn (ready once NATSURL's port accepts) and
	// stops after it; faults name it TargetNATS.
	SpawnNATS string
	// SpawnReady is the URL whose 200 says Spawn's process is ready;
	// empty means flashreturnd's /readyz at the --http address of the
	// command line (127.0.0.1:8080 when flashreturnd names none), or, for
	// another program or --http off, NATSURL's port accepting; "none"
	// means no wait beyond the streams'.
	SpawnReady string
	// SpawnLogDir is where the spawned processes' stdout and stderr go,
	// one file per process (loadgen-<run id>-<target>.log); empty means
	// os.TempDir().
	SpawnLogDir string
	// KeepSpawned leaves the spawned processes running at the end.
	KeepSpawned bool
	// FaultCmd, when not empty, carries out each fault whose target Run
	// did not spawn: it runs as sh -c FaultCmd with the action and the
	// target as $1 and $2 and in FLASHRETURN_FAULT and
	// FLASHRETURN_FAULT_TARGET (the planned offset in seconds in
	// FLASHRETURN_FAULT_AT), for at most a minute.
	FaultCmd string
	// Faults is the fault schedule ([faults.ParseFaults]); nil means none.
	Faults []faults.Fault
	// FaultLog, when not nil, gets one line per fault as it is carried
	// out.
	FaultLog io.Writer
	// Partitions is the target's partition count, to map decisions to
	// partitions for the decision gaps; 0 means the --partitions of the
	// Spawn command line, else 64.
	Partitions int
	// RetryFor bounds how long an event whose publish failed is re-sent
	// (with the same Nats-Msg-Id, backoff 50 ms doubling to 1 s) before
	// it is given up and counted as failed; 0 means 60 s. At most 2
	// minutes, the contract's duplicate window, so that a re-send of an
	// event stored after all is never stored twice.
	RetryFor time.Duration
	// Thresholds are evaluated on the report at the end
	// ([Report.ApplyThresholds]).
	Thresholds []Threshold
}

// maxRetryFor is the contract's minimum duplicate window of the inbound
// streams.
const maxRetryFor = 2 * time.Minute

// withDefaults fills in every zero field with its documented default.
// It returns a copy and never fails: Validate calls it first and judges
// the result, so a caller's Config is never changed under it.
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
		c.InboundPrefix = contract.StreamIn
	}
	if c.Partitions == 0 {
		c.Partitions = faults.SpawnPartitions(c.Spawn)
	}
	if c.Partitions == 0 {
		c.Partitions = 64
	}
	if c.RetryFor == 0 {
		c.RetryFor = time.Minute
	}
	c.World = c.World.WithDefaults()
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
	if c.Partitions < 1 {
		return fmt.Errorf("loadgen: partitions %d must be positive", c.Partitions)
	}
	if c.RetryFor < 0 || c.RetryFor > maxRetryFor {
		return fmt.Errorf("loadgen: retry-for %v outside (0, %v]: a re-send after the duplicate window could be stored twice", c.RetryFor, maxRetryFor)
	}
	for name, cmd := range map[string]string{faults.TargetDaemon: c.Spawn, faults.TargetNATS: c.SpawnNATS} {
		if cmd == "" {
			continue
		}
		if _, err := faults.SplitCommand(cmd); err != nil {
			return fmt.Errorf("loadgen: spawn %s: %w", name, err)
		}
	}
	spawned := map[string]bool{faults.TargetDaemon: c.Spawn != "", faults.TargetNATS: c.SpawnNATS != ""}
	if err := faults.Validate(c.Faults, spawned, c.FaultCmd != ""); err != nil {
		return err
	}
	if c.Mode == ModeScenario {
		for _, f := range c.Faults {
			if f.At >= c.Shape.Length() {
				return fmt.Errorf("loadgen: fault %s is not before the end of the %v shape", f, c.Shape.Length())
			}
		}
	}
	for _, t := range c.Thresholds {
		if _, ok := thresholdMetrics[t.Metric]; !ok {
			return fmt.Errorf("loadgen: threshold %q: unknown metric %q", t.Expr, t.Metric)
		}
	}
	return c.World.Validate()
}
