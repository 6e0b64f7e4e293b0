package ownership

import (
	"slices"
	"strings"
)

// Machine is one member's ownership state machine. It holds what the
// member knows (its lease, the members present, the FR_OWNERS records
// seen, the partitions it claimed) and decides; the caller does the IO.
// Every method is a step: it takes an input (an observation, a result of
// an earlier action, or the time) and returns the actions to carry out,
// in order. Time is monotonic nanoseconds on the caller's clock, passed
// in; the machine never reads a clock.
//
// A Machine is not safe for concurrent use: the caller serialises its
// calls (pipeline holds a mutex around them, never across IO).
type Machine struct {
	cfg    Config
	hb     int64 // heartbeat period, ns (Lease/5)
	margin int64 // the lease ends this long before the key can expire

	gen     uint64 // lease generation, incremented at every (re)join
	until   int64  // the lease's end (0: none)
	settle  int64  // no claims before this (first join)
	joined  bool   // the member key is ours (a heartbeat succeeded)
	leaving bool
	fenced  uint64 // the last generation a Fence was emitted for

	live       map[string]bool // members present (leaving ones too)
	assignKey  string
	assignment []string

	view  []Entry // FR_OWNERS as last seen, by partition
	slots []*slot // claimed partitions, by partition (nil: none)
	pass  pass
	leave leave
}

// pass is a reconcile pass in progress: claims and stale releases go one
// compare-and-set at a time, each checked against the lease before it
// is emitted.
type pass struct {
	active bool
	gen    uint64
	next   int
}

// leave is the state of a graceful leave.
type leave struct {
	// deadline (caller's ns) by which release snapshots must be written;
	// a partition whose worker stops later is released without one.
	deadline int64
}

// slot is a partition this member claimed: its decision state.
type slot struct {
	p     int
	epoch uint64
	gen   uint64 // lease generation of the claim
	rev   uint64 // revision of our latest write (while claiming: the one compared against)
	rec   Record // our record as last written (while claiming: being written)
	phase Phase
	why   Reason // why it is stopping

	revoked bool
	ran     bool // the worker was started under this claim

	snapCursor uint64 // cursor of the record's snapshot
	snapAt     int64  // when it was taken (or claimed)

	final   uint64 // the worker's cursor when it stopped (ran only)
	newSnap string // the release snapshot written ("" none)
	expect  uint64 // the cursor the previous owner released at (0 unknown)

	// A periodic snapshot and its pointer write in flight: the release
	// waits for it (busy), and a Stopped that arrives meanwhile is kept
	// in stopped until the pointer write is settled.
	busy        bool
	periodic    string
	periodicAt  uint64
	periodicOld string // the snapshot the pointer write replaces
	// maybe are snapshots a pointer write of unknown outcome may have
	// made the record's: never deleted by this slot, and reused by the
	// release when it is at the same cursor (the object is written).
	maybe         []string
	stopped       bool
	stoppedCursor uint64
}

// New returns the machine of a member that has not joined yet: no lease,
// no members, no records seen, nothing claimed.
func New(cfg Config) *Machine {
	if cfg.Partitions < 0 {
		cfg.Partitions = 0
	}
	return &Machine{
		cfg:    cfg,
		hb:     int64(cfg.Lease / 5),
		margin: int64(cfg.Lease / 5),
		live:   map[string]bool{},
		view:   make([]Entry, cfg.Partitions),
		slots:  make([]*slot, cfg.Partitions),
	}
}

// ---- membership and the lease ------------------------------------------

