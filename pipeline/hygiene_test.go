package pipeline

import (
	"bytes"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/testkit"
)

// TestWorkerGoroutinesLabelled: every partition worker's goroutine carries
// its partition in its pprof labels, so a profile splits by partition.
func TestWorkerGoroutinesLabelled(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	var missing []int
	testkit.WaitUntil(t, 10*time.Second, "every worker goroutine labelled", func() bool {
		var buf bytes.Buffer
		if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
			t.Fatal(err)
		}
		missing = missing[:0]
		for p := range h.d.cfg.Partitions {
			if !strings.Contains(buf.String(), fmt.Sprintf(`"partition":"%d"`, p)) {
				missing = append(missing, p)
			}
		}
		return len(missing) == 0
	})
}

// TestRedactURL: credentials in a NATS URL never reach a log line.
func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                           "nats://127.0.0.1:4222",
		"nats://alice:s3cret@10.0.0.1:4222":               "nats://redacted@10.0.0.1:4222",
		"nats://tok3n@10.0.0.1:4222":                      "nats://redacted@10.0.0.1:4222",
		"nats://a:b@h1:4222,nats://h2:4222":               "nats://redacted@h1:4222,nats://h2:4222",
		"tls://u:p@h:4222, nats://v:q@k:4222":             "tls://redacted@h:4222,nats://redacted@k:4222",
		"":                                                "",
		"not a url with user:pass@host and spaces%zz:1@x": "redacted@x",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(RedactURL(in), "s3cret") {
			t.Errorf("RedactURL(%q) kept the password", in)
		}
	}
}

// TestNATSCredentialsNotLogged: a daemon joining a server with a user and
// password in its URL logs the URL without them.
func TestNATSCredentialsNotLogged(t *testing.T) {
	srv := testkit.StartServer(t, func(o *server.Options) { o.Username, o.Password = "fr", "hunter2-s3cret" })
	url := strings.Replace(srv.ClientURL(), "nats://", "nats://fr:hunter2-s3cret@", 1)
	var mu sync.Mutex
	var logs bytes.Buffer
	pol, _ := core.Preset("tmall-fast-return")
	cfg := Config{DataDir: t.TempDir(), NATSURL: url, HTTPAddr: "off", Policy: pol, Partitions: 2, ClockInterval: -1,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	h := runHarness(t, cfg)
	h.stop()
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "flashreturnd started") {
		t.Fatalf("no start line in the log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "hunter2") {
		t.Fatalf("the NATS password is in the log:\n%s", logs.String())
	}
}

// lockedWriter serialises a logger's writes into a buffer the test reads.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
