package ownership

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// sim is a small world for the machines to live in: the FR_OWNERS and
// FR_MEMBERS buckets (compare-and-set, TTL), the FR_SNAPSHOTS objects,
// FR_IN's head per partition, FR_OUT's outputs, and members whose IO is
// carried out exactly as pipeline/cluster does it, but synchronously
// and on a simulated clock. The scripts drive it step by step or let it
// run; the randomized test lets it run with faults injected.
type sim struct {
	parts        int
	lease        time.Duration
	interval     time.Duration
	drainTimeout time.Duration // the daemon's drain budget (DrainTimeout)
	now          int64

	ownRev  uint64
	owners  []Entry
	updates []simUpdate // every FR_OWNERS write, in revision order
	keyRev  uint64
	keys    map[string]*simKey
	objects map[string]uint64
	head    []uint64
	load    uint64 // events per partition per run step
	out     []simOut

	members  []*simMember
	nextInst int

	// faults injects failures into the IO (randomized test; none unless
	// its rng is set).
	faults *faults
	// trace collects what happened, for the scripts; verbose adds every
	// action executed.
	trace   []string
	verbose bool
	tap     func(string) // sees every trace line as it is written
	// violations collects broken invariants.
	violations []string
	// restores records every restore, for the invariants.
	restores []simRestore
}

type simUpdate struct {
	p int
	e Entry
}

type simKey struct {
	inst    int
	stored  int64
	rev     uint64
	leaving bool
}

type simOut struct {
	p      int
	epoch  uint64
	member string
	seq    uint64
	at     int64
}

type simRestore struct {
	member string
	p      int
	from   Entry // the record the claim compared against
	plan   RestorePlan
	got    uint64 // cursor after the restore
}

type faults struct {
	rng *rand.Rand
	// Probabilities: a write fails; a write lands but its answer is lost;
	// a snapshot upload fails; the owners watcher delivers nothing this
	// step; a heartbeat fails.
	casFail, casLost, snapFail, watchLag, heartbeatFail float64
	// publishDelay bounds the time from a worker's fence check to its
	// output being stored; heartbeatDelay the time from a heartbeat's
	// send to its store.
	publishDelay, heartbeatDelay time.Duration
}

func (f *faults) hit(p float64) bool { return p > 0 && f.rng != nil && f.rng.Float64() < p }

type simMember struct {
	id       string
	inst     int
	m        *Machine
	up       bool // the process runs
	frozen   bool // SIGSTOP: nothing of it runs, its clock reads go on
	hbOff    bool // heartbeats skipped (the fencing test's hook)
	verbose  bool // trace every action it executes
	lag      bool // owners watcher deliveries held
	keyRev   uint64
	nextBeat int64
	nextTick int64
	seen     uint64 // last FR_OWNERS revision the watcher delivered
	local    []simLocal
	workers  map[int]*simWorker
	queue    []Action
	hung     map[int]int64 // partition -> until when its worker neither works nor stops
	claimed  map[int]Entry // partition -> record the claim in flight compared against
	leave    *simLeave
}

type simLocal struct {
	cursor     uint64
	incomplete bool
}

type simWorker struct {
	epoch   uint64
	running bool
	stopAt  int64 // >0: asked to stop, stops at this time
	// acked is when its last output is stored: a stop finishes the batch
	// in hand, publish acknowledgements included, so it ends no earlier.
	acked int64
}

// simLeave is a graceful leave in progress (SIGTERM): the hard deadline
// ends any drain.
type simLeave struct {
	start, hard int64
}

func newSim(parts int, lease, interval time.Duration) *sim {
	return &sim{
		parts: parts, lease: lease, interval: interval, drainTimeout: 8 * time.Second,
		owners: make([]Entry, parts), keys: map[string]*simKey{}, objects: map[string]uint64{},
		head: make([]uint64, parts), faults: &faults{},
	}
}

func (s *sim) hb() int64 { return int64(s.lease / 5) }

func (s *sim) logf(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf("%s ", fmtTime(s.now))+fmt.Sprintf(format, args...))
	if s.tap != nil {
		s.tap(s.trace[len(s.trace)-1])
	}
}

func (s *sim) violate(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf("%s ", fmtTime(s.now))+fmt.Sprintf(format, args...))
}