// HeartbeatOK records a successful write of the member key, sent (before
// the write) at sent. rejoined: the write created the key (the first
// join, or after [Machine.KeyLost]).
//
// The lease runs until sent + Lease - Lease/5: the server stores the
// heartbeat after it was sent and expires it Lease after storing it, so
// the lease ends at least Lease/5 before any other member can see the
// key gone (and take the member's partitions). A heartbeat sent after the
// lease ended, or a rejoin, starts a new generation: claims of the old
// one stay fenced for good, since their workers may have stopped half-way.
func (m *Machine) HeartbeatOK(sent int64, rejoined bool) {
	if m.gen == 0 {
		// First join: wait two heartbeats before claiming, so that members
		// started together see each other and the first assignment does
		// not move partitions around at once (Kafka's initial rebalance
		// delay).
		m.settle = sent + 2*m.hb
	}
	if rejoined || sent >= m.until {
		m.gen++
	}
	m.until = sent + int64(m.cfg.Lease) - m.margin
	m.joined = true
}

// KeyLost records that the member key expired or was taken: the lease is
// gone for good; the next successful heartbeat (a create) rejoins.
func (m *Machine) KeyLost() {
	m.until = 0
	m.joined = false
}

// LeaseValid reports whether the member's lease holds at now, and until
// when (monotonic ns).
func (m *Machine) LeaseValid(now int64) (valid bool, until int64) {
	return m.gen > 0 && now < m.until, m.until
}

// Gen is the current lease generation (0 before the first join).
func (m *Machine) Gen() uint64 { return m.gen }

// Leaving reports whether the member is leaving (its heartbeats say so).
func (m *Machine) Leaving() bool { return m.leaving }

// ---- the fence ---------------------------------------------------------

// Check is the worker's fence, asked before every commit and publish:
// "" when partition p's claim of epoch is held at now, else why not
// (the worker must stop without writing).
func (m *Machine) Check(p int, epoch uint64, now int64) Reason {
	s := m.slot(p)
	if s == nil || s.epoch != epoch {
		return ReasonSuperseded
	}
	return m.fence(s, now)
}

func (m *Machine) fence(s *slot, now int64) Reason {
	if s.revoked {
		return ReasonSuperseded
	}
	if s.gen != m.gen || now >= m.until {
		return ReasonLeaseLapsed
	}
	return ""
}

// ---- observations ------------------------------------------------------

// Observe takes an FR_OWNERS record seen by the watcher (or read). A
// record newer than our latest write, by someone else or of another
// epoch, revokes our claim: the Fence returned is for the log, the
// worker's [Machine.Check] fails from now on.
func (m *Machine) Observe(p int, e Entry) []Action {
	if p < 0 || p >= len(m.view) {
		return nil
	}
	if e.Rev > m.view[p].Rev {
		m.view[p] = e
	}
	s := m.slots[p]
	if s == nil || e.Rev <= s.rev {
		return nil
	}
	if e.OK && e.Member == m.cfg.Member && e.Epoch == s.epoch {
		// Our own write, seen before (or instead of) its answer: one whose
		// outcome was Unknown landed after all. Later writes compare
		// against it.
		if s.phase != Claiming {
			s.rev, s.rec, s.snapCursor = e.Rev, e.Record, e.Cursor
		}
		return nil
	}
	if s.revoked {
		return nil
	}
	s.revoked = true
	if s.phase >= Stopping {
		return nil // on its way out anyway: nothing to shout about
	}
	return []Action{{Kind: Fence, P: p, Epoch: s.epoch, Reason: ReasonSuperseded, By: e.Member, ByEpoch: e.Epoch}}
}

// Owner returns partition p's record as last seen (or written).
func (m *Machine) Owner(p int) Entry {
	if p < 0 || p >= len(m.view) {
		return Entry{}
	}
	return m.view[p]
}

// Tick is the start of a reconcile pass at now: it stops the workers
// whose claim is no longer held, and asks for the member list
// (ReadMembers) when the member may claim and release: its lease holds,
// it is not leaving and its first-join delay is over.
func (m *Machine) Tick(now int64) []Action {
	var acts []Action
	if m.gen > m.fenced && m.gen > 0 && now >= m.until && m.hasSlotsOf(m.gen) {
		m.fenced = m.gen
		acts = append(acts, Action{Kind: Fence, P: -1, Gen: m.gen, Reason: ReasonLeaseLapsed})
	}
	// Only slots not already on their way out: a claim in flight is
	// settled by its result, a stopping one by its worker's end.
	for _, s := range m.slots {
		if s == nil || (s.phase != Restoring && s.phase != Running) {
			continue
		}
		if r := m.fence(s, now); r != "" {
			s.phase, s.why = Stopping, r
			acts = append(acts, Action{Kind: Stop, P: s.p, Epoch: s.epoch, Reason: r})
		}
	}
	if m.mayReconcile(now) {
		acts = append(acts, Action{Kind: ReadMembers})
	}
	return acts
}

