package ownership

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config describes the member a [Machine] decides for.
type Config struct {
	// Member is this daemon's ID, as in its FR_MEMBERS key.
	Member string
	// Partitions is P, fixed for the life of the deployment.
	Partitions int
	// Lease is the membership lease (the TTL of FR_MEMBERS): a member
	// whose key has not been renewed for this long is gone. Heartbeats
	// go every Lease/5 and the member's own lease ends Lease/5 before its
	// key can expire (see [Machine.HeartbeatOK]). Must be positive.
	Lease time.Duration
	// SnapshotInterval is how often a running partition whose cursor
	// moved gets a periodic snapshot ([Machine.Progress]); 0 or negative:
	// never (a release still snapshots).
	SnapshotInterval time.Duration
}

// Record is the value of a partition's key in FR_OWNERS, without the
// wall-clock time the IO layer adds for operators.
type Record struct {
	// Member owns the partition; "" once released.
	Member string
	// Epoch is incremented by every claim: the fencing token, carried on
	// every output.
	Epoch uint64
	// Snapshot is the object in FR_SNAPSHOTS holding the partition's
	// latest snapshot ("" none), Cursor a lower bound of its cursor (exact
	// for a release's).
	Snapshot string
	Cursor   uint64
	// Released is, on a released record, the cursor the last owner had
	// reached when it gave the partition up (0: unknown, or not a
	// release). It is above Cursor when the release could not snapshot
	// at it: the next owner then restores below what was already
	// processed, and says so ([RestorePlan.Short]).
	Released uint64
}

// Entry is an FR_OWNERS record as observed, with its revision (the KV
// revision compare-and-set writes are checked against). A zero Rev means
// never seen; OK false with a Rev means deleted.
type Entry struct {
	Record
	Rev uint64
	OK  bool
}

// MemberInfo is one FR_MEMBERS key present, as [Machine.Members] takes it.
type MemberInfo struct {
	ID string
	// Leaving: the member is shutting down; it keeps its partitions until
	// it releases them but is no longer a target.
	Leaving bool
}

// Local is what a member's own store holds of a partition, as the IO
// layer reads it before a restore.
type Local struct {
	// Cursor is the last FR_IN sequence applied to the local copy (0 none).
	Cursor uint64
	// Incomplete: an import into the local copy was interrupted; the copy
	// is unusable and must be dropped or replaced.
	Incomplete bool
}

// Source says where a restore takes a partition's state from.
type Source string

// Restore sources, as /v1/cluster reports them.
const (
	SourceSnapshot Source = "snapshot" // import the record's snapshot
	SourceLocal    Source = "local"    // the local copy is as new as the snapshot
	SourceEmpty    Source = "empty"    // no state anywhere: replay FR_IN from 0
)

// RestorePlan is how a claimed partition's state is brought in
// ([Machine.PlanRestore]).
type RestorePlan struct {
	Source Source
	// Snapshot and SnapshotCursor are the claimed record's pointer.
	Snapshot       string
	SnapshotCursor uint64
	// LocalCursor is the local copy's cursor (0 when incomplete).
	LocalCursor uint64
	// DropLocal: drop the local copy first (it is an incomplete import,
	// or the snapshot replaces it).
	DropLocal bool
	// Expected is the cursor the previous owner released the partition
	// at (the claimed record's Released; 0 unknown: a takeover after a
	// crash, whose replay is expected).
	Expected uint64
}

// Short reports whether the restore resumes below the cursor the
// previous owner released at: the events in between are applied again
// and their outputs re-emitted (deduplicated only within FR_OUT's
// window). The caller logs it as an error: a hand-over should restore
// exactly.
func (r RestorePlan) Short() bool { return r.Expected > r.Cursor() }

// Cursor is the cursor the partition resumes after: the snapshot's or
// the local copy's, 0 when empty.
func (r RestorePlan) Cursor() uint64 {
	switch r.Source {
	case SourceSnapshot:
		return r.SnapshotCursor
	case SourceLocal:
		return r.LocalCursor
	}
	return 0
}

// Phase is where a claimed partition's slot is in its life.
type Phase uint8

// Slot phases, in order. A slot exists from the claim's write until the
// release is written or the slot is dropped.
const (
	// Claiming: the claim's compare-and-set is in flight.
	Claiming Phase = iota + 1
	// Restoring: claimed; the state is being brought in, the worker has
	// not started.
	Restoring
	// Running: the worker runs (or ran and has not been reported stopped).
	Running
	// Stopping: the worker was asked to stop (release, leave or fence).
	Stopping
	// Snapshotting: the release snapshot is being written.
	Snapshotting
	// Releasing: the release record is being written.
	Releasing
)

