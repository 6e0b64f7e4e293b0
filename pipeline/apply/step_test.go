package apply

import (
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
)

// dirtyStore is a Stepper's Store in memory that records which users a
// Step marked dirty.
type dirtyStore struct {
	users map[string]*core.User
	dirty map[string]int
}

func (d *dirtyStore) User(id string) (*core.User, error) {
	u := d.users[id]
	if u == nil {
		u = &core.User{}
		d.users[id] = u
	}
	return u, nil
}
func (d *dirtyStore) MarkDirty(u *core.User)                        { d.dirty[u.ID]++ }
func (d *dirtyStore) SetDeadline(string, int64)                     {}
func (d *dirtyStore) Due(now int64, max int, dst []string) []string { return dst }

// TestDeadLetterAfterItsTimePrunedIsCommitted: a dead letter changes no
// state and is not committed (a shopper known only from dead letters stays
// unknown), unless the event's own time pruned what it refers to: then
// its time moved the shopper's clock and pruned, and that change must be
// committed, or a restart would undo it and a replay would differ.
func TestDeadLetterAfterItsTimePrunedIsCommitted(t *testing.T) {
	pol, ok := core.Preset(core.PresetJD)
	if !ok {
		t.Fatal("no jd preset")
	}
	env := &core.Env{Policy: pol, Loc: time.UTC}
	st := &dirtyStore{users: map[string]*core.User{}, dirty: map[string]int{}}
	var out []core.Effect
	s := &Stepper{St: st, Emit: func(e *core.Effect, _ *core.Env) { out = append(out, *e) }}
	day := int64(24 * time.Hour)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	step := func(at int64, typ core.EventType, fill func(*core.Event)) {
		t.Helper()
		ev := &core.Event{Type: typ, At: at, AtRaw: time.Unix(0, at).UTC().Format(time.RFC3339Nano), UserID: "u1", EventID: "e"}
		fill(ev)
		out = out[:0]
		if err := s.Step(ev, env); err != nil {
			t.Fatal(err)
		}
	}
	// Known only from a dead letter: not committed.
	step(t0, core.EventOrderShipped, func(e *core.Event) { e.OrderID = "nope" })
	if len(out) != 1 || out[0].Kind != core.EffectDeadLetter || st.dirty["u1"] != 0 {
		t.Fatalf("unknown order: effects %+v, marked dirty %d times; want one dead letter, none", out, st.dirty["u1"])
	}
	step(t0, core.EventOrderPaid, func(e *core.Event) { e.OrderID, e.PaidFen, e.MerchantID = "o1", 1000, "m1" })
	before := st.dirty["u1"]
	// 401 days later, the order is pruned by the shipment's own time.
	step(t0+401*day, core.EventOrderShipped, func(e *core.Event) { e.OrderID = "o1" })
	if len(out) != 1 || out[0].Kind != core.EffectDeadLetter || out[0].Fault != core.FaultUnknownOrder {
		t.Fatalf("shipment of an order its time pruned: %+v, want one unknown_order dead letter", out)
	}
	if st.dirty["u1"] != before+1 || st.users["u1"].Order("o1") != nil {
		t.Fatalf("the prune was not committed: marked dirty %d times (before %d), order %+v", st.dirty["u1"], before, st.users["u1"].Order("o1"))
	}
}
