package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	badger "github.com/dgraph-io/badger/v4"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/state/record"
	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

// namedPolicy returns a finished copy of base named name (a new version).
func namedPolicy(t testing.TB, base *core.Policy, name string) *core.Policy {
	t.Helper()
	p := *base
	p.Name = name
	if err := p.Finish(); err != nil {
		t.Fatal(err)
	}
	return &p
}

// samePolicy reports whether a and b are the same policy: version, name
// and every parameter (empty and nil lists alike, as the codec does not
// keep that difference).
func samePolicy(a, b *core.Policy) bool {
	return a != nil && b != nil && testkit.EqualNilEmpty(a, b)
}

// policyKeys returns the partition's policy records: version -> Badger
// commit version, and whether any expires.
func policyKeys(t *testing.T, s *Store, p int) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	prefix := appendKey(nil, p, sufPolicy, "")
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if it.Item().ExpiresAt() != 0 {
				t.Errorf("policy record %q expires", it.Item().Key())
			}
			out[string(it.Item().Key()[len(prefix):])] = it.Item().Version()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// userWith returns a user whose requests follow the given policies.
func userWith(id string, pols ...*core.Policy) *core.User {
	u := recordtest.TypicalUser(1)
	u.ID = id
	base := u.Requests[0]
	u.Requests = nil
	for i, p := range pols {
		r := base
		r.ID, r.Policy = fmt.Sprintf("r%d", i), p
		u.Requests = append(u.Requests, r)
	}
	return u
}

func TestPolicyTablePersists(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Dir: dir})
	pt := mustPartition(t, s, 3)
	if got := pt.Policies(); len(got) != 0 {
		t.Fatalf("fresh partition has policies %v", got)
	}
	staged0 := pt.StagedBytes()
	a := mustUser(t, pt, "a")
	*a = *userWith("a", recordtest.Tmall)
	pt.MarkDirty(a)
	withUser := pt.StagedBytes()
	b := mustUser(t, pt, "b")
	*b = *userWith("b", recordtest.JD, recordtest.Tmall, recordtest.JD)
	pt.MarkDirty(b)
	_, rec, _ := record.EncodePolicy(recordtest.JD)
	_, recT, _ := record.EncodePolicy(recordtest.Tmall)
	if withUser-staged0 < len(recT) || pt.StagedBytes()-withUser < len(rec) {
		t.Errorf("StagedBytes does not count the policy records: %d, %d, %d", staged0, withUser, pt.StagedBytes())
	}
	if err := pt.Commit(1, 1, nil); err != nil {
		t.Fatal(err)
	}
	keys := policyKeys(t, s, 3)
	if len(keys) != 2 || keys[recordtest.Tmall.Version] == 0 || keys[recordtest.JD.Version] == 0 {
		t.Fatalf("policy records %v, want tmall's and jd's", keys)
	}
	if got := pt.Policies(); len(got) != 2 || got[0] != recordtest.JD || got[1] != recordtest.Tmall {
		t.Fatalf("Policies() = %v, want jd then tmall (by name)", got)
	}
	// Committing users of known policies writes no policy record again.
	a.Stars = 1
	pt.MarkDirty(a)
	if err := pt.Commit(2, 2, nil); err != nil {
		t.Fatal(err)
	}
	if again := policyKeys(t, s, 3); !reflect.DeepEqual(again, keys) {
		t.Fatalf("policy records rewritten: %v, then %v", keys, again)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened with another legacy policy, knowing nothing of tmall or jd:
	// every request follows the policy it was stored with.
	s2 := openStore(t, Options{Dir: dir, LegacyPolicy: recordtest.Douyin})
	check := func(u *core.User, want ...*core.Policy) {
		t.Helper()
		if len(u.Requests) != len(want) {
			t.Fatalf("user %s has %d requests", u.ID, len(u.Requests))
		}
		for i, r := range u.Requests {
			if r.Policy == want[i] {
				t.Errorf("user %s request %d: the test's own pointer (not read back)", u.ID, i)
			}
			if !samePolicy(r.Policy, want[i]) {
				t.Errorf("user %s request %d follows %+v, want %+v", u.ID, i, r.Policy, want[i])
			}
		}
	}
	got, ok, err := s2.ReadUser(3, "b")
	if err != nil || !ok {
		t.Fatalf("ReadUser: %v %v", ok, err)
	}
	check(got, recordtest.JD, recordtest.Tmall, recordtest.JD)
	if got.Requests[0].Policy != got.Requests[2].Policy {
		t.Error("one version read as two policies")
	}
	pt2 := mustPartition(t, s2, 3)
	check(mustUser(t, pt2, "a"), recordtest.Tmall)
	ub := mustUser(t, pt2, "b")
	check(ub, recordtest.JD, recordtest.Tmall, recordtest.JD)
	if ub.Requests[0].Policy != got.Requests[0].Policy {
		t.Error("the partition and ReadUser do not share the policy")
	}
	if ps := pt2.Policies(); len(ps) != 2 || !samePolicy(ps[0], recordtest.JD) || !samePolicy(ps[1], recordtest.Tmall) {
		t.Errorf("reopened Policies() = %v", ps)
	}
}