var phaseNames = [...]string{"", "claiming", "restoring", "running", "stopping", "snapshotting", "releasing"}

// String names the phase as logs and scripts show it.
func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}

// Kind is an [Action]'s kind.
type Kind uint8

// Action kinds. Each names the IO the caller carries out and the input
// it feeds back (see the package doc).
const (
	// ReadMembers: list FR_MEMBERS and feed [Machine.Members].
	ReadMembers Kind = iota + 1
	// Claim: write Record to P's key with a compare-and-set on Rev (a
	// create when Create), then feed [Machine.ClaimDone].
	Claim
	// Start: the claim is written; restore P ([Machine.PlanRestore]) and
	// run its worker under Epoch ([Machine.Running]), and once the worker
	// has ended for any reason feed [Machine.Stopped].
	Start
	// Stop: stop P's worker (finish the batch in hand unless fenced); its
	// end is fed to [Machine.Stopped] as for Start.
	Stop
	// Snapshot: export P's state to the object Object (at least at
	// Cursor), by Deadline when non-zero, then feed [Machine.SnapshotDone].
	Snapshot
	// WriteRecord: write Record to P's key with a compare-and-set on Rev,
	// then feed [Machine.RecordDone] with Purpose.
	WriteRecord
	// DeleteSnapshot: delete the object Object, best effort.
	DeleteSnapshot
	// Drop: P's slot of Epoch is gone (Reason says why): forget it.
	Drop
	// Fence: a claim is no longer held (Reason): P's worker of Epoch, or
	// every worker of lease generation Gen when P is -1, must not write
	// again. Informational: [Machine.Check] already fails for them.
	Fence
	// Heartbeat: renew the member key now (the member's record carries
	// [Machine.Leaving]).
	Heartbeat
	// DeleteMember: delete the member key (after heartbeats stopped).
	DeleteMember
)

var kindNames = [...]string{"", "read-members", "claim", "start", "stop", "snapshot", "write", "delete-snapshot", "drop", "fence", "heartbeat", "delete-member"}

// String names the kind as logs and scripts show it.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Purpose says why a record or snapshot is written.
type Purpose uint8

// Purposes of WriteRecord and Snapshot actions.
const (
	// ForRelease: the partition is given up (Member "").
	ForRelease Purpose = iota + 1
	// ForPointer: a periodic snapshot; the record points at it.
	ForPointer
	// ForStale: a record of ours from an earlier lease or run, for a
	// partition targeted elsewhere, is released so that its target need
	// not wait for our key to expire.
	ForStale
)

var purposeNames = [...]string{"", "release", "pointer", "stale"}

// String names the purpose as logs and scripts show it.
func (p Purpose) String() string {
	if int(p) < len(purposeNames) {
		return purposeNames[p]
	}
	return "purpose(" + strconv.Itoa(int(p)) + ")"
}

// Outcome is the result of a compare-and-set write, as the caller knows
// it.
type Outcome uint8

// Outcomes of Claim and WriteRecord.
const (
	// Written: the write is stored.
	Written Outcome = iota + 1
	// Conflict: the write was refused (the revision moved on, or the key
	// exists): it is certainly not stored.
	Conflict
	// Unknown: the write failed without an answer (a timeout, a lost
	// connection): it may be stored. Objects it points at are kept.
	Unknown
)

var outcomeNames = [...]string{"", "written", "conflict", "unknown"}

// String names the outcome as logs and scripts show it.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Reason says why a worker stops, a slot is dropped or a claim fenced.
type Reason string

// Reasons. The IO layer logs them and counts the fenced ones.
const (
	ReasonRelease       Reason = "release"        // targeted elsewhere
	ReasonLeave         Reason = "leave"          // the member leaves
	ReasonLeaseLapsed   Reason = "lease lapsed"   // no heartbeat in time, or a newer generation
	ReasonSuperseded    Reason = "superseded"     // a newer record by someone else was seen
	ReasonExited        Reason = "worker exited"  // the worker ended by itself, not asked
	ReasonReleased      Reason = "released"       // the release record is written
	ReasonReleaseLost   Reason = "release lost"   // the release's compare-and-set failed
	ReasonReleaseFenced Reason = "release fenced" // superseded (a newer record by someone else) before the release was written
)

