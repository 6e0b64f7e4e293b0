package state

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state/record"
	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

const benchBatch = 256

// benchOutbox is a batch's outbox: one 120-byte message per user.
func benchOutbox() []OutMsg {
	out := make([]OutMsg, benchBatch)
	for i := range out {
		out[i] = OutMsg{Subject: fmt.Sprintf("fr.out.decision.u%08d", i), MsgID: fmt.Sprintf("r%08d-0:decision", i), Data: make([]byte, 120)}
	}
	return out
}

func benchPartition(b *testing.B, sync bool) (*Store, *Partition, []string) {
	s := openStore(b, Options{SyncWrites: sync})
	pt := mustPartition(b, s, 0)
	ids := make([]string, benchBatch)
	for i := range ids {
		u := mustUser(b, pt, fmt.Sprintf("u%08d", i))
		*u = *recordtest.TypicalUser(i)
		pt.MarkDirty(u)
		ids[i] = u.ID
	}
	if err := pt.Commit(1, 1, nil); err != nil {
		b.Fatal(err)
	}
	return s, pt, ids
}

// BenchmarkCommit256 commits batches of 256 dirty typical users (read from
// the cache, one field changed) with a 256-message outbox.
func BenchmarkCommit256(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			_, pt, ids := benchPartition(b, sync)
			out := benchOutbox()
			cursor := uint64(1)
			b.ReportAllocs()
			for b.Loop() {
				cursor++
				touchAll(b, pt, ids)
				if err := pt.Commit(cursor, int64(cursor), out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}

// BenchmarkRawTxn256 is the baseline of BenchmarkCommit256: one Badger
// transaction setting the same keys and values (pre-encoded), with the
// same TTLs.
func BenchmarkRawTxn256(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			s, pt, ids := benchPartition(b, sync)
			var keys, vals [][]byte
			for _, id := range ids {
				u, _ := pt.User(id)
				keys = append(keys, userKey(0, id))
				vals = append(vals, record.AppendUser(nil, u))
			}
			keys = append(keys, pt.metaKey, pt.outboxKey)
			vals = append(vals, record.AppendMeta(nil, 1, 1), record.AppendOutbox(nil, benchOutbox()))
			b.ReportAllocs()
			for b.Loop() {
				rawCommit(b, s.db, keys, vals, len(ids))
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}

func BenchmarkUserCacheHit(b *testing.B) {
	_, pt, ids := benchPartition(b, false)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := pt.User(ids[i%benchBatch]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkEncodeUser(b *testing.B) {
	u := recordtest.TypicalUser(12345)
	buf := record.AppendUser(nil, u)
	b.ReportAllocs()
	for b.Loop() {
		buf = record.AppendUser(buf[:0], u)
	}
	b.ReportMetric(float64(len(buf)), "bytes/user")
	b.ReportMetric(float64(memSize(u)), "cachebytes/user")
}

// BenchmarkUserMiss reads users that are not cached (Badger point reads).
func BenchmarkUserMiss(b *testing.B) {
	s, pt, ids := benchPartition(b, false)
	pt.Release()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%benchBatch == 0 {
			b.StopTimer()
			pt.Release()
			pt = mustPartition(b, s, 0)
			b.StartTimer()
		}
		if _, err := pt.User(ids[i%benchBatch]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestMemSizeEstimate checks memSize, the cache's accounting, against the
// heap that users cached by Partition.User really hold (freed by Release):
// typical shoppers, and shoppers whose request was reviewed with a note.
func TestMemSizeEstimate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation sizes")
	}
	reviewed := func(i int) *core.User {
		u := recordtest.TypicalUser(i)
		r := &u.Requests[0]
		r.Resolution, r.ResolvedBy, r.ResolvedAt = core.ResolutionApproved, core.ActorMerchant, r.At+3600e9
		r.Note = strings.Repeat("退货已确认 ", 1+i%20) // 16 to 320 bytes
		return u
	}
	// A shopper with full forgotten lists (core.MaxForgotten IDs) on
	// itself and on an order: a few KiB the estimate must count.
	forgetful := func(i int) *core.User {
		u := recordtest.TypicalUser(i)
		for j := range core.MaxForgotten {
			u.Forgotten = append(u.Forgotten, fmt.Sprintf("req-%08d-%02d", i, j))
			u.Orders[0].Forgotten = append(u.Orders[0].Forgotten, fmt.Sprintf("ord-%08d-%02d", i, j))
		}
		return u
	}
	for _, tc := range []struct {
		name string
		user func(int) *core.User
	}{{"typical", recordtest.TypicalUser}, {"reviewed", reviewed}, {"forgetful", forgetful}} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 20000
			s := openStore(t, Options{})
			pt := mustPartition(t, s, 0)
			const batch = 200 // the forgetful users' ~3 KB each fit a transaction
			for b := 0; b < n; b += batch {
				for i := b; i < b+batch; i++ {
					u := mustUser(t, pt, fmt.Sprintf("u%08d", i))
					*u = *tc.user(i)
					pt.MarkDirty(u)
				}
				if err := pt.Commit(uint64(b+1), 0, nil); err != nil {
					t.Fatal(err)
				}
			}
			pt.Release()
			pt = mustPartition(t, s, 0)
			for i := range n {
				mustUser(t, pt, fmt.Sprintf("u%08d", i))
			}
			if pt.CachedUsers() != n {
				t.Fatalf("%d users cached, want %d", pt.CachedUsers(), n)
			}
			est := pt.CacheBytes()
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			with := ms.HeapAlloc
			pt.Release()
			runtime.GC()
			runtime.ReadMemStats(&ms)
			real := int64(with - ms.HeapAlloc)
			ratio := float64(est) / float64(real)
			t.Logf("%d users: estimated %d B/user, heap %d B/user (ratio %.2f)", n, est/n, real/n, ratio)
			if ratio < 0.85 || ratio > 1.2 {
				t.Fatalf("memSize is off: estimate/heap = %.2f", ratio)
			}
		})
	}
}

// BenchmarkCommitVsRaw256 alternates a Commit of 256 dirty users with a raw
// Badger transaction setting the same bytes, so that noise from other
// processes hits both alike, and reports the ratio of their mean times.
func BenchmarkCommitVsRaw256(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			s, pt, ids := benchPartition(b, sync)
			out := benchOutbox()
			var keys, vals [][]byte
			for _, id := range ids {
				u, _ := pt.User(id)
				keys = append(keys, userKey(1, id)) // another partition: same sizes, no interference
				vals = append(vals, record.AppendUser(nil, u))
			}
			keys = append(keys, appendKey(nil, 1, sufMeta, ""), appendKey(nil, 1, sufOutbox, ""))
			vals = append(vals, record.AppendMeta(nil, 1, 1), record.AppendOutbox(nil, out))
			var commitNs, rawNs time.Duration
			cursor := uint64(1)
			for b.Loop() {
				began := time.Now()
				cursor++
				touchAll(b, pt, ids)
				if err := pt.Commit(cursor, int64(cursor), out); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				rawCommit(b, s.db, keys, vals, len(ids))
				commitNs += t1.Sub(began)
				rawNs += time.Since(t1)
			}
			b.ReportMetric(float64(commitNs.Nanoseconds())/float64(b.N), "commit-ns/op")
			b.ReportMetric(float64(rawNs.Nanoseconds())/float64(b.N), "raw-ns/op")
			b.ReportMetric(float64(commitNs)/float64(rawNs), "ratio")
		})
	}
}

// rawCommit is the baseline the commit benchmarks compare with: one plain
// Badger transaction setting the same keys and values (the first nTTL with
// a TTL, as the store sets on user records).
func rawCommit(b *testing.B, db *badger.DB, keys, vals [][]byte, nTTL int) {
	txn := db.NewTransaction(true)
	defer txn.Discard()
	for i := range keys {
		e := badger.NewEntry(keys[i], vals[i])
		if i < nTTL {
			e.ExpiresAt = 1 << 40
		}
		if err := txn.SetEntry(e); err != nil {
			b.Fatal(err)
		}
	}
	if err := txn.Commit(); err != nil {
		b.Fatal(err)
	}
}

// touchAll changes every user of ids (a cent more outstanding) and marks
// them dirty: the batch a benchmark commits. The users are in the cache
// (benchPartition made them), so User does not read Badger.
func touchAll(tb testing.TB, pt *Partition, ids []string) {
	for _, id := range ids {
		u := mustUser(tb, pt, id)
		u.OutstandingFen++
		pt.MarkDirty(u)
	}
}
