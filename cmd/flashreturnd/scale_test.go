package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/state"
	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

// scaleEnv selects TestScaleRSSAndRestart and its number of shoppers:
//
//	FLASHRETURN_SCALE_USERS=1000000 go test -run TestScaleRSSAndRestart -v -count=1 -timeout 40m ./cmd/flashreturnd/
const scaleEnv = "FLASHRETURN_SCALE_USERS"

// scaleNATSEnv=external runs the NATS server in the test process instead
// of embedded in the daemon, to measure the daemon's own memory (what a
// daemon given --nats-url costs); FLASHRETURN_SCALE_PROFILES=dir saves the
// daemon's heap profiles there; FLASHRETURN_SCALE_ARGS adds flags to the
// daemon's command line (space-separated, e.g. "--layout shared
// --cache-mb 64"), to measure what a setting costs or saves. With
// profiles it also saves a CPU profile of the load's first 30 s.
const scaleNATSEnv = "FLASHRETURN_SCALE_NATS"

// TestScaleRSSAndRestart measures, for issue 15, what a daemon with N
// shoppers in state costs: it writes N typical shoppers (3 orders, an
// approved request; recordtest.TypicalUser) into a data directory
// through the state package, over P=64 partitions as the daemon hashes
// them, starts flashreturnd on it, sends one credit.updated per shopper
// (so that every shopper is read from Badger into the daemon's cache and
// written back) and reports the daemon's RSS once all are applied; then
// kill -9 and reports the time until /readyz answers 200 again. Each RSS
// is split (memReport) into anonymous and file-backed memory and the Go
// heap, once right after the load and again after 12 s idle
// (FLASHRETURN_SCALE_IDLE), when the load's buffers have gone. It only measures (figures in the log, for
// bench/RESULTS.md); it fails only when something does not work.
func TestScaleRSSAndRestart(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(scaleEnv))
	if n <= 0 {
		t.Skipf("set %s=N to measure a daemon with N shoppers", scaleEnv)
	}
	const parts = 64
	dir := t.TempDir()
	start := time.Now()
	fillState(t, filepath.Join(dir, "state"), n, parts)
	t.Logf("%d shoppers written in %v", n, time.Since(start).Round(time.Millisecond))

	natsPort, httpPort := testkit.FreePort(t), testkit.FreePort(t)
	args := []string{"--partitions", strconv.Itoa(parts), "--log-level", "warn"}
	if os.Getenv(scaleNATSEnv) == "external" {
		// The NATS server in this process, with the partition mapping of
		// the streams layout: the child's RSS is then the daemon's own.
		srv := testkit.StartServer(t, func(o *server.Options) { o.Port = natsPort })
		if err := srv.GlobalAccount().AddMapping(wire.PartitionMapping(parts)); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--nats-url", srv.ClientURL(), "--layout", "streams")
		t.Logf("NATS server in the test process (%s=external): the daemon's RSS excludes it", scaleNATSEnv)
	}
	if extra := strings.Fields(os.Getenv("FLASHRETURN_SCALE_ARGS")); len(extra) > 0 {
		args = append(args, extra...)
		t.Logf("daemon flags %v", args)
	}
	start = time.Now()
	c := startChild(t, dir, natsPort, httpPort, args...)
	t.Logf("first start (streams created): ready after %v", time.Since(start).Round(time.Millisecond))

	_, js := testkit.Connect(t, c.natsURL)
	cpuDone := cpuProfile(t, c, 30*time.Second, "cpu-load.pb.gz")
	start = time.Now()
	futures := make([]jetstream.PubAckFuture, 0, 2048) // under the client's 4,000 async limit
	wait := func() {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatal(err)
			}
		}
		futures = futures[:0]
	}
	for i := range n {
		u := fmt.Sprintf("u%08d", i)
		data := fmt.Appendf(nil, `{"event_id":"sc%d","type":"credit.updated","at":"2020-01-01T00:00:00+08:00","user_id":"%s","stars":%d}`, i, u, 1+i%5)
		subj, id := wire.InSubject(wire.KindCredit, u), jetstream.WithMsgID(fmt.Sprintf("sc%d", i))
		f, err := js.PublishAsync(subj, data, id)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			// The server is behind (a busy 2-core machine): wait for
			// what is in flight, then publish this one again.
			wait()
			f, err = js.PublishAsync(subj, data, id)
		}
		if err != nil {
			t.Fatal(err)
		}
		if futures = append(futures, f); len(futures) == cap(futures) {
			wait()
		}
	}
	wait()
	t.Logf("%d events published in %v", n, time.Since(start).Round(time.Millisecond))
	testkit.WaitUntil(t, 10*time.Minute, "every event applied", func() bool { return metricSum(c, "flashreturn_events_in_total") >= float64(n) })
	if dl := metricSum(c, "flashreturn_dead_letters_total"); dl != 0 {
		t.Fatalf("%.0f dead letters: the shoppers written through state did not read back", dl)
	}
	t.Logf("%d events applied %v after the first publish", n, time.Since(start).Round(time.Millisecond))
	<-cpuDone
	rss, hwm := procRSS(t, c.cmd.Process.Pid)
	t.Logf("daemon with %d shoppers, each read and written once: RSS %d MiB (peak %d MiB)", n, rss>>20, hwm>>20)
	memReport(t, c, "after the load")
	// Idle for 12 s, the load's buffers go: the NATS file store drops a
	// block's cache 10 s after its last use (into a sync.Pool, which the
	// second GC empties), Badger frees an idle table builder every 2 s.
	// FLASHRETURN_SCALE_IDLE (a duration) idles longer: past 2 minutes the
	// inbound duplicate window's message IDs of the load are gone too.
	idle := 12 * time.Second
	if d, err := time.ParseDuration(os.Getenv("FLASHRETURN_SCALE_IDLE")); err == nil && d > 0 {
		idle = d
	}
	time.Sleep(idle) // a measurement's idle period, not a wait for a condition
	forceGC(t, c)
	memReport(t, c, fmt.Sprintf("%v idle", idle))

	c.kill9(t)
	start = time.Now()
	c = startChild(t, dir, natsPort, httpPort, args...)
	t.Logf("kill -9, then ready again after %v (process start to /readyz 200)", time.Since(start).Round(time.Millisecond))
	rss, _ = procRSS(t, c.cmd.Process.Pid)
	t.Logf("RSS right after the restart: %d MiB", rss>>20)
	memReport(t, c, "after the restart")
	c.kill9(t)
}