// Fenced reports whether a Drop for this reason means the claim was lost
// (what the fenced counter counts). A release given up because the
// claim was superseded counts too: its state past the record's snapshot
// is lost to the next owner.
func (r Reason) Fenced() bool {
	return r == ReasonLeaseLapsed || r == ReasonSuperseded || r == ReasonExited || r == ReasonReleaseFenced
}

// Action is one thing the caller must do, in the order returned. Only the
// fields its [Kind] names are set.
type Action struct {
	Kind  Kind
	P     int
	Epoch uint64
	// Gen is the lease generation of a Fence of a whole generation.
	Gen uint64
	// Record is the value to write (Claim, WriteRecord) or the record
	// claimed (Start).
	Record Record
	// Rev is the revision a compare-and-set expects; Create: the key must
	// not exist (Claim of a partition never claimed).
	Rev    uint64
	Create bool
	// Purpose of a Snapshot or WriteRecord, echoed to the result input.
	Purpose Purpose
	// Object is the snapshot object to write or delete; Cursor its cursor.
	Object string
	Cursor uint64
	// Deadline (monotonic ns, the caller's clock) by which a Snapshot must
	// be written; 0: none.
	Deadline int64
	// Reason of a Stop, Drop or Fence.
	Reason Reason
	// From is the member a Claim takes over from because its key is gone
	// ("" for a free partition); By and ByEpoch name the record that
	// superseded a fenced claim.
	From    string
	By      string
	ByEpoch uint64
}

// String renders the action for logs and test scripts, one line, fields
// in a fixed order.
func (a Action) String() string {
	var b strings.Builder
	b.WriteString(a.Kind.String())
	f := func(format string, args ...any) { fmt.Fprintf(&b, " "+format, args...) }
	switch a.Kind {
	case Claim:
		f("p=%d epoch=%d", a.P, a.Epoch)
		if a.Create {
			f("create")
		} else {
			f("rev=%d", a.Rev)
		}
		f("snapshot=%s", ptr(a.Record.Snapshot, a.Record.Cursor))
		if a.From != "" {
			f("from=%s", a.From)
		}
	case Start:
		f("p=%d epoch=%d snapshot=%s", a.P, a.Epoch, ptr(a.Record.Snapshot, a.Record.Cursor))
	case Stop:
		f("p=%d epoch=%d reason=%q", a.P, a.Epoch, a.Reason)
	case Snapshot:
		f("p=%d epoch=%d for=%s object=%s", a.P, a.Epoch, a.Purpose, a.Object)
		if a.Deadline != 0 {
			f("deadline=%s", time.Duration(a.Deadline))
		}
	case WriteRecord:
		f("p=%d for=%s rev=%d member=%q epoch=%d snapshot=%s", a.P, a.Purpose, a.Rev, a.Record.Member, a.Record.Epoch, ptr(a.Record.Snapshot, a.Record.Cursor))
		if a.Record.Released != 0 {
			f("released=%d", a.Record.Released)
		}
	case DeleteSnapshot:
		f("%s", a.Object)
	case Drop:
		f("p=%d epoch=%d reason=%q", a.P, a.Epoch, a.Reason)
		if a.Reason == ReasonReleased && a.Record.Released > a.Record.Cursor {
			f("short: released at %d, snapshot at %d", a.Record.Released, a.Record.Cursor)
		}
	case Fence:
		if a.P < 0 {
			f("gen=%d reason=%q", a.Gen, a.Reason)
		} else {
			f("p=%d epoch=%d reason=%q by=%s/%d", a.P, a.Epoch, a.Reason, a.By, a.ByEpoch)
		}
	}
	return b.String()
}

// ptr renders a snapshot pointer as name@cursor ("-" for none).
func ptr(name string, cursor uint64) string {
	if name == "" {
		if cursor == 0 {
			return "-"
		}
		return "-@" + strconv.FormatUint(cursor, 10)
	}
	return name + "@" + strconv.FormatUint(cursor, 10)
}

// SlotInfo is a claimed partition as [Machine.Slots] reports it.
type SlotInfo struct {
	P     int
	Epoch uint64
	Phase Phase
	// Gen is the lease generation the claim was made under.
	Gen uint64
	// Record is the record as last written by this member.
	Record Record
	// Revoked: a newer record by someone else was seen.
	Revoked bool
	// Stop is why it is stopping ("" while claiming, restoring or
	// running).
	Stop Reason
}
