package faults

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flashreturn/flashreturn/loadgen/contract"
)

// Fault actions. loadgen carries these out itself on the processes it
// spawned (Config.Spawn, Config.SpawnNATS); a --fault-cmd target gets the
// action's name and may implement any action it likes.
const (
	// FaultKill9 sends SIGKILL: the process dies at once, nothing drains.
	FaultKill9 = "kill9"
	// FaultSigterm sends SIGTERM: flashreturnd drains and exits.
	FaultSigterm = "sigterm"
	// FaultSigstop sends SIGSTOP: the process pauses, its sockets stay open.
	FaultSigstop = "sigstop"
	// FaultSigcont sends SIGCONT: a paused process resumes.
	FaultSigcont = "sigcont"
	// FaultStart starts the process again with the same command line
	// (and so the same data directory).
	FaultStart = "start"
)

// Fault targets that loadgen can spawn.
const (
	// TargetDaemon is the process of Config.Spawn, and the target of a
	// fault that names none.
	TargetDaemon = "daemon"
	// TargetNATS is the nats-server process of Config.SpawnNATS.
	TargetNATS = "nats"
)

// Fault is one entry of a fault schedule: do Action to Target at offset
// At after the run's first scheduled send.
type Fault struct {
	// Target names the process: TargetDaemon, TargetNATS, or any name a
	// --fault-cmd understands.
	Target string
	// Action is one of the Fault* constants for a spawned target, any
	// name matching [a-z0-9_-]+ for a --fault-cmd target.
	Action string
	// At is the offset from the first scheduled send.
	At time.Duration
}

// String renders the fault in schedule syntax.
func (f Fault) String() string {
	s := f.Action + "@" + f.At.String()
	if f.Target != TargetDaemon {
		s = f.Target + ":" + s
	}
	return s
}

// recovers reports whether the action ends a disruption (a start or a
// resume) rather than causing one. A decision gap is measured from a
// fault up to the next disruptive fault, so that a kill's gap spans the
// restart that ends it.
func (f Fault) recovers() bool { return f.Action == FaultStart || f.Action == FaultSigcont }

// ParseFaults parses a fault schedule: comma-separated entries of the form
// [target:]action@offset, for example
//
//	kill9@15s,start@17s,sigterm@30s,start@31s,nats:kill9@40s,nats:start@42s
//
// The target defaults to TargetDaemon; the offset is a Go duration (15s,
// 1m30s, 500ms) from the first scheduled send. Names are lower-cased;
// "sigkill" is read as "kill9". The result is ordered by offset (entries
// at the same offset keep their order). An empty string is an empty
// schedule. ParseFaults checks only the syntax; [Config.Validate] checks
// the schedule against the targets.
func ParseFaults(s string) ([]Fault, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Fault
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("loadgen: fault schedule %q has an empty entry", s)
		}
		what, at, ok := strings.Cut(item, "@")
		if !ok {
			return nil, fmt.Errorf("loadgen: fault %q: want [target:]action@offset, e.g. kill9@15s", item)
		}
		target, action, named := strings.Cut(strings.ToLower(strings.TrimSpace(what)), ":")
		if !named {
			target, action = TargetDaemon, target
		}
		target, action = strings.TrimSpace(target), strings.TrimSpace(action)
		if action == "sigkill" {
			action = FaultKill9
		}
		if !faultName(target) || !faultName(action) {
			return nil, fmt.Errorf("loadgen: fault %q: target and action must match [a-z0-9_-]+", item)
		}
		at = strings.TrimSpace(at)
		d, err := time.ParseDuration(at)
		if err != nil {
			return nil, fmt.Errorf("loadgen: fault %q: offset %q is not a duration such as 15s or 1m30s", item, at)
		}
		if d < 0 {
			return nil, fmt.Errorf("loadgen: fault %q: negative offset", item)
		}
		out = append(out, Fault{Target: target, Action: action, At: d})
	}
	slices.SortStableFunc(out, func(a, b Fault) int { return int(a.At - b.At) })
	return out, nil
}

func faultName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// procState is what a spawned target is doing, for checking a schedule
// before it runs.
type procState uint8