func (m *Machine) hasSlotsOf(gen uint64) bool {
	for _, s := range m.slots {
		if s != nil && s.gen == gen {
			return true
		}
	}
	return false
}

func (m *Machine) mayReconcile(now int64) bool {
	valid, _ := m.LeaseValid(now)
	return valid && !m.leaving && now >= m.settle
}

// Members takes the member list read for a pass (ReadMembers) and
// returns the pass's first step: the release of one partition targeted
// elsewhere (one at a time: the pass ends there, the next one continues),
// else the first claim or stale release; [Machine.ClaimDone] and
// [Machine.RecordDone] return the next ones.
func (m *Machine) Members(now int64, members []MemberInfo) []Action {
	m.live = make(map[string]bool, len(members))
	active := make([]string, 0, len(members))
	for _, mi := range members {
		m.live[mi.ID] = true
		if !mi.Leaving {
			active = append(active, mi.ID)
		}
	}
	slices.Sort(active)
	active = slices.Compact(active)
	if key := strings.Join(active, "\x00"); key != m.assignKey || m.assignment == nil {
		m.assignKey, m.assignment = key, Assign(active, m.cfg.Partitions)
	}
	m.pass.active = false
	if !m.mayReconcile(now) || !m.live[m.cfg.Member] {
		return nil
	}
	for _, s := range m.slots {
		if s != nil && s.releasing() {
			return nil // one release at a time
		}
	}
	for _, s := range m.slots {
		if s != nil && (s.phase == Restoring || s.phase == Running) && m.assignment[s.p] != m.cfg.Member {
			s.phase, s.why = Stopping, ReasonRelease
			return []Action{{Kind: Stop, P: s.p, Epoch: s.epoch, Reason: ReasonRelease}}
		}
	}
	m.pass = pass{active: true, gen: m.gen}
	return m.continuePass(now)
}

func (s *slot) releasing() bool {
	switch s.phase {
	case Stopping:
		return s.why == ReasonRelease || s.why == ReasonLeave
	case Snapshotting, Releasing:
		return true
	}
	return false
}

// Target returns the assignment computed from the last member list: the
// target owner of each partition ("" none). The slice is the machine's:
// do not modify it.
func (m *Machine) Target() []string { return m.assignment }

// continuePass emits the pass's next claim or stale release, if the lease
// of the pass still holds.
func (m *Machine) continuePass(now int64) []Action {
	me := m.cfg.Member
	for m.pass.active && m.pass.next < m.cfg.Partitions {
		// Each compare-and-set takes a round trip: the lease is checked
		// again before every one, as a claim made under a lapsed lease
		// would be fenced at once and cost the partition a new epoch.
		if m.pass.gen != m.gen || now >= m.until || m.leaving {
			break
		}
		p := m.pass.next
		m.pass.next++
		if m.slots[p] != nil {
			continue
		}
		e := m.view[p]
		switch {
		case m.assignment[p] == me:
			if !e.OK || e.Member == "" || e.Member == me {
				return []Action{m.claim(now, p, e, "")}
			}
			if !m.live[e.Member] {
				// Its key is gone: its lease ended at least Lease/5 before.
				return []Action{m.claim(now, p, e, e.Member)}
			}
		case e.OK && e.Member == me:
			// Our record from an earlier lease or run, targeted elsewhere
			// now: release it so that its target need not wait for expiry.
			rec := e.Record
			rec.Member = ""
			return []Action{{Kind: WriteRecord, P: p, Purpose: ForStale, Record: rec, Rev: e.Rev}}
		}
	}
	m.pass.active = false
	return nil
}

