package state

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

// The crash test re-executes the test binary as a child (TestCrashChild,
// selected by crashDirEnv) that commits batches on crashPartitions
// partitions in a loop, printing "c <partition> <batch>" after each
// successful Commit. The parent SIGKILLs it at random moments, then checks
// that every partition's cursor, users, timers, traces and outbox agree on
// one batch (no batch half-applied) and that no acknowledged batch was lost.
const (
	crashDirEnv     = "FLASHRETURN_STATE_CRASH_DIR"
	crashSeedEnv    = "FLASHRETURN_STATE_CRASH_SEED"
	crashPartitions = 2
	crashUsers      = 64 // users per partition, all written by every batch
	crashTimerUsers = 5  // users whose deadline is the batch number
	crashKills      = 20
)

func crashUserID(p, i int) string { return fmt.Sprintf("p%d-user-%03d", p, i) }

// crashOpts are the store options of parent and child: small memtables so
// that flushes to L0 happen during the run.
func crashOpts(dir string) Options {
	return Options{Dir: dir, memTableBytes: 1 << 20}
}

// crashPolicy is the policy of batch b's requests: a new version every
// third batch (its record is written by that batch's commit), else one
// shared version.
func crashPolicy(b uint64) *core.Policy {
	p := *recordtest.Tmall
	p.Name = "crash"
	if b%3 == 0 {
		p.Name = fmt.Sprintf("crash-%d", b)
	}
	if err := p.Finish(); err != nil {
		panic(err)
	}
	return &p
}

// crashBatch stages batch b on pt: every user gets OutstandingFen = b, b%4
// orders and one request following crashPolicy(b), timer users get
// deadline b, the "odd" user a deadline only on odd batches, and one trace.
func crashBatch(pt *Partition, b uint64) ([]OutMsg, error) {
	p := pt.ID()
	pol := crashPolicy(b)
	for i := range crashUsers {
		u, err := pt.User(crashUserID(p, i))
		if err != nil {
			return nil, err
		}
		u.OutstandingFen = int64(b)
		u.MaxAt = int64(b) * 1e9
		u.Orders = u.Orders[:0]
		for j := range int(b % 4) {
			u.Orders = append(u.Orders, core.Order{ID: fmt.Sprintf("o%d-%d", b, j), PaidAt: int64(b) * 1e9})
		}
		u.Requests = append(u.Requests[:0], core.Request{ID: "r", At: int64(b) * 1e9, Policy: pol})
		pt.MarkDirty(u)
	}
	for i := range crashTimerUsers {
		pt.SetDeadline(crashUserID(p, i), int64(b))
	}
	if b%2 == 1 {
		pt.SetDeadline("odd", int64(b))
	} else {
		pt.SetDeadline("odd", 0)
	}
	pt.PutTrace(crashUserID(p, 0), strconv.FormatUint(b, 10), []byte(strconv.FormatUint(b, 10)))
	return []OutMsg{{
		Subject: fmt.Sprintf("fr.out.test.p%d", p),
		MsgID:   fmt.Sprintf("p%d-b%d", p, b),
		Data:    []byte(strconv.FormatUint(b, 10)),
	}}, nil
}

// verifyCrashState checks that partition pt (freshly opened) is exactly the
// state after its cursor's batch.
func verifyCrashState(s *Store, pt *Partition) error {
	p, c := pt.ID(), pt.Cursor()
	if c == 0 {
		if u, ok, err := s.ReadUser(p, crashUserID(p, 0)); ok || err != nil {
			return fmt.Errorf("partition %d: cursor 0 but user %+v (err %v)", p, u, err)
		}
		if pt.Outbox() != nil || len(pt.Due(1<<62, math.MaxInt, nil)) != 0 {
			return fmt.Errorf("partition %d: cursor 0 with outbox or timers", p)
		}
		return nil
	}
	if pt.Clock() != int64(c)*10 {
		return fmt.Errorf("partition %d: cursor %d, clock %d", p, c, pt.Clock())
	}
	for i := range crashUsers {
		u, ok, err := s.ReadUser(p, crashUserID(p, i))
		if err != nil || !ok {
			return fmt.Errorf("partition %d: cursor %d, user %d: ok %v err %v", p, c, i, ok, err)
		}
		if u.OutstandingFen != int64(c) || len(u.Orders) != int(c%4) {
			return fmt.Errorf("partition %d: cursor %d but user %d is at batch %d with %d orders (half-applied batch)",
				p, c, i, u.OutstandingFen, len(u.Orders))
		}
		if want := crashPolicy(c); len(u.Requests) != 1 || !samePolicy(u.Requests[0].Policy, want) {
			return fmt.Errorf("partition %d: cursor %d, user %d's request does not follow %s", p, c, i, want.Name)
		}
	}
	for i := range crashTimerUsers {
		if d := pt.Deadline(crashUserID(p, i)); d != int64(c) {
			return fmt.Errorf("partition %d: cursor %d, timer %d at %d", p, c, i, d)
		}
	}
	if want := int64(c % 2 * c); pt.Deadline("odd") != want {
		return fmt.Errorf("partition %d: cursor %d, odd timer %d, want %d", p, c, pt.Deadline("odd"), want)
	}
	ob := pt.Outbox()
	if len(ob) != 1 || ob[0].MsgID != fmt.Sprintf("p%d-b%d", p, c) || string(ob[0].Data) != strconv.FormatUint(c, 10) {
		return fmt.Errorf("partition %d: cursor %d, outbox %+v", p, c, ob)
	}
	tr, ok, err := s.ReadTrace(p, crashUserID(p, 0), strconv.FormatUint(c, 10))
	if err != nil || !ok || string(tr) != strconv.FormatUint(c, 10) {
		return fmt.Errorf("partition %d: cursor %d, trace %q ok %v err %v", p, c, tr, ok, err)
	}
	return nil
}