const (
	stateRunning procState = iota
	stateStopped
	statePaused
)

var stateNames = [...]string{stateRunning: "running", stateStopped: "stopped", statePaused: "paused"}

// Validate checks a schedule against the targets: faults on a
// spawned target must be actions loadgen knows, in an order that makes
// sense (start only what is stopped, sigcont only what is paused, ...),
// and leave the target running at the end, since a run cannot drain
// without it; faults on any other target need a fault command.
func Validate(faults []Fault, spawned map[string]bool, haveCmd bool) error {
	state := map[string]procState{}
	for _, f := range faults {
		if !spawned[f.Target] {
			if !haveCmd {
				return fmt.Errorf("loadgen: fault %s: nothing carries it out: target %q is not spawned (--spawn, --spawn-nats) and there is no --fault-cmd", f, f.Target)
			}
			continue
		}
		st := state[f.Target]
		var want []procState
		next := st
		switch f.Action {
		case FaultKill9:
			want, next = []procState{stateRunning, statePaused}, stateStopped
		case FaultSigterm:
			want, next = []procState{stateRunning}, stateStopped
		case FaultSigstop:
			want, next = []procState{stateRunning}, statePaused
		case FaultSigcont:
			want, next = []procState{statePaused}, stateRunning
		case FaultStart:
			want, next = []procState{stateStopped}, stateRunning
		default:
			return fmt.Errorf("loadgen: fault %s: unknown action %q for spawned %s (want %s, %s, %s, %s or %s)", f, f.Action, f.Target,
				FaultKill9, FaultSigterm, FaultSigstop, FaultSigcont, FaultStart)
		}
		if !slices.Contains(want, st) {
			return fmt.Errorf("loadgen: fault %s: %s is %s by then", f, f.Target, stateNames[st])
		}
		state[f.Target] = next
	}
	for _, t := range slices.Sorted(maps.Keys(state)) {
		if st := state[t]; st != stateRunning {
			return fmt.Errorf("loadgen: the fault schedule leaves %s %s at the end: the run cannot drain without it (add a start or sigcont)", t, stateNames[st])
		}
	}
	return nil
}

// FaultResult is one fault of the schedule as it was carried out, and the
// decision gap it caused.
//
// A decision gap is the longest time without a decision between the fault
// and the next disruptive fault (any but a start or sigcont, on any
// target) or the end of the run: measured from the fault itself to the
// first decision after it, or between two decisions. So a kill's gap spans
// the restart that ends it (decisions already on their way when the
// process died do not hide it), and a start's gap is how long after the
// start decisions resumed. GapMs takes every decision together: for a
// single daemon, which stops all partitions at once, that is the outage.
// The partition figures take each partition on its own (decisions are
// mapped to partitions as the daemon does: FNV-1a 32 of the user id modulo
// Params.Partitions), which shows a fault that stops only some partitions
// (one member of a cluster); at low rates the natural spacing of a
// partition's decisions is part of its gap, so compare with the median
// and with a run without faults.
type FaultResult struct {
	// Target and Action are the schedule's; By is "loadgen" for a spawned
	// target, "fault-cmd" for one the fault command handles.
	Target string `json:"target"`
	Action string `json:"action"`
	By     string `json:"by"`
	// PlannedSec is the schedule's offset, AtSec when the fault was
	// carried out (-1: never, the run ended first), in seconds since the
	// first scheduled send.
	PlannedSec float64 `json:"planned_sec"`
	AtSec      float64 `json:"at_sec"`
	// PID is the process signalled or started.
	PID int `json:"pid,omitempty"`
	// Error says why the fault was not carried out (or the fault command
	// failed); Output is the tail of the fault command's output.
	Error  string `json:"error,omitempty"`
	Output string `json:"output,omitempty"`
	// ReadySec, for a start of a spawned target, is how long after the
	// start it first answered its readiness probe; -1 if it did not
	// before the run ended.
	ReadySec *float64 `json:"ready_sec,omitempty"`
	// WindowEndSec ends the window the gap is measured in: the next
	// disruptive fault, or the end of the run.
	WindowEndSec float64 `json:"window_end_sec"`
	// GapMs is the decision gap over all decisions; -1 when no decision
	// arrived in the window.
	GapMs float64 `json:"gap_ms"`
	// PartitionGapMaxMs and PartitionGapP50Ms are the largest and the
	// median gap of the partitions that had a decision in the window (-1
	// when none had); Resumed counts those partitions, out of Partitions.
	PartitionGapMaxMs float64 `json:"partition_gap_max_ms"`
	PartitionGapP50Ms float64 `json:"partition_gap_p50_ms"`
	Resumed           int     `json:"partitions_resumed"`
	Partitions        int     `json:"partitions"`
	// PartitionGapsMs is the gap of each partition, -1 for one without a
	// decision in the window.
	PartitionGapsMs []float64 `json:"partition_gaps_ms"`
}

