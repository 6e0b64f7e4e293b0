package ownership

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRandomized lets seeded random clusters live through random joins,
// leaves, crashes, restarts, pauses (a frozen process, or heartbeats that
// stop), lagging owners watchers, hung workers and failed or
// lost-acknowledgement writes, checking the invariants all along (sim's
// violate): never two members writing a partition under valid claims at
// once, FR_OUT epochs never going back per partition, epochs increasing
// with every claim, at most one release in flight per member, a restore
// never below the release snapshot it claimed from, no record pointing
// at a deleted snapshot, no partition given up without its release unless
// its claim was superseded. Then the faults stop and the members stay: every
// partition must end up owned once, by its target, loads within one
// (the model: Assign over the members present).
func TestRandomized(t *testing.T) {
	seed := testSeed(t)
	worlds := 40
	if testing.Short() {
		worlds = 10
	}
	for w := range worlds {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		if msg := randomWorld(rng); msg != "" {
			t.Fatalf("world %d (seed %d): %s", w, seed, msg)
		}
	}
}

// traceWorld, when set, receives every trace line of the world (debugging
// a failing seed: see TestReplayWorld).
var traceWorld func(string)

// randomWorld runs one random world and returns what went wrong ("" ok).
func randomWorld(rng *rand.Rand) string {
	parts := 1 + rng.IntN(16)
	lease := time.Duration(1+rng.IntN(3)) * time.Second
	interval := time.Duration(rng.IntN(3)) * time.Second
	s := newSim(parts, lease, interval)
	s.faults = &faults{rng: rng, casFail: 0.03, casLost: 0.03, snapFail: 0.05, watchLag: 0.2, heartbeatFail: 0.05,
		publishDelay: lease / 10, heartbeatDelay: lease / 10}
	s.load = uint64(rng.IntN(4))
	if traceWorld != nil {
		s.verbose, s.tap = true, traceWorld
	}
	ids := []string{"a", "b", "c", "d", "e"}
	for _, id := range ids[:1+rng.IntN(3)] {
		s.start(id)
	}
	var log []string
	event := func(format string, args ...any) {
		log = append(log, fmtTime(s.now)+" "+fmt.Sprintf(format, args...))
		if traceWorld != nil {
			traceWorld(log[len(log)-1])
		}
	}
	for range 150 {
		mb := s.members[rng.IntN(len(s.members))]
		down := func() *simMember {
			for _, id := range ids {
				if x := s.member(id); x == nil || !x.up {
					return s.start(id)
				}
			}
			return nil
		}
		switch r := rng.IntN(100); {
		case r < 6:
			if x := down(); x != nil {
				event("start %s", x.id)
			}
		case r < 10:
			if mb.up && mb.leave == nil {
				s.startLeave(mb)
				event("leave %s", mb.id)
			}
		case r < 13:
			if mb.up {
				s.crash(mb)
				event("crash %s", mb.id)
			}
		case r < 18:
			mb.frozen = !mb.frozen
			event("frozen %s %v", mb.id, mb.frozen)
		case r < 23:
			mb.hbOff = !mb.hbOff
			event("heartbeats off %s %v", mb.id, mb.hbOff)
		case r < 28:
			mb.lag = !mb.lag
			event("watch lag %s %v", mb.id, mb.lag)
		case r < 31:
			p := rng.IntN(parts)
			mb.hung[p] = s.now + int64(rng.IntN(int(3*lease/time.Millisecond)))*int64(time.Millisecond)
			event("hang %s p=%d", mb.id, p)
		}
		s.run(time.Duration(50+rng.IntN(500))*time.Millisecond, 100*time.Millisecond)
		s.checkOut()
		if len(s.violations) > 0 {
			return report(s, log)
		}
	}
	// Stable from here: no faults, every process running.
	s.faults = &faults{}
	for _, mb := range s.members {
		mb.frozen, mb.hbOff, mb.lag = false, false, false
		clear(mb.hung)
	}
	s.run(3*lease, 100*time.Millisecond) // leaves finish, keys of the dead expire
	if !slices.ContainsFunc(s.members, func(mb *simMember) bool { return mb.up }) {
		s.start(s.members[0].id)
	}
	s.run(10*lease, 100*time.Millisecond)
	s.checkOut()
	if len(s.violations) > 0 {
		return report(s, log)
	}
	var present []string
	for _, mb := range s.members {
		if mb.up {
			present = append(present, mb.id)
		}
	}
	slices.Sort(present)
	target := Assign(present, parts)
	for p := range parts {
		e := s.owners[p]
		if !e.OK || e.Member != target[p] {
			return fmt.Sprintf("partition %d: record %+v, target %s\n%s%s", p, e, target[p], s.ownedTable(), report(s, log))
		}
		var runners []string
		for _, mb := range s.members {
			if w := mb.workers[p]; mb.up && w != nil && w.running && mb.m.Check(p, w.epoch, s.now) == "" {
				runners = append(runners, mb.id)
			}
		}
		if len(runners) != 1 || runners[0] != target[p] {
			return fmt.Sprintf("partition %d run by %v, target %s\n%s%s", p, runners, target[p], s.ownedTable(), report(s, log))
		}
		if e.Snapshot != "" {
			if _, ok := s.objects[e.Snapshot]; !ok {
				return fmt.Sprintf("partition %d: record points at %s, which is gone\n%s", p, e.Snapshot, report(s, log))
			}
		}
	}
	return ""
}

func report(s *sim, log []string) string {
	var b strings.Builder
	for _, v := range s.violations {
		fmt.Fprintf(&b, "violation: %s\n", v)
	}
	b.WriteString("events:\n")
	for _, l := range log {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	b.WriteString("trace (last 40):\n")
	tr := s.trace
	if len(tr) > 40 {
		tr = tr[len(tr)-40:]
	}
	for _, l := range tr {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	return b.String()
}

var (
	replayWorld = flag.Int("world", -1, "TestReplayWorld: the world of -seed to replay")
	replayGrep  = flag.String("grep", "", "TestReplayWorld: print only trace lines containing this")
)

// TestReplayWorld prints the whole trace of one world of TestRandomized:
//
//	go test -run TestReplayWorld ./internal/ownership/ -seed S -world W [-grep p=3]
func TestReplayWorld(t *testing.T) {
	if *replayWorld < 0 || *seedFlag == 0 {
		t.Skip("set -seed and -world")
	}
	traceWorld = func(l string) {
		if strings.Contains(l, *replayGrep) {
			fmt.Println(l)
		}
	}
	defer func() { traceWorld = nil }()
	fmt.Println(randomWorld(rand.New(rand.NewPCG(*seedFlag, uint64(*replayWorld)))))
}
