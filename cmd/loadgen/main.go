// Command loadgen drives a flashreturn deployment with a seeded, open-loop
// load of after-sales traffic, measures request-to-decision latency and
// audits the outputs. See package loadgen for what it does.
//
// Usage:
//
//	loadgen [flags]
//
// Exit status:
//
//	0  the audit passed and every --threshold was met
//	1  an audit check failed (whatever the thresholds)
//	2  bad flags (usage), including a bad --faults or --threshold
//	3  the run could not be carried out (no server, no streams, a spawned
//	   target that would not start, interrupted)
//	4  the audit passed but a --threshold was broken
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
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flashreturn/flashreturn/loadgen"
	"github.com/flashreturn/flashreturn/loadgen/faults"
)

// Exit codes.
// They are distinct because a caller acts differently on
// each: bench/run.sh reports a faulted run as "audit failed" (1: the
// target lost, doubled or mis-decided something, a correctness bug),
// "threshold broken" (4: the target was correct but too slow or its
// outage too long, a performance finding) or "could not be carried out"
// (3: nothing was measured; the figures must not be quoted). Folding 4
// into 1 would make a slow but correct daemon look broken; folding 3
// into 1 would blame the target for a missing server. 2 is the flag
// package's own convention for usage errors, so a typo in a CI script
// fails before any load is sent.
const (
	exitOK        = 0
	exitAudit     = 1
	exitUsage     = 2
	exitRun       = 3
	exitThreshold = 4
)

// main only maps run's result to the process status: run takes its
// arguments and writers as parameters so that main_test.go can drive
// every exit path in-process without a subprocess.
func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// thresholdFlags collects repeated --threshold flags.
// Each is parsed as it is set, so that a bad expression is a usage
// error (exit 2) reported before the run, not after minutes of load.
type thresholdFlags []loadgen.Threshold

func (t *thresholdFlags) String() string {
	parts := make([]string, len(*t))
	for i, th := range *t {
		parts[i] = th.Expr
	}
	return strings.Join(parts, ",")
}

func (t *thresholdFlags) Set(s string) error {
	th, err := loadgen.ParseThreshold(s)
	if err != nil {
		return err
	}
	*t = append(*t, th)
	return nil
}

// exitCode is the exit status of a finished run: a failed audit wins over
// a broken threshold.
// It wins because thresholds measured on a target that lost
// or doubled events describe a run that did not do the work; reporting
// 4 there would let a caller that only gates on latency accept it.
func exitCode(rep *loadgen.Report) int {
	switch {
	case !rep.Passed:
		return exitAudit
	case !rep.ThresholdsPassed:
		return exitThreshold
	}
	return exitOK
}