// partitionOf is the partition of a user among p: FNV-1a 32 of the id
// modulo p, what nats-server's {{partition(p,2)}} transform computes (the
// contract's layout). loadgen keeps its own copy: it imports nothing of
// the daemon.
// If p differs from the target's count, the partition figures are
// still computed but mean nothing: each bucket then mixes several of
// the daemon's partitions, and a stalled one hides among live ones.
func partitionOf(user string, p int) int {
	if p <= 0 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(user); i++ {
		h ^= uint32(user[i])
		h *= 16777619
	}
	return int(h % uint32(p))
}

// DecisionLog records when each partition's decisions arrived, for the
// decision gaps. Safe for concurrent use.
type DecisionLog struct {
	base time.Time
	mu   sync.Mutex
	at   [][]time.Duration // per partition, offsets after base
}

// NewDecisionLog returns an empty log for a target of the given
// partition count, offsets counted from base (the run's first scheduled
// send, so that they compare with the faults' AtSec).
func NewDecisionLog(base time.Time, partitions int) *DecisionLog {
	return &DecisionLog{base: base, at: make([][]time.Duration, partitions)}
}

// Output notes one FR_OUT message that arrived at now; only decisions
// count.
// The time is the arrival at loadgen, not the decision's own time:
// a gap therefore includes any delay between FR_OUT and the
// consumer, which is what a downstream client would see too. Only
// decisions count because they are the target's answer to load;
// timer outputs (resolutions, compensations) are not paced by it.
func (d *DecisionLog) Output(subject string, now time.Time) {
	user, ok := strings.CutPrefix(subject, contract.OutPrefix+contract.OutDecision+".")
	if !ok {
		return
	}
	p := partitionOf(user, len(d.at))
	d.mu.Lock()
	d.at[p] = append(d.at[p], now.Sub(d.base))
	d.mu.Unlock()
}

// Sorted returns the arrivals per partition in time order.
func (d *DecisionLog) Sorted() [][]time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([][]time.Duration, len(d.at))
	for p, ts := range d.at {
		out[p] = slices.Clone(ts)
		slices.Sort(out[p])
	}
	return out
}

// partitionGaps returns, per partition, the longest stretch without a
// decision that starts at from or at a decision after it and ends at a
// decision before to; -1 for a partition without a decision in (from, to).
// at holds each partition's decision times in order.
// The stretch starts at the fault, not at the last decision before it:
// a gap is the outage after the fault, and the calm before it (low
// rate, a quiet partition) is not the fault's doing. It ends at the
// last decision before to, so that the next fault's outage is not
// added to this one.
func partitionGaps(at [][]time.Duration, from, to time.Duration) []float64 {
	gaps := make([]float64, len(at))
	for p, ts := range at {
		i, _ := slices.BinarySearchFunc(ts, from, func(t, f time.Duration) int {
			if t <= f {
				return -1
			}
			return 1
		})
		best, cur := -1.0, from
		for ; i < len(ts) && ts[i] < to; i++ {
			best = max(best, ms(ts[i]-cur))
			cur = ts[i]
		}
		gaps[p] = best
	}
	return gaps
}

