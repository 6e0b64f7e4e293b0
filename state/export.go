package state

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Export stream format (version 1):
//
//	"FRSTATE" 0x01 | uv partition
//	records: 0x01 | uv len(key suffix) | key suffix (after the partition
//	         prefix) | uv len(value) | value | uv expiresAt (Unix s, 0 = never)
//	end:     0x00 | uv record count | crc32c (4 bytes, big-endian) of every
//	         byte before it
var exportMagic = []byte("FRSTATE\x01")

const (
	tagRecord = 1
	tagEnd    = 0
	// importBatch is the number of entries per import transaction; the
	// importing marker, not transactions, makes an import all-or-nothing.
	importBatch = 1000
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ExportPartition writes everything partition p owns (users, timers,
// traces, cursor, clock, outbox) to w, from one consistent snapshot. It can
// run while the partition's owner commits (the snapshot predates the
// commits). It checks ctx between records.
func (s *Store) ExportPartition(ctx context.Context, p int, w io.Writer) error {
	if err := checkPartition(p); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	h := crc32.New(crcTable)
	out := io.MultiWriter(bw, h)
	prefix := partitionPrefix(p)
	importing := appendKey(nil, p, sufImporting, "")
	var count uint64
	err := s.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(importing); err == nil {
			return fmt.Errorf("partition %d: %w", p, ErrImportIncomplete)
		}
		var hdr []byte
		hdr = append(hdr, exportMagic...)
		hdr = binary.AppendUvarint(hdr, uint64(p))
		if _, err := out.Write(hdr); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		var rec []byte
		for it.Rewind(); it.Valid(); it.Next() {
			if count%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			rec = append(rec[:0], tagRecord)
			suffix := item.Key()[len(prefix):]
			rec = binary.AppendUvarint(rec, uint64(len(suffix)))
			rec = append(rec, suffix...)
			err := item.Value(func(v []byte) error {
				rec = binary.AppendUvarint(rec, uint64(len(v)))
				rec = append(rec, v...)
				return nil
			})
			if err != nil {
				return err
			}
			rec = binary.AppendUvarint(rec, item.ExpiresAt())
			if _, err := out.Write(rec); err != nil {
				return err
			}
			count++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: export partition %d: %w", p, err)
	}
	end := binary.AppendUvarint([]byte{tagEnd}, count)
	if _, err := out.Write(end); err != nil {
		return fmt.Errorf("state: export partition %d: %w", p, err)
	}
	if _, err := bw.Write(binary.BigEndian.AppendUint32(nil, h.Sum32())); err != nil {
		return fmt.Errorf("state: export partition %d: %w", p, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("state: export partition %d: %w", p, err)
	}
	return nil
}

// ImportPartition replaces everything partition p holds in this store with
// the export read from r (written by ExportPartition for the same p). The
// partition must not be open here. The import is all-or-nothing as seen by
// Partition: a marker key is written first and removed, together with the
// cursor, in the last transaction; until then (an error, a crash) Partition
// and ExportPartition report ErrImportIncomplete, and importing again (or
// DropPartition) repairs it. Readers of ReadUser see users appear as they are
// imported. Records whose TTL has passed are skipped.
func (s *Store) ImportPartition(ctx context.Context, p int, r io.Reader) error {
	if err := s.withReserved(p, func() error { return s.importPartition(ctx, p, r) }); err != nil {
		return fmt.Errorf("state: import partition %d: %w", p, err)
	}
	return nil
}

// DropPartition deletes everything partition p holds in this store (after
// it moved to another process, or to repair an incomplete import). The
// partition must not be open here.
func (s *Store) DropPartition(ctx context.Context, p int) error {
	err := s.withReserved(p, func() error {
		marker := appendKey(nil, p, sufImporting, "")
		if err := s.clearPartition(ctx, p, marker); err != nil {
			return err
		}
		return s.db.Update(func(txn *badger.Txn) error { return txn.Delete(marker) })
	})
	if err != nil {
		return fmt.Errorf("state: drop partition %d: %w", p, err)
	}
	return nil
}

// withReserved runs f with partition p reserved, so that an import or a
// drop can never run while the partition is owned (or another import or
// drop runs): ErrPartitionBusy instead of two writers on one prefix.
func (s *Store) withReserved(p int, f func() error) error {
	if err := checkPartition(p); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.reserve(p); err != nil {
		return err
	}
	defer s.unreserve(p)
	return f()
}

// importPartition reads an export (magic, entries, end tag, count and
// CRC-32C) into partition p. The "importing" marker is written before
// anything else and deleted last, together with the meta record (the
// cursor), so an import cut short by a crash leaves the partition refusing
// to open (ErrImportIncomplete) instead of half-filled and silently used.
func (s *Store) importPartition(ctx context.Context, p int, r io.Reader) error {
	h := crc32.New(crcTable)
	br := &hashReader{r: bufio.NewReaderSize(r, 64<<10), h: h}
	magic := make([]byte, len(exportMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if !bytes.Equal(magic, exportMagic) {
		return fmt.Errorf("not a partition export (header %q)", magic)
	}
	from, err := binary.ReadUvarint(br)
	if err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if from != uint64(p) {
		return fmt.Errorf("export holds partition %d, not %d", from, p)
	}

	// The header is good: from here on the partition is incomplete until
	// the last transaction.
	marker := appendKey(nil, p, sufImporting, "")
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(marker, nil) }); err != nil {
		return err
	}
	if err := s.clearPartition(ctx, p, marker); err != nil {
		return err
	}

	prefix := partitionPrefix(p)
	now := uint64(time.Now().Unix())
	var meta []byte
	var count uint64
	wb := newImportBatch(s.db)
	defer func() { wb.txn.Discard() }()
	for {
		tag, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("read record %d: %w", count, unexpected(err))
		}
		if tag == tagEnd {
			break
		}
		if tag != tagRecord {
			return fmt.Errorf("record %d: bad tag %d", count, tag)
		}
		suffix, err := readBytes(br)
		if err != nil {
			return fmt.Errorf("read record %d key: %w", count, err)
		}
		val, err := readBytes(br)
		if err != nil {
			return fmt.Errorf("read record %d value: %w", count, err)
		}
		expires, err := binary.ReadUvarint(br)
		if err != nil {
			return fmt.Errorf("read record %d: %w", count, unexpected(err))
		}
		count++
		if count%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		switch {
		case bytes.Equal(suffix, sufImporting):
			continue
		case bytes.Equal(suffix, sufMeta):
			meta = val // written last, with the marker's removal
			continue
		case expires != 0 && expires <= now:
			continue
		}
		key := append(append(make([]byte, 0, len(prefix)+len(suffix)), prefix...), suffix...)
		if err := wb.set(&badger.Entry{Key: key, Value: val, ExpiresAt: expires}); err != nil {
			return err
		}
	}
	wantCount, err := binary.ReadUvarint(br)
	if err != nil {
		return fmt.Errorf("read trailer: %w", unexpected(err))
	}
	sum := h.Sum32()
	var crc [4]byte
	if _, err := io.ReadFull(br.r, crc[:]); err != nil {
		return fmt.Errorf("read checksum: %w", unexpected(err))
	}
	if wantCount != count {
		return fmt.Errorf("trailer says %d records, read %d", wantCount, count)
	}
	if got := binary.BigEndian.Uint32(crc[:]); got != sum {
		return fmt.Errorf("checksum mismatch: stream %08x, computed %08x", got, sum)
	}
	if err := wb.flush(); err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error {
		if meta != nil {
			if err := txn.Set(appendKey(nil, p, sufMeta, ""), meta); err != nil {
				return err
			}
		}
		return txn.Delete(marker)
	})
}

// clearPartition deletes every key of partition p except keep.
func (s *Store) clearPartition(ctx context.Context, p int, keep []byte) error {
	prefix := partitionPrefix(p)
	// Each pass resumes after the last key deleted: restarting at the
	// prefix would walk every tombstone of the earlier passes again
	// (quadratic in the partition's size).
	from := prefix
	for {
		var keys [][]byte
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			defer it.Close()
			for it.Seek(from); it.Valid() && len(keys) < importBatch; it.Next() {
				if k := it.Item().Key(); !bytes.Equal(k, keep) {
					keys = append(keys, it.Item().KeyCopy(nil))
				}
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		from = append(bytes.Clone(keys[len(keys)-1]), 0)
		if err := ctx.Err(); err != nil {
			return err
		}
		err = s.db.Update(func(txn *badger.Txn) error {
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
}

// importTxn groups imported entries into transactions of at most
// importBatch entries that fit Badger's size limit.
type importTxn struct {
	db  *badger.DB
	txn *badger.Txn
	n   int
}

// newImportBatch starts the first transaction of an import or migration.
func newImportBatch(db *badger.DB) *importTxn {
	return &importTxn{db: db, txn: db.NewTransaction(true)}
}

// set adds an entry, committing the transaction first when it holds
// importBatch entries or Badger finds it too big. Several commits are
// not atomic; that is safe because both users redo their work after a
// crash: an import's marker keeps the partition closed until the import
// is run again, and the timer migration runs again at the next open
// (its marker is written last).
func (b *importTxn) set(e *badger.Entry) error {
	if b.n >= importBatch {
		if err := b.flush(); err != nil {
			return err
		}
	}
	err := b.txn.SetEntry(e)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err := b.flush(); err != nil {
			return err
		}
		err = b.txn.SetEntry(e)
	}
	if err != nil {
		return err
	}
	b.n++
	return nil
}

// flush commits what is pending and starts the next transaction; the
// caller discards the last one if it stops early.
func (b *importTxn) flush() error {
	err := b.txn.Commit()
	b.txn = b.db.NewTransaction(true)
	b.n = 0
	return err
}

// readBytes reads one length-prefixed field of an export. The length is
// bounded (2 GiB) before allocating, so a corrupt or hostile stream
// cannot make the importer allocate without limit.
func readBytes(br *hashReader) ([]byte, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, unexpected(err)
	}
	if n > 1<<31 {
		return nil, fmt.Errorf("length %d too large", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, unexpected(err)
	}
	return b, nil
}

// unexpected turns an EOF into ErrUnexpectedEOF: a well-formed export
// ends with its end tag, count and checksum, so an EOF anywhere the
// importer reads means a truncated stream, not a finished one.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// hashReader hashes every byte read through it.
type hashReader struct {
	r *bufio.Reader
	h hash.Hash32
	b [1]byte
}

// Read reads and hashes what it read.
func (r *hashReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	return n, err
}

// ReadByte reads and hashes one byte (binary.ReadUvarint reads through
// it); the one-byte buffer avoids an allocation per byte.
func (r *hashReader) ReadByte() (byte, error) {
	c, err := r.r.ReadByte()
	if err == nil {
		r.b[0] = c
		r.h.Write(r.b[:])
	}
	return c, err
}