// run parses args, runs one load test and writes its reports. It returns
// an exit code rather than calling os.Exit so that deferred cleanup
// (the signal context, which also stops the spawned target through
// loadgen.Run's context) always runs.
func run(args []string, stdout, stderr io.Writer) int {
	// ContinueOnError, not ExitOnError: ExitOnError calls os.Exit from
	// inside Parse, which would end a test that calls run in-process.
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
		classic    = fs.Bool("classic-world", false, "turn the after-sales lifecycle off (review answers, deadlines, unreturned goods, second requests, splurges, events that cannot stand): the world of before, to bisect")
		events     = fs.Int("events", 1000000, "throughput: number of events")
		expect     = fs.String("expect", loadgen.ExpectDecisions, "what the target answers: decisions (flashreturnd) or outputs (the no-op relay: one echo per event; a scenario times each request's echo)")
		p99        = fs.Duration("p99-target", 10*time.Millisecond, "step: p99 request-to-decision a step must stay under")
		inflight   = fs.Int("max-in-flight", 4096, "bound on unacknowledged async publishes")
		drain      = fs.Duration("drain-timeout", 0, "wait for outputs after the last send (default 30s, throughput 10m)")
		policy     = fs.String("policy", "", "the daemon's --policy, for the audit's expectations (default: the policy the decisions name)")
		jsonOut    = fs.String("json", "", "write the machine report (JSON) to this file (- for stdout)")
		htmlOut    = fs.String("html", "", "write a self-contained HTML report to this file")
		progress   = fs.String("progress", "auto", "progress lines on stderr: auto (when stderr is a terminal), always, never")
		quietStdio = fs.Bool("quiet", false, "no human summary on stdout")
		spawn      = fs.String("spawn", "", "run this target command line as loadgen's child (e.g. 'bin/flashreturnd --data-dir /tmp/fr --partitions 64'), wait until it is ready, stop it at the end; faults without a target: apply to it")
		spawnNATS  = fs.String("spawn-nats", "", "also run this nats-server command line (started first, ready once --nats-url's port accepts); faults name it nats:")
		spawnReady = fs.String("spawn-ready", "", "URL whose 200 says the spawned target is ready (default: /readyz at its --http address; none: only wait for the streams)")
		spawnLogs  = fs.String("spawn-log-dir", "", "directory for the spawned processes' logs (default: the temp dir; the report names the files)")
		spawnKeep  = fs.Bool("spawn-keep", false, "leave the spawned processes running at the end")
		faultCmd   = fs.String("fault-cmd", "", "command (sh -c) that carries out faults on targets loadgen did not spawn; gets the action and target as $1 $2 and in FLASHRETURN_FAULT, FLASHRETURN_FAULT_TARGET")
		faultsArg  = fs.String("faults", "", "fault schedule: [target:]action@offset,... e.g. kill9@15s,start@17s,sigterm@30s,start@31s,nats:kill9@40s,nats:start@42s; actions kill9, sigterm, sigstop, sigcont, start")
		partitions = fs.Int("partitions", 0, "the target's partition count, to measure each fault's decision gap per partition (default: the --partitions of --spawn, else 64)")
		retryFor   = fs.Duration("retry-for", time.Minute, "how long a failed publish is re-sent (same Nats-Msg-Id, backoff 50ms..1s) before it counts as failed; at most 2m")
		thresholds thresholdFlags
	)
	fs.Var(&thresholds, "threshold", "fail the run (exit 4) unless this holds; repeatable: p50|p90|p99|p99.9|max|mean|drain|backlog_clear|gap <op> duration (p99<10ms, drain<2s, gap<5s), decided <op> N%|N/s|N (decided>99.9%), dlq <op> N|N% (dlq<10), dlq_unexpected <op> N; op one of < <= > >= == !=")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: loadgen [flags]\n\nDrives flashreturn with seeded open-loop after-sales traffic and audits the outputs.\n"+
			"Exit status: 0 audit passed and every --threshold met, 1 audit failed, 2 bad flags, 3 run failed,\n"+
			"4 audit passed but a --threshold was broken.\n\n"+
			"Faults: --spawn runs the target as a child (--spawn-nats also a nats-server) and --faults applies a\n"+
			"schedule to it, e.g. --faults kill9@15s,start@17s; publishes that fail meanwhile are re-sent with their\n"+
			"Nats-Msg-Id; the report lists each fault with the decision gap it caused.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	// --policy-hint is kept for scripts written before --policy; both set
	// the same variable, so the last one given wins.
	fs.StringVar(policy, "policy-hint", "", "alias of --policy")
	if err := fs.Parse(args); err != nil {
		// -h is a request, not a mistake: exit 0 so `loadgen -h | less`
		// and scripts probing the flags do not see a failure.
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	// Stray arguments are most often a flag value with a space that the
	// shell split (--spawn without quotes); running anyway would load a
	// target other than the one meant.
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadgen: unexpected arguments %v\n", fs.Args())
		return exitUsage
	}
	cfg := loadgen.Config{NATSURL: *url, Mode: *mode, Events: *events, Expect: *expect, P99Target: *p99, MaxInFlight: *inflight,
		DrainTimeout: *drain, Policy: *policy,
		World: loadgen.WorldOptions{Seed: *seed, RunID: *runID, Shoppers: *shoppers, Merchants: *merchants, ReturnFraction: *returns,
			BadFraction: *bad, Classic: *classic}}
	// The run id prefixes every user, order and request id, so two runs
	// against one long-lived daemon never share a shopper: a second run
	// with the same ids would see its requests taken as redeliveries (no
	// output; domain.md, Outcomes) or its publishes dropped as duplicates
	// inside the 2-minute window, and fail a correct target.
	// Seconds in base 36 are unique enough for runs started by hand.
	if cfg.World.RunID == "" {
		cfg.World.RunID = strconv.FormatInt(time.Now().Unix(), 36)
	}
	// --rate has a default of 1000 for the scenario shapes, but in
	// throughput mode that default would cap the measurement at 1000/s:
	// only an explicit --rate limits it, so fs.Visit (set flags only)
	// and not *rate decides.
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
		return exitUsage
	}
	switch *progress {
	case "always":
		cfg.Progress = stderr
	case "auto":
		// Progress lines are for a person watching; in a pipe or a log
		// file they are noise, so auto means a terminal only.
		if f, ok := stderr.(*os.File); ok && isTerminal(f) {
			cfg.Progress = stderr
		}
	case "never":
	default:
		fmt.Fprintf(stderr, "loadgen: --progress must be auto, always or never\n")
		return exitUsage
	}
	// The schedule is parsed here, not inside Run, so that a bad one
	// is a usage error (2) and not a failed run (3): nothing was
	// started and nothing needs stopping.
	faults, err := faults.ParseFaults(*faultsArg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	cfg.Spawn, cfg.SpawnNATS, cfg.SpawnReady, cfg.SpawnLogDir, cfg.KeepSpawned = *spawn, *spawnNATS, *spawnReady, *spawnLogs, *spawnKeep
	cfg.FaultCmd, cfg.Faults, cfg.Partitions, cfg.RetryFor, cfg.Thresholds = *faultCmd, faults, *partitions, *retryFor, thresholds
	if len(faults) > 0 {
		// Faults are logged as they happen, whatever --progress says: a
		// person watching a faulted run must be able to tell the outage
		// the target caused from one loadgen caused.
		cfg.FaultLog = stderr
	}
	// Validate catches combinations no single flag can (a fault
	// outside the shape, --retry-for past the duplicate window)
	// before anything is spawned or sent.
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}

	// Ctrl-C or SIGTERM cancels the run's context instead of killing
	// loadgen outright: Run then stops the processes it spawned, which
	// would otherwise outlive it holding the target's ports and data
	// directory.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		// An interrupted run is exit 3 like any run that could not be
		// carried out: its partial figures are not a measurement.
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "loadgen: interrupted: %v\n", err)
		} else {
			fmt.Fprintln(stderr, err)
		}
		return exitRun
	}
	// The human summary comes first, so that even a run whose JSON or
	// HTML file cannot be written (exit 3) has shown its figures.
	if !*quietStdio {
		_ = rep.WriteText(stdout)
	}
	if *jsonOut != "" {
		if err := writeFile(*jsonOut, stdout, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false) // thresholds read p99<10ms, not p99\u003c10ms
			return enc.Encode(rep)
		}); err != nil {
			fmt.Fprintf(stderr, "loadgen: write %s: %v\n", *jsonOut, err)
			return exitRun
		}
	}
	if *htmlOut != "" {
		if err := writeFile(*htmlOut, stdout, rep.WriteHTML); err != nil {
			fmt.Fprintf(stderr, "loadgen: write %s: %v\n", *htmlOut, err)
			return exitRun
		}
	}
	// The verdict goes to stderr as well as into the reports so that a
	// CI log shows why the exit code is not 0 without opening the JSON.
	for _, c := range rep.Failed() {
		fmt.Fprintf(stderr, "loadgen: audit failed: %s: %d of %d (%s)\n", c.Name, c.Failed, c.Checked, c.Rule)
	}
	for _, t := range rep.BrokenThresholds() {
		fmt.Fprintf(stderr, "loadgen: threshold broken: %s (measured %s)\n", t.Expr, t.MeasuredText)
	}
	return exitCode(rep)
}

// writeFile writes a report to path, or to stdout for "-". The Close
// error is returned, not ignored: on a full disk it is where a
// truncated JSON report shows up, and a truncated report must not pass
// for a complete one (the caller exits 3).
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
// The ioctl avoids a dependency on a terminal package for one
// question; TCGETS is the Linux name of the request, which ties this
// command to Linux as the rest of the bench tooling is.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