func (m *Machine) claim(now int64, p int, e Entry, from string) Action {
	rec := Record{Member: m.cfg.Member, Epoch: e.Epoch + 1, Snapshot: e.Snapshot, Cursor: e.Cursor}
	// Records up to the one compared against are older than the claim:
	// the watcher revokes the claim on anything newer by someone else,
	// even before the claim's result is in.
	m.slots[p] = &slot{p: p, epoch: rec.Epoch, gen: m.gen, rev: e.Rev, rec: rec, phase: Claiming, snapCursor: rec.Cursor, snapAt: now, expect: e.Released}
	return Action{Kind: Claim, P: p, Epoch: rec.Epoch, Record: rec, Rev: e.Rev, Create: !e.OK, From: from}
}

// ClaimDone takes the result of a Claim: Written with the record's new
// revision, or not (a Conflict: someone wrote first; or Unknown: the
// write may have landed, and if so the next pass finds the record ours
// and claims it again). It returns Start when written, then the pass's
// next step.
func (m *Machine) ClaimDone(now int64, p int, epoch uint64, rev uint64, outcome Outcome) []Action {
	var acts []Action
	if s := m.slot(p); s != nil && s.epoch == epoch && s.phase == Claiming {
		if outcome != Written {
			m.slots[p] = nil
		} else {
			s.rev, s.phase = rev, Restoring
			m.wrote(p, s.rec, rev)
			acts = append(acts, Action{Kind: Start, P: p, Epoch: epoch, Record: s.rec})
			if m.leaving {
				// Claimed while leaving (the claim was in flight): give it
				// back at once.
				s.phase, s.why = Stopping, ReasonLeave
				acts = append(acts, Action{Kind: Stop, P: p, Epoch: epoch, Reason: ReasonLeave})
			}
		}
	}
	return append(acts, m.continuePass(now)...)
}

// wrote records our own successful write in the view.
func (m *Machine) wrote(p int, rec Record, rev uint64) {
	if rev > m.view[p].Rev {
		m.view[p] = Entry{Record: rec, Rev: rev, OK: true}
	}
}

// ---- restore and the worker's life -------------------------------------

// PlanRestore decides where claimed partition p (of epoch) takes its
// state from, given the local copy: the claimed record's snapshot when
// it is ahead of the local copy (or the copy is an incomplete import),
// else the local copy (it is a consistent state at its cursor, and the
// outputs are deterministic, so one at least as new as the snapshot is
// as good), else nothing. ok is false when the claim is gone.
func (m *Machine) PlanRestore(p int, epoch uint64, local Local) (plan RestorePlan, ok bool) {
	s := m.slot(p)
	if s == nil || s.epoch != epoch {
		return plan, false
	}
	plan = RestorePlan{Snapshot: s.rec.Snapshot, SnapshotCursor: s.rec.Cursor, Expected: s.expect}
	if !local.Incomplete {
		plan.LocalCursor = local.Cursor
	}
	switch {
	case s.rec.Snapshot != "" && (local.Incomplete || s.rec.Cursor > local.Cursor):
		plan.Source, plan.DropLocal = SourceSnapshot, true
	case local.Incomplete:
		plan.Source, plan.DropLocal = SourceEmpty, true
	case local.Cursor == 0:
		plan.Source = SourceEmpty
	default:
		plan.Source = SourceLocal
	}
	return plan, true
}

// Running records that partition p's worker of epoch was started (its
// state restored). It reports false when the claim is gone.
func (m *Machine) Running(p int, epoch uint64) bool {
	s := m.slot(p)
	if s == nil || s.epoch != epoch {
		return false
	}
	s.ran = true
	if s.phase == Restoring {
		s.phase = Running
	}
	return true
}

