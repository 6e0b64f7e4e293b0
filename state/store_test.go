package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	badger "github.com/dgraph-io/badger/v4"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state/record"
	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

func TestOptionsValidate(t *testing.T) {
	f := func(o Options, ok bool) {
		t.Helper()
		err := o.Validate()
		if ok != (err == nil) || err != nil && !errors.Is(err, ErrInvalidOption) {
			t.Errorf("Validate(%+v) = %v, want ok=%v", o, err, ok)
		}
	}
	f(Options{Dir: "x"}, true)
	f(Options{}, false)
	f(Options{Dir: "x", CacheBytes: -1}, false)
	f(Options{Dir: "x", Retention: -1}, false)
	f(Options{Dir: "x", Retention: time.Millisecond}, false)
	f(Options{Dir: "x", GCInterval: -1}, false)
	if _, err := Open(Options{}); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("Open with no Dir: %v", err)
	}
}

// commitBatch makes users[i].OutstandingFen = v for every id and commits.
func commitBatch(t testing.TB, pt *Partition, ids []string, v int64, outbox []OutMsg) {
	t.Helper()
	for _, id := range ids {
		u := mustUser(t, pt, id)
		u.OutstandingFen = v
		pt.MarkDirty(u)
	}
	if err := pt.Commit(uint64(v), v*1000, outbox); err != nil {
		t.Fatal(err)
	}
}

func TestCommitAndRecovery(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Dir: dir})
	pt := mustPartition(t, s, 7)
	if pt.Cursor() != 0 || pt.Clock() != 0 || pt.Outbox() != nil {
		t.Fatalf("fresh partition: cursor %d clock %d outbox %v", pt.Cursor(), pt.Clock(), pt.Outbox())
	}
	u := mustUser(t, pt, "alice")
	if !reflect.DeepEqual(u, &core.User{ID: "alice"}) {
		t.Fatalf("fresh user %+v", u)
	}
	*u = *recordtest.TypicalUser(1)
	u.ID = "alice"
	pt.MarkDirty(u)
	pt.SetDeadline("alice", 300)
	pt.SetDeadline("bob", 100)
	pt.SetDeadline("carol", 100)
	pt.SetDeadline("dave", 200)
	pt.SetDeadline("dave", 0)
	pt.PutTrace("alice", "r1", []byte("trace-1"))
	out := []OutMsg{{Subject: "fr.out.decision.alice", MsgID: "r1:decision", Data: []byte(`{"v":1}`)}}
	if err := pt.Commit(41, 1234, out); err != nil {
		t.Fatal(err)
	}
	want := *u
	if got, ok, err := s.ReadUser(7, "alice"); err != nil || !ok || !reflect.DeepEqual(*got, want) {
		t.Fatalf("ReadUser = %+v %v %v", got, ok, err)
	}
	if _, ok, err := s.ReadUser(7, "nobody"); ok || err != nil {
		t.Fatalf("ReadUser(nobody) = %v %v", ok, err)
	}
	if _, ok, _ := s.ReadUser(6, "alice"); ok {
		t.Fatal("alice visible in partition 6")
	}
	if tr, ok, err := s.ReadTrace(7, "alice", "r1"); err != nil || !ok || string(tr) != "trace-1" {
		t.Fatalf("ReadTrace = %q %v %v", tr, ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pt.Commit(42, 0, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit after close: %v", err)
	}

	s2 := openStore(t, Options{Dir: dir})
	pt2 := mustPartition(t, s2, 7)
	if pt2.Cursor() != 41 || pt2.Clock() != 1234 {
		t.Fatalf("recovered cursor %d clock %d", pt2.Cursor(), pt2.Clock())
	}
	if got := pt2.Outbox(); len(got) != 1 || got[0].Subject != out[0].Subject || got[0].MsgID != out[0].MsgID || string(got[0].Data) != string(out[0].Data) {
		t.Fatalf("recovered outbox %+v", got)
	}
	if got := pt2.Due(301, math.MaxInt, nil); !slices.Equal(got, []string{"bob", "carol", "alice"}) {
		t.Fatalf("recovered Due = %v", got)
	}
	if got := pt2.Due(100, math.MaxInt, nil); len(got) != 0 {
		t.Fatalf("Due(100) = %v, want none (strictly before)", got)
	}
	if got := mustUser(t, pt2, "alice"); !reflect.DeepEqual(*got, want) {
		t.Fatalf("recovered user %+v", got)
	}
	// An empty outbox deletes the previous one.
	if err := pt2.Commit(42, 1300, nil); err != nil {
		t.Fatal(err)
	}
	if pt2.Outbox() != nil {
		t.Fatal("outbox not cleared")
	}
	if err := pt2.Commit(41, 0, nil); !errors.Is(err, ErrCursorRegress) {
		t.Fatalf("regressing cursor: %v", err)
	}
	pt2.Release()
	pt3 := mustPartition(t, s2, 7)
	if pt3.Outbox() != nil || pt3.Cursor() != 42 {
		t.Fatalf("after empty outbox: cursor %d outbox %v", pt3.Cursor(), pt3.Outbox())
	}
}

func TestPartitionBusy(t *testing.T) {
	s := openStore(t, Options{})
	pt := mustPartition(t, s, 1)
	if _, err := s.Partition(1); !errors.Is(err, ErrPartitionBusy) {
		t.Fatalf("second open: %v", err)
	}
	if err := s.ImportPartition(context.Background(), 1, strings.NewReader("")); !errors.Is(err, ErrPartitionBusy) {
		t.Fatalf("import of open partition: %v", err)
	}
	if _, err := s.Partition(MaxPartitions); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("out of range: %v", err)
	}
	pt.Release()
	mustPartition(t, s, 1)
}

