package state

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/flashreturn/flashreturn/state/record"
	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

// tableSizes sums the on-disk and uncompressed sizes of the store's tables
// whose IDs are not in skip, and returns every table's ID.
func tableSizes(s *Store, skip map[uint64]bool) (onDisk, uncompressed int64, ids map[uint64]bool) {
	ids = map[uint64]bool{}
	for _, ti := range s.db.Tables() {
		ids[ti.ID] = true
		if !skip[ti.ID] {
			onDisk += int64(ti.OnDiskSize)
			uncompressed += int64(ti.UncompressedSize)
		}
	}
	return onDisk, uncompressed, ids
}

// TestCompressionChangeReadsBack opens a store whose tables were written
// with one compression (uncompressed, as before tableCompression; or
// Snappy) with the other: every shopper reads back the same, before and
// after their next writes, and the tables written since have the new
// compression.
func TestCompressionChangeReadsBack(t *testing.T) {
	for _, tc := range []struct{ from, to Compression }{{CompressNone, CompressSnappy}, {CompressSnappy, CompressNone}} {
		t.Run(fmt.Sprintf("%v-to-%v", tc.from, tc.to), func(t *testing.T) {
			const n = 4000
			dir := t.TempDir()
			old, err := Open(Options{Dir: dir, memTableBytes: 1 << 20, Compression: tc.from})
			if err != nil {
				t.Fatal(err)
			}
			pt := mustPartition(t, old, 3)
			want := make(map[string][]byte, n)
			for i := range n {
				u := mustUser(t, pt, fmt.Sprintf("u%05d", i))
				*u = *recordtest.TypicalUser(i)
				u.ID = fmt.Sprintf("u%05d", i)
				pt.MarkDirty(u)
				want[u.ID] = record.AppendUser(nil, u)
				if i%200 == 199 {
					if err := pt.Commit(uint64(i), 0, nil); err != nil {
						t.Fatal(err)
					}
				}
			}
			pt.Release()
			if err := old.Close(); err != nil { // flushes the memtable into a table
				t.Fatal(err)
			}

			s := openStore(t, Options{Dir: dir, memTableBytes: 1 << 20, Compression: tc.to})
			onDisk, raw, before := tableSizes(s, nil)
			if compressed := onDisk*2 < raw; onDisk == 0 || compressed != (tc.from == CompressSnappy) {
				t.Fatalf("tables written %v: %d bytes on disk for %d uncompressed", tc.from, onDisk, raw)
			}
			check := func(when string) {
				t.Helper()
				for id, enc := range want {
					u, ok, err := s.ReadUser(3, id)
					if err != nil || !ok {
						t.Fatalf("%s: user %s: ok %v, %v", when, id, ok, err)
					}
					if got := record.AppendUser(nil, u); !bytes.Equal(got, enc) {
						t.Fatalf("%s: user %s reads back different", when, id)
					}
				}
			}
			check("reopened")
			// The shoppers' next events write them again; the memtable
			// fills and is flushed into new tables.
			pt = mustPartition(t, s, 3)
			for i := range n {
				pt.MarkDirty(mustUser(t, pt, fmt.Sprintf("u%05d", i)))
				if i%200 == 199 {
					if err := pt.Commit(uint64(n+i), 0, nil); err != nil {
						t.Fatal(err)
					}
				}
			}
			pt.Release()
			check("rewritten")
			newDisk, newRaw, _ := tableSizes(s, before)
			if compressed := newDisk*2 < newRaw; newDisk == 0 || compressed != (tc.to == CompressSnappy) {
				t.Fatalf("tables written since with %v: %d bytes on disk for %d uncompressed", tc.to, newDisk, newRaw)
			}
			t.Logf("tables written with %v: %d bytes on disk for %d uncompressed; since, with %v: %d for %d", tc.from, onDisk, raw, tc.to, newDisk, newRaw)
		})
	}
}

// TestParseCompression: the flag's two names round-trip and nothing else
// is accepted; an out-of-range value is refused by Validate.
func TestParseCompression(t *testing.T) {
	for _, c := range []Compression{CompressSnappy, CompressNone} {
		if got, err := ParseCompression(c.String()); err != nil || got != c {
			t.Errorf("%v: parsed %v, %v", c, got, err)
		}
	}
	if _, err := ParseCompression("zstd"); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("zstd: %v", err)
	}
	o := Options{Dir: t.TempDir(), Compression: 7}
	if err := o.Validate(); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("Compression 7: %v", err)
	}
}