// Stopped takes the end of partition p's worker (or restore) of epoch,
// asked for or not, with the cursor of its last commit. A release
// continues with its snapshot and record; a fenced or exited slot is
// dropped (the record is not ours to write, or still ours to claim
// again).
func (m *Machine) Stopped(now int64, p int, epoch uint64, cursor uint64) []Action {
	s := m.slot(p)
	if s == nil || s.epoch != epoch || s.phase == Claiming {
		return nil
	}
	if s.busy {
		s.stopped, s.stoppedCursor = true, cursor
		return nil
	}
	return m.afterStop(now, s, cursor)
}

func (m *Machine) afterStop(now int64, s *slot, cursor uint64) []Action {
	if s.ran {
		s.final = cursor
	}
	if s.phase == Stopping && (s.why == ReasonRelease || s.why == ReasonLeave) {
		// The worker has stopped, so its state is final and consistent,
		// and the release is a compare-and-set on our own latest record:
		// only someone else's newer record (revoked) makes it pointless.
		// A lease that lapsed meanwhile (a heartbeat answered late, a
		// stalled server) is no reason to give the state up: if another
		// member claimed, the release's write fails; if not, dropping the
		// slot left the record at the claim's older snapshot for the next
		// owner to take over from, at no error (issue 16).
		if s.revoked {
			return m.drop(s, ReasonReleaseFenced)
		}
		if s.why == ReasonLeave {
			// Each partition is released as soon as its worker stopped:
			// one worker slow to drain costs only its own snapshot.
			return m.releaseSnapshot(s, now, m.leave.deadline)
		}
		return m.releaseSnapshot(s, now, 0)
	}
	// A fenced stop, or an end nobody asked for: the slot goes; the
	// record, if still ours, is claimed again by the next pass (a new
	// epoch, so that nothing the old worker may still write is mistaken
	// for the new one's).
	why := s.why
	if s.phase != Stopping {
		// Not asked: the worker ended by itself (fenced, or failed).
		why = m.fence(s, now)
		if why == "" {
			why = ReasonExited
		}
	}
	return m.drop(s, why)
}

// releaseSnapshot asks for the release snapshot when the worker moved
// the partition past the record's snapshot, else writes the release. A
// snapshot that could no longer be written by deadline (a leave whose
// drain budget is spent) is not asked for: the release keeps the
// previous snapshot and says how far the partition had got (Released).
func (m *Machine) releaseSnapshot(s *slot, now, deadline int64) []Action {
	// Only a worker that ran has a cursor of this claim; a slot stopped
	// while restoring keeps the previous snapshot.
	if s.ran && (s.final > s.snapCursor || (s.rec.Snapshot == "" && s.final > 0)) && (deadline == 0 || now < deadline) {
		if name := SnapshotName(s.p, s.epoch, s.final); slices.Contains(s.maybe, name) {
			// A periodic snapshot at this very cursor is written (its
			// pointer's outcome is unknown): the release points at it.
			s.newSnap = name
			return m.writeRelease(s)
		}
		s.phase = Snapshotting
		return []Action{{Kind: Snapshot, P: s.p, Epoch: s.epoch, Purpose: ForRelease, Object: SnapshotName(s.p, s.epoch, s.final), Cursor: s.final, Deadline: deadline}}
	}
	return m.writeRelease(s)
}

func (m *Machine) writeRelease(s *slot) []Action {
	s.phase = Releasing
	return []Action{{Kind: WriteRecord, P: s.p, Epoch: s.epoch, Purpose: ForRelease, Record: s.releaseRecord(), Rev: s.rev}}
}

// releaseRecord is the record giving the partition up: the release
// snapshot if one was written, else the previous one, and the furthest
// cursor known to have been reached.
func (s *slot) releaseRecord() Record {
	rec := s.rec
	if s.newSnap != "" {
		rec.Snapshot, rec.Cursor = s.newSnap, s.final
	}
	rec.Member = ""
	rec.Released = max(s.final, s.expect, rec.Cursor)
	return rec
}