func TestBatchTooBigIsAtomicAndRetryable(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Dir: dir, memTableBytes: 1 << 20})
	pt := mustPartition(t, s, 0)
	limit := s.MaxBatchBytes()
	var ids []string
	for i := 0; pt.StagedBytes() < 3*limit; i++ { // the estimate is up to 2x high
		u := mustUser(t, pt, fmt.Sprint("u", i))
		*u = *recordtest.TypicalUser(i)
		u.ID = fmt.Sprint("u", i)
		pt.MarkDirty(u)
		ids = append(ids, u.ID)
	}
	err := pt.Commit(1, 1, []OutMsg{{Subject: "s", MsgID: "m"}})
	if !errors.Is(err, ErrBatchTooBig) || !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("oversized commit: %v", err)
	}
	if pt.DirtyUsers() != len(ids) {
		t.Fatalf("staged users %d after failed commit, want %d", pt.DirtyUsers(), len(ids))
	}
	for _, id := range ids {
		if _, ok, _ := s.ReadUser(0, id); ok {
			t.Fatalf("user %s visible after failed commit", id)
		}
	}
	if pt.Cursor() != 0 || pt.Outbox() != nil {
		t.Fatal("cursor or outbox moved by failed commit")
	}
	// The caller redoes the batch smaller, cutting by StagedBytes.
	pt.Discard()
	n := 0
	for i, id := range ids {
		u := mustUser(t, pt, id)
		*u = *recordtest.TypicalUser(i)
		u.ID = id
		pt.MarkDirty(u)
		if pt.StagedBytes()+OutboxBytes(nil) >= limit {
			pt.Discard()
			break
		}
		n++
	}
	for i, id := range ids[:n] {
		u := mustUser(t, pt, id)
		*u = *recordtest.TypicalUser(i)
		u.ID = id
		pt.MarkDirty(u)
	}
	if err := pt.Commit(1, 1, nil); err != nil {
		t.Fatalf("commit cut by StagedBytes: %v", err)
	}
	if n < len(ids)/4 {
		t.Fatalf("only %d of %d users fit: StagedBytes overestimates too much", n, len(ids))
	}
}

