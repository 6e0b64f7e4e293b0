package state

import (
	"errors"
	"testing"
)

// TestCommitGroup: several partitions' batches in one transaction are
// stored exactly as their own commits would store them, and survive a
// reopen; a group one of whose partitions cannot commit stores nothing
// and leaves every partition's batch staged, so that the partitions can
// then commit one by one.
func TestCommitGroup(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Dir: dir})
	a, b := mustPartition(t, s, 3), mustPartition(t, s, 9)
	stage := func(pt *Partition, id string, v int64) {
		u := mustUser(t, pt, id)
		u.OutstandingFen = v
		pt.MarkDirty(u)
		pt.SetDeadline(id, v)
		pt.PutTrace(id, "r", []byte(id))
	}
	stage(a, "alice", 5)
	stage(b, "bob", 7)
	outA := []OutMsg{{Subject: "fr.out.decision.alice", MsgID: "ra:decision", Data: []byte(`{"a":1}`), Pos: Pos{Seq: 10, Idx: 0}}}
	if err := s.CommitGroup([]GroupCommit{{Pt: a, Cursor: 10, Clock: 100, Outbox: outA}, {Pt: b, Cursor: 20, Clock: 200}}); err != nil {
		t.Fatal(err)
	}
	if a.Cursor() != 10 || a.Clock() != 100 || b.Cursor() != 20 || b.Clock() != 200 {
		t.Fatalf("cursors %d/%d clocks %d/%d", a.Cursor(), b.Cursor(), a.Clock(), b.Clock())
	}
	if a.DirtyUsers() != 0 || b.DirtyUsers() != 0 || a.OutboxLen() != 1 || b.OutboxLen() != 0 {
		t.Fatalf("after the group: dirty %d/%d outbox %d/%d", a.DirtyUsers(), b.DirtyUsers(), a.OutboxLen(), b.OutboxLen())
	}

	// One partition would regress its cursor: nothing of the group is
	// stored, both keep their batch staged.
	stage(a, "alice", 6)
	stage(b, "bob", 8)
	err := s.CommitGroup([]GroupCommit{{Pt: a, Cursor: 11, Clock: 110}, {Pt: b, Cursor: 19, Clock: 210}})
	if !errors.Is(err, ErrCursorRegress) {
		t.Fatalf("group with a regressing cursor: %v", err)
	}
	if got, _, _ := s.ReadUser(3, "alice"); got.OutstandingFen != 5 {
		t.Fatalf("alice stored from a failed group: %+v", got)
	}
	if a.Cursor() != 10 || a.OutboxLen() != 1 || a.DirtyUsers() != 1 || b.DirtyUsers() != 1 {
		t.Fatalf("a failed group changed the partitions: cursor %d outbox %d dirty %d/%d", a.Cursor(), a.OutboxLen(), a.DirtyUsers(), b.DirtyUsers())
	}
	if err := a.Commit(11, 110, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(21, 210, nil); err != nil {
		t.Fatal(err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, Options{Dir: dir})
	a2, b2 := mustPartition(t, s2, 3), mustPartition(t, s2, 9)
	if a2.Cursor() != 11 || b2.Cursor() != 21 || a2.Outbox() != nil {
		t.Fatalf("reopened: cursors %d/%d outbox %v", a2.Cursor(), b2.Cursor(), a2.Outbox())
	}
	if u := mustUser(t, a2, "alice"); u.OutstandingFen != 6 {
		t.Fatalf("alice %+v", u)
	}
	if u := mustUser(t, b2, "bob"); u.OutstandingFen != 8 {
		t.Fatalf("bob %+v", u)
	}
	if a2.Deadline("alice") != 6 || b2.Deadline("bob") != 8 {
		t.Fatalf("deadlines %d %d", a2.Deadline("alice"), b2.Deadline("bob"))
	}
	if _, ok, _ := s2.ReadTrace(9, "bob", "r"); !ok {
		t.Fatal("bob's trace lost")
	}
}