// TestCrashChild is the child of TestCrashRecovery; it does nothing unless
// started by it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestCrashRecovery")
	}
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	s, err := Open(crashOpts(dir))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	var wg sync.WaitGroup
	for p := range crashPartitions {
		pt, err := s.Partition(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := verifyCrashState(s, pt); err != nil {
			t.Fatalf("child start: %v", err)
		}
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(p)))
			for {
				b := pt.Cursor() + 1
				if r.IntN(8) == 0 {
					// An abandoned batch must leave no trace.
					if _, err := crashBatch(pt, b+1000); err != nil {
						t.Error(err)
						return
					}
					pt.Discard()
				}
				out, err := crashBatch(pt, b)
				if err == nil {
					err = pt.Commit(b, int64(b)*10, out)
				}
				if err != nil {
					t.Error(err)
					return
				}
				say("c %d %d", p, b)
			}
		})
	}
	say("ready")
	wg.Wait() // until killed
}

func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(crashSeedEnv); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (rerun with %s=%d)", seed, crashSeedEnv, seed)
	r := rand.New(rand.NewPCG(seed, 42))
	dir := t.TempDir()
	acked := make([]uint64, crashPartitions)
	var mid int
	for kill := range crashKills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("%s=%d", crashSeedEnv, r.Uint64()))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Wait for a random number of commits, then kill at a random moment
		// inside the commit loop.
		target := 1 + r.IntN(80)
		commits := 0
		timeout := time.After(60 * time.Second)
	wait:
		for commits < target {
			select {
			case line, ok := <-lines:
				if !ok {
					cmd.Wait()
					t.Fatalf("kill %d: child exited early: %s", kill, stderr.String())
				}
				if noteCommit(t, line, acked) {
					commits++
				}
			case <-timeout:
				break wait
			}
		}
		spin(time.Duration(r.IntN(2000)) * time.Microsecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		for line := range lines { // commits printed before the kill were acknowledged
			noteCommit(t, line, acked)
		}
		cmd.Wait()
		if commits < target {
			t.Fatalf("kill %d: child made %d commits in 60s: %s", kill, commits, stderr.String())
		}

		s, err := Open(crashOpts(dir))
		if err != nil {
			t.Fatalf("kill %d: reopen: %v", kill, err)
		}

		for p := range crashPartitions {
			pt, err := s.Partition(p)
			if err != nil {
				t.Fatalf("kill %d: %v", kill, err)
			}
			if err := verifyCrashState(s, pt); err != nil {
				t.Fatalf("kill %d: %v", kill, err)
			}
			if pt.Cursor() < acked[p] {
				t.Fatalf("kill %d: partition %d cursor %d, but batch %d was acknowledged", kill, p, pt.Cursor(), acked[p])
			}
			if pt.Cursor() > acked[p] {
				mid++ // killed between Commit and its acknowledgement
			}
			acked[p] = pt.Cursor()
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d kills; cursors %v; %d partition restarts found a commit newer than the last printed", crashKills, acked, mid)
}

// noteCommit records a "c <partition> <batch>" line; it reports whether the
// line was one.
func noteCommit(t *testing.T, line string, acked []uint64) bool {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "c" {
		return false
	}
	p, err1 := strconv.Atoi(f[1])
	b, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil || p < 0 || p >= len(acked) {
		t.Fatalf("bad child line %q", line)
	}
	acked[p] = max(acked[p], b)
	return true
}

// spin busy-waits for d: a random kill moment, not synchronisation.
func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}