// SetGaps fills the decision-gap fields of faults (carried out at AtSec,
// in schedule order) from the decisions' arrival times per partition; end
// is when the run stopped listening.
// A fault that failed (Error set) does not end the previous window:
// it disrupted nothing, so the outage before it is still one outage.
// Recovering actions (start, sigcont) do not end it either: the gap
// of a kill must span the restart that ends it.
func SetGaps(faults []FaultResult, at [][]time.Duration, end time.Duration) {
	var all []time.Duration
	for _, ts := range at {
		all = append(all, ts...)
	}
	slices.Sort(all)
	round := func(v float64) float64 { return math.Round(v*10) / 10 }
	for i := range faults {
		f := &faults[i]
		f.Partitions = len(at)
		f.GapMs, f.PartitionGapMaxMs, f.PartitionGapP50Ms = -1, -1, -1
		if f.AtSec < 0 {
			continue // never carried out
		}
		from := time.Duration(f.AtSec * float64(time.Second))
		to := end
		for _, g := range faults[i+1:] {
			gAt := time.Duration(g.AtSec * float64(time.Second))
			if g.AtSec >= 0 && g.Error == "" && !(Fault{Action: g.Action}).recovers() && gAt > from {
				to = gAt
				break
			}
		}
		f.WindowEndSec = to.Seconds()
		// Rounded to 0.1 ms: finer digits are below the scheduling
		// noise of a loaded machine and only make reports differ.
		f.GapMs = round(partitionGaps([][]time.Duration{all}, from, to)[0])
		f.PartitionGapsMs = partitionGaps(at, from, to)
		var got []float64
		for p, g := range f.PartitionGapsMs {
			f.PartitionGapsMs[p] = round(g)
			if g >= 0 {
				got = append(got, g)
			}
		}
		f.Resumed = len(got)
		if len(got) > 0 {
			slices.Sort(got)
			f.PartitionGapMaxMs, f.PartitionGapP50Ms = round(got[len(got)-1]), round(got[(len(got)-1)/2])
		}
	}
}

// Runner carries out a schedule during a run: itself for the
// processes it spawned, through the fault command for other targets.
type Runner struct {
	faults       []Fault
	kids         Children
	cmd          string
	base         time.Time
	log          io.Writer
	readyTimeout time.Duration

	mu      sync.Mutex
	results []FaultResult
	probes  sync.WaitGroup // readiness probes after starts
}

// NewRunner returns the runner of schedule fs (in time order, as
// [ParseFaults] leaves it), offsets counted from base. It carries out a
// fault itself when kids has its target and through cmd (sh -c) when not;
// each fault is logged to log (nil: not logged) as it happens, and a
// restarted process gets readyTimeout to be ready.
func NewRunner(fs []Fault, kids Children, cmd string, base time.Time, log io.Writer, readyTimeout time.Duration) *Runner {
	return &Runner{faults: fs, kids: kids, cmd: cmd, base: base, log: log, readyTimeout: readyTimeout}
}

// Run carries out the faults at their offsets until they are done or ctx
// ends; the faults not reached are reported as such.
// Faults are carried out one after another in this goroutine, each
// at its offset from the run's base: the schedule is part of the
// test's definition, so a fault is not skipped when the previous one
// ran late, only delayed; AtSec records when it really happened.
func (fr *Runner) Run(ctx context.Context) {
	defer fr.probes.Wait()
	for i, f := range fr.faults {
		if d := time.Until(fr.base.Add(f.At)); d > 0 {
			if sleepCtx(ctx, d) != nil {
				fr.mu.Lock()
				for _, g := range fr.faults[i:] {
					fr.results = append(fr.results, FaultResult{Target: g.Target, Action: g.Action, PlannedSec: g.At.Seconds(),
						By: fr.by(g), AtSec: -1, Error: "not reached: the run ended first"})
				}
				fr.mu.Unlock()
				return
			}
		}
		res := fr.do(ctx, f)
		if fr.log != nil {
			line := fmt.Sprintf("loadgen: fault +%.2fs %s %s", res.AtSec, res.Target, res.Action)
			if res.PID != 0 {
				line += fmt.Sprintf(" (pid %d)", res.PID)
			}
			if res.Error != "" {
				line += ": " + res.Error
			}
			fmt.Fprintln(fr.log, line)
		}
		fr.mu.Lock()
		fr.results = append(fr.results, res)
		fr.mu.Unlock()
	}
}