func fmtTime(ns int64) string { return fmt.Sprintf("%.3fs", float64(ns)/1e9) }

func (s *sim) member(id string) *simMember {
	for _, mb := range s.members {
		if mb.id == id {
			return mb
		}
	}
	return nil
}

// start starts (or restarts) member id as a new process: a new instance,
// a fresh machine, its local store kept.
func (s *sim) start(id string) *simMember {
	mb := s.member(id)
	if mb == nil {
		mb = &simMember{id: id, local: make([]simLocal, s.parts)}
		s.members = append(s.members, mb)
	}
	s.nextInst++
	mb.inst = s.nextInst
	mb.m = New(Config{Member: id, Partitions: s.parts, Lease: s.lease, SnapshotInterval: s.interval})
	mb.up, mb.frozen, mb.hbOff, mb.lag = true, false, false, false
	mb.keyRev, mb.seen = 0, 0
	mb.nextBeat, mb.nextTick = s.now, s.now
	mb.workers, mb.hung, mb.claimed = map[int]*simWorker{}, map[int]int64{}, map[int]Entry{}
	mb.queue, mb.leave = nil, nil
	return mb
}

// crash ends member id's process the way kill -9 does: nothing more of
// it runs; its key expires after the lease.
func (s *sim) crash(mb *simMember) {
	mb.up = false
	mb.workers = map[int]*simWorker{}
	mb.queue = nil
}

// ---- FR_MEMBERS ------------------------------------------------------------

func (s *sim) liveKey(id string) *simKey {
	k := s.keys[id]
	if k != nil && s.now >= k.stored+int64(s.lease) {
		delete(s.keys, id) // expired
		return nil
	}
	return k
}

// beat is the heartbeat goroutine's beat: update the key with a
// compare-and-set on our revision; on a mismatch, adopt a key of our
// instance (an earlier write landed late) or rejoin with a create.
func (s *sim) beat(mb *simMember) bool {
	if s.faults.hit(s.faults.heartbeatFail) {
		return false
	}
	k := s.liveKey(mb.id)
	leaving := mb.m.Leaving()
	if mb.keyRev != 0 {
		if k != nil && (k.rev == mb.keyRev || k.inst == mb.inst) {
			s.keyRev++
			k.stored, k.rev, k.leaving = s.now+s.storeDelay(), s.keyRev, leaving
			mb.keyRev = k.rev
			mb.m.HeartbeatOK(s.now, false)
			return true
		}
		mb.m.KeyLost()
		mb.keyRev = 0
		s.logf("%s: member key expired or taken; rejoining", mb.id)
	}
	if k != nil {
		if s.verbose {
			s.logf("%s: member key held by instance %d; waiting for it to expire", mb.id, k.inst)
		}
		return false
	}
	s.keyRev++
	s.keys[mb.id] = &simKey{inst: mb.inst, stored: s.now + s.storeDelay(), rev: s.keyRev, leaving: leaving}
	mb.keyRev = s.keyRev
	before := mb.m.Gen()
	mb.m.HeartbeatOK(s.now, true)
	s.logf("%s: joined, lease generation %d (was %d)", mb.id, mb.m.Gen(), before)
	return true
}

// storeDelay is how long after its send a heartbeat is stored.
func (s *sim) storeDelay() int64 {
	if s.faults.rng == nil || s.faults.heartbeatDelay <= 0 {
		return 0
	}
	return s.faults.rng.Int64N(int64(s.faults.heartbeatDelay))
}

func (s *sim) memberList() []MemberInfo {
	var out []MemberInfo
	ids := make([]string, 0, len(s.keys))
	for id := range s.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if k := s.liveKey(id); k != nil {
			out = append(out, MemberInfo{ID: id, Leaving: k.leaving})
		}
	}
	return out
}

// ---- FR_OWNERS -------------------------------------------------------------

