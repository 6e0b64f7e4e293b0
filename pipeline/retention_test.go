package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/pipeline/streams"
)

// TestExpiredEventsAreReported: inbound events that leave their stream
// before their partition processed them (the stream's max age passed
// while the daemon was down; here a purge stands in for the age) are
// acknowledged events the daemon will never apply. The restarted daemon
// counts them in flashreturn_events_expired_total, goes on with what is
// stored, and counts nothing for a partition that lost nothing.
func TestExpiredEventsAreReported(t *testing.T) {
	cfg, js := outsideServer(t, "tmall-fast-return")
	h := runHarness(t, cfg)
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	h.pub("credit", "ex1", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	h.order("ex1", "o1", "m1", 10000, "2026-11-11T15:00:00+08:00", nil)
	h.pub("return", "ex1", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	h.one("fr.out.decision.ex1", "r1")
	if n := metricValue(h.d, "flashreturn_events_expired_total"); n != 0 {
		t.Fatalf("%d events expired on a fresh daemon", n)
	}
	h.stop()

	// While no daemon runs: three more events for ex1, then the stream
	// loses everything stored so far, those three included.
	h2 := purgedRestart(t, cfg, js, "ex1", 3)
	h2.waitFor("the three lost events counted", func() bool {
		return metricValue(h2.d, "flashreturn_events_expired_total") == 3
	})
	// What is stored after the gap is processed as usual.
	h2.pub("return", "ex1", "return.cancelled", "2026-11-13T11:00:00+08:00", map[string]any{"request_id": "r1"})
	h2.waitFor("the cancellation applied", func() bool {
		u, ok, err := h2.d.store.ReadUser(partitionOf("ex1"), "ex1")
		return err == nil && ok && u.Request("r1") != nil && u.Request("r1").Status == core.StatusCancelled
	})
	if n := metricValue(h2.d, "flashreturn_events_expired_total"); n != 3 {
		t.Fatalf("events expired %d, want 3 (the other partitions lost nothing)", n)
	}

	// A loss is counted once: consumer resets before anything after the
	// gap is committed do not count it again (found in review: 9).
	h2.stop()
	h3 := purgedRestart(t, cfg, js, "ex1", 2)
	for range 2 {
		resetConsumerOf(t, h3, js, "ex1")
	}
	if n := metricValue(h3.d, "flashreturn_events_expired_total"); n != 2 {
		t.Fatalf("2 events lost, counted %d after two consumer resets", n)
	}
}

// purgedRestart, with no daemon running on cfg's server, stores n events
// for user, purges the user's partition stream of everything stored so
// far, and starts a daemon, which finds them expired.
func purgedRestart(t *testing.T, cfg Config, js jetstream.JetStream, user string, n int) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		id := fmt.Sprintf("gone-%s-%d-%d", user, time.Now().UnixNano(), i)
		b := fmt.Sprintf(`{"event_id":%q,"type":"credit.updated","at":"2026-11-14T10:0%d:00+08:00","user_id":%q,"stars":3}`, id, i, user)
		if _, err := js.Publish(ctx, "fr.in.credit."+user, []byte(b), jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	purgePartition(t, js, user)
	return runHarness(t, cfg)
}

// purgePartition removes everything stored so far from user's partition
// stream (as its max age would) and returns the last sequence removed.
func purgePartition(t *testing.T, js jetstream.JetStream, user string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, streams.InStream(streams.LayoutStreams, partitionOf(user)))
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSequence(info.State.LastSeq+1)); err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestRebuiltStateIsNoExpiry: a state rebuilt from empty (a lost disk)
// on inbound streams whose max age dropped events an earlier state had
// processed lost nothing: FR_OUT's commit marker covers them, and
// nothing is reported (found in review: every dropped event was paged as
// lost).
func TestRebuiltStateIsNoExpiry(t *testing.T) {
	cfg, js := outsideServer(t, "tmall-fast-return")
	h := runHarness(t, cfg)
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	h.order("rb1", "o1", "m1", 10000, "2026-11-11T15:00:00+08:00", nil)
	h.pub("return", "rb1", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	h.one("fr.out.decision.rb1", "r1")
	h.stop()
	last := purgePartition(t, js, "rb1")
	cfg.DataDir = t.TempDir() // the state is lost, the streams are kept
	h2 := runHarness(t, cfg)  // ready: every partition checked its stream
	if n := metricValue(h2.d, "flashreturn_events_expired_total"); n != 0 {
		t.Fatalf("a rebuilt state reports %d expired events; the marker covers all of them (last seq %d)", n, last)
	}
}

// TestStreamBehindCursorIsReported: a partition stream recreated under a
// daemon whose cursor is past its start (an operator deleted it, or the
// server's store was lost) would have its new events skipped without a
// trace: the consumer starts at cursor+1. The restarted daemon reports
// it once, in flashreturn_stream_rewinds_total.
func TestStreamBehindCursorIsReported(t *testing.T) {
	cfg, js := outsideServer(t, "tmall-fast-return")
	h := runHarness(t, cfg)
	h.pub("credit", "rw1", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	h.pub("credit", "rw1", "credit.updated", "2026-11-01T00:01:00+08:00", map[string]any{"stars": 4})
	h.waitFor("both applied", func() bool {
		u, ok, err := h.d.store.ReadUser(partitionOf("rw1"), "rw1")
		return err == nil && ok && u.Stars == 4
	})
	if n := metricValue(h.d, "flashreturn_stream_rewinds_total"); n != 0 {
		t.Fatalf("%d rewinds reported on a fresh daemon", n)
	}
	h.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := streams.InStream(streams.LayoutStreams, partitionOf("rw1"))
	if err := js.DeleteStream(ctx, name); err != nil {
		t.Fatal(err)
	}
	h2 := runHarness(t, cfg) // recreates the stream empty; ready: checked
	if n := metricValue(h2.d, "flashreturn_stream_rewinds_total"); n != 1 {
		t.Fatalf("stream recreated behind the cursor: %d rewinds reported, want 1", n)
	}
	resetConsumerOf(t, h2, js, "rw1")
	if n := metricValue(h2.d, "flashreturn_stream_rewinds_total"); n != 1 {
		t.Fatalf("%d rewinds after a consumer reset, want it reported once", n)
	}
}

// resetConsumerOf deletes the consumer of user's partition and waits
// until the daemon has recreated it (and so checked the stream again).
func resetConsumerOf(t *testing.T, h *harness, js jetstream.JetStream, user string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resets := metricValue(h.d, "flashreturn_consumer_resets_total")
	name := streams.InStream(streams.LayoutStreams, partitionOf(user))
	if err := js.DeleteConsumer(ctx, name, fmt.Sprintf("flashreturn_p%d", partitionOf(user))); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the consumer reset and ready again", func() bool {
		return metricValue(h.d, "flashreturn_consumer_resets_total") > resets && h.d.Ready()
	})
}
