package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/outbound"
)

// userIn returns a user ID of partition p (P=8) with the prefix.
func userIn(prefix string, p int) string {
	for i := 0; ; i++ {
		if u := fmt.Sprintf("%s%d", prefix, i); partitionOf(u) == p {
			return u
		}
	}
}

// markerWorld publishes, for one shopper of each of the 8 partitions, a
// credit, an order and an approved return: a decision and a refund each.
func markerWorld(h *harness, prefix string) []string {
	var users []string
	for p := range 8 {
		u := userIn(prefix, p)
		users = append(users, u)
		h.pub("credit", u, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
		h.order(u, "o1", "m1", 10000, "2026-11-11T15:00:00+08:00", nil)
		h.pub("return", u, "return.requested", "2026-11-12T10:00:00+08:00", map[string]any{
			"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	}
	return users
}

// msgIDCounts reads FR_OUT whole (markers left out) and counts each
// Nats-Msg-Id.
func msgIDCounts(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msgs, err := testkit.ReadStream(ctx, js, wire.StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, m := range msgs {
		ids[m.Header.Get(jetstream.MsgIDHeader)]++
	}
	return ids
}

// TestRestartFromEmptyPastDuplicateWindow: a daemon whose state is gone
// (a lost disk; in a cluster, a partition restored "from empty at 0")
// replays FR_IN from the start, long after FR_OUT's duplicate window
// (1 s here) has forgotten the outputs' IDs. The commit markers say what
// FR_OUT holds, so the replay publishes none of it again: every output is
// stored exactly once, and new events are decided as usual.
func TestRestartFromEmptyPastDuplicateWindow(t *testing.T) {
	h := startHarness(t, "douyin-lightning", func(c *Config) { c.OutDuplicates = time.Second })
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	users := markerWorld(h, "re")
	h.waitOut("fr.out.decision.", len(users))
	cfg := h.d.cfg
	h.stop()
	// Wall time must pass for the server to forget the IDs: that is what
	// this test is about, not a stand-in for a condition.
	time.Sleep(1500 * time.Millisecond)
	if err := os.RemoveAll(filepath.Join(cfg.DataDir, "state")); err != nil {
		t.Fatal(err)
	}
	cfg.NATSListen, cfg.Metrics = "127.0.0.1:-1", nil
	h2 := runHarness(t, cfg)
	// A second request per shopper, after the replayed ones: once each is
	// decided, the replay is behind us.
	for _, u := range users {
		h2.pub("return", u, "return.requested", "2026-11-12T11:00:00+08:00", map[string]any{
			"request_id": "r2", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	}
	h2.waitOut("fr.out.decision.", 2*len(users))
	h2.waitFor("outbox settled", func() bool {
		for _, w := range h2.d.workers {
			if w.outboxLen.Load() != 0 {
				return false
			}
		}
		return true
	})
	for id, n := range msgIDCounts(t, h2.js) {
		if n != 1 {
			t.Errorf("Nats-Msg-Id %s stored %d times", id, n)
		}
	}
	if got := h2.d.m.Suppressed.Get(); got < uint64(len(users)) {
		t.Errorf("flashreturn_outputs_suppressed_total = %d, want at least %d (a decision per shopper)", got, len(users))
	}
}

// TestZombieBatchRefusedByFROut plays a process frozen between its fence
// check and its publish while its partition moved: the worker is held
// just before it hands a batch over, another owner writes its claim
// marker, then the worker goes on. No clock is consulted (a single
// daemon has no lease): FR_OUT itself refuses the batch, the refusal is
// counted and the worker stops; the other partitions go on.
func TestZombieBatchRefusedByFROut(t *testing.T) {
	const target = 3
	var armed atomic.Bool
	held, resume := make(chan struct{}), make(chan struct{})
	sendHook = func(p int) {
		if p == target && armed.CompareAndSwap(true, false) {
			close(held)
			<-resume
		}
	}
	t.Cleanup(func() { sendHook = nil })
	h := startHarness(t, "douyin-lightning", func(c *Config) { c.OutDuplicates = time.Second })
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	zombie, other := userIn("zo", target), userIn("ok", target+1)
	h.pub("credit", zombie, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	h.order(zombie, "o1", "m1", 10000, "2026-11-11T15:00:00+08:00", nil)
	h.waitFor("the order applied", func() bool { return h.d.workers[target].applied.Load() >= 2 })

	armed.Store(true)
	h.pub("return", zombie, "return.requested", "2026-11-12T10:00:00+08:00", map[string]any{
		"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	<-held
	// Another owner claims the partition on FR_OUT, as a takeover would.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.js.Stream(ctx, wire.StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	last, seq, err := outbound.Last(ctx, s, target)
	if err != nil || last.Kind != outbound.KindClaim && last.Kind != outbound.KindCommit {
		t.Fatalf("partition %d's last marker: %+v %v", target, last, err)
	}
	claim, _ := json.Marshal(outbound.Marker{Partition: target, Kind: outbound.KindClaim, Owner: "b", Epoch: 7, Seq: last.Seq, Idx: last.Idx})
	msg := nats.NewMsg(outbound.Subject(target))
	msg.Data = claim
	if _, err := h.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(seq)); err != nil {
		t.Fatal(err)
	}
	close(resume)

	rejections := h.d.m.Set.GetOrCreateCounter("flashreturn_fencing_rejections_total")
	h.waitFor("the batch refused", func() bool { return rejections.Get() == 1 })
	h.waitFor("the worker stopped", func() bool { return !h.d.workers[target].ready.Load() })
	// The partition's other shoppers are its new owner's now; the other
	// partitions are this daemon's still.
	h.pub("credit", other, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	h.order(other, "o1", "m1", 10000, "2026-11-11T15:00:00+08:00", nil)
	h.pub("return", other, "return.requested", "2026-11-12T10:00:00+08:00", map[string]any{
		"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	h.waitOut("fr.out.decision."+other, 1)
	if got := h.out("fr.out.decision." + zombie); len(got) != 0 {
		t.Fatalf("FR_OUT stored the fenced owner's decision: %s", got[0].Raw)
	}
	if got := h.out("fr.out.refund." + zombie); len(got) != 0 {
		t.Fatalf("FR_OUT stored the fenced owner's refund: %s", got[0].Raw)
	}
	if after, _, err := outbound.Last(ctx, s, target); err != nil || after.Owner != "b" || after.Kind != outbound.KindClaim {
		t.Fatalf("partition %d's last marker after the refusal: %+v %v, want b's claim", target, after, err)
	}
}

// TestClusterZombieRefused: a member's worker is held after its fence
// check (a process frozen between its check and its write) while the
// member's heartbeats stop and the other member takes the partition over
// and writes its claim marker; then the worker goes on. FR_OUT refuses
// its batch whatever its clock said, the refusal is counted on the
// zombie, and the request is decided exactly once, by the new owner.
func TestClusterZombieRefused(t *testing.T) {
	js, a, b := startPair(t, nil)
	p := a.owned()[0]
	shopper := 0
	for wire.Partition(fmt.Sprintf("s%05d", shopper), 8) != p {
		shopper++
	}
	var armed atomic.Bool
	held, resume := make(chan struct{}), make(chan struct{})
	sendHook = func(q int) {
		if q == p && armed.CompareAndSwap(true, false) {
			close(held)
			<-resume
		}
	}
	t.Cleanup(func() { sendHook = nil })
	armed.Store(true)
	r := newRequester(t, js)
	if err := r.one(shopper); err != nil {
		t.Fatal(err)
	}
	<-held // a's worker is past its fence check with the batch in hand
	a.d.cluster.PauseHeartbeats(true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, wire.StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitUntil(t, 20*time.Second, "b's claim marker on the partition", func() bool {
		m, _, err := outbound.Last(ctx, s, p)
		return err == nil && m.Owner == "b" && slices.Contains(b.owned(), p)
	})
	close(resume)
	rejections := a.d.m.Set.GetOrCreateCounter("flashreturn_fencing_rejections_total")
	testkit.WaitUntil(t, 20*time.Second, "a's batch refused by FR_OUT", func() bool { return rejections.Get() >= 1 })
	a.d.cluster.PauseHeartbeats(false)
	req := fmt.Sprintf("rs%05d", shopper)
	var decisions int
	testkit.WaitUntil(t, 20*time.Second, "the request decided by b", func() bool {
		recs, err := readOut(js)
		decisions = 0
		for _, rec := range recs {
			if rec.kind == "decision" && rec.request == req {
				decisions++
			}
		}
		return err == nil && decisions >= 1
	})
	if decisions != 1 {
		t.Fatalf("request %s decided %d times", req, decisions)
	}
	for id, n := range msgIDCounts(t, js) {
		if n != 1 {
			t.Errorf("Nats-Msg-Id %s stored %d times", id, n)
		}
	}
}

// TestInboundRecreatedUnderMarkers: a partition's inbound stream deleted
// and made again (its sequences start from 1) under FR_OUT's markers,
// with the state gone too. The marker's position is past the new stream's
// end: it is ignored (and logged), so the new events' outputs are
// published, not suppressed as if FR_OUT held them.
func TestInboundRecreatedUnderMarkers(t *testing.T) {
	h := startHarness(t, "douyin-lightning", nil)
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	users := markerWorld(h, "ir")
	h.waitOut("fr.out.decision.", len(users))
	cfg := h.d.cfg
	h.stop()
	const p = 5
	for _, dir := range []string{filepath.Join(cfg.DataDir, "state"), filepath.Join(cfg.DataDir, "nats", "jetstream", "$G", "streams", wire.PartitionStream(p))} {
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
	cfg.NATSListen, cfg.Metrics = "127.0.0.1:-1", nil
	h2 := runHarness(t, cfg)
	u := userIn("irnew", p)
	h2.pub("credit", u, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	h2.order(u, "o1", "m1", 10000, "2026-11-11T15:00:00+08:00", nil)
	h2.pub("return", u, "return.requested", "2026-11-12T10:00:00+08:00", map[string]any{
		"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	h2.waitOut("fr.out.decision."+u, 1)
}
