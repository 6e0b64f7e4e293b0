package pipeline

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/core"
)

// startNoJetStream starts a NATS server without JetStream (as a cluster
// node looks before it has a meta leader: JetStream requests fail).
func startNoJetStream(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
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
	waitUntil(t, 30*time.Second, "a failed setup attempt", func() bool { return d.m.setupRetries.Get() > 0 })
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
	if d.m.setupRetries.Get() == 0 {
		t.Fatal("no retry before giving up")
	}

	// Permanent: the shared inbound stream exists with another P.
	srv := startTestServer(t)
	cfg = setupTestConfig(t, srv.ClientURL())
	cfg.Layout = LayoutShared
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
	var pe *permanentError
	if !errors.As(err, &pe) {
		t.Fatalf("P changed: got %v, want a permanent error", err)
	}
	if n := d.m.setupRetries.Get(); n != 0 {
		t.Fatalf("permanent error retried %d times", n)
	}
}

// TestEnsureStreamsIdempotent: after EnsureStreams every stream already
// has the settings asked for (as the server normalises them), so a
// restart only reads stream info and proposes nothing; a changed setting
// is still applied.
func TestEnsureStreamsIdempotent(t *testing.T) {
	for _, layout := range []Layout{LayoutShared, LayoutStreams} {
		srv, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), Layout: layout, Partitions: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		o := StreamOptions{Layout: layout, Partitions: 4, InMaxAge: time.Hour, OutMaxAge: 2 * time.Hour}
		if err := EnsureStreams(ctx, js, o); err != nil {
			t.Fatal(err)
		}
		want := []jetstream.StreamConfig{
			{Name: StreamOut, Subjects: []string{"fr.out.>"}, Duplicates: dupWindow, MaxAge: o.OutMaxAge, Storage: jetstream.FileStorage, Replicas: 1},
			{Name: StreamMerchant, Subjects: []string{"fr.merchant.>"}, MaxMsgsPerSubject: MerchantHistory, Storage: jetstream.FileStorage, Replicas: 1},
		}
		if layout == LayoutShared {
			want = append(want, jetstream.StreamConfig{Name: StreamIn, Subjects: []string{inboundWildcard}, Duplicates: dupWindow, MaxAge: o.InMaxAge,
				Storage: jetstream.FileStorage, Replicas: 1,
				SubjectTransform: &jetstream.SubjectTransformConfig{Source: inboundWildcard, Destination: partitionedDest(4)}})
		} else {
			want = append(want, jetstream.StreamConfig{Name: InStream(layout, 3), Subjects: []string{PartitionFilter(3)}, Duplicates: dupWindow, MaxAge: o.InMaxAge, Storage: jetstream.FileStorage, Replicas: 1})
		}
		for _, c := range want {
			s, err := js.Stream(ctx, c.Name)
			if err != nil {
				t.Fatal(err)
			}
			if !streamConfigured(s.CachedInfo().Config, c) {
				t.Errorf("%s %s: created stream does not match its config: have %+v", layout, c.Name, s.CachedInfo().Config)
			}
		}
		// A changed retention is applied on the next start.
		o.OutMaxAge = 3 * time.Hour
		if err := EnsureStreams(ctx, js, o); err != nil {
			t.Fatal(err)
		}
		s, err := js.Stream(ctx, StreamOut)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.MaxAge; got != 3*time.Hour {
			t.Errorf("%s: FR_OUT MaxAge %s after the update, want 3h", layout, got)
		}
	}
}

// TestRetryable: which setup errors the daemon waits out.
func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{&jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeJetStreamNotEnabled}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: errCodeNoSuitablePeers}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamNameInUse}, false},
		{permanent(errors.New("P changed")), false},
	} {
		if got := retryable(fmt.Errorf("wrapped: %w", c.err)); got != c.want {
			t.Errorf("retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