// by names who carried out f, for the report: a fault the fault
// command carried out has no pid and no readiness figure, and the
// reader must know why.
func (fr *Runner) by(f Fault) string {
	if fr.kids[f.Target] != nil {
		return "loadgen"
	}
	return "fault-cmd"
}

// Report returns the faults as carried out; call it after Run returned
// (the results of a fault still in progress would be missing).
func (fr *Runner) Report() []FaultResult {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return slices.Clone(fr.results)
}

var faultSignals = map[string]os.Signal{FaultKill9: sigKill, FaultSigterm: sigTerm, FaultSigstop: sigStop, FaultSigcont: sigCont}

func (fr *Runner) do(ctx context.Context, f Fault) FaultResult {
	res := FaultResult{Target: f.Target, Action: f.Action, PlannedSec: f.At.Seconds(), By: fr.by(f)}
	c := fr.kids[f.Target]
	if c == nil {
		res.AtSec = time.Since(fr.base).Seconds()
		res.Output, res.Error = fr.command(ctx, f)
		return res
	}
	if sig, ok := faultSignals[f.Action]; ok {
		res.AtSec = time.Since(fr.base).Seconds()
		pid, err := c.signal(sig)
		res.PID = pid
		if err != nil {
			res.Error = err.Error()
		}
		return res
	}
	// start: after a sigterm the previous life may still be draining; the
	// new one must not open the same data directory before it is gone.
	select {
	case <-c.exited():
	// Bounded: a previous life that ignores SIGTERM for 20 s is
	// reported by start's error (still running) rather than
	// stalling the schedule.
	case <-time.After(20 * time.Second):
	case <-ctx.Done():
	}
	res.AtSec = time.Since(fr.base).Seconds()
	pid, err := c.start()
	res.PID = pid
	if err != nil {
		res.Error = err.Error()
		return res
	}
	ready := -1.0
	res.ReadySec = &ready
	if c.ready != nil {
		started := time.Now()
		fr.probes.Add(1)
		// Probed in the background so the next fault is not held up by a
		// slow start; Run waits for the probes before it returns, so the
		// report has every ReadySec.
		go func() {
			defer fr.probes.Done()
			if c.waitReady(ctx, fr.readyTimeout) == nil {
				fr.mu.Lock()
				*res.ReadySec = time.Since(started).Seconds()
				fr.mu.Unlock()
			}
		}()
	}
	return res
}

// command runs the fault command for f: sh -c <cmd> with the action and
// target as $1 and $2 and in FLASHRETURN_FAULT, FLASHRETURN_FAULT_TARGET
// (and the planned offset in seconds in FLASHRETURN_FAULT_AT). It returns
// the tail of its output and an error text if it failed or took more than
// a minute.
// The one-minute bound keeps a hung fault command (a container
// runtime that does not answer) from freezing the schedule; only the
// last 1024 bytes of its output are kept, which is where an error is.
func (fr *Runner) command(ctx context.Context, f Fault) (output, errText string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", fr.cmd, "loadgen-fault", f.Action, f.Target)
	cmd.Env = append(os.Environ(), "FLASHRETURN_FAULT="+f.Action, "FLASHRETURN_FAULT_TARGET="+f.Target,
		"FLASHRETURN_FAULT_AT="+strconv.FormatFloat(f.At.Seconds(), 'f', -1, 64))
	out, err := cmd.CombinedOutput()
	if len(out) > 1024 {
		out = out[len(out)-1024:]
	}
	output = strings.TrimSpace(string(out))
	if err != nil {
		errText = "fault command: " + err.Error()
	}
	return output, errText
}

// ms is d in milliseconds, the unit of every gap in the report.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sleepCtx sleeps for d or until ctx ends, whichever is first; it
// returns ctx's error in the second case, so that a cancelled run stops
// between two faults instead of carrying out the rest of its schedule.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
