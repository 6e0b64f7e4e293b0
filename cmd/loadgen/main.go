// Command loadgen drives a flashreturn deployment with a seeded, open-loop
// load of after-sales traffic, measures request-to-decision latency and
// audits the outputs. See package loadgen for what it does.
//
// Usage:
//
//	loadgen [flags]
//
// It exits 0 when the run passed its audit, 1 when an audit check failed,
// 2 on bad flags and 3 when the run could not be carried out.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flashreturn/flashreturn/loadgen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		url        = fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server of the target")
		mode       = fs.String("mode", loadgen.ModeScenario, "scenario (a traffic shape, audited) or throughput (blast pre-generated events, measure events/s)")
		shape      = fs.String("shape", "steady", "traffic shape of a scenario: steady, double11 or step")
		rate       = fs.Float64("rate", 1000, "events/s: steady rate, double11 base, step start; throughput: offered rate (unset or 0 = unlimited)")
		peak       = fs.Float64("peak", 0, "double11 peak rate in events/s (default 10 x --rate)")
		duration   = fs.Duration("duration", 30*time.Second, "length of a steady or double11 run")
		ramp       = fs.Duration("ramp", 0, "double11: time to reach the peak (default 5% of --duration, at least 1s)")
		hold       = fs.Duration("hold", 0, "double11: time at the peak (default 10% of --duration)")
		decay      = fs.Duration("decay", 0, "double11: decay time constant after the peak (default 15% of --duration)")
		stepInc    = fs.Float64("step-rate", 0, "step: rate increment per step in events/s (default --rate)")
		stepDur    = fs.Duration("step-duration", 10*time.Second, "step: time per step")
		maxSteps   = fs.Int("max-steps", 30, "step: maximum number of steps")
		seed       = fs.Uint64("seed", 1, "world seed: the same seed gives the same world")
		runID      = fs.String("run-id", "", "id prefix of this run's users, orders and requests (default: derived from the start time)")
		shoppers   = fs.Int("shoppers", 200000, "number of shoppers")
		merchants  = fs.Int("merchants", 2000, "number of merchants")
		returns    = fs.Float64("return-fraction", 0.06, "share of orders that get an after-sales request")
		bad        = fs.Float64("bad-fraction", 0.001, "share of events that are malformed (must reach the DLQ)")
		events     = fs.Int("events", 1000000, "throughput: number of events")
		expect     = fs.String("expect", loadgen.ExpectDecisions, "throughput: what completes the run: decisions (flashreturnd) or outputs (one per event: the relay)")
		p99        = fs.Duration("p99-target", 10*time.Millisecond, "step: p99 request-to-decision a step must stay under")
		inflight   = fs.Int("max-in-flight", 4096, "bound on unacknowledged async publishes")
		drain      = fs.Duration("drain-timeout", 0, "wait for outputs after the last send (default 30s, throughput 10m)")
		policy     = fs.String("policy", "", "the daemon's --policy, for the audit's expectations (default: the policy the decisions name)")
		jsonOut    = fs.String("json", "", "write the machine report (JSON) to this file (- for stdout)")
		htmlOut    = fs.String("html", "", "write a self-contained HTML report to this file")
		progress   = fs.String("progress", "auto", "progress lines on stderr: auto (when stderr is a terminal), always, never")
		quietStdio = fs.Bool("quiet", false, "no human summary on stdout")
	)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: loadgen [flags]\n\nDrives flashreturn with seeded open-loop after-sales traffic and audits the outputs.\n"+
			"Exit status: 0 audit passed, 1 audit failed, 2 bad flags, 3 run failed.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(policy, "policy-hint", "", "alias of --policy")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadgen: unexpected arguments %v\n", fs.Args())
		return 2
	}
	cfg := loadgen.Config{NATSURL: *url, Mode: *mode, Events: *events, Expect: *expect, P99Target: *p99, MaxInFlight: *inflight,
		DrainTimeout: *drain, Policy: *policy,
		World: loadgen.WorldOptions{Seed: *seed, RunID: *runID, Shoppers: *shoppers, Merchants: *merchants, ReturnFraction: *returns,
			BadFraction: *bad}}
	if cfg.World.RunID == "" {
		cfg.World.RunID = strconv.FormatInt(time.Now().Unix(), 36)
	}
	if *mode == loadgen.ModeThroughput {
		// Unlimited unless --rate is given.
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "rate" {
				cfg.Rate = *rate
			}
		})
	}
	switch *shape {
	case "steady":
		cfg.Shape = loadgen.Steady{EventsPerSec: *rate, Duration: *duration}
	case "double11":
		pk := *peak
		if pk == 0 {
			pk = 10 * *rate
		}
		cfg.Shape = loadgen.Double11{Base: *rate, Peak: pk, Duration: *duration, Ramp: *ramp, Hold: *hold, Decay: *decay}
	case "step":
		inc := *stepInc
		if inc == 0 {
			inc = *rate
		}
		cfg.Shape = loadgen.Step{Start: *rate, Increment: inc, StepDuration: *stepDur, MaxSteps: *maxSteps}
	default:
		fmt.Fprintf(stderr, "loadgen: unknown shape %q (want steady, double11 or step)\n", *shape)
		return 2
	}
	switch *progress {
	case "always":
		cfg.Progress = stderr
	case "auto":
		if f, ok := stderr.(*os.File); ok && isTerminal(f) {
			cfg.Progress = stderr
		}
	case "never":
	default:
		fmt.Fprintf(stderr, "loadgen: --progress must be auto, always or never\n")
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 3
	}
	if !*quietStdio {
		_ = rep.WriteText(stdout)
	}
	if *jsonOut != "" {
		if err := writeFile(*jsonOut, stdout, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}); err != nil {
			fmt.Fprintf(stderr, "loadgen: write %s: %v\n", *jsonOut, err)
			return 3
		}
	}
	if *htmlOut != "" {
		if err := writeFile(*htmlOut, stdout, rep.WriteHTML); err != nil {
			fmt.Fprintf(stderr, "loadgen: write %s: %v\n", *htmlOut, err)
			return 3
		}
	}
	if !rep.Passed {
		for _, c := range rep.Failed() {
			fmt.Fprintf(stderr, "loadgen: audit failed: %s: %d of %d (%s)\n", c.Name, c.Failed, c.Checked, c.Rule)
		}
		return 1
	}
	return 0
}

func writeFile(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "-" {
		return write(stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// isTerminal reports whether f is a terminal (it answers the termios ioctl;
// /dev/null and pipes do not).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