// TestPolicyMigration reads a version-1 user, commits it, and reads it
// back after a restart with another --policy: the legacy policy stuck.
func TestPolicyMigration(t *testing.T) {
	dir := t.TempDir()
	v1 := recordtest.FullUserV1()
	v1.ID = "old"
	v1.Requests[0].Verdict, v1.Requests[0].Status = core.VerdictApproved, core.StatusOpen
	v1.Requests[0].RefundSent, v1.Requests[0].Inspection, v1.Requests[0].ClosedAt = false, core.OutcomeNone, 0
	put := func(s *Store, key, val []byte) {
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, val) }); err != nil {
			t.Fatal(err)
		}
	}

	// Without a legacy policy, a version-1 record is corrupt.
	s := openStore(t, Options{Dir: dir})
	put(s, userKey(0, "old"), recordtest.AppendUserV1(nil, v1))
	pt := mustPartition(t, s, 0)
	if _, err := pt.User("old"); !errors.Is(err, ErrNoLegacyPolicy) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("v1 record without LegacyPolicy: %v", err)
	}
	if _, _, err := s.ReadUser(0, "old"); !errors.Is(err, ErrNoLegacyPolicy) {
		t.Fatalf("ReadUser of v1 record without LegacyPolicy: %v", err)
	}
	s.Close()

	s = openStore(t, Options{Dir: dir, LegacyPolicy: recordtest.JD})
	pt = mustPartition(t, s, 0)
	u := mustUser(t, pt, "old")
	// jd pays an exchange nothing: reserved nothing.
	if r := u.Requests[0]; r.Policy != recordtest.JD || r.ApprovedAt != r.At || r.PayTrigger != core.TriggerNone || r.Reserved {
		t.Fatalf("migrated request %+v", r)
	}
	if got, _, err := s.ReadUser(0, "old"); err != nil || got.Requests[0].Policy != recordtest.JD {
		t.Fatalf("ReadUser of a v1 record: %v", err)
	}
	if len(pt.Policies()) != 0 {
		t.Fatal("the legacy policy is stored before anything refers to it")
	}
	u.Stars = 2
	pt.MarkDirty(u)
	if err := pt.Commit(1, 1, nil); err != nil {
		t.Fatal(err)
	}
	if ps := pt.Policies(); len(ps) != 1 || ps[0] != recordtest.JD {
		t.Fatalf("after migrating: Policies() = %v", ps)
	}
	s.Close()

	s = openStore(t, Options{Dir: dir, LegacyPolicy: recordtest.Tmall})
	got, _, err := s.ReadUser(0, "old")
	if err != nil || !samePolicy(got.Requests[0].Policy, recordtest.JD) || got.Stars != 2 {
		t.Fatalf("migrated user read back: %v %+v", err, got)
	}
}

