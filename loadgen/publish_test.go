package loadgen

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/loadgen/audit"
	"github.com/flashreturn/flashreturn/loadgen/world"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPublisherKeepsOrderAcrossServerRestart shuts the server down while
// hundreds of publishes of one shopper's subject are in flight, restarts
// it on the same store once the publisher has noticed, and requires the
// stream to hold every event exactly once, in the order sent: the failed
// ones re-sent (same Nats-Msg-Id) before anything newer.
func TestPublisherKeepsOrderAcrossServerRestart(t *testing.T) {
	dir, port := t.TempDir(), testkit.FreePort(t)
	// The same store and port each time, so that the restarted server is
	// the one the publisher reconnects to, holding what was stored. Each
	// server's cleanup shuts it down (again, for the first: a no-op).
	start := func() *server.Server {
		t.Helper()
		return testkit.StartServer(t, func(o *server.Options) { o.Port, o.StoreDir = port, dir })
	}
	srv := start()
	// No reconnect buffer: publishes during the outage fail and are
	// retried by the publisher, rather than queued in the client.
	nc, _ := testkit.Connect(t, srv.ClientURL(), nats.ReconnectBufSize(-1))
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(256), jetstream.WithPublishAsyncTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FR_IN", Subjects: []string{"fr.in.>"}, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}

	g, err := world.NewGenerator(smallWorld(9))
	if err != nil {
		t.Fatal(err)
	}
	p := newPublisher(nc, js, audit.NewTracker(g, time.Now()), Config{MaxInFlight: 256, StallWait: 200 * time.Millisecond, RetryFor: 30 * time.Second})
	settled := make(chan struct{})
	go func() { defer close(settled); p.settle(ctx) }()
	restarter := make(chan struct{})
	const n, cut = 3000, 1200
	for i := range n {
		if i == cut {
			go func() {
				defer close(restarter)
				srv.Shutdown() // while the sender goes on publishing
				srv.WaitForShutdown()
				// Restart once the publisher has seen the outage.
				for p.errs.Load() == 0 && ctx.Err() == nil {
					time.Sleep(5 * time.Millisecond) // polling interval
				}
				start() // shut down by its own cleanup
			}()
		}
		if err := p.publish(ctx, "fr.in.order.u1", fmt.Sprintf("e-%05d", i), []byte(fmt.Sprintf(`{"n":%d}`, i)), -1, -1); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.finish(ctx); err != nil {
		t.Fatal(err)
	}
	<-settled
	<-restarter
	st := p.stats()
	t.Logf("publish stats %+v", st)
	if st.Failed != 0 || st.Acked != n || st.Errors == 0 {
		t.Fatalf("stats %+v: want %d acked, none failed, and the outage seen", st, n)
	}

	s, err := js.Stream(ctx, "FR_IN")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Fatalf("stream holds %d messages, want %d (lost or doubled)", info.State.Msgs, n)
	}
	c, err := js.OrderedConsumer(ctx, "FR_IN", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if want := fmt.Sprintf("e-%05d", i); m.Headers().Get(jetstream.MsgIDHeader) != want {
			t.Fatalf("stream position %d holds %s, want %s: the outage reordered the events", i, m.Headers().Get(jetstream.MsgIDHeader), want)
		}
	}
}