func (m *Machine) drop(s *slot, why Reason) []Action {
	m.slots[s.p] = nil
	return []Action{{Kind: Drop, P: s.p, Epoch: s.epoch, Reason: why, Cursor: s.final, Record: s.rec}}
}

// ---- snapshots and records ---------------------------------------------

// Progress takes a running partition's committed cursor at now and
// returns a periodic Snapshot when one is due: the cursor moved past the
// record's snapshot and SnapshotInterval has passed since it was taken.
// One per partition at a time.
func (m *Machine) Progress(now int64, p int, epoch uint64, cursor uint64) []Action {
	s := m.slot(p)
	if m.cfg.SnapshotInterval <= 0 || s == nil || s.epoch != epoch || s.phase != Running || s.busy || m.fence(s, now) != "" {
		return nil
	}
	if cursor <= s.snapCursor || now-s.snapAt < int64(m.cfg.SnapshotInterval) {
		return nil
	}
	name := SnapshotName(p, epoch, cursor)
	if slices.Contains(s.maybe, name) {
		return nil // written already, its pointer's outcome unknown: wait for the cursor to move
	}
	s.busy, s.periodic, s.periodicAt, s.periodicOld = true, name, cursor, s.rec.Snapshot
	return []Action{{Kind: Snapshot, P: p, Epoch: epoch, Purpose: ForPointer, Object: s.periodic, Cursor: cursor}}
}

// SnapshotDone takes the result of a Snapshot (ok: the object is
// written). A release snapshot is then pointed at by the release record
// (or, failed, the release keeps the previous one); a periodic one by a
// pointer write, unless the claim was lost or the partition is stopping
// meanwhile (then the object is deleted).
func (m *Machine) SnapshotDone(now int64, p int, epoch uint64, object string, ok bool) []Action {
	s := m.slot(p)
	if s == nil || s.epoch != epoch {
		if ok {
			return []Action{{Kind: DeleteSnapshot, P: p, Object: object}}
		}
		return nil
	}
	switch {
	case s.busy && object == s.periodic:
		if ok && m.fence(s, now) == "" && s.phase == Running {
			rec := s.rec
			rec.Snapshot, rec.Cursor = object, s.periodicAt
			return []Action{{Kind: WriteRecord, P: p, Epoch: epoch, Purpose: ForPointer, Record: rec, Rev: s.rev}}
		}
		var acts []Action
		if ok {
			acts = append(acts, Action{Kind: DeleteSnapshot, P: p, Object: object})
		}
		return append(acts, m.settlePeriodic(now, s)...)
	case s.phase == Snapshotting:
		if ok {
			s.newSnap = object
		}
		if s.revoked {
			// Superseded meanwhile: the release's write would fail.
			var acts []Action
			if ok {
				acts = append(acts, Action{Kind: DeleteSnapshot, P: p, Object: object})
			}
			return append(acts, m.drop(s, ReasonReleaseFenced)...)
		}
		return m.writeRelease(s)
	}
	return nil
}

// settlePeriodic ends a periodic snapshot and resumes a stop that waited
// for it.
func (m *Machine) settlePeriodic(now int64, s *slot) []Action {
	s.busy, s.periodic = false, ""
	if s.stopped {
		s.stopped = false
		return m.afterStop(now, s, s.stoppedCursor)
	}
	return nil
}