func TestCommitErrorKeepsStaged(t *testing.T) {
	s := openStore(t, Options{})
	pt := mustPartition(t, s, 0)
	u := mustUser(t, pt, "a")
	u.Stars = 5
	pt.MarkDirty(u)
	pt.SetDeadline("a", 9)
	pt.PutTrace("a", "r", []byte("x"))
	s.closed.Store(true) // as if the store had been closed under the worker
	if err := pt.Commit(1, 1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit: %v", err)
	}
	s.closed.Store(false)
	if pt.DirtyUsers() != 1 || pt.Deadline("a") != 9 {
		t.Fatal("staged changes lost by a failed commit")
	}
	if err := pt.Commit(1, 1, nil); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := s.ReadUser(0, "a"); !ok || got.Stars != 5 {
		t.Fatalf("retried commit: %+v", got)
	}
	if _, ok, _ := s.ReadTrace(0, "a", "r"); !ok {
		t.Fatal("trace lost")
	}
}

func TestDiscard(t *testing.T) {
	s := openStore(t, Options{})
	pt := mustPartition(t, s, 2)
	ids := []string{"a", "b", "c"}
	pt.SetDeadline("a", 50)
	commitBatch(t, pt, ids, 1, []OutMsg{{Subject: "s", MsgID: "1"}})
	cached := mustUser(t, pt, "a")

	// A batch that changes a and b, timers and traces, then is abandoned.
	a := mustUser(t, pt, "a")
	a.OutstandingFen = 99
	pt.MarkDirty(a)
	b := mustUser(t, pt, "b")
	b.Orders = append(b.Orders, core.Order{ID: "x"})
	pt.MarkDirty(b)
	pt.SetDeadline("a", 500) // hides the committed deadline 50
	pt.SetDeadline("z", 10)
	pt.PutTrace("a", "r", []byte("x"))
	if got := pt.Due(100, math.MaxInt, nil); !slices.Equal(got, []string{"z"}) {
		t.Fatalf("Due with staged deadlines = %v", got)
	}
	pt.Discard()

	if got := mustUser(t, pt, "a"); got == cached || got.OutstandingFen != 1 {
		t.Fatalf("after Discard: a = %+v (same pointer %v)", got, got == cached)
	}
	if got := mustUser(t, pt, "b"); len(got.Orders) != 0 {
		t.Fatalf("after Discard: b = %+v", got)
	}
	if got := pt.Due(100, math.MaxInt, nil); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after Discard: Due = %v", got)
	}
	if pt.Cursor() != 1 || len(pt.Outbox()) != 1 || pt.StagedBytes() > 100 || pt.DirtyUsers() != 0 {
		t.Fatalf("after Discard: cursor %d outbox %v staged %d", pt.Cursor(), pt.Outbox(), pt.StagedBytes())
	}
	if err := pt.Commit(2, 2, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.ReadTrace(2, "a", "r"); ok {
		t.Fatal("discarded trace committed")
	}
	if got, _, _ := s.ReadUser(2, "a"); got.OutstandingFen != 1 {
		t.Fatal("discarded change committed")
	}
}

