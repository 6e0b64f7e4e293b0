package state

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"math"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state/record"
	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

// TestMigrateTimers opens a partition written by the previous release:
// version-1 users whose requests now have review or return deadlines get
// them in the timer index, once.
func TestMigrateTimers(t *testing.T) {
	dir := t.TempDir()
	day := int64(86400e9)
	at := recordtest.T0 - 10*day
	const expires = 1 << 40
	user := func(id string, r core.Request) *core.User {
		r.ID, r.OrderID, r.Kind, r.At, r.AmountFen = "r", "o", core.KindReturnRefund, at, 100
		return &core.User{ID: id, MaxAt: at, Stars: 5,
			Orders:   []core.Order{{ID: "o", PaidFen: 100, PaidAt: at - day, DeliveredAt: at - day}},
			Requests: []core.Request{r}}
	}
	review := core.Request{Status: core.StatusOpen, Verdict: core.VerdictReview, Reasons: core.CodeSet(0).With(core.CodeCreditLow)}
	approved := core.Request{Status: core.StatusOpen, Verdict: core.VerdictApproved}
	picked := approved
	picked.Pickup, picked.WindowStart, picked.WindowEnd = true, at+3600e9, at+7200e9
	finished := approved
	finished.Status, finished.Tracked, finished.Inspection, finished.ClosedAt = core.StatusFinished, true, core.OutcomeOK, at+day
	users := map[string]*core.User{
		"rev": user("rev", review), "ret": user("ret", approved), "pick": user("pick", picked),
		"early": user("early", review), "done": user("done", finished),
	}
	timer := func(d int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(d)) }
	set := func(s *Store, key, val []byte) {
		t.Helper()
		err := s.db.Update(func(txn *badger.Txn) error {
			return txn.SetEntry(&badger.Entry{Key: key, Value: val, ExpiresAt: expires})
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	s := openStore(t, Options{Dir: dir})
	for id, u := range users {
		set(s, userKey(0, id), recordtest.AppendUserV1(nil, u))
	}
	set(s, appendKey(nil, 0, sufTimer, "pick"), timer(at+7200e9))   // v1's pickup timer
	set(s, appendKey(nil, 0, sufTimer, "early"), timer(at+100*day)) // later than the review deadline
	v2 := user("v2", review)
	v2.Requests[0].Policy = recordtest.Tmall
	set(s, userKey(0, "v2"), record.AppendUser(nil, v2))    // not migrated: its timer is the worker's
	set(s, userKey(0, "junk"), []byte{record.UserV1, 0xff}) // corrupt for good: skipped
	s.Close()

	// Without a legacy policy nothing can be read: no timer, no marker.
	var logs bytes.Buffer
	s = openStore(t, Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	pt := mustPartition(t, s, 0)
	if got := pt.Due(1<<62, math.MaxInt, nil); len(got) != 2 {
		t.Fatalf("timers without a legacy policy: %v", got)
	}
	if !strings.Contains(logs.String(), "not armed") {
		t.Errorf("no warning:\n%s", logs.String())
	}
	s.Close()

	s = openStore(t, Options{Dir: dir, LegacyPolicy: recordtest.Tmall})
	pt = mustPartition(t, s, 0)
	want := map[string]int64{
		"rev":   at + int64(recordtest.Tmall.ReviewDeadline),
		"early": at + int64(recordtest.Tmall.ReviewDeadline),
		"ret":   at + int64(recordtest.Tmall.ReturnDeadline),
		"pick":  at + 7200e9, // earlier than the new pickup deadline (plus grace): kept
	}
	for id, d := range want {
		if got := pt.Deadline(id); got != d {
			t.Errorf("%s: deadline %d, want %d", id, got, d)
		}
	}
	for _, id := range []string{"done", "v2"} {
		if got := pt.Deadline(id); got != 0 {
			t.Errorf("%s: deadline %d, want none", id, got)
		}
	}
	if got := pt.Due(1<<62, math.MaxInt, nil); len(got) != len(want) || got[0] != "pick" {
		t.Errorf("Due = %v", got)
	}
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(appendKey(nil, 0, sufTimer, "rev"))
		if err == nil && item.ExpiresAt() != expires {
			t.Errorf("armed timer expires at %d, want the user's %d", item.ExpiresAt(), expires)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	pt.Release()

	// Once: a version-1 record that appears later is not scanned for.
	set(s, userKey(0, "late"), recordtest.AppendUserV1(nil, user("late", review)))
	pt = mustPartition(t, s, 0)
	if got := pt.Deadline("late"); got != 0 {
		t.Errorf("late: deadline %d after the migration", got)
	}
	if got := pt.Deadline("rev"); got != want["rev"] {
		t.Errorf("rev: deadline %d after reopening", got)
	}
}
