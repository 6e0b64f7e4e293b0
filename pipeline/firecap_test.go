package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/apply"
	"github.com/flashreturn/flashreturn/pipeline/stages"
	"github.com/flashreturn/flashreturn/pipeline/streams"
)

// TestManyTimersDueAtOneTick: more review deadlines come due at one clock
// event than one event may fire (apply.FireMaxUsers). The tick fires
// exactly the first FireMaxUsers of them, in (deadline, user) order, and
// the rest fire at the next events; every request is approved once. Before
// the bound, one tick fired them all in one batch, and with enough of them
// the partition's commit could not fit a Badger transaction.
func TestManyTimersDueAtOneTick(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	h.merchant("m1", []string{"Hangzhou desk"}, []string{"Hangzhou desk"}, nil)
	const n = apply.FireMaxUsers*2 + 44
	var users []string
	for i := 0; len(users) < n; i++ {
		if u := fmt.Sprintf("tu%04d", i); wire.Partition(u, h.d.cfg.Partitions) == 0 {
			users = append(users, u)
		}
	}
	for i, u := range users {
		h.pub("credit", u, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
		h.order(u, "o1", "m1", 12900, "2026-11-11T15:00:00+08:00", nil)
		// Requests a minute apart: the deadlines, and so the firing
		// order, follow the users' order.
		at := time.Date(2026, 11, 12, 10, 0, 0, 0, time.FixedZone("CST", 8*3600)).Add(time.Duration(i) * time.Minute)
		h.pub("return", u, "return.requested", at.Format(time.RFC3339),
			map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "quality", "pickup": true})
	}
	h.waitOut("fr.out.decision.", n)

	// One tick past every deadline; wait until the partition has applied
	// it and FR_OUT holds all it made.
	w := h.d.workers[0]
	ts := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ack, err := h.js.Publish(ctx, "fr.in.clock."+wire.ClockToken(0, h.d.cfg.Partitions), wire.AppendClock(nil, 0, ts))
	if err != nil {
		t.Fatal(err)
	}
	h.waitFor("tick applied and its outputs stored", func() bool {
		return w.committed.Load() >= ack.Sequence && w.outboxLen.Load() == 0
	})
	resolved := func() []string {
		msgs, err := testkit.ReadStream(ctx, h.js, wire.StreamOut)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range msgs {
			if u, ok := approvedBy(m); ok {
				got = append(got, u)
			}
		}
		return got
	}
	got := resolved()
	if len(got) != apply.FireMaxUsers {
		t.Fatalf("one tick resolved %d requests, want exactly %d (apply.FireMaxUsers)", len(got), apply.FireMaxUsers)
	}
	for i, u := range got {
		if u != users[i] {
			t.Fatalf("resolution %d is %s's, want %s's: timers fire in deadline order", i, u, users[i])
		}
	}
	// The rest fire at the next events, here two more ticks.
	h.tick(users[0], "2026-11-25T08:00:01+08:00")
	h.tick(users[0], "2026-11-25T08:00:02+08:00")
	// Each fire resolves two deadlines: the review's (approved by
	// timeout) and the return's (closed, nothing sent back).
	h.waitOut("fr.out.resolution.", 2*n)
	seen := map[string]int{}
	for _, u := range resolved() {
		seen[u]++
	}
	for _, u := range users {
		if seen[u] != 1 {
			t.Fatalf("%s resolved %d times, want once", u, seen[u])
		}
	}
	// Replay, under the same bound, makes the same effects byte for
	// byte: nothing lost or doubled by carrying timers over. (These
	// effects are dated by their deadlines, not by the event that fired
	// them, so this does not see at which event each fired.)
	checkReplayIdentical(t, h, "tmall-fast-return")
}

// approvedBy returns the user of a resolution approving a request.
func approvedBy(m testkit.Msg) (string, bool) {
	var r struct {
		UserID  string `json:"user_id"`
		Outcome string `json:"outcome"`
	}
	if !strings.HasPrefix(m.Subject, "fr.out.resolution.") || json.Unmarshal(m.Data, &r) != nil || r.Outcome != "approved" {
		return "", false
	}
	return r.UserID, true
}