func TestCacheEviction(t *testing.T) {
	set := metrics.NewSet()
	const budget = 64 << 10
	s := openStore(t, Options{CacheBytes: budget, Metrics: set})
	pt := mustPartition(t, s, 0)
	const n = 2000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%08d", i)
	}
	// Write them in batches of 100: dirty users may exceed the budget until
	// their commit, after which the cache is back under it.
	for b := 0; b < n; b += 100 {
		for i := b; i < b+100; i++ {
			u := mustUser(t, pt, ids[i])
			*u = *recordtest.TypicalUser(i)
			pt.MarkDirty(u)
		}
		if err := pt.Commit(uint64(b+1), 0, nil); err != nil {
			t.Fatal(err)
		}
		if pt.CacheBytes() > budget {
			t.Fatalf("cache %d bytes after commit, budget %d", pt.CacheBytes(), budget)
		}
	}
	// Dirty users are never evicted, whatever the budget.
	var dirty []*core.User
	for i := range 500 {
		u := mustUser(t, pt, ids[i])
		u.Stars = 5
		pt.MarkDirty(u)
		dirty = append(dirty, u)
	}
	if pt.CacheBytes() <= budget {
		t.Fatalf("500 dirty users fit in %d bytes? cache %d", budget, pt.CacheBytes())
	}
	for i, u := range dirty {
		if got := mustUser(t, pt, ids[i]); got != u {
			t.Fatalf("dirty user %s was evicted", ids[i])
		}
	}
	if err := pt.Commit(5000, 0, nil); err != nil {
		t.Fatal(err)
	}
	if pt.CacheBytes() > budget || pt.CacheBytes() < budget/2 {
		t.Fatalf("cache %d bytes, budget %d", pt.CacheBytes(), budget)
	}
	perUser := memSize(recordtest.TypicalUser(1))
	if want := budget / perUser; int64(pt.CachedUsers()) < want*3/4 {
		t.Fatalf("%d users cached, want about %d", pt.CachedUsers(), want)
	}
	// Reads: the most recent users hit, old ones miss.
	hits0, _ := metricValue(set, "flashreturn_state_cache_hits_total")
	miss0, _ := metricValue(set, "flashreturn_state_cache_misses_total")
	mustUser(t, pt, ids[499])
	mustUser(t, pt, ids[1500])
	if err := pt.Commit(5001, 0, nil); err != nil { // flushes the counters
		t.Fatal(err)
	}
	hits, _ := metricValue(set, "flashreturn_state_cache_hits_total")
	miss, _ := metricValue(set, "flashreturn_state_cache_misses_total")
	if hits-hits0 != 1 || miss-miss0 != 1 {
		t.Fatalf("hits +%v misses +%v, want +1 +1", hits-hits0, miss-miss0)
	}
	if v, _ := metricValue(set, "flashreturn_state_cache_bytes"); int64(v) != pt.CacheBytes() {
		t.Fatalf("cache bytes gauge %v, partition %d", v, pt.CacheBytes())
	}

	// A second partition halves the share; the first shrinks on its next insert.
	pt2 := mustPartition(t, s, 1)
	mustUser(t, pt2, "x")
	mustUser(t, pt, "new")
	if pt.CacheBytes() > budget/2 {
		t.Fatalf("cache %d bytes with a share of %d", pt.CacheBytes(), budget/2)
	}
}

func TestCorruptRecord(t *testing.T) {
	set := metrics.NewSet()
	s := openStore(t, Options{Metrics: set})
	put := func(key, val []byte) {
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, val) }); err != nil {
			t.Fatal(err)
		}
	}
	put(userKey(0, "bad"), []byte{record.UserV1, 0xff})
	future := record.AppendUser(nil, &core.User{ID: "future"})
	future[0] = record.UserVersion + 1
	put(userKey(0, "future"), future)
	put(userKey(0, "other"), record.AppendUser(nil, &core.User{ID: "someone-else"}))
	pt := mustPartition(t, s, 0)
	for _, id := range []string{"bad", "future", "other"} {
		_, err := pt.User(id)
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.Key != string(userKey(0, id)) {
			t.Fatalf("User(%s) = %v", id, err)
		}
		if id == "future" && !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("future record: %v", err)
		}
		if _, _, err := s.ReadUser(0, id); !errors.As(err, &ce) {
			t.Fatalf("ReadUser(%s) = %v", id, err)
		}
	}
	if v, _ := metricValue(set, "flashreturn_state_corrupt_records_total"); v != 6 {
		t.Fatalf("corrupt counter %v", v)
	}
	put(appendKey(nil, 1, sufMeta, ""), []byte{9})
	if _, err := s.Partition(1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt meta: %v", err)
	}
	put(appendKey(nil, 2, sufTimer, "x"), []byte{1, 2})
	if _, err := s.Partition(2); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt timer: %v", err)
	}
	// A failed open does not leave the partition reserved.
	put(appendKey(nil, 2, sufTimer, "x"), make([]byte, 8))
	mustPartition(t, s, 2)
}