// fillState writes n typical shoppers into a fresh store at dir, each in
// its partition of parts as the daemon hashes user IDs.
func fillState(t *testing.T, dir string, n, parts int) {
	t.Helper()
	s, err := state.Open(state.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pts := make([]*state.Partition, parts)
	for p := range pts {
		if pts[p], err = s.Partition(p); err != nil {
			t.Fatal(err)
		}
	}
	staged := make([]int, parts)
	for i := range n {
		want := recordtest.TypicalUser(i)
		p := wire.Partition(want.ID, parts)
		u, err := pts[p].User(want.ID)
		if err != nil {
			t.Fatal(err)
		}
		*u = *want
		pts[p].MarkDirty(u)
		if staged[p]++; staged[p] == 256 {
			if err := pts[p].Commit(0, 0, nil); err != nil {
				t.Fatal(err)
			}
			staged[p] = 0
		}
	}
	for _, pt := range pts {
		if err := pt.Commit(0, 0, nil); err != nil {
			t.Fatal(err)
		}
		pt.Release()
	}
}

// metricSum sums the daemon's series of the metric name (all labels).
func metricSum(c *child, name string) float64 {
	resp, err := http.Get("http://" + c.httpAddr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// procRSS is a process's VmRSS and VmHWM in bytes.
func procRSS(t *testing.T, pid int) (rss, hwm int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	return rss, hwm
}

// forceGC runs a garbage collection in the daemon (a heap profile with
// gc=1, discarded).
func forceGC(t *testing.T, c *child) {
	t.Helper()
	resp, err := http.Get("http://" + c.httpAddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// memReport logs where the daemon's RSS is: anonymous memory (the Go heap,
// Badger's memtable arenas, the NATS server's buffers) against file-backed
// pages (Badger's mmapped tables and memtable logs, the binary: counted in
// RSS, but page cache the kernel reclaims under pressure), and the Go
// heap as the runtime reports it: in use (live and not yet collected),
// then live (after a forced GC, /debug/pprof/heap?gc=1, whose profile is
// saved when FLASHRETURN_SCALE_PROFILES names a directory).
func memReport(t *testing.T, c *child, when string) {
	t.Helper()
	sm := smapsRollup(t, c.cmd.Process.Pid)
	t.Logf("%s: RSS %d MiB = anon %d MiB + file %d MiB", when,
		sm["Rss"]>>20, sm["Anonymous"]>>20, (sm["Rss"]-sm["Anonymous"])>>20)
	t.Logf("%s: file-backed RSS by kind: %s", when, fileRSS(t, c.cmd.Process.Pid))
	const mib = 1 << 20
	inUse, goal := metricSum(c, "go_memstats_heap_inuse_bytes"), metricSum(c, "go_memstats_next_gc_bytes")
	resp, err := http.Get("http://" + c.httpAddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	prof, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: Go heap in use %.0f MiB (GC goal %.0f MiB), live %.0f MiB; state cache %.0f MiB estimated (%.0f users)", when,
		inUse/mib, goal/mib, metricSum(c, "go_memstats_heap_alloc_bytes")/mib,
		metricSum(c, "flashreturn_state_cache_bytes")/mib, metricSum(c, "flashreturn_state_cache_users"))
	if dir := os.Getenv("FLASHRETURN_SCALE_PROFILES"); dir != "" {
		name := filepath.Join(dir, "heap-"+strings.ReplaceAll(when, " ", "-")+".pb.gz")
		if err := os.WriteFile(name, prof, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: heap profile in %s", when, name)
	}
}

// cpuProfile saves, when FLASHRETURN_SCALE_PROFILES names a directory,
// the daemon's CPU profile of the next d there (in the background; the
// returned channel closes when it is written, or at once without the
// variable).
func cpuProfile(t *testing.T, c *child, d time.Duration, file string) <-chan struct{} {
	done := make(chan struct{})
	dir := os.Getenv("FLASHRETURN_SCALE_PROFILES")
	if dir == "" {
		close(done)
		return done
	}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", c.httpAddr, int(d.Seconds()))
	// A test that stops early must not end before the goroutine, which
	// reports through t.
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		resp, err := http.Get(url)
		if err != nil {
			t.Errorf("CPU profile: %v", err)
			return
		}
		defer resp.Body.Close()
		prof, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, file), prof, 0o644)
		}
		if err != nil {
			t.Errorf("CPU profile: %v", err)
			return
		}
		t.Logf("CPU profile of the load's first %v in %s", d, filepath.Join(dir, file))
	}()
	return done
}

// smapsRollup is a process's /proc/<pid>/smaps_rollup, in bytes by field.
func smapsRollup(t *testing.T, pid int) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
			m[k] = kb << 10
		}
	}
	return m
}

// fileRSS sums a process's file-backed resident pages (/proc/<pid>/smaps)
// by kind of file: Badger's tables (.sst), memtable logs (.mem) and value
// log (.vlog), the executable, and the rest.
func fileRSS(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	sum := map[string]int64{}
	kind := ""
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if lo, _, ok := strings.Cut(f[0], "-"); ok && !strings.HasSuffix(f[0], ":") && len(lo) > 0 {
			// A mapping's header: address range, perms, offset, device,
			// inode, then the path of a file-backed mapping.
			kind = ""
			if len(f) >= 6 && strings.HasPrefix(f[5], "/") {
				switch ext := filepath.Ext(f[5]); {
				case f[5] == exe:
					kind = "binary"
				case ext == ".sst" || ext == ".mem" || ext == ".vlog":
					kind = ext
				default:
					kind = "other"
				}
			}
			continue
		}
		if kind != "" && f[0] == "Rss:" && len(f) >= 2 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			sum[kind] += kb << 10
		}
	}
	var parts []string
	for k, v := range sum {
		parts = append(parts, fmt.Sprintf("%s %d MiB", k, v>>20))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
