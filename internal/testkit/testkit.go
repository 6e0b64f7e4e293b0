package testkit

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pollEvery is WaitUntil's polling interval. Conditions are cheap reads
// (a gauge, a map under a lock, a stream info request); 10 ms keeps a
// test's wait within a few ms of the event while costing the 2-core test
// machine nothing measurable.
const pollEvery = 10 * time.Millisecond

// WaitUntil polls cond until it holds, and fails the test (Fatal) when it
// still does not hold after within. what names the awaited condition in
// the failure ("daemon ready", "a owning all 8"). It is the one way tests
// wait for something asynchronous: never a bare sleep, always a condition
// with a deadline, so a test fails (rather than hangs or flakes) when the
// condition never comes.
func WaitUntil(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(pollEvery) // polling interval, not synchronisation
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// The port is released before it is returned, so another process may
// take it first; the tests that need a fixed port (a child daemon
// restarted on the same address, cluster routes known in advance) accept
// that small race rather than port 0, which cannot be known ahead.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// FreeAddr is FreePort as a "127.0.0.1:<port>" address.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
}

// StartServer starts a real nats-server with JetStream in this process,
// on a free loopback port, its store in a temp dir of tb, and shuts it
// down when tb ends. It has no subject mappings: tests of the daemon's
// own embedded server (with the partition mapping) use
// pipeline/streams.StartEmbedded instead. opts, when given, adjusts the
// options before the server is made (a cluster block, a store dir).
func StartServer(tb testing.TB, opts ...func(*server.Options)) *server.Server {
	tb.Helper()
	o := &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: tb.TempDir(),
		NoSigs: true, NoLog: true, MaxPayload: 1 << 20,
	}
	for _, f := range opts {
		f(o)
	}
	s, err := server.NewServer(o)
	if err != nil {
		tb.Fatal(err)
	}
	s.Start()
	tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats-server not ready for connections within 10s")
	}
	return s
}

// StartCluster starts n clustered nats-servers with JetStream on loopback
// (named n0..n<n-1>, cluster "fr"), waits until JetStream has a meta
// leader, and returns them with their client URLs joined by commas (what
// --nats-url takes). Each node's store is in its own temp dir.
func StartCluster(tb testing.TB, n int) ([]*server.Server, string) {
	tb.Helper()
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range ports {
		ports[i] = FreePort(tb)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
	}
	srvs := make([]*server.Server, n)
	urls := make([]string, n)
	dir := tb.TempDir()
	for i := range srvs {
		srvs[i] = StartServer(tb, func(o *server.Options) {
			o.ServerName = fmt.Sprintf("n%d", i)
			o.StoreDir = filepath.Join(dir, fmt.Sprint(i))
			o.Cluster = server.ClusterOpts{Name: "fr", Host: "127.0.0.1", Port: ports[i]}
			o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		})
		urls[i] = srvs[i].ClientURL()
	}
	// A meta leader is not enough for an R<n> stream: placement needs every
	// peer online with JetStream and its stats received by the leader, or
	// the create fails with "no suitable peers for placement" (seen in
	// TestClusterKill9 under load).
	WaitUntil(tb, 30*time.Second, "JetStream meta leader seeing every peer", func() bool {
		for _, s := range srvs {
			if s.JetStreamIsLeader() {
				return len(s.JetStreamClusterPeers()) == n
			}
		}
		return false
	})
	return srvs, strings.Join(urls, ",")
}

// Connect connects to url (reconnecting for ever, as a publisher that
// outlives a server restart must) and returns the connection and its
// JetStream context; the connection is closed when tb ends. opts come
// after those defaults and so override them (nats.ReconnectBufSize(-1)
// for a test that wants publishes to fail, not buffer, while the server
// is down).
func Connect(tb testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

// Publish stores data on subject with Nats-Msg-Id msgID, retrying (with
// the same ID, so the stream stores it once) until the publish is
// acknowledged, and fails the test when within passes first. This is how
// the contract asks publishers to behave across a server restart or a
// leader change: a retry with the same ID is never a duplicate.
func Publish(tb testing.TB, js jetstream.JetStream, subject, msgID string, data []byte, within time.Duration) {
	tb.Helper()
	if err := PublishRetry(context.Background(), js, subject, msgID, data, within); err != nil {
		tb.Fatal(err)
	}
}

// PublishRetry is Publish for callers that are not the test goroutine
// (a load generator running beside the test): it returns the last error
// instead of failing the test. Each attempt waits at most 2 s for its ack.
func PublishRetry(ctx context.Context, js jetstream.JetStream, subject, msgID string, data []byte, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.Publish(actx, subject, data, jetstream.WithMsgID(msgID))
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("publish %s (%s): %w", subject, msgID, err)
		}
		time.Sleep(pollEvery) // back off a little before the same-ID retry
	}
}