// RecordDone takes the result of a WriteRecord of purpose: Written with
// the record's new revision, a Conflict, or Unknown (the write may have
// landed: the objects either record would point at are kept).
func (m *Machine) RecordDone(now int64, p int, epoch uint64, purpose Purpose, rev uint64, outcome Outcome) []Action {
	if purpose == ForStale {
		if outcome == Written && p >= 0 && p < len(m.view) {
			e := m.view[p]
			e.Member = ""
			m.wrote(p, e.Record, rev)
		}
		return m.continuePass(now)
	}
	s := m.slot(p)
	if s == nil || s.epoch != epoch {
		return nil
	}
	switch purpose {
	case ForPointer:
		if !s.busy {
			return nil
		}
		var acts []Action
		switch outcome {
		case Written:
			s.rec.Snapshot, s.rec.Cursor = s.periodic, s.periodicAt
			s.rev, s.snapCursor, s.snapAt = max(s.rev, rev), s.periodicAt, now
			m.wrote(p, s.rec, rev)
			if old := s.periodicOld; old != "" && old != s.periodic && !slices.Contains(s.maybe, old) {
				acts = append(acts, Action{Kind: DeleteSnapshot, P: p, Object: old})
			}
		case Conflict:
			acts = append(acts, Action{Kind: DeleteSnapshot, P: p, Object: s.periodic})
		default:
			s.maybe = append(s.maybe, s.periodic)
		}
		return append(acts, m.settlePeriodic(now, s)...)
	case ForRelease:
		if s.phase != Releasing {
			return nil
		}
		if outcome != Written {
			var acts []Action
			if s.newSnap != "" && outcome == Conflict && !slices.Contains(s.maybe, s.newSnap) {
				acts = append(acts, Action{Kind: DeleteSnapshot, P: p, Object: s.newSnap})
			}
			return append(acts, m.drop(s, ReasonReleaseLost)...)
		}
		rec := s.releaseRecord()
		m.wrote(p, rec, rev)
		var acts []Action
		if old := s.rec.Snapshot; s.newSnap != "" && old != "" && old != s.newSnap && !slices.Contains(s.maybe, old) {
			acts = append(acts, Action{Kind: DeleteSnapshot, P: p, Object: old})
		}
		s.rec = rec
		return append(acts, m.drop(s, ReasonReleased)...)
	}
	return nil
}

// ---- leaving -----------------------------------------------------------

// Leave starts a graceful leave at now: the member marks itself leaving
// (a Heartbeat now, so that the others stop targeting it) and stops every
// worker. Each partition is then snapshotted and released as soon as its
// worker has stopped ([Machine.Stopped]), its snapshot due by deadline
// (the drain budget's end): a worker stopping after it is released with
// the previous snapshot and its final cursor in Released.
func (m *Machine) Leave(now, deadline int64) []Action {
	m.leaving = true
	m.pass.active = false
	m.leave.deadline = deadline
	acts := []Action{{Kind: Heartbeat}}
	for _, s := range m.slots {
		if s != nil && (s.phase == Restoring || s.phase == Running) {
			s.phase, s.why = Stopping, ReasonLeave
			acts = append(acts, Action{Kind: Stop, P: s.p, Epoch: s.epoch, Reason: ReasonLeave})
		}
	}
	return acts
}

// Shutdown ends the member after its leave, once its heartbeats have
// stopped: DeleteMember when the key is ours, so that the others
// rebalance at once instead of after the lease.
func (m *Machine) Shutdown() []Action {
	m.until = 0
	if !m.joined {
		return nil
	}
	m.joined = false
	return []Action{{Kind: DeleteMember}}
}

// ---- queries -----------------------------------------------------------

func (m *Machine) slot(p int) *slot {
	if p < 0 || p >= len(m.slots) {
		return nil
	}
	return m.slots[p]
}

// Slot returns partition p's slot, if claimed.
func (m *Machine) Slot(p int) (SlotInfo, bool) {
	s := m.slot(p)
	if s == nil {
		return SlotInfo{}, false
	}
	return s.info(), true
}

// Slots returns the claimed partitions in partition order.
func (m *Machine) Slots() []SlotInfo {
	var out []SlotInfo
	for _, s := range m.slots {
		if s != nil {
			out = append(out, s.info())
		}
	}
	return out
}

func (s *slot) info() SlotInfo {
	return SlotInfo{P: s.p, Epoch: s.epoch, Phase: s.phase, Gen: s.gen, Record: s.rec, Revoked: s.revoked, Stop: s.why}
}

// Live reports whether member id was present in the last member list.
func (m *Machine) Live(id string) bool { return m.live[id] }