func TestPolicyCorrupt(t *testing.T) {
	set := metrics.NewSet()
	var logs bytes.Buffer
	s := openStore(t, Options{Metrics: set, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	put := func(key, val []byte) {
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, val) }); err != nil {
			t.Fatal(err)
		}
	}
	// A user whose request follows a version partition 0 does not have.
	stranger := namedPolicy(t, recordtest.Tmall, "stranger")
	put(userKey(0, "x"), record.AppendUser(nil, userWith("x", stranger)))
	pt := mustPartition(t, s, 0)
	_, err := pt.User("x")
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrUnknownPolicy) || !strings.Contains(err.Error(), stranger.Version) {
		t.Fatalf("User with an unknown version: %v", err)
	}
	if _, _, err := s.ReadUser(0, "x"); !errors.As(err, &ce) || !strings.Contains(err.Error(), stranger.Version) {
		t.Fatalf("ReadUser with an unknown version: %v", err)
	}
	if v, _ := metricValue(set, "flashreturn_state_corrupt_records_total"); v != 2 {
		t.Fatalf("corrupt counter %v", v)
	}
	pt.Release()

	// A policy record that is not what its key says is skipped at open
	// (logged, counted); a commit of a request following that version
	// writes it again.
	_, recT, _ := record.EncodePolicy(recordtest.Tmall)
	put(appendPolicyKey(nil, 1, mustPolKey(stranger)), recT)
	put(appendKey(nil, 1, sufPolicy, "nothex"), recT)
	pt = mustPartition(t, s, 1)
	if ps := pt.Policies(); len(ps) != 0 {
		t.Fatalf("corrupt records loaded: %v", ps)
	}
	if !strings.Contains(logs.String(), "policy record skipped") || !strings.Contains(logs.String(), stranger.Version) {
		t.Fatalf("no log of the skipped records:\n%s", logs.String())
	}
	if v, _ := metricValue(set, "flashreturn_state_corrupt_records_total"); v != 4 {
		t.Fatalf("corrupt counter %v", v)
	}
	u := mustUser(t, pt, "y")
	*u = *userWith("y", stranger)
	pt.MarkDirty(u)
	if err := pt.Commit(1, 1, nil); err != nil {
		t.Fatal(err)
	}
	pt.Release()
	pt = mustPartition(t, s, 1)
	if ps := pt.Policies(); len(ps) != 1 || !samePolicy(ps[0], stranger) {
		t.Fatalf("repaired Policies() = %v", ps)
	}
	if u, err := pt.User("y"); err != nil || !samePolicy(u.Requests[0].Policy, stranger) {
		t.Fatalf("user of the repaired version: %v", err)
	}
}

func mustPolKey(p *core.Policy) record.PolicyKey {
	k, ok := record.VersionKey(p.Version)
	if !ok {
		panic(p.Version)
	}
	return k
}

// TestCommitRefusesBadPolicy: a policy whose version is not its content's
// is never stored (its records would lie); the batch fails until
// discarded. A failed commit keeps the staged policy records for a retry.
func TestCommitRefusesBadPolicy(t *testing.T) {
	s := openStore(t, Options{})
	pt := mustPartition(t, s, 0)
	edited := *recordtest.Tmall
	edited.MinStars = 1 // changed after Finish: the version lies
	unfinished := core.Policy{Name: "hand-built"}
	for _, p := range []*core.Policy{&edited, &unfinished} {
		u := mustUser(t, pt, "a")
		*u = *userWith("a", recordtest.JD, p)
		pt.MarkDirty(u)
		if err := pt.Commit(1, 1, nil); err == nil || !strings.Contains(err.Error(), "version") {
			t.Fatalf("commit of %q: %v", p.Name, err)
		}
		pt.Discard()
	}
	if _, ok, _ := s.ReadUser(0, "a"); ok || len(policyKeys(t, s, 0)) != 0 {
		t.Fatal("a refused batch left data")
	}

	// A retried commit writes the policy staged before the failure; a
	// discarded batch's policy is staged again by the next one.
	u := mustUser(t, pt, "a")
	*u = *userWith("a", recordtest.JD)
	pt.MarkDirty(u)
	pt.Discard()
	u = mustUser(t, pt, "b")
	*u = *userWith("b", recordtest.JD)
	pt.MarkDirty(u)
	s.closed.Store(true)
	if err := pt.Commit(1, 1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit: %v", err)
	}
	s.closed.Store(false)
	if err := pt.Commit(1, 1, nil); err != nil {
		t.Fatal(err)
	}
	if keys := policyKeys(t, s, 0); len(keys) != 1 || keys[recordtest.JD.Version] == 0 {
		t.Fatalf("policy records %v, want jd's", keys)
	}
	if _, _, err := s.ReadUser(0, "b"); err != nil {
		t.Fatal(err)
	}
}

