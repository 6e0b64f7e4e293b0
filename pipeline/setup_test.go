package pipeline

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/pipeline/streams"
)

// startNoJetStream starts a NATS server without JetStream (as a cluster
// node looks before it has a meta leader: JetStream requests fail).
func startNoJetStream(t *testing.T) *server.Server {
	t.Helper()
	return testkit.StartServer(t, func(o *server.Options) { o.JetStream = false })
}

// goRun starts d.Run in a goroutine; done receives its result.
func goRun(d *Daemon) (cancel context.CancelFunc, done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- d.Run(ctx) }()
	return cancel, ch
}

func setupTestConfig(t *testing.T, url string) Config {
	pol, _ := core.Preset("tmall-fast-return")
	return Config{DataDir: t.TempDir(), NATSURL: url, HTTPAddr: "off", Policy: pol, Partitions: 4, ClockInterval: -1}
}

// TestSetupWaitsForJetStream: a daemon started while JetStream is not
// available retries its stream setup and starts once JetStream appears.
func TestSetupWaitsForJetStream(t *testing.T) {
	s := startNoJetStream(t)
	cfg := setupTestConfig(t, s.ClientURL())
	cfg.SetupTimeout = time.Minute
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := goRun(d)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	testkit.WaitUntil(t, 30*time.Second, "a failed setup attempt", func() bool { return d.m.SetupRetries.Get() > 0 })
	select {
	case <-d.Started():
		t.Fatal("daemon started without JetStream")
	default:
	}
	if err := s.EnableJetStream(&server.JetStreamConfig{StoreDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Started():
	case err := <-done:
		t.Fatalf("daemon stopped instead of starting: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not start within 30s of JetStream appearing")
	}
}

// TestSetupGivesUp: without JetStream the daemon stops after SetupTimeout
// with the last error; a permanent error stops it at the first attempt.
func TestSetupGivesUp(t *testing.T) {
	s := startNoJetStream(t)
	cfg := setupTestConfig(t, s.ClientURL())
	cfg.SetupTimeout = 300 * time.Millisecond
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background()); err == nil {
		t.Fatal("run without JetStream succeeded")
	}
	if d.m.SetupRetries.Get() == 0 {
		t.Fatal("no retry before giving up")
	}

	// Permanent: the shared inbound stream exists with another P.
	srv := testkit.StartServer(t)
	cfg = setupTestConfig(t, srv.ClientURL())
	cfg.Layout = streams.LayoutShared
	d, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := goRun(d)
	<-d.Started()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cfg.Partitions = 8
	cfg.DataDir = t.TempDir()
	d, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Run(context.Background())
	if err == nil || streams.Retryable(err) {
		t.Fatalf("P changed: got %v, want a permanent error", err)
	}
	if n := d.m.SetupRetries.Get(); n != 0 {
		t.Fatalf("permanent error retried %d times", n)
	}
}

// metricValue reads a counter of d's metrics set by name (the cluster's
// counters are registered there, so tests need not reach into it).
func metricValue(d *Daemon, name string) uint64 {
	return d.cfg.Metrics.GetOrCreateCounter(name).Get()
}

// TestConfigAdvertiseHTTP: WithDefaults trims the advertised base URL,
// Validate refuses a malformed one or one with HTTP off, and neither
// changes the Config it is called on.
func TestConfigAdvertiseHTTP(t *testing.T) {
	pol, _ := core.Preset("tmall-fast-return")
	noop := func(*Daemon) http.Handler { return http.NotFoundHandler() }
	for _, tc := range []struct {
		http, adv, want string
		ok              bool
	}{
		{"127.0.0.1:8080", "", "", true},
		{"127.0.0.1:8080", "http://10.0.0.5:8080/", "http://10.0.0.5:8080", true},
		{"127.0.0.1:8080", "https://fr-a.example/flashreturn", "https://fr-a.example/flashreturn", true},
		{"127.0.0.1:8080", "10.0.0.5:8080", "", false},
		{"127.0.0.1:8080", "ftp://10.0.0.5", "", false},
		{"127.0.0.1:8080", "http://", "", false},
		{"127.0.0.1:8080", "http://h:1/?q=1", "", false},
		{"off", "http://10.0.0.5:8080", "", false},
	} {
		given := Config{HTTPAddr: tc.http, AdvertiseHTTP: tc.adv, Policy: pol, HTTP: noop}
		c := given.WithDefaults()
		err := c.Validate()
		if (err == nil) != tc.ok || (tc.ok && c.AdvertiseHTTP != tc.want) {
			t.Errorf("AdvertiseHTTP %q (HTTP %q): got %q, %v", tc.adv, tc.http, c.AdvertiseHTTP, err)
		}
		if given.AdvertiseHTTP != tc.adv {
			t.Errorf("WithDefaults changed the caller's AdvertiseHTTP to %q", given.AdvertiseHTTP)
		}
	}
}
