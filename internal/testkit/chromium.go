package testkit

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// chromiumNames are the names a headless-capable Chromium goes by on
// PATH, the distribution's package first: Debian's "chromium", Ubuntu's
// snap shim, Google's builds, and the bare headless_shell of CI images.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"}

// chromiumTimeout bounds one Chromium run. A page with a virtual-time
// budget of a few seconds renders in well under 10 s on the 2-core test
// machine; 40 s leaves room for a cold start under load and still fails
// a test whose page never settles instead of hanging it.
const chromiumTimeout = 40 * time.Second

// Chromium returns the path of a headless-capable Chromium on PATH, or
// skips the test, saying how to install one and what the run would have
// checked (why, e.g. "check the report's charts in a browser"). Browser
// checks are an extra layer over the HTML checks the tests do without
// one, so a machine without Chromium skips them rather than failing.
func Chromium(tb testing.TB, why string) string {
	tb.Helper()
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	tb.Skipf("no chromium on PATH: install it (sh deploy/install-tools.sh, or apt-get install -y chromium) to %s", why)
	return ""
}

// RunChromium runs headless Chromium bin with args after the flags that
// keep it quiet and self-contained (no sandbox, which root in a container
// lacks; no GPU, network side traffic or extensions; a profile in a temp
// dir of tb, so that runs share nothing), and returns its stdout. It
// fails the test when Chromium exits non-zero or outlives its timeout,
// with Chromium's stderr in the message.
func RunChromium(tb testing.TB, bin string, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--disable-extensions", "--hide-scrollbars", "--user-data-dir=" + tb.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// RenderDOM loads url in headless Chromium bin and returns the DOM as the
// page's scripts left it once budget of virtual time has passed.
// Chromium pauses virtual time while the page waits for the network, so
// the budget is how much page time (timers, polls) to let run, not a
// wall-clock sleep: the page's fetches finish within it however slow the
// machine is.
func RenderDOM(tb testing.TB, bin, url string, budget time.Duration) string {
	tb.Helper()
	return RunChromium(tb, bin, fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds()), "--dump-dom", url)
}