func TestRetentionTTL(t *testing.T) {
	s := openStore(t, Options{Retention: 48 * time.Hour})
	pt := mustPartition(t, s, 0)
	u := mustUser(t, pt, "a")
	*u = *userWith("a", recordtest.Tmall) // its policy's record is permanent
	pt.MarkDirty(u)
	pt.SetDeadline("a", 5)
	pt.PutTrace("a", "r", []byte("t"))
	before := time.Now()
	if err := pt.Commit(1, 1, []OutMsg{{}}); err != nil {
		t.Fatal(err)
	}
	want := before.Add(48 * time.Hour).Unix()
	var keys int
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: partitionPrefix(0)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys++
			k, exp := string(it.Item().Key()[prefixLen:]), int64(it.Item().ExpiresAt())
			perm := k == "meta" || k == "outbox" || k == "timers-v2" || strings.HasPrefix(k, "pol/")
			if perm && exp != 0 || !perm && (exp < want || exp > want+2) {
				t.Errorf("key %q expires at %d, want %d (permanent: %v)", k, exp, want, perm)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// meta, outbox, timers-v2, pol/<tmall>, u/a, t/a, tr/a/r
	if keys != 7 {
		t.Errorf("%d keys, want 7", keys)
	}
}

// TestTimersModel checks the timer heap against a naive map under random
// operations, commits and discards.
func TestTimersModel(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	tm := newTimers()
	committed := map[string]int64{}
	staged := map[string]int64{}
	naiveDue := func(now int64) []string {
		eff := maps(committed, staged)
		var out []timerItem
		for u, d := range eff {
			if d != 0 && d < now {
				out = append(out, timerItem{d, u})
			}
		}
		slices.SortFunc(out, func(a, b timerItem) int {
			if a.less(b) {
				return -1
			}
			return 1
		})
		var us []string
		for _, it := range out {
			us = append(us, it.u)
		}
		return us
	}
	for i := range 20000 {
		u := fmt.Sprint("u", r.IntN(50))
		switch op := r.IntN(10); {
		case op < 5:
			d := int64(r.IntN(100))
			tm.set(u, d)
			staged[u] = d
		case op < 8:
			now := int64(r.IntN(110))
			if got, want := tm.due(now, math.MaxInt, nil), naiveDue(now); !slices.Equal(got, want) {
				t.Fatalf("step %d: due(%d) = %v, want %v", i, now, got, want)
			}
		case op == 8:
			tm.commit()
			committed = maps(committed, staged)
			staged = map[string]int64{}
		default:
			tm.discard()
			staged = map[string]int64{}
		}
		if got, want := tm.len(), len(naiveDue(1<<62)); got != want {
			t.Fatalf("step %d: len %d, want %d", i, got, want)
		}
	}
}

// maps overlays staged on committed, dropping zero deadlines.
func maps(committed, staged map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for u, d := range committed {
		out[u] = d
	}
	for u, d := range staged {
		out[u] = d
	}
	for u, d := range out {
		if d == 0 {
			delete(out, u)
		}
	}
	return out
}

func TestExportImport(t *testing.T) {
	ctx := context.Background()
	src := openStore(t, Options{})
	pt := mustPartition(t, src, 3)
	var ids []string
	for i := range 1500 {
		ids = append(ids, fmt.Sprintf("u%05d", i))
	}
	for b := 0; b < len(ids); b += 500 {
		for i := b; i < b+500; i++ {
			u := mustUser(t, pt, ids[i])
			*u = *recordtest.TypicalUser(i)
			u.ID = ids[i]
			pt.MarkDirty(u)
			pt.SetDeadline(ids[i], int64(i))
			pt.PutTrace(ids[i], "r", []byte(ids[i]))
		}
		if err := pt.Commit(uint64(b+500), int64(b), []OutMsg{{Subject: "s", MsgID: fmt.Sprint(b), Data: []byte("d")}}); err != nil {
			t.Fatal(err)
		}
	}
	// Data of another partition must not leak into the export.
	other := mustPartition(t, src, 4)
	commitBatch(t, other, []string{"z"}, 1, nil)

	var buf bytes.Buffer
	if err := src.ExportPartition(ctx, 3, &buf); err != nil {
		t.Fatal(err)
	}
	export := buf.Bytes()

	dst := openStore(t, Options{})
	// The destination has stale data of partition 3 (removed by the import)
	// and data of partition 4 (kept).
	stale := mustPartition(t, dst, 3)
	commitBatch(t, stale, []string{"stale"}, 99999, []OutMsg{{Subject: "old"}})
	stale.Release()
	p4 := mustPartition(t, dst, 4)
	commitBatch(t, p4, []string{"keep"}, 1, nil)
	p4.Release()

	// A truncated stream fails and leaves the partition marked incomplete.
	err := dst.ImportPartition(ctx, 3, bytes.NewReader(export[:len(export)/2]))
	if err == nil {
		t.Fatal("truncated import succeeded")
	}
	if _, err := dst.Partition(3); !errors.Is(err, ErrImportIncomplete) {
		t.Fatalf("Partition after failed import: %v", err)
	}
	if err := dst.ExportPartition(ctx, 3, &bytes.Buffer{}); !errors.Is(err, ErrImportIncomplete) {
		t.Fatalf("Export after failed import: %v", err)
	}
	// A corrupted byte fails the checksum.
	bad := slices.Clone(export)
	bad[len(bad)/2] ^= 0x40
	if err := dst.ImportPartition(ctx, 3, bytes.NewReader(bad)); err == nil {
		t.Fatal("corrupted import succeeded")
	}
	if err := dst.ImportPartition(ctx, 4, bytes.NewReader(export)); err == nil {
		t.Fatal("import into the wrong partition succeeded")
	}
	if err := dst.ImportPartition(ctx, 3, bytes.NewReader(export)); err != nil {
		t.Fatal(err)
	}

	if a, b := dumpPartition(t, src, 3), dumpPartition(t, dst, 3); !reflect.DeepEqual(a, b) {
		t.Fatalf("partition 3 differs after import: %d vs %d keys", len(a), len(b))
	}
	if _, ok, _ := dst.ReadUser(4, "keep"); !ok {
		t.Fatal("import touched partition 4")
	}
	if _, ok, _ := dst.ReadUser(4, "z"); ok {
		t.Fatal("partition 4 of the source leaked")
	}
	got := mustPartition(t, dst, 3)
	if got.Cursor() != pt.Cursor() || got.Clock() != pt.Clock() || !reflect.DeepEqual(got.Outbox(), pt.Outbox()) {
		t.Fatalf("imported recovery info: %d %d %v", got.Cursor(), got.Clock(), got.Outbox())
	}
	if a, b := got.Due(1<<62, math.MaxInt, nil), pt.Due(1<<62, math.MaxInt, nil); !slices.Equal(a, b) {
		t.Fatal("imported timers differ")
	}
	got.Release()

	if err := dst.DropPartition(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if n := len(dumpPartition(t, dst, 3)); n != 0 {
		t.Fatalf("%d keys left after drop", n)
	}
	ctxDone, cancel := context.WithCancel(ctx)
	cancel()
	if err := src.ExportPartition(ctxDone, 3, &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("export with cancelled ctx: %v", err)
	}
}

type kv struct {
	k, v string
	exp  uint64
}

func dumpPartition(t *testing.T, s *Store, p int) []kv {
	var out []kv
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: partitionPrefix(p)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, kv{string(it.Item().Key()), string(v), it.Item().ExpiresAt()})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRunGCAndMetrics(t *testing.T) {
	set := metrics.NewSet()
	s := openStore(t, Options{Metrics: set, GCInterval: time.Millisecond})
	pt := mustPartition(t, s, 9)
	commitBatch(t, pt, []string{"a", "b"}, 1, []OutMsg{{Subject: "x"}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = s.Run(ctx) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, _ := metricValue(set, "flashreturn_state_vlog_gc_runs_total"); v >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("value-log GC never ran")
		}
		runtime.Gosched()
	}
	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatalf("Run = %v", runErr)
	}
	var b bytes.Buffer
	set.WritePrometheus(&b)
	text := b.String()
	for _, name := range []string{
		"flashreturn_state_commits_total 1", "flashreturn_state_commit_seconds_bucket",
		"flashreturn_state_commit_users_total 2", "flashreturn_state_lsm_bytes", "flashreturn_state_vlog_bytes",
		`flashreturn_state_outbox_messages{partition="9"} 1`, `flashreturn_state_timers{partition="9"} 0`,
		"flashreturn_badger_puts_total", "flashreturn_state_cache_misses_total 2",
	} {
		if !strings.Contains(text, name) {
			t.Errorf("metrics lack %q", name)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if line != "" && !strings.HasPrefix(line, "flashreturn_") && !strings.HasPrefix(line, "#") {
			t.Errorf("metric outside flashreturn_: %q", line)
		}
	}
	pt.Release()
	b.Reset()
	set.WritePrometheus(&b)
	if strings.Contains(b.String(), `partition="9"`) {
		t.Error("released partition's gauges still exported")
	}
	// Close removes the metrics: the same set serves a reopened store.
	mustPartition(t, s, 9)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	set.WritePrometheus(&b)
	if b.Len() != 0 {
		t.Errorf("metrics left after Close:\n%s", b.String())
	}
	s2 := openStore(t, Options{Dir: s.opts.Dir, Metrics: set})
	mustPartition(t, s2, 9)
	b.Reset()
	set.WritePrometheus(&b)
	if n := strings.Count(b.String(), "flashreturn_badger_puts_total "); n != 1 {
		t.Errorf("flashreturn_badger_puts_total written %d times", n)
	}
}

func TestBadgerLogsGoToSlog(t *testing.T) {
	var mu sync.Mutex
	var recs []string
	h := &sharedHandler{mu: &mu, recs: &recs}
	s := openStore(t, Options{Logger: slog.New(h)})
	s.Close()
	mu.Lock()
	defer mu.Unlock()
	var badgerLines int
	for _, r := range recs {
		if strings.HasPrefix(r, "badger: ") {
			badgerLines++
			if strings.HasSuffix(r, "\n") {
				t.Errorf("untrimmed badger line %q", r)
			}
		}
	}
	if badgerLines == 0 {
		t.Fatalf("no badger logs in %q", recs)
	}
}

// sharedHandler records "component: message" for every record.
type sharedHandler struct {
	mu   *sync.Mutex
	comp string
	recs *[]string
}

func (h *sharedHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *sharedHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, h.comp+": "+r.Message)
	return nil
}
func (h *sharedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	for _, a := range as {
		if a.Key == "component" {
			c.comp = a.Value.String()
		}
	}
	return &c
}
func (h *sharedHandler) WithGroup(string) slog.Handler { return h }

// TestDefaultMaxBatchBytes checks that the constant callers size their
// batches with is the limit of a store opened with the default options,
// and that a typical shopper stages under 1 KiB of it.
func TestDefaultMaxBatchBytes(t *testing.T) {
	s := openStore(t, Options{Dir: t.TempDir()})
	if got := s.MaxBatchBytes(); got != DefaultMaxBatchBytes {
		t.Fatalf("MaxBatchBytes %d, DefaultMaxBatchBytes %d", got, DefaultMaxBatchBytes)
	}
	// A typical shopper stages under 1 KiB (pipeline/defaults.MaxTxnBytes
	// counts on it).
	pt := mustPartition(t, s, 0)
	var before int
	for i := range 2 { // the first one also stages its policy's record
		before = pt.StagedBytes()
		want := recordtest.TypicalUser(i)
		u := mustUser(t, pt, want.ID)
		*u = *want
		pt.MarkDirty(u)
	}
	if got := pt.StagedBytes() - before; got >= 1024 {
		t.Errorf("a typical shopper stages %d bytes", got)
	} else {
		t.Logf("a typical shopper stages %d bytes", got)
	}
}
