package apply

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state/record"
)

// Store is the per-partition state a [Stepper] reads and writes: the
// Badger-backed *state.Partition in the daemon (wrapped to count what it
// touches), an in-memory map in replay. Due must append to dst at most max
// of the users whose deadline is before now, in (deadline, user) order,
// and keep their deadlines until SetDeadline changes them (the Stepper
// re-arms every user it fires, and one it does not fire stays due): that
// order is part of determinism, since two timers firing at one event emit
// their effects in it.
type Store interface {
	User(id string) (*core.User, error)
	MarkDirty(u *core.User)
	SetDeadline(userID string, deadline int64)
	Due(now int64, max int, dst []string) []string
}

// FireMaxUsers and FireMaxBytes bound the timers one Step fires: at most
// FireMaxUsers shoppers, and no further shopper once those fired add up to
// FireMaxBytes of encoded state (record.EncodedSizeBound). The timers left
// due fire at the next events that move the clock (the next clock tick at
// worst), in the same order.
//
// Why: a partition commits each batch in one Badger transaction, cut
// between events, and one event must fit in it whatever else is due.
// Deadlines cluster (a preset's windows end at local midnight), so one
// tick may find thousands of shoppers due in a partition; fired at once,
// their states and outputs would outgrow any transaction and the
// partition could never commit. Both bounds are constants, never tuned
// at run time, so that a replay fires every timer at the same event as
// the live run did.
const (
	FireMaxUsers = 128
	FireMaxBytes = 256 << 10
)

// Stepper applies the decoded events of one partition in stream order. It
// keeps the partition's event-time clock (the largest at seen, clock events
// included), fires the timers that the clock has passed (within the
// FireMaxUsers and FireMaxBytes bounds) before applying the event that
// moved it, applies the event, and re-arms the user's timer.
// The daemon's workers and replay share it, which is what makes a replay
// fire timers at the same points as the live run.
//
// A Stepper is owned by one goroutine (a partition worker, or a replay
// engine); it is not safe for concurrent use. Its fields are set once by
// the owner before the first Step; Clock is read back (and, after a
// discarded batch, restored) by the worker, which commits it with the
// partition's cursor.
type Stepper struct {
	// St is the partition's state.
	St Store
	// Clock is the partition's event time (Unix ns): the largest at seen.
	Clock int64
	// Log reports timers dropped because their user's state is unreadable.
	Log *slog.Logger
	// Emit receives every effect, in order, with the environment it was
	// decided in. It must not retain e past the call: the effects slice is
	// reused by the next event.
	Emit func(e *core.Effect, env *core.Env)
	// Shadow, when set, decides every return request a second time on a
	// copy of the state (live daemon only; replay compares policies its own
	// way).
	Shadow *Shadow
	// OnFire is called with the user whose timers are about to fire
	// (may be nil): the worker counts fired timers with it, and tests
	// make it panic.
	OnFire func(userID string)
	// Firing is the user whose timers are being fired, "" otherwise. A
	// panic leaves it set, which is how the worker tells a timer's panic
	// (the user's fault) from the event's (the event is poison).
	Firing string

	// blocked holds users whose timers panicked the core: their timers
	// are not fired again by this Stepper (see Block).
	blocked map[string]bool

	effects  []core.Effect
	shadowFx []core.Effect
	due      []string
	// fired is the users the last Step fired and their encoded sizes.
	fired []Fired
}

// Fired is one shopper whose timers a Step fired, and the bound of its
// encoded state afterwards (record.EncodedSizeBound).
type Fired struct {
	User  string
	Bytes int
}

// LastFired returns the shoppers the last Step fired, in firing order;
// the slice is reused by the next Step. The worker reads it when one
// event's commit does not fit a transaction, to find the shopper to blame.
func (s *Stepper) LastFired() []Fired { return s.fired }

// ResetFired forgets what the last Step fired: the worker calls it before
// it applies a batch, so that LastFired never reports a Step of an
// earlier batch (an event dead-lettered before its Step ran leaves it
// empty).
func (s *Stepper) ResetFired() { s.fired = s.fired[:0] }

