package state

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/flashreturn/flashreturn/state/record"
	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

// tableSizes sums the on-disk and uncompressed sizes of the store's tables.
func tableSizes(s *Store) (onDisk, uncompressed uint64) {
	for _, ti := range s.db.Tables() {
		onDisk += uint64(ti.OnDiskSize)
		uncompressed += uint64(ti.UncompressedSize)
	}
	return onDisk, uncompressed
}

// TestUncompressedStoreReadsBack opens a store whose tables were written
// uncompressed (as before tableCompression) with the current options:
// every shopper reads back the same, before and after their next writes,
// and the tables written since are compressed.
func TestUncompressedStoreReadsBack(t *testing.T) {
	const n = 4000
	dir := t.TempDir()
	old, err := Open(Options{Dir: dir, memTableBytes: 1 << 20, Compression: CompressNone})
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

	s := openStore(t, Options{Dir: dir, memTableBytes: 1 << 20})
	onDisk, raw := tableSizes(s)
	if onDisk == 0 || onDisk < raw {
		t.Fatalf("tables written uncompressed: %d bytes on disk for %d uncompressed, want at least as many", onDisk, raw)
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
	oldDisk, oldRaw := onDisk, raw
	// The shoppers' next events write them again, into new tables.
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
	if err := s.db.Flatten(1); err != nil {
		t.Fatal(err)
	}
	check("rewritten")
	onDisk, raw = tableSizes(s)
	if newDisk, newRaw := onDisk-oldDisk, raw-oldRaw; newRaw == 0 || newDisk*2 > newRaw {
		t.Fatalf("the tables written since take %d bytes for %d uncompressed, want under half", newDisk, newRaw)
	}
	t.Logf("tables: %d bytes on disk for %d uncompressed (before the rewrite %d for %d)", onDisk, raw, oldDisk, oldRaw)
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