// cas writes rec to p's key when its revision is rev (or, create, when
// it has no record), and reports the new revision and the outcome as the
// writer sees it. A fault can fail the write without an answer, or land
// it and lose the answer (both Unknown to the writer).
func (s *sim) cas(p int, rec Record, rev uint64, create bool) (uint64, Outcome) {
	if s.faults.hit(s.faults.casFail) {
		return 0, Unknown
	}
	cur := s.owners[p]
	if create && cur.OK || !create && cur.Rev != rev {
		return 0, Conflict
	}
	// Epochs never go back; a claim (a new member or epoch) moves them on.
	if cur.OK && rec.Epoch < cur.Epoch {
		s.violate("partition %d: epoch %d written over %d", p, rec.Epoch, cur.Epoch)
	}
	if cur.OK && rec.Member != "" && rec.Member != cur.Member && rec.Epoch <= cur.Epoch {
		s.violate("partition %d: claim by %s at epoch %d over %s's %d", p, rec.Member, rec.Epoch, cur.Member, cur.Epoch)
	}
	s.ownRev++
	e := Entry{Record: rec, Rev: s.ownRev, OK: true}
	s.owners[p] = e
	s.updates = append(s.updates, simUpdate{p, e})
	if s.faults.hit(s.faults.casLost) {
		return 0, Unknown
	}
	return s.ownRev, Written
}

// deliver is the owners watcher: every update since the last one
// delivered, in order (all current records on the first delivery, as
// WatchAll starts), up to rev (0: all).
func (s *sim) deliver(mb *simMember, upto uint64) bool {
	var acts []Action
	seen := mb.seen
	if mb.seen == 0 {
		for p, e := range s.owners {
			if e.Rev != 0 && (upto == 0 || e.Rev <= upto) {
				acts = append(acts, mb.m.Observe(p, e)...)
			}
		}
		mb.seen = s.ownRev
		if upto != 0 {
			mb.seen = min(upto, s.ownRev)
		}
	} else {
		for _, u := range s.updates {
			if u.e.Rev > mb.seen && (upto == 0 || u.e.Rev <= upto) {
				acts = append(acts, mb.m.Observe(u.p, u.e)...)
				mb.seen = u.e.Rev
			}
		}
	}
	mb.queue = append(mb.queue, acts...)
	return mb.seen != seen
}

// ---- actions ---------------------------------------------------------------

// ioFault is a fault forced on one action's IO by a script.
type ioFault uint8

const (
	noFault ioFault = iota
	failIO          // the IO fails (a write: not stored, no answer: Unknown)
	lostIO          // a write is stored but its answer lost (Unknown)
)

