package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/state"
	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

// scaleEnv selects TestScaleRSSAndRestart and its number of shoppers:
//
//	FLASHRETURN_SCALE_USERS=1000000 go test -run TestScaleRSSAndRestart -v -timeout 30m ./cmd/flashreturnd/
const scaleEnv = "FLASHRETURN_SCALE_USERS"

// TestScaleRSSAndRestart measures, for issue 15, what a daemon with N
// shoppers in state costs: it writes N typical shoppers (3 orders, an
// approved request; recordtest.TypicalUser) into a data directory
// through the state package, over P=64 partitions as the daemon hashes
// them, starts flashreturnd on it, sends one credit.updated per shopper
// (so that every shopper is read from Badger into the daemon's cache and
// written back) and reports the daemon's RSS once all are applied; then
// kill -9 and reports the time until /readyz answers 200 again. It only
// measures (figures in the log, for bench/RESULTS.md); it fails only when
// something does not work.
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
	start = time.Now()
	c := startChild(t, dir, natsPort, httpPort, args...)
	t.Logf("first start (streams created): ready after %v", time.Since(start).Round(time.Millisecond))

	_, js := testkit.Connect(t, c.natsURL)
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
		f, err := js.PublishAsync(wire.InSubject(wire.KindCredit, u), data, jetstream.WithMsgID(fmt.Sprintf("sc%d", i)))
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
	rss, hwm := procRSS(t, c.cmd.Process.Pid)
	t.Logf("daemon with %d shoppers, each read and written once: RSS %d MiB (peak %d MiB)", n, rss>>20, hwm>>20)

	c.kill9(t)
	start = time.Now()
	c = startChild(t, dir, natsPort, httpPort, args...)
	t.Logf("kill -9, then ready again after %v (process start to /readyz 200)", time.Since(start).Round(time.Millisecond))
	rss, _ = procRSS(t, c.cmd.Process.Pid)
	t.Logf("RSS right after the restart: %d MiB", rss>>20)
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