// Step applies one decoded event. It returns an error only when the
// user's state cannot be read (the caller dead-letters the event as
// poison). A panic of the core propagates: the worker recovers it and
// re-applies the batch without the event.
func (s *Stepper) Step(ev *core.Event, env *core.Env) error {
	s.ResetFired()
	if ev.At > s.Clock {
		// Only a move of the clock fires: a late event's own shopper has
		// its timers due before the event's at fired by core.Apply, and
		// the others wait for the clock to move, so that a late answer
		// dated inside its window still counts.
		s.Clock = ev.At
		s.fireDue(env)
	}
	if ev.Type == core.EventClock {
		return nil
	}
	u, err := s.St.User(ev.UserID)
	if err != nil {
		return fmt.Errorf("state of user %s cannot be read: %w", ev.UserID, err)
	}
	// A late event (dated before the partition clock) first fires its
	// shopper's timers due before its own at: core.Apply does it, so the
	// rule holds wherever the core runs (see its doc).
	var shadowFx []core.Effect
	if s.Shadow != nil && ev.Type == core.EventReturnRequested {
		senv := *env
		senv.Policy = s.Shadow.policy
		s.shadowFx = core.Apply(u.Clone(), ev, &senv, s.shadowFx[:0])
		shadowFx = s.shadowFx
	}
	maxAt := u.MaxAt
	s.effects = core.Apply(u, ev, env, s.effects[:0])
	if shadowFx != nil {
		s.Shadow.observe(s.effects, shadowFx)
	}
	// A dead-lettered event changed nothing (core.Apply's contract): a
	// shopper known only from dead letters stays unknown, uncommitted.
	// Unless its own time pruned what it refers to: then that time moved
	// the shopper's clock and pruned, which is committed like any change
	// (left in the cache only, a restart would undo it).
	if len(s.effects) != 1 || s.effects[0].Kind != core.EffectDeadLetter || u.MaxAt != maxAt {
		s.St.MarkDirty(u)
		s.rearm(u)
	}
	for i := range s.effects {
		s.Emit(&s.effects[i], env)
	}
	return nil
}

// fireDue fires the timers due before the clock, in (deadline, user)
// order, within FireMaxUsers and FireMaxBytes; it records them in fired.
func (s *Stepper) fireDue(env *core.Env) {
	// Blocked shoppers stay due (their timers are kept for a restart) but
	// are skipped: they do not count against the bound.
	s.due = s.St.Due(s.Clock, FireMaxUsers+len(s.blocked), s.due[:0])
	bytes := 0
	for _, id := range s.due {
		if len(s.fired) == FireMaxUsers || bytes >= FireMaxBytes {
			return
		}
		if s.blocked[id] {
			continue
		}
		u, err := s.St.User(id)
		if err != nil {
			s.Log.Error("timer: state cannot be read; timer dropped", "user", id, "err", err)
			s.St.SetDeadline(id, 0)
			continue
		}
		s.fire(u, s.Clock, env)
		n := record.EncodedSizeBound(u)
		bytes += n
		s.fired = append(s.fired, Fired{User: id, Bytes: n})
	}
}

// Block stops firing userID's timers for the life of this Stepper, after
// they panicked the core. Without it the event that moved the clock
// would be blamed: dead-lettered as poison, the clock left behind, and
// the same timer would panic at the next move, taking every
// clock-moving event of the partition with it. The worker also blocks a
// shopper whose fired state alone does not fit a transaction. Blocking
// costs that shopper's timers (logged and counted by the caller), which
// stay armed and stored: a restart fires them once more (and, if the
// cause is still there, blocks them again). A blocked shopper does not
// count against FireMaxUsers, so the live run and a replay (which blocks
// nothing) may fire the shoppers after it at different events.
func (s *Stepper) Block(userID string) {
	if s.blocked == nil {
		s.blocked = make(map[string]bool)
	}
	s.blocked[userID] = true
	s.Firing = ""
}

// fire fires u's timers due before now, emits what they produce and
// re-arms u's next deadline.
func (s *Stepper) fire(u *core.User, now int64, env *core.Env) {
	s.Firing = u.ID
	if s.OnFire != nil {
		s.OnFire(u.ID)
	}
	s.effects = core.Fire(u, now, env, s.effects[:0])
	s.Firing = ""
	s.St.MarkDirty(u)
	s.rearm(u)
	for i := range s.effects {
		s.Emit(&s.effects[i], env)
	}
}

// rearm records u's next deadline in the timer index (0: none).
func (s *Stepper) rearm(u *core.User) {
	dl, ok := core.NextDeadline(u)
	if !ok {
		dl = 0
	}
	s.St.SetDeadline(u.ID, dl)
}

// FutureTime returns why an event must be dead-lettered as future_time,
// or "" when it may be applied: its at is later than storedAt (the Unix ns
// time its stream stored it) by more than maxFuture (the allowed clock
// skew of publishers; 0 or less turns the check off). The daemon and
// replay compare with the stored timestamp, never with their own clock, so
// both decide the same message alike. One publisher with a wrong clock
// thus cannot move a partition's event time and fire its timers early.
func FutureTime(ev *core.Event, storedAt int64, maxFuture time.Duration) string {
	if maxFuture <= 0 || ev.At-storedAt <= int64(maxFuture) {
		return ""
	}
	ahead := time.Duration(ev.At - storedAt).Round(time.Millisecond)
	return fmt.Sprintf("field \"at\" is %s, %s after the stream stored the event (%s): more than the allowed %s",
		ev.AtRaw, ahead, time.Unix(0, storedAt).UTC().Format(time.RFC3339Nano), maxFuture)
}