// exec carries out one action of member mb, as pipeline does, and feeds
// the result back; follow-up actions go to the member's queue.
func (s *sim) exec(mb *simMember, a Action, fault ioFault) {
	fail := fault == failIO
	m := mb.m
	verbose := s.verbose || mb.verbose
	if verbose {
		s.logf("%s: %s", mb.id, a)
	}
	var next []Action
	switch a.Kind {
	case ReadMembers:
		next = m.Members(s.now, s.memberList())
	case Claim:
		from := s.owners[a.P]
		rev, outcome := uint64(0), Unknown
		if !fail {
			rev, outcome = s.cas(a.P, a.Record, a.Rev, a.Create)
		}
		if fault == lostIO {
			rev, outcome = 0, Unknown
		}
		if outcome == Written {
			mb.claimed[a.P] = from
			s.logf("%s: claimed p=%d epoch=%d%s", mb.id, a.P, a.Epoch, ifs(a.From != "", " (takeover from "+a.From+")", ""))
		} else if verbose {
			s.logf("%s: claim p=%d lost", mb.id, a.P)
		}
		next = m.ClaimDone(s.now, a.P, a.Epoch, rev, outcome)
	case Start:
		next = s.startWorker(mb, a)
	case Stop:
		w := mb.workers[a.P]
		if w == nil {
			next = m.Stopped(s.now, a.P, a.Epoch, mb.local[a.P].cursor)
			break
		}
		w.stopAt = max(s.now, mb.hung[a.P], w.acked)
		if w.stopAt == s.now {
			next = s.stopWorker(mb, a.P)
		}
	case Snapshot:
		ok := !fail && !s.faults.hit(s.faults.snapFail) && (a.Deadline == 0 || s.now < a.Deadline)
		if ok {
			s.objects[a.Object] = max(mb.local[a.P].cursor, a.Cursor)
		}
		if a.Purpose == ForRelease || verbose || !ok {
			s.logf("%s: snapshot %s %s", mb.id, a.Object, ifs(ok, "written", "failed"))
		}
		next = m.SnapshotDone(s.now, a.P, a.Epoch, a.Object, ok)
	case WriteRecord:
		rev, outcome := uint64(0), Unknown
		if !fail {
			rev, outcome = s.cas(a.P, a.Record, a.Rev, false)
		}
		if fault == lostIO {
			rev, outcome = 0, Unknown
		}
		if a.Purpose != ForPointer || outcome != Written {
			released := ""
			if a.Record.Released != 0 {
				released = fmt.Sprintf(" released=%d", a.Record.Released)
			}
			s.logf("%s: %s record p=%d %s (member=%q snapshot=%s%s)", mb.id, a.Purpose, a.P, outcome, a.Record.Member, ptr(a.Record.Snapshot, a.Record.Cursor), released)
		}
		next = m.RecordDone(s.now, a.P, a.Epoch, a.Purpose, rev, outcome)
	case DeleteSnapshot:
		delete(s.objects, a.Object)
	case Drop:
		delete(mb.workers, a.P)
		switch {
		case a.Reason == ReasonReleaseFenced || a.Reason == ReasonReleaseLost:
			s.logf("%s: dropped p=%d epoch=%d: %s", mb.id, a.P, a.Epoch, a.Reason)
			if a.Cursor > a.Record.Cursor {
				// As pipeline logs it.
				s.logf("%s: ERROR gave p=%d up at cursor %d without a release (%s): the next owner may restore from %d", mb.id, a.P, a.Cursor, a.Reason, a.Record.Cursor)
			}
			// A release is a compare-and-set on the member's own record:
			// only a newer record by someone else makes it pointless. A
			// give-up abandoned while the record is still the claim's
			// leaves the next owner a takeover from that claim's (older)
			// snapshot, for no reason (issue 16).
			if e := s.owners[a.P]; a.Reason == ReasonReleaseFenced && e.OK && e.Member == mb.id && e.Epoch == a.Epoch {
				s.violate("%s: partition %d given up at cursor %d without its release, though its claim of epoch %d was not superseded", mb.id, a.P, a.Cursor, a.Epoch)
			}
		case a.Reason != ReasonReleased:
			s.logf("%s: dropped p=%d epoch=%d: %s", mb.id, a.P, a.Epoch, a.Reason)
		case a.Record.Released > a.Record.Cursor:
			s.logf("%s: ERROR released p=%d at cursor %d without a snapshot at it: the next owner restores from %d", mb.id, a.P, a.Record.Released, a.Record.Cursor)
		}
	case Fence:
		s.logf("%s: %s", mb.id, a)
	case Heartbeat:
		s.beat(mb)
	case DeleteMember:
		if k := s.liveKey(mb.id); k != nil && k.rev == mb.keyRev {
			delete(s.keys, mb.id)
		}
		mb.keyRev = 0
	}
	mb.queue = append(mb.queue, next...)
}

// startWorker restores the partition as pipeline's restore does and
// starts its worker.
func (s *sim) startWorker(mb *simMember, a Action) []Action {
	l := mb.local[a.P]
	plan, ok := mb.m.PlanRestore(a.P, a.Epoch, Local{Cursor: l.cursor, Incomplete: l.incomplete})
	if !ok {
		return nil
	}
	switch plan.Source {
	case SourceSnapshot:
		if c, exists := s.objects[plan.Snapshot]; exists {
			l = simLocal{cursor: c}
		} else {
			s.violate("%s: partition %d: snapshot %s missing", mb.id, a.P, plan.Snapshot)
			if l.incomplete {
				l = simLocal{}
			}
		}
	case SourceEmpty:
		l = simLocal{}
	}
	mb.local[a.P] = l
	from := mb.claimed[a.P]
	delete(mb.claimed, a.P)
	s.restores = append(s.restores, simRestore{member: mb.id, p: a.P, from: from, plan: plan, got: l.cursor})
	s.logf("%s: restored p=%d epoch=%d from %s at %d (snapshot %s, local %d)", mb.id, a.P, a.Epoch, plan.Source, l.cursor, ptr(plan.Snapshot, plan.SnapshotCursor), plan.LocalCursor)
	loud := plan.Expected > l.cursor
	if loud {
		s.logf("%s: ERROR p=%d restored at %d, below the cursor %d it was released at", mb.id, a.P, l.cursor, plan.Expected)
	}
	// The record the claim compared against was a release: the restore
	// must not go back below its snapshot, nor, silently, below the
	// cursor the releasing owner had reached.
	if from.OK && from.Member == "" && from.Snapshot != "" && l.cursor < from.Cursor {
		s.violate("%s: partition %d restored at %d below the released snapshot's %d", mb.id, a.P, l.cursor, from.Cursor)
	}
	if from.OK && from.Member == "" && l.cursor < from.Released && !loud {
		s.violate("%s: partition %d restored at %d below the released cursor %d, silently", mb.id, a.P, l.cursor, from.Released)
	}
	if mb.m.Running(a.P, a.Epoch) {
		mb.workers[a.P] = &simWorker{epoch: a.Epoch, running: true}
	}
	return nil
}

