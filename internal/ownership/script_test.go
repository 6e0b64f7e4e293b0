package ownership

// Scripts: testdata/*.txt in the format of cockroachdb/datadriven (and
// etcd raft's interaction tests), run by a small runner of our own (the
// datadriven module is not among the project's dependencies):
//
//	command arg=value ...
//	input lines
//	----
//	expected output
//
// blocks separated by blank lines, # comments between them.
// `go test -run TestScripts ./internal/ownership/ -rewrite` regenerates
// the expected outputs; review the diff. Every script runs in a
// simulated world (sim_test.go) on a simulated clock, so a script of a
// minute of cluster life runs in milliseconds.
//
// What the scripts cover, against the cluster tests that needed real
// daemons, a real NATS server and multi-second leases for it:
//
//	pipeline TestAssignBalanced, TestAssignSticky   assign.txt; TestAssign* and
//	                                                TestAssignQuick (naive model)
//	pipeline TestSnapshotName                       TestSnapshotName (here)
//	pipeline TestClusterTwoDaemons: a 4/4 split     join.txt
//	  one member drains, the other takes all 8      leave.txt
//	  from the release snapshots, exact cursors     leave.txt, handover_bug.txt
//	  the 1-in-3 failure (issue 16): a drain that   handover_bug.txt
//	  hangs costs only its own partition, loudly
//	  the residual failure: b's lease lapses        handover_empty.txt
//	  mid-drain, its releases were dropped and a
//	  restored b's partitions from empty, silently
//	pipeline TestClusterFencing: heartbeats stop,   pause.txt
//	  the lease lapses before the key expires, the
//	  workers stop before the other claims, epochs
//	  never interleave; heartbeats resume, a new
//	  lease generation, 4/4 again
//	pipeline TestClusterThreeNodes: 3/3/2 split,    crash.txt
//	  one member crashes, the survivors take its
//	  partitions from the last periodic snapshot
//	  after its key expired
//	cmd/flashreturnd TestClusterKill9: the same     crash.txt (then both survivors
//	  with processes, then SIGTERM of the survivors  leave)
//	a release races a claim (both orders)           races.txt
//	a write's answer lost (stored or not?)          lost_ack.txt
//	a member restarts with a new instance           restart.txt
//	snapshot choice: release vs periodic vs local   restore.txt
//	one move at a time, balance within one          join.txt, assign.txt
//	(not here: snapshot export/import, the object store, NATS node loss,
//	query routing: IO, covered by the pipeline tests)

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/script"
)

func TestScripts(t *testing.T) {
	script.Run(t, "testdata/*.txt", func(t *testing.T) func(*testing.T, script.Case) string {
		var s *sim
		return func(t *testing.T, c script.Case) string { return runCase(t, &s, c) }
	})
}

// args holds a command's arguments: positional words and key=value
// pairs.
type args struct {
	t     *testing.T
	pos   string
	words []string
	kv    map[string]string
}

func parseArgs(t *testing.T, c script.Case) args {
	a := args{t: t, pos: c.Pos, kv: map[string]string{}}
	for _, w := range c.Args {
		if k, v, ok := strings.Cut(w, "="); ok {
			a.kv[k] = v
		} else {
			a.words = append(a.words, w)
		}
	}
	return a
}

func (a args) has(word string) bool {
	for _, w := range a.words {
		if w == word {
			return true
		}
	}
	return false
}

func (a args) dur(k string, def time.Duration) time.Duration {
	v, ok := a.kv[k]
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		a.t.Fatalf("%s: %s=%q: %v", a.pos, k, v, err)
	}
	return d
}

func (a args) num(k string, def int) int {
	v, ok := a.kv[k]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		a.t.Fatalf("%s: %s=%q: %v", a.pos, k, v, err)
	}
	return n
}

// members returns the members the words name (every word not a flag).
func (a args) members(s *sim) []*simMember {
	var out []*simMember
	for _, w := range a.words {
		if mb := s.member(w); mb != nil {
			out = append(out, mb)
		}
	}
	if len(out) == 0 {
		a.t.Fatalf("%s: no member named in %v", a.pos, a.words)
	}
	return out
}

