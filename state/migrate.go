package state

import (
	"encoding/binary"
	"errors"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state/record"
)

// migrateTimers brings the partition's timer index up to the issue-14
// core, once per partition: the index of a release that wrote version-1
// user records holds pickup windows only, while core now also times
// reviews and returns ([core.Request.Timer]). For every version-1 user
// record, read with the legacy policy, it arms core's next deadline
// ([core.NextDeadline]) when the index has none or a later one (an earlier
// one fires, finds nothing due, and is re-armed by the worker as usual).
// Then it writes the timers-v2 marker, so later opens skip the scan; the
// marker travels with exports. Without Options.LegacyPolicy a version-1
// record cannot be read: the marker is not written and the next open
// tries again (a record that is corrupt for another reason is skipped for
// good). Writes are idempotent, so a crash part-way is harmless.
// Called by loadPartition before the timer heap is built.
func (pt *Partition) migrateTimers() error {
	marker := appendKey(nil, pt.p, sufTimersV2, "")
	type arm struct {
		user    string
		d       int64
		expires uint64
	}
	var (
		arms              []arm
		done              bool
		v1, noLegacy, bad int
		prefix            = appendKey(nil, pt.p, sufUser, "")
	)
	err := pt.s.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(marker); err == nil {
			done = true
			return nil
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			err := item.Value(func(v []byte) error {
				if len(v) == 0 || v[0] != record.UserV1 {
					return nil
				}
				v1++
				u, err := record.DecodeUser(v, &pt.res)
				if err == nil && u.ID != string(item.Key()[len(prefix):]) {
					err = errors.New("record holds another user")
				}
				switch {
				case errors.Is(err, ErrNoLegacyPolicy):
					noLegacy++
					return nil
				case err != nil: // corrupt for good: its worker will dead-letter its events
					bad++
					pt.s.m.corrupt.Inc()
					pt.log.Error("timer migration skips a user", "err", &CorruptError{Key: string(item.Key()), Err: err})
					return nil
				}
				d, ok := core.NextDeadline(u)
				if c := pt.t.committed[u.ID]; !ok || c != 0 && c <= d {
					return nil
				}
				arms = append(arms, arm{u.ID, d, item.ExpiresAt()})
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || done {
		return err
	}
	wb := newImportBatch(pt.s.db)
	defer func() { wb.txn.Discard() }()
	for _, a := range arms {
		e := &badger.Entry{Key: appendKey(nil, pt.p, sufTimer, a.user), ExpiresAt: a.expires}
		e.Value = binary.BigEndian.AppendUint64(nil, uint64(a.d))
		if err := wb.set(e); err != nil {
			return err
		}
	}
	if noLegacy == 0 {
		if err := wb.set(&badger.Entry{Key: marker, Value: []byte{record.UserVersion}}); err != nil {
			return err
		}
	}
	if err := wb.flush(); err != nil {
		return err
	}
	replaced := false
	for _, a := range arms {
		_, had := pt.t.committed[a.user]
		replaced = replaced || had
		pt.t.committed[a.user] = a.d
		if !had {
			pt.t.h = append(pt.t.h, timerItem{a.d, a.user})
		}
	}
	if replaced { // the heap is not built yet: refill it
		pt.t.h = pt.t.h[:0]
		for u, d := range pt.t.committed {
			pt.t.h = append(pt.t.h, timerItem{d, u})
		}
	}
	switch {
	case noLegacy > 0:
		pt.log.Warn("timers of version-1 users not armed: their records cannot be read without Options.LegacyPolicy",
			"v1_users", v1)
	case v1 > 0:
		pt.log.Info("timers of version-1 users armed", "v1_users", v1, "armed", len(arms), "corrupt", bad)
	}
	return nil
}