func (s *sim) stopWorker(mb *simMember, p int) []Action {
	w := mb.workers[p]
	delete(mb.workers, p)
	return mb.m.Stopped(s.now, p, w.epoch, mb.local[p].cursor)
}

// work lets member mb's running workers consume what FR_IN holds for
// them, each checking its fence first, and reports their progress.
func (s *sim) work(mb *simMember) {
	for _, p := range sortedKeys(mb.workers) {
		w := mb.workers[p]
		if w.stopAt > 0 || mb.hung[p] > s.now {
			continue
		}
		if mb.m.Check(p, w.epoch, s.now) != "" {
			continue
		}
		if l := &mb.local[p]; s.head[p] > l.cursor {
			w.acked = max(w.acked, s.output(mb, p, w.epoch, s.head[p]))
			l.cursor = s.head[p]
		}
		mb.queue = append(mb.queue, mb.m.Progress(s.now, p, w.epoch, mb.local[p].cursor)...)
	}
}

// output is one batch of outputs on FR_OUT, stored a moment after the
// worker checked its fence (up to a tenth of the lease, under faults:
// the publish's latency, which the lease's margin must cover).
func (s *sim) output(mb *simMember, p int, epoch uint64, seq uint64) (at int64) {
	at = s.now
	if s.faults.rng != nil && s.faults.publishDelay > 0 {
		at += s.faults.rng.Int64N(int64(s.faults.publishDelay))
	}
	s.out = append(s.out, simOut{p: p, epoch: epoch, member: mb.id, seq: seq, at: at})
	if s.tap != nil { // replaying a world: every output too
		s.logf("%s: output p=%d epoch=%d seq=%d stored at %s", mb.id, p, epoch, seq, fmtTime(at))
	}
	return at
}

// checkOut checks FR_OUT in storage order: per partition, no output of
// an epoch after an output of a newer one.
func (s *sim) checkOut() {
	out := slices.Clone(s.out)
	slices.SortStableFunc(out, func(a, b simOut) int { return cmp.Compare(a.at, b.at) })
	last := map[int]simOut{}
	for _, o := range out {
		if l, ok := last[o.p]; ok && l.epoch > o.epoch {
			s.violate("partition %d: %s's output of epoch %d stored at %s after %s's of epoch %d at %s", o.p, o.member, o.epoch, fmtTime(o.at), l.member, l.epoch, fmtTime(l.at))
			return
		}
		last[o.p] = o
	}
}

// drain executes member mb's queued actions until none is left.
func (s *sim) drain(mb *simMember) {
	for len(mb.queue) > 0 && mb.up {
		a := mb.queue[0]
		mb.queue = mb.queue[1:]
		s.exec(mb, a, noFault)
	}
}

// stepMember runs one simulated moment of member mb's process.
func (s *sim) stepMember(mb *simMember) {
	if !mb.up || mb.frozen {
		return
	}
	for _, p := range sortedKeys(mb.workers) {
		if w := mb.workers[p]; w.stopAt > 0 && s.now >= w.stopAt {
			mb.queue = append(mb.queue, s.stopWorker(mb, p)...)
		}
	}
	// The reconcile loop runs every heartbeat period, and is woken by
	// every successful heartbeat and every owners update.
	wake := false
	if s.now >= mb.nextBeat {
		if !mb.hbOff {
			wake = s.beat(mb)
		}
		mb.nextBeat = s.now + s.hb()
	}
	if !mb.lag && !s.faults.hit(s.faults.watchLag) {
		wake = s.deliver(mb, 0) || wake
	}
	s.work(mb)
	if (wake || s.now >= mb.nextTick) && mb.leave == nil {
		mb.queue = append(mb.queue, mb.m.Tick(s.now)...)
		mb.nextTick = s.now + s.hb()
	}
	s.drain(mb)
	s.leaveStep(mb)
}