// runCase runs one command and returns its output.
func runCase(t *testing.T, sp **sim, c script.Case) string {
	a := parseArgs(t, c)
	switch c.Cmd {
	case "assign":
		// assign parts=N members=a,b,...: each member's partitions.
		return formatAssign(Assign(splitMembers(a.kv["members"]), a.num("parts", 8)))
	case "moves":
		// moves parts=N from=a,b,c to=a,b: how many partitions change
		// owner, and how many must (the departed members' ones, or the
		// ones the new members need to reach balance).
		from, to := splitMembers(a.kv["from"]), splitMembers(a.kv["to"])
		parts := a.num("parts", 8)
		x, y := Assign(from, parts), Assign(to, parts)
		moved := 0
		for p := range x {
			if x[p] != y[p] {
				moved++
			}
		}
		return fmt.Sprintf("moved %d of %d\n%s", moved, parts, formatAssign(y))
	}
	if c.Cmd == "init" {
		*sp = newSim(a.num("parts", 8), a.dur("lease", 3*time.Second), a.dur("interval", 0))
		(*sp).drainTimeout = a.dur("drain", 8*time.Second)
		return ""
	}
	s := *sp
	if s == nil {
		t.Fatalf("%s: init first", c.Pos)
	}
	s.trace = s.trace[:0]
	var b strings.Builder
	switch c.Cmd {
	case "start":
		for _, id := range a.words {
			s.start(id)
		}
	case "run":
		s.run(a.dur("for", time.Second), a.dur("step", 100*time.Millisecond))
	case "advance":
		s.now += int64(a.dur("by", time.Second))
	case "crash":
		for _, mb := range a.members(s) {
			s.crash(mb)
			s.logf("%s: crashed (kill -9)", mb.id)
		}
	case "restart":
		for _, mb := range a.members(s) {
			s.crash(mb)
			s.start(mb.id)
			s.logf("%s: restarted as instance %d", mb.id, mb.inst)
		}
	case "leave":
		for _, mb := range a.members(s) {
			s.startLeave(mb)
		}
	case "freeze", "thaw":
		for _, mb := range a.members(s) {
			mb.frozen = c.Cmd == "freeze"
		}
	case "heartbeats":
		for _, mb := range a.members(s) {
			mb.hbOff = a.has("off")
		}
	case "watch":
		for _, mb := range a.members(s) {
			mb.lag = a.has("hold")
		}
	case "hang":
		for _, mb := range a.members(s) {
			mb.hung[a.num("p", 0)] = int64(a.dur("until", time.Hour))
		}
	case "load":
		s.load = uint64(a.num("n", 1))
	case "publish":
		for p := range s.head {
			s.head[p] += uint64(a.num("n", 1))
		}
	case "local":
		mb := a.members(s)[0]
		mb.local[a.num("p", 0)] = simLocal{cursor: uint64(a.num("cursor", 0)), incomplete: a.has("incomplete")}
	case "object":
		s.objects[a.kv["name"]] = uint64(a.num("cursor", 0))
	case "record":
		p := a.num("p", 0)
		rec := Record{Member: a.kv["member"], Epoch: uint64(a.num("epoch", 0)), Snapshot: a.kv["snapshot"], Cursor: uint64(a.num("cursor", 0)), Released: uint64(a.num("released", 0))}
		if _, o := s.cas(p, rec, s.owners[p].Rev, !s.owners[p].OK); o != Written {
			t.Fatalf("%s: record write failed", c.Pos)
		}
	case "beat":
		for _, mb := range a.members(s) {
			s.beat(mb)
		}
	case "tick":
		for _, mb := range a.members(s) {
			acts := mb.m.Tick(s.now)
			mb.queue = append(mb.queue, acts...)
			for _, x := range acts {
				fmt.Fprintf(&b, "%s: %s\n", mb.id, x)
			}
		}
	case "deliver":
		for _, mb := range a.members(s) {
			n := len(mb.queue)
			s.deliver(mb, uint64(a.num("upto", 0)))
			for _, x := range mb.queue[n:] {
				fmt.Fprintf(&b, "%s: %s\n", mb.id, x)
			}
		}
	case "work":
		for _, mb := range a.members(s) {
			s.work(mb)
		}
	case "exec":
		// exec <member> [n=N|all] [fail|lost]: carry out the next queued
		// actions (the first one's IO failing with fail; a write stored
		// but its answer lost with lost), print them and what they
		// queued.
		mb := a.members(s)[0]
		n := a.num("n", 1)
		if a.has("all") {
			n = 1 << 30
		}
		verbose := s.verbose
		s.verbose = true
		for i := 0; i < n && len(mb.queue) > 0 && mb.up; i++ {
			x := mb.queue[0]
			mb.queue = mb.queue[1:]
			fault := noFault
			if i == 0 && a.has("fail") {
				fault = failIO
			} else if i == 0 && a.has("lost") {
				fault = lostIO
			}
			s.exec(mb, x, fault)
		}
		s.verbose = verbose
		s.leaveStep(mb)
	case "stopped":
		// stopped <member> p=N: the worker's stop completes now (a hung
		// one included).
		mb := a.members(s)[0]
		p := a.num("p", 0)
		if w := mb.workers[p]; w != nil {
			mb.queue = append(mb.queue, s.stopWorker(mb, p)...)
		}
	case "queue":
		for _, mb := range a.members(s) {
			for _, x := range mb.queue {
				fmt.Fprintf(&b, "%s: %s\n", mb.id, x)
			}
		}
	case "verbose":
		// verbose on|off [member...]: trace every action executed (by
		// every member, or by those named).
		on := a.has("on")
		named := false
		for _, w := range a.words {
			if mb := s.member(w); mb != nil {
				mb.verbose, named = on, true
			}
		}
		if !named {
			s.verbose = on
		}
	case "owners":
		b.WriteString(s.ownersTable())
	case "owned":
		b.WriteString(s.ownedTable())
	case "objects":
		for _, name := range sortedNames(s.objects) {
			fmt.Fprintf(&b, "%s cursor=%d\n", name, s.objects[name])
		}
	case "check":
		s.checkOut()
		if len(s.violations) == 0 {
			b.WriteString("ok\n")
		}
		for _, v := range s.violations {
			fmt.Fprintf(&b, "violation: %s\n", v)
		}
		s.violations = s.violations[:0]
	default:
		t.Fatalf("%s: unknown command %q", c.Pos, c.Cmd)
	}
	for _, l := range s.trace {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

func splitMembers(s string) []string {
	if s == "" {
		return nil
	}
	ms := strings.Split(s, ",")
	slices.Sort(ms)
	return ms
}

// formatAssign renders an assignment member by member, with loads.
func formatAssign(target []string) string {
	by := map[string][]string{}
	var ids []string
	for p, m := range target {
		if _, ok := by[m]; !ok {
			ids = append(ids, m)
		}
		by[m] = append(by[m], strconv.Itoa(p))
	}
	slices.Sort(ids)
	var b strings.Builder
	for _, id := range ids {
		name := id
		if name == "" {
			name = "(none)"
		}
		fmt.Fprintf(&b, "%s: %d [%s]\n", name, len(by[id]), strings.Join(by[id], " "))
	}
	return b.String()
}

func sortedNames(m map[string]uint64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
