package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/loadgen"
)

// TestMain lets the test binary stand in for loadgen (testkit.RunChild
// under LOADGEN_CHILD), so that exit codes are those of a real process,
// and for a fault command that forges a second decision
// (LOADGEN_TEST_FORGE holds the NATS URL).
func TestMain(m *testing.M) {
	// The forger first: it runs as a child of a loadgen child and inherits
	// LOADGEN_CHILD.
	if url := os.Getenv("LOADGEN_TEST_FORGE"); url != "" {
		if err := forgeDecision(url); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	testkit.RunChild("LOADGEN_CHILD", func(argv []string) int { return run(argv, os.Stdout, os.Stderr) })
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// forgeDecision republishes the first decision on FR_OUT under another
// Nats-Msg-Id: a request decided twice, which the audit must catch.
func forgeDecision(url string) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "FR_OUT")
	if err != nil {
		return err
	}
	for {
		m, err := s.GetLastMsgForSubject(ctx, "fr.out.decision.>")
		if err == nil {
			_, err = js.Publish(ctx, m.Subject, m.Data, jetstream.WithMsgID("forged-"+m.Subject))
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no decision to forge: %w", err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

var (
	binDir    string
	buildOnce sync.Once
	daemonBin string
	buildErr  error
)

// flashreturnd builds the daemon once per test binary (without -race: it
// is the target, not what is tested).
func flashreturnd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs flashreturnd: skipped in -short mode")
	}
	buildOnce.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("go command not found: %w", err)
			return
		}
		if binDir, buildErr = os.MkdirTemp("", "loadgen-test-bin"); buildErr != nil {
			return
		}
		daemonBin = filepath.Join(binDir, "flashreturnd")
		out, err := exec.Command(gobin, "build", "-o", daemonBin, "github.com/flashreturn/flashreturn/cmd/flashreturnd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build flashreturnd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return daemonBin
}

// daemonArgs are loadgen's --spawn and --nats-url for a flashreturnd on
// fresh ports and data dir, and that NATS URL.
func daemonArgs(t *testing.T) ([]string, string) {
	natsPort, httpPort := testkit.FreePort(t), testkit.FreePort(t)
	cmd := fmt.Sprintf("%s --data-dir %s --nats-listen 127.0.0.1:%d --http 127.0.0.1:%d --partitions 8 --log-level warn",
		flashreturnd(t), filepath.Join(t.TempDir(), "data"), natsPort, httpPort)
	url := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	return []string{"--spawn", cmd, "--spawn-log-dir", t.TempDir(), "--nats-url", url}, url
}

// small is a short, small world: a few hundred events with many requests.
var small = []string{"--shape", "steady", "--shoppers", "300", "--merchants", "20", "--return-fraction", "0.3", "--progress", "never"}

// loadgenProcess runs the test binary as loadgen with args and returns its
// exit code and stderr.
func loadgenProcess(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := testkit.ChildCommand(ctx, "LOADGEN_CHILD", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run() // waits: the child and its own children are gone when it returns
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		t.Logf("loadgen %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, ee.ExitCode(), stdout.String(), stderr.String())
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("loadgen %q: %v\n%s", args, err, stderr.String())
	return -1, ""
}

// TestExitCodes runs loadgen as a process: 2 for usage errors, 3 for a
// run that cannot be carried out, 4 for a broken threshold with the audit
// passed, 1 for a failed audit even when a threshold is broken too.
func TestExitCodes(t *testing.T) {
	code := func(want int, args ...string) string {
		t.Helper()
		got, stderr := loadgenProcess(t, args...)
		if got != want {
			t.Fatalf("loadgen %q: exit %d, want %d\n%s", args, got, want, stderr)
		}
		return stderr
	}
	if s := code(exitUsage, "--threshold", "p99<10"); !strings.Contains(s, "duration") {
		t.Fatalf("usage error does not say what is wrong:\n%s", s)
	}
	code(exitUsage, "--faults", "kill9@5s,start@6s") // nothing spawned, no fault command
	code(exitRun, "--nats-url", "nats://127.0.0.1:1", "--duration", "1s")
	code(exitRun, "--spawn", filepath.Join(t.TempDir(), "no-such-daemon"), "--spawn-log-dir", t.TempDir(),
		"--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", testkit.FreePort(t)))
	if s := code(exitRun, "--spawn", "sh -c 'exit 7'", "--spawn-log-dir", t.TempDir(),
		"--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", testkit.FreePort(t))); !strings.Contains(s, "exited before it was ready (exit status 7)") {
		t.Fatalf("a target that dies at once:\n%s", s)
	}

	// Against the real daemon: the audit passes, one threshold is broken.
	args, _ := daemonArgs(t)
	args = append(append(args, small...), "--rate", "300", "--duration", "2s", "--threshold", "p50<1us", "--threshold", "decided==100%")
	if s := code(exitThreshold, args...); !strings.Contains(s, "threshold broken: p50<1us") || strings.Contains(s, "decided==100%") {
		t.Fatalf("threshold report on stderr:\n%s", s)
	}

	// A fault command forges a second decision: the audit fails, and that
	// wins over the broken threshold.
	args, url := daemonArgs(t)
	forger := fmt.Sprintf("LOADGEN_TEST_FORGE=%s '%s' -test.run='^$'", url, os.Args[0])
	args = append(append(args, small...), "--rate", "300", "--duration", "3s", "--fault-cmd", forger, "--faults", "outputs:forge@1500ms",
		"--threshold", "p50<1us")
	if s := code(exitAudit, args...); !strings.Contains(s, "audit failed: decision_exactly_once") {
		t.Fatalf("forged decision not caught:\n%s", s)
	}
}

func TestExitCodeOfReport(t *testing.T) {
	f := func(audit, thresholds bool, want int) {
		t.Helper()
		if got := exitCode(&loadgen.Report{Passed: audit, ThresholdsPassed: thresholds}); got != want {
			t.Fatalf("audit %v thresholds %v: exit %d, want %d", audit, thresholds, got, want)
		}
	}
	f(true, true, exitOK)
	f(true, false, exitThreshold)
	f(false, true, exitAudit)
	f(false, false, exitAudit)
}

// TestFaultedRunAgainstDaemon is the capacity engineer's faulted run, small:
// loadgen spawns the real flashreturnd, kills it with SIGKILL twice under
// load and restarts it on the same data dir, and the audit must pass
// (nothing lost, nothing doubled); the JSON report lists the faults with
// the decision gaps they caused and the HTML report marks them on its
// charts (checked in headless Chromium when it is installed).
func TestFaultedRunAgainstDaemon(t *testing.T) {
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "report.json"), filepath.Join(dir, "report.html")
	args, _ := daemonArgs(t)
	args = append(append(args, small...), "--rate", "400", "--duration", "12s", "--run-id", "e2e",
		"--faults", "kill9@3s,start@4s,kill9@7s,start@8s",
		"--threshold", "decided==100%", "--threshold", "dlq_unexpected==0", "--threshold", "gap<30s",
		"--json", jsonPath, "--html", htmlPath)
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(args, &stdout, &stderr)
	t.Logf("loadgen exit %d in %v\n%s\n%s", code, time.Since(start), stdout.String(), stderr.String())
	if code != exitOK {
		t.Fatalf("faulted run: exit %d, want %d", code, exitOK)
	}

	var rep loadgen.Report
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Passed || !rep.ThresholdsPassed || len(rep.Thresholds) != 3 {
		t.Fatalf("audit passed %v, thresholds passed %v (%d)", rep.Passed, rep.ThresholdsPassed, len(rep.Thresholds))
	}
	if rep.Publish.Failed != 0 || rep.Publish.Errors == 0 || rep.Requests < 100 {
		t.Fatalf("publish %+v, %d requests: want every event acked after retries, and enough requests", rep.Publish, rep.Requests)
	}
	if len(rep.Faults) != 4 {
		t.Fatalf("%d faults in the report, want 4: %+v", len(rep.Faults), rep.Faults)
	}
	pids := map[int]bool{}
	for i, f := range rep.Faults {
		want := []string{"kill9", "start"}[i%2]
		if f.Action != want || f.Target != "daemon" || f.By != "loadgen" || f.Error != "" || f.PID == 0 {
			t.Fatalf("fault %d: %+v, want a carried-out %s", i, f, want)
		}
		if f.AtSec < f.PlannedSec-0.01 || f.AtSec > f.PlannedSec+2 {
			t.Fatalf("fault %d carried out at %.2fs, planned %.2fs", i, f.AtSec, f.PlannedSec)
		}
		// Every fault stopped decisions for a while and they resumed: a
		// kill's gap lasts at least until the restart a second later.
		if f.GapMs <= 0 || f.Resumed == 0 || f.Partitions != 8 || len(f.PartitionGapsMs) != 8 {
			t.Fatalf("fault %d: decision gap %.1f ms, %d/%d partitions decided: %+v", i, f.GapMs, f.Resumed, f.Partitions, f)
		}
		if want == "kill9" && f.GapMs < 900 {
			t.Fatalf("kill at %.2fs: decision gap %.1f ms, shorter than the 1 s until the restart", f.AtSec, f.GapMs)
		}
		if want == "start" && (f.ReadySec == nil || *f.ReadySec < 0) {
			t.Fatalf("start at %.2fs: never ready", f.AtSec)
		}
		pids[f.PID] = true
	}
	if len(pids) != 3 || len(rep.Processes) != 1 || len(rep.Processes[0].Runs) != 3 {
		t.Fatalf("processes %+v: want 3 lives of the daemon", rep.Processes)
	}
	for i, r := range rep.Processes[0].Runs {
		if r.Exit == "" || (i < 2) != strings.Contains(r.Exit, "killed") {
			t.Fatalf("life %d of the daemon ended %q", i, r.Exit)
		}
	}
	if !strings.Contains(stderr.String(), "loadgen: fault +3.") || !strings.Contains(stdout.String(), "daemon kill9") {
		t.Fatal("the faults are not logged as they happen and in the summary")
	}

	page, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="faults"`, `class="fault-row"`, "fault-marker", "marks: F"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Fatalf("HTML report lacks %q", want)
		}
	}

	t.Run("chromium", func(t *testing.T) {
		bin := testkit.Chromium(t, "check the report's charts in a browser")
		dom := testkit.RenderDOM(t, bin, "file://"+htmlPath, 3*time.Second)
		if !strings.Contains(dom, `data-rendered="1"`) {
			t.Fatalf("the report's script did not finish:\n%s", dom)
		}
		for _, id := range []string{"lat", "thr", "blg"} {
			m := regexp.MustCompile(`(?s)id="` + id + `">(.*?)</div>`).FindStringSubmatch(dom)
			if m == nil {
				t.Fatalf("no #%s chart in the rendered DOM", id)
			}
			markers := regexp.MustCompile(`<g class="fault-marker" data-target="daemon" data-action="(kill9|start)"`).FindAllStringSubmatch(m[1], -1)
			if len(markers) != 4 || markers[0][1] != "kill9" || markers[1][1] != "start" {
				t.Fatalf("#%s: %d fault markers %v, want kill9, start, kill9, start", id, len(markers), markers)
			}
			if !strings.Contains(m[1], `class="fault-legend"`) {
				t.Fatalf("#%s has no fault legend", id)
			}
		}
	})
}