// leaveStep ends a graceful leave once every partition is released (or
// dropped): the member key is deleted and the process exits.
func (s *sim) leaveStep(mb *simMember) {
	if mb.leave == nil || len(mb.m.Slots()) > 0 {
		return
	}
	for _, a := range mb.m.Shutdown() {
		s.exec(mb, a, noFault)
	}
	mb.up, mb.leave = false, nil
	s.logf("%s: left", mb.id)
}

// startLeave is SIGTERM: the member leaves gracefully.
func (s *sim) startLeave(mb *simMember) {
	mb.leave = &simLeave{start: s.now, hard: s.now + int64(s.drainTimeout)}
	for p, until := range mb.hung {
		mb.hung[p] = min(until, mb.leave.hard) // the hard deadline ends any drain
	}
	// Release snapshots get three quarters of the drain budget, from now.
	mb.queue = append(mb.queue, mb.m.Leave(s.now, s.now+int64(s.drainTimeout*3/4))...)
	s.drain(mb)
	s.leaveStep(mb)
}

// run advances the clock by d in steps, every member running each step.
func (s *sim) run(d, step time.Duration) {
	end := s.now + int64(d)
	for s.now < end {
		s.now = min(s.now+int64(step), end)
		for p := range s.head {
			s.head[p] += s.load
		}
		for _, mb := range s.members {
			s.stepMember(mb)
		}
		s.checkOwners()
	}
}

// checkOwners: at no moment may two members both hold a valid claim on a
// partition with a worker that may write.
func (s *sim) checkOwners() {
	for p := range s.parts {
		var holders []string
		for _, mb := range s.members {
			if w := mb.workers[p]; mb.up && w != nil && w.running && w.stopAt == 0 && mb.m.Check(p, w.epoch, s.now) == "" {
				holders = append(holders, fmt.Sprintf("%s/%d", mb.id, w.epoch))
			}
		}
		if len(holders) > 1 {
			s.violate("partition %d held by %v at once", p, holders)
		}
	}
	// One move at a time: a member gives up at most one partition at once,
	// unless it is leaving.
	for _, mb := range s.members {
		if !mb.up || mb.m.Leaving() {
			continue
		}
		n := 0
		for _, si := range mb.m.Slots() {
			if si.Stop == ReasonRelease || si.Phase == Snapshotting || si.Phase == Releasing {
				n++
			}
		}
		if n > 1 {
			s.violate("%s releases %d partitions at once", mb.id, n)
		}
	}
}

func sortedKeys[V any](m map[int]V) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func ifs(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

// ownersTable renders FR_OWNERS, one partition a line.
func (s *sim) ownersTable() string {
	var b strings.Builder
	for p, e := range s.owners {
		if e.Rev == 0 {
			fmt.Fprintf(&b, "p=%d -\n", p)
			continue
		}
		released := ""
		if e.Released != 0 {
			released = fmt.Sprintf(" released=%d", e.Released)
		}
		fmt.Fprintf(&b, "p=%d member=%q epoch=%d snapshot=%s%s rev=%d\n", p, e.Member, e.Epoch, ptr(e.Snapshot, e.Cursor), released, e.Rev)
	}
	return b.String()
}

// ownedTable renders who runs what: each member's running partitions
// and its load.
func (s *sim) ownedTable() string {
	var b strings.Builder
	for _, mb := range s.members {
		if !mb.up {
			fmt.Fprintf(&b, "%s: down\n", mb.id)
			continue
		}
		var ps []string
		for _, p := range sortedKeys(mb.workers) {
			ps = append(ps, fmt.Sprint(p))
		}
		valid, _ := mb.m.LeaseValid(s.now)
		fmt.Fprintf(&b, "%s: runs [%s] (%d) gen=%d lease=%v\n", mb.id, strings.Join(ps, " "), len(ps), mb.m.Gen(), valid)
	}
	return b.String()
}