func TestLegacyPolicyOption(t *testing.T) {
	edited := *recordtest.Tmall
	edited.MinStars = 1
	for _, p := range []*core.Policy{{Name: "x"}, &edited} {
		if err := (&Options{Dir: "x", LegacyPolicy: p}).Validate(); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("LegacyPolicy %q: %v", p.Name, err)
		}
	}
	if err := (&Options{Dir: "x", LegacyPolicy: recordtest.JD}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestPolicyExportImport: a partition moved to another store (takeover,
// snapshot restore) carries its policy records.
func TestPolicyExportImport(t *testing.T) {
	ctx := context.Background()
	src := openStore(t, Options{})
	pt := mustPartition(t, src, 5)
	custom := namedPolicy(t, recordtest.JD, "jd-custom")
	u := mustUser(t, pt, "a")
	*u = *userWith("a", custom, recordtest.Tmall)
	pt.MarkDirty(u)
	if err := pt.Commit(1, 1, nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := src.ExportPartition(ctx, 5, &buf); err != nil {
		t.Fatal(err)
	}
	dst := openStore(t, Options{LegacyPolicy: recordtest.Douyin})
	if err := dst.ImportPartition(ctx, 5, &buf); err != nil {
		t.Fatal(err)
	}
	if a, b := dumpPartition(t, src, 5), dumpPartition(t, dst, 5); !reflect.DeepEqual(a, b) {
		t.Fatalf("partition differs after import:\n%v\n%v", a, b)
	}
	got, _, err := dst.ReadUser(5, "a")
	if err != nil || !samePolicy(got.Requests[0].Policy, custom) || !samePolicy(got.Requests[1].Policy, recordtest.Tmall) {
		t.Fatalf("imported user: %v", err)
	}
	pt2 := mustPartition(t, dst, 5)
	if ps := pt2.Policies(); len(ps) != 2 || !samePolicy(ps[0], custom) || !samePolicy(ps[1], recordtest.Tmall) {
		t.Fatalf("imported Policies() = %v", ps)
	}
}

// TestPoliciesConcurrent reads Policies from another goroutine while the
// owner commits new versions (run with -race).
func TestPoliciesConcurrent(t *testing.T) {
	s := openStore(t, Options{})
	pt := mustPartition(t, s, 0)
	const n = 20
	pols := make([]*core.Policy, n)
	for i := range pols {
		pols[i] = namedPolicy(t, recordtest.Tmall, fmt.Sprintf("p%02d", i))
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			ps := pt.Policies()
			for i := 1; i < len(ps); i++ {
				if ps[i-1].Name >= ps[i].Name {
					t.Errorf("Policies() not sorted: %s before %s", ps[i-1].Name, ps[i].Name)
					return
				}
			}
		}
	})
	for i, p := range pols {
		u := mustUser(t, pt, fmt.Sprint("u", i))
		*u = *userWith(u.ID, p)
		pt.MarkDirty(u)
		if err := pt.Commit(uint64(i+1), 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if got := pt.Policies(); len(got) != n {
		t.Fatalf("%d policies, want %d", len(got), n)
	}
	if v, _ := metricValue(s.m.set, `flashreturn_state_policies{partition="0"}`); v != n {
		t.Fatalf("policies gauge %v", v)
	}
}