// TestBatchTooBigIsAppliedInHalves: a batch whose commit does not fit one
// Badger transaction is applied again in halves instead of being retried
// for ever, and every event still counts once. The size cut, which makes
// this rare in production, is switched off here, and a held runner lets
// thousands of orders pile up for one batch. Also: an event over the
// inbound size limit is refused at publish (a dead letter carries the
// original bytes, and must fit a transaction too).
func TestBatchTooBigIsAppliedInHalves(t *testing.T) {
	const n = 10000
	h, release := startHeld(t, func(c *Config) {
		c.Runners, c.BatchMax, c.MaxTxnBytes = 1, n, 1<<30
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := h.js.Publish(ctx, "fr.in.return.big", make([]byte, wire.MaxEventBytes+1)); err == nil {
		t.Fatal("an event over wire.MaxEventBytes was stored")
	}
	// n shoppers of partition 0 with one order each: one user record and
	// one timer each, about 2 MB in Badger's units, over the 1.2 MiB it
	// takes in one transaction.
	for i, sent := 0, 0; sent < n; i++ {
		u := fmt.Sprintf("big%06d", i)
		if wire.Partition(u, h.d.cfg.Partitions) != 0 {
			continue
		}
		b := fmt.Appendf(nil, `{"event_id":"e-%s","type":"order.paid","at":"2026-11-10T10:00:00+08:00","user_id":"%s","order_id":"o1","merchant_id":"m1","category":"apparel","size":"small","paid_fen":12900,"seven_day":true,"city":"shanghai"}`, u, u)
		if _, err := h.js.PublishAsync("fr.in.order."+u, b, jetstream.WithMsgID("e-"+u)); err != nil {
			t.Fatal(err)
		}
		if sent++; sent%2048 == 0 || sent == n {
			// Under nats.go's limit of async publishes in flight.
			select {
			case <-h.js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal("publishing did not complete")
			}
		}
	}
	h.waitFor("every order delivered to the process", func() bool {
		c, err := h.js.Consumer(ctx, streams.InStream(h.d.cfg.Layout, 0), "flashreturn_p0")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending >= n
	})
	release()
	h.waitFor("every order applied", func() bool {
		return metricValue(h.d, `flashreturn_events_in_total{type="order.paid"}`) >= n
	})
	if got := metricValue(h.d, "flashreturn_oversized_batches_total"); got == 0 {
		t.Fatal("no batch was too big: the test does not test the shrink")
	}
	if got := metricValue(h.d, `flashreturn_events_in_total{type="order.paid"}`); got != n {
		t.Fatalf("orders applied: %d, want %d", got, n)
	}
	// The batch histograms count what was applied, once, although the
	// first part of the batch was applied twice or more. Every message
	// here is an event (orders and clock ticks), none is redelivered.
	var lags, sizes, applyDur, pulledApplied, applied int
	h.waitFor("the last batch's metrics folded in", func() bool {
		count, sum := scrapeHistograms(t, h.d)
		lags, sizes = int(count["flashreturn_event_lag_seconds"]), int(sum["flashreturn_batch_size_events"])
		applyDur, pulledApplied = int(count["flashreturn_apply_duration_seconds"]), int(count[stages.PulledApplied.Metric()])
		applied = sumCounter(h.d, "flashreturn_events_in_total{")
		return lags >= applied && sizes >= applied && applyDur >= applied && pulledApplied >= applied
	})
	if lags != applied || sizes != applied || applyDur != applied || pulledApplied != applied {
		t.Fatalf("%d events applied, but the histograms count lag %d, apply duration %d, pulled->applied %d, and the batch sizes add up to %d",
			applied, lags, applyDur, pulledApplied, sizes)
	}
	h.waitFor("daemon ready", h.d.Ready)
	// Every shopper is stored, with its one order.
	for i, seen := 0, 0; seen < n; i++ {
		u := fmt.Sprintf("big%06d", i)
		if wire.Partition(u, h.d.cfg.Partitions) != 0 {
			continue
		}
		seen++
		usr, ok, err := h.d.store.ReadUser(0, u)
		if err != nil || !ok || len(usr.Orders) != 1 {
			t.Fatalf("%s after the batch: %+v, %v, %v", u, usr, ok, err)
		}
	}
}
