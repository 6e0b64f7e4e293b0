package pipeline

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
)

// userStore is the per-partition state a stepper reads and writes: the
// Badger-backed *state.Partition in the daemon, an in-memory map in
// replay.
type userStore interface {
	User(id string) (*core.User, error)
	MarkDirty(u *core.User)
	SetDeadline(userID string, deadline int64)
	Due(now int64, dst []string) []string
}

// stepper applies the decoded events of one partition in stream order. It
// keeps the partition's event-time clock (the largest at seen, clock events
// included), fires the timers that the clock has passed before applying
// the event that moved it, applies the event, and re-arms the user's timer.
// The daemon's workers and replay share it, which is what makes a replay
// fire timers at the same points as the live run.
type stepper struct {
	st     userStore
	clock  int64
	log    *slog.Logger
	emit   func(e *core.Effect, env *core.Env)
	shadow *Shadow
	// onFire counts fired timers (may be nil).
	onFire func()

	effects  []core.Effect
	shadowFx []core.Effect
	due      []string
}

// step applies one decoded event. It returns an error only when the
// user's state cannot be read (the event is then poison).
func (s *stepper) step(ev *core.Event, env *core.Env) error {
	s.advance(ev.At, env)
	if ev.Type == core.EventClock {
		return nil
	}
	u, err := s.st.User(ev.UserID)
	if err != nil {
		return fmt.Errorf("state of user %s cannot be read: %w", ev.UserID, err)
	}
	var shadowFx []core.Effect
	if s.shadow != nil && ev.Type == core.EventReturnRequested {
		senv := *env
		senv.Policy = s.shadow.policy
		s.shadowFx = core.Apply(u.Clone(), ev, &senv, s.shadowFx[:0])
		shadowFx = s.shadowFx
	}
	s.effects = core.Apply(u, ev, env, s.effects[:0])
	if shadowFx != nil {
		s.shadow.observe(s.effects, shadowFx)
	}
	s.st.MarkDirty(u)
	for i := range s.effects {
		s.emit(&s.effects[i], env)
	}
	s.rearm(u, env)
	return nil
}

// advance moves the clock to at and fires every timer now due, in
// (deadline, user) order.
func (s *stepper) advance(at int64, env *core.Env) {
	if at <= s.clock {
		return
	}
	s.clock = at
	s.due = s.st.Due(s.clock, s.due[:0])
	for _, id := range s.due {
		u, err := s.st.User(id)
		if err != nil {
			s.log.Error("timer: state cannot be read; timer dropped", "user", id, "err", err)
			s.st.SetDeadline(id, 0)
			continue
		}
		s.fire(u, env)
		s.rearm(u, env)
	}
}

// fire applies u's timers due at the partition clock and emits what they
// produce.
func (s *stepper) fire(u *core.User, env *core.Env) {
	s.effects = core.Fire(u, s.clock, env, s.effects[:0])
	if s.onFire != nil {
		s.onFire()
	}
	s.st.MarkDirty(u)
	for i := range s.effects {
		s.emit(&s.effects[i], env)
	}
}

// rearm records u's next deadline in the timer index. A deadline that is
// already before the partition clock fires at once: an event can arm a
// timer in the past (a request older than the partition clock, as a
// backlog or a late publisher delivers it), and waiting for the clock's
// next move would let an event that arrives before that move (the
// merchant's answer right behind the request) win a race that event time
// says the deadline already won. Firing here makes the outcome depend on
// the events' at only, not on whether a clock event happened to fall
// between them. One [core.Fire] is enough: it fires, in deadline order,
// every timer before the clock, including those a fired timer arms.
func (s *stepper) rearm(u *core.User, env *core.Env) {
	dl, ok := core.NextDeadline(u)
	if ok && dl < s.clock {
		s.fire(u, env)
		dl, ok = core.NextDeadline(u)
	}
	if !ok {
		dl = 0
	}
	s.st.SetDeadline(u.ID, dl)
}

// futureTime returns why an event must be dead-lettered as future_time,
// or "" when it may be applied: its at is later than storedAt (the Unix ns
// time its stream stored it) by more than maxFuture (the allowed clock
// skew of publishers; 0 or less turns the check off). The daemon and
// replay compare with the stored timestamp, never with their own clock, so
// both decide the same message alike. One publisher with a wrong clock
// thus cannot move a partition's event time and fire its timers early.
func futureTime(ev *core.Event, storedAt int64, maxFuture time.Duration) string {
	if maxFuture <= 0 || ev.At-storedAt <= int64(maxFuture) {
		return ""
	}
	ahead := time.Duration(ev.At - storedAt).Round(time.Millisecond)
	return fmt.Sprintf("field \"at\" is %s, %s after the stream stored the event (%s): more than the allowed %s",
		ev.AtRaw, ahead, time.Unix(0, storedAt).UTC().Format(time.RFC3339Nano), maxFuture)
}
