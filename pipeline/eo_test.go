package pipeline

import (
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state"
)

// TestOutboxClearedWhenSettled: once a partition has nothing left in
// flight (idle, or drained), its stored outbox must be empty. An outbox
// that still holds outputs FR_OUT already acknowledged is republished by
// the next start; after FR_OUT's 2-minute duplicate window (an idle night,
// a maintenance stop) that emits each of them a second time, and a
// clawback, compensation or trust output has no downstream id to catch it.
func TestOutboxClearedWhenSettled(t *testing.T) {
	h := startHarness(t, "douyin-lightning", nil)
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	h.pub("credit", "ob1", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	h.order("ob1", "o1", "m1", 10000, "2026-11-11T15:00:00+08:00", nil)
	h.pub("return", "ob1", "return.requested", "2026-11-12T10:00:00+08:00", map[string]any{
		"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	h.waitOut("fr.out.decision.ob1", 1)
	dir, pol := h.d.cfg.DataDir, h.d.Policy()
	h.stop()

	st, err := state.Open(state.Options{Dir: filepath.Join(dir, "state"), LegacyPolicy: pol})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for p := range 8 {
		pt, err := st.Partition(p)
		if err != nil {
			t.Fatal(err)
		}
		if left := pt.Outbox(); len(left) > 0 {
			t.Errorf("partition %d: %d acknowledged outputs left in the outbox after a drain (first %s)", p, len(left), left[0].MsgID)
		}
		pt.Release()
	}
}

// TestPoisonDropsHalfMutatedState: a panic of the core part-way through
// an event leaves the shopper's cached state mutated in place. The batch
// is re-applied without the event, so none of its changes may survive:
// here the hook plays the core, changing the shopper's stars before it
// panics, and a later event of the same shopper commits whatever the
// cache holds.
func TestPoisonDropsHalfMutatedState(t *testing.T) {
	var dp atomic.Pointer[Daemon]
	applyHook = func(ev *core.Event) {
		if ev.EventID != "poison-hm1" {
			return
		}
		// On the worker goroutine, as the core would be.
		u, err := dp.Load().workers[partitionOf(ev.UserID)].pt.User(ev.UserID)
		if err != nil {
			panic(err)
		}
		u.Stars = 1
		panic("test: poison after a mutation")
	}
	t.Cleanup(func() { applyHook = nil })
	h := startHarness(t, "douyin-lightning", nil)
	dp.Store(h.d)
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	h.pub("credit", "hm1", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	h.pubRaw("fr.in.credit.hm1", "poison-hm1", []byte(`{"event_id":"poison-hm1","type":"credit.updated","at":"2026-11-01T01:00:00+08:00","user_id":"hm1","stars":4}`))
	h.waitOut("fr.dlq.poison", 1)
	h.order("hm1", "o1", "m1", 10000, "", nil)
	var u *core.User
	h.waitFor("the order committed", func() bool {
		var err error
		u, _, err = h.d.store.ReadUser(partitionOf("hm1"), "hm1")
		return err == nil && u != nil && u.Order("o1") != nil
	})
	if u.Stars != 5 {
		t.Fatalf("stars = %d after the poison event was dead-lettered, want 5 (its half-applied change was committed)", u.Stars)
	}
}
