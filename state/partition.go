package state

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/metrics"
	badger "github.com/dgraph-io/badger/v4"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state/record"
)

// OutMsg is one output message of a batch, kept in the outbox until the
// batch's next commit replaces it (its codec is record's).
type OutMsg = record.OutMsg

// OutboxBytes returns the number of bytes msgs add to a commit's
// transaction, to be added to [Partition.StagedBytes] when checking a batch
// against [Store.MaxBatchBytes].
func OutboxBytes(msgs []OutMsg) int {
	return record.OutboxSizeBound(msgs) + entryOverhead + prefixLen + len(sufOutbox)
}

// OutMsgBytes is what one message adds to OutboxBytes, for a caller that
// keeps the size of a growing outbox as it appends to it.
func OutMsgBytes(m *OutMsg) int { return record.OutMsgSizeBound(m) }

// entryOverhead is what Badger adds to key and value lengths when it sizes
// a transaction entry (metas and version).
const entryOverhead = 12

// Partition is the write side of one partition: a write-back user cache,
// the staged changes of the current batch, the timer index and the recovery
// info (cursor, clock, outbox). Exactly one goroutine owns a Partition; its
// methods are not safe for concurrent use. Use [Store.ReadUser] to read from
// other goroutines.
//
// A batch goes: User (read through the cache, mutate in place), MarkDirty
// after every change, SetDeadline and PutTrace as needed, then Commit, or
// Discard to abandon it.
type Partition struct {
	s   *Store
	p   int
	log *slog.Logger

	cursor    uint64
	clock     int64
	outboxRec []byte // encoded outbox of the last commit; nil when empty
	outboxN   int    // messages in outboxRec

	c      *cache
	t      *timers
	dirty  []*centry
	staged int // StagedBytes of dirty users, timers and staged policies

	// Policy table: the committed policy records, the records staged for
	// the next commit, and the two policies last found in either (most
	// recent first; see stagePolicies).
	pols     polTable
	res      record.Resolver
	newPols  []stagedPolicy
	lastPols [2]*core.Policy

	// Staged traces: keys and values packed in two buffers.
	trKeys, trVals []byte
	trSpans        []span

	// Scratch reused by every commit.
	keyBuf, valBuf, nextOutbox []byte
	spans                      []span
	metaKey, outboxKey         []byte

	hits, misses, evictions uint64 // not yet added to the store counters

	outboxGauge, timersGauge, policiesGauge *metrics.Gauge
	gaugeNames                              []string
	released                                bool
}

type span struct{ k0, k1, v0, v1 int }

// loadPartition opens partition p for its owner: it refuses a partition
// an import left unfinished, reads meta, outbox, policy table and timer
// index in one snapshot (so they are those of the same commit), and runs
// the one-off timer migration of version-1 users.
func loadPartition(s *Store, p int) (*Partition, error) {
	pt := &Partition{
		s:         s,
		p:         p,
		log:       s.log.With("partition", p),
		c:         newCache(),
		t:         newTimers(),
		metaKey:   appendKey(nil, p, sufMeta, ""),
		outboxKey: appendKey(nil, p, sufOutbox, ""),
		pols:      polTable{m: make(map[record.PolicyKey]*core.Policy)},
	}
	pt.res = record.Resolver{Find: pt.findPolicy, Legacy: s.opts.LegacyPolicy}
	err := s.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(appendKey(nil, p, sufImporting, "")); err == nil {
			return fmt.Errorf("partition %d: %w", p, ErrImportIncomplete)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if err := getValue(txn, pt.metaKey, func(v []byte) (err error) {
			pt.cursor, pt.clock, err = record.DecodeMeta(v)
			return err
		}); err != nil {
			return err
		}
		if err := getValue(txn, pt.outboxKey, func(v []byte) error {
			msgs, err := record.DecodeOutbox(v)
			pt.outboxRec, pt.outboxN = append([]byte(nil), v...), len(msgs)
			return err
		}); err != nil {
			return err
		}
		if err := pt.loadPolicies(txn); err != nil {
			return err
		}
		prefix := appendKey(nil, p, sufTimer, "")
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			user := string(item.Key()[len(prefix):])
			err := item.Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("timer value of %d bytes", len(v))
				}
				if d := int64(binary.BigEndian.Uint64(v)); d != 0 {
					pt.t.committed[user] = d
					pt.t.h = append(pt.t.h, timerItem{d, user})
				}
				return nil
			})
			if err != nil {
				return &CorruptError{Key: string(item.Key()), Err: err}
			}
		}
		return nil
	})
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			s.m.corrupt.Inc()
		}
		return nil, fmt.Errorf("state: load partition %d: %w", p, err)
	}
	if err := pt.migrateTimers(); err != nil {
		return nil, fmt.Errorf("state: load partition %d: migrate timers: %w", p, err)
	}
	for i := len(pt.t.h)/2 - 1; i >= 0; i-- {
		pt.t.down(i)
	}
	name := func(n string) string {
		full := fmt.Sprintf("%s{partition=%q}", n, fmt.Sprint(p))
		pt.gaugeNames = append(pt.gaugeNames, full)
		return full
	}
	pt.outboxGauge = s.m.set.GetOrCreateGauge(name("flashreturn_state_outbox_messages"), nil)
	pt.timersGauge = s.m.set.GetOrCreateGauge(name("flashreturn_state_timers"), nil)
	pt.outboxGauge.Set(float64(pt.outboxN))
	pt.timersGauge.Set(float64(len(pt.t.committed)))
	pt.policiesGauge = s.m.set.GetOrCreateGauge(name("flashreturn_state_policies"), nil)
	pt.policiesGauge.Set(float64(len(pt.pols.m)))
	pt.log.Info("partition loaded", "cursor", pt.cursor, "clock", pt.clock,
		"outbox_messages", pt.outboxN, "timers", len(pt.t.committed), "policies", len(pt.pols.m))
	return pt, nil
}

// loadPolicies reads the partition's policy records into its table. A
// record that does not parse, or whose content is not its version, is
// skipped (counted as corrupt and logged): users referring to it then read
// as corrupt, and the next commit of a request following that version
// writes the record again.
func (pt *Partition) loadPolicies(txn *badger.Txn) error {
	prefix := appendKey(nil, pt.p, sufPolicy, "")
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		var k record.PolicyKey
		var p *core.Policy
		ver := item.Key()[len(prefix):]
		_, err := hex.Decode(k[:], ver)
		if err == nil && len(ver) != 2*len(k) {
			err = fmt.Errorf("version %q is not 16 hex digits", ver)
		}
		if err == nil {
			err = item.Value(func(v []byte) (err error) {
				p, err = record.DecodePolicy(k, v)
				return err
			})
		}
		if err != nil {
			pt.s.m.corrupt.Inc()
			pt.log.Error("policy record skipped", "err", &CorruptError{Key: string(item.Key()), Err: err})
			continue
		}
		pt.pols.m[k] = pt.s.pols.intern(k, p)
	}
	return nil
}

// getValue calls f with the value of key, if the key exists. A value f
// rejects is reported as a *CorruptError.
func getValue(txn *badger.Txn, key []byte, f func([]byte) error) error {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := item.Value(f); err != nil {
		return &CorruptError{Key: string(key), Err: err}
	}
	return nil
}

// ID returns the partition number.
func (pt *Partition) ID() int { return pt.p }

// Cursor returns the last stream sequence applied, as of the last commit
// (0: none). The consumer resumes at Cursor()+1.
func (pt *Partition) Cursor() uint64 { return pt.cursor }

// Clock returns the partition's event-time clock (Unix ns) as of the last
// commit (0: none).
func (pt *Partition) Clock() int64 { return pt.clock }

// Outbox returns the messages of the last commit, which may not have been
// published yet: a worker republishes them on start (their MsgIDs make that
// idempotent). Data slices alias the partition's storage and stay valid
// until the next Commit. nil when the outbox is empty.
func (pt *Partition) Outbox() []OutMsg {
	if pt.outboxN == 0 {
		return nil
	}
	msgs, err := record.DecodeOutbox(pt.outboxRec)
	if err != nil {
		// Checked at load and written by Commit: cannot happen.
		panic(fmt.Sprintf("state: outbox of partition %d: %v", pt.p, err))
	}
	return msgs
}

// User returns the state of user id: from the cache, else from Badger, else
// a fresh &core.User{ID: id}. The returned User is the cached one: the
// caller mutates it in place and must call MarkDirty after every change
// (otherwise the change is neither committed nor undone by Discard). A
// record that cannot be decoded yields a *CorruptError and is not cached.
func (pt *Partition) User(id string) (*core.User, error) {
	if e := pt.c.m[id]; e != nil {
		pt.hits++
		pt.c.touch(e)
		return e.u, nil
	}
	pt.misses++
	if pt.s.closed.Load() {
		return nil, ErrClosed
	}
	start := time.Now()
	key := appendKey(pt.keyBuf[:0], pt.p, sufUser, id)
	pt.keyBuf = key
	var u *core.User
	err := pt.s.db.View(func(txn *badger.Txn) error {
		return getValue(txn, key, func(v []byte) (err error) {
			u, err = record.DecodeUser(v, &pt.res)
			if err == nil && u.ID != id {
				err = fmt.Errorf("record holds user %q", u.ID)
			}
			return err
		})
	})
	pt.s.m.readSeconds.UpdateDuration(start)
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			pt.s.m.corrupt.Inc()
			return nil, ce
		}
		return nil, fmt.Errorf("state: read user of partition %d: %w", pt.p, err)
	}
	if u == nil {
		u = &core.User{ID: id}
	}
	e := &centry{u: u, size: memSize(u)}
	pt.c.m[u.ID] = e // u.ID, not id: keep no caller string alive
	pt.c.pushFront(e)
	pt.addCacheBytes(e.size, 1)
	pt.evict(e)
	return u, nil
}

// addCacheBytes accounts a change of the cache's estimated size, in the
// partition and in the Store's totals that the metrics and the budget
// share read.
func (pt *Partition) addCacheBytes(delta int64, users int64) {
	pt.c.bytes += delta
	pt.s.cacheBytes.Add(delta)
	if users != 0 {
		pt.s.cacheUsers.Add(users)
	}
}

// evict drops least recently used clean users, except keep, while the
// cache is over the partition's share of the budget.
func (pt *Partition) evict(keep *centry) {
	budget := pt.s.cacheShare.Load()
	var freed, n int64
	for pt.c.bytes-freed > budget && pt.c.lru.prev != &pt.c.lru && pt.c.lru.prev != keep {
		e := pt.c.lru.prev
		pt.c.unlink(e)
		delete(pt.c.m, e.u.ID)
		freed += e.size
		n++
	}
	if n > 0 {
		pt.evictions += uint64(n)
		pt.addCacheBytes(-freed, -n)
	}
}

// MarkDirty records that u changed in this batch: the next Commit writes it,
// with a record of every policy its requests follow that the partition has
// not stored yet. Call it after every change to a user (it is cheap);
// StagedBytes accounts the user's size (and the new policies) as of the
// last call. Dirty users are never evicted. u normally comes from User; a
// User not obtained from User replaces the cached one of its ID.
func (pt *Partition) MarkDirty(u *core.User) {
	e := pt.c.m[u.ID]
	switch {
	case e == nil:
		e = &centry{u: u, size: memSize(u)}
		pt.c.m[u.ID] = e
		pt.addCacheBytes(e.size, 1)
	case e.u != u:
		e.u = u
	}
	if !e.dirty {
		if e.prev != nil {
			pt.c.unlink(e)
		}
		e.dirty = true
		pt.dirty = append(pt.dirty, e)
	}
	est := record.EncodedSizeBound(u) + prefixLen + len(sufUser) + len(u.ID) + entryOverhead
	pt.staged += est - e.est
	e.est = est
	// An error (a policy that cannot be stored) is Commit's to report.
	_ = pt.stagePolicies(u)
}

// SetDeadline stages user's next timer deadline (Unix ns; 0 clears it). Due
// sees it at once; Commit persists it in the partition's timer index.
// The index keeps the cached user's own ID string when the user is cached
// (else userID): every shopper with a deadline stays in the index after
// its user is evicted, so the string kept must not pin anything larger.
func (pt *Partition) SetDeadline(userID string, deadline int64) {
	if e := pt.c.m[userID]; e != nil {
		userID = e.u.ID
	}
	if _, ok := pt.t.staged[userID]; !ok {
		pt.staged += prefixLen + len(sufTimer) + len(userID) + 8 + entryOverhead
	}
	pt.t.set(userID, deadline)
}

// Due appends to dst at most max of the users whose deadline is before now
// (Unix ns), ordered by (deadline, user ID), and returns it. Deadlines stay
// until changed with SetDeadline: a caller that fires a timer sets the
// user's next deadline (or 0). Staged deadlines count.
func (pt *Partition) Due(now int64, max int, dst []string) []string {
	return pt.t.due(now, max, dst)
}

// Deadline returns user's deadline (staged or committed; 0: none).
func (pt *Partition) Deadline(userID string) int64 { return pt.t.effective(userID) }

// PutTrace stages a rule trace for (user, request), stored under its own
// key with the retention TTL at Commit. data is copied.
func (pt *Partition) PutTrace(userID, requestID string, data []byte) {
	k0, v0 := len(pt.trKeys), len(pt.trVals)
	pt.trKeys = appendTraceKey(pt.trKeys, pt.p, userID, requestID)
	pt.trVals = append(pt.trVals, data...)
	pt.trSpans = append(pt.trSpans, span{k0, len(pt.trKeys), v0, len(pt.trVals)})
}

// StagedBytes estimates (from above) the transaction size of the staged
// changes plus the cursor and clock, in Badger's units. A caller cuts its
// batch before StagedBytes() + OutboxBytes(outbox) reaches
// [Store.MaxBatchBytes].
func (pt *Partition) StagedBytes() int {
	return pt.staged + len(pt.trKeys) + len(pt.trVals) + len(pt.trSpans)*entryOverhead +
		len(pt.metaKey) + record.MetaSizeMax + entryOverhead
}

// DirtyUsers returns the number of users staged for the next Commit.
func (pt *Partition) DirtyUsers() int { return len(pt.dirty) }

// Commit writes, in one Badger transaction, the dirty users, a record of
// every policy they follow that the partition has not stored yet, the
// timer changes, the traces, the cursor and clock, and outbox, which
// replaces the previous outbox (an empty one deletes it). Either all of it
// is stored or none. On success the staged set is cleared; on error it stays staged and
// Commit may be retried, except for ErrBatchTooBig (Discard and redo the
// batch smaller), ErrCursorRegress and ErrClosed. Commit copies outbox.
func (pt *Partition) Commit(cursor uint64, clock int64, outbox []OutMsg) error {
	if err := pt.commit(cursor, clock, outbox); err != nil {
		pt.s.m.commitErrors.Inc()
		return fmt.Errorf("state: commit partition %d: %w", pt.p, err)
	}
	return nil
}

func (pt *Partition) commit(cursor uint64, clock int64, outbox []OutMsg) error {
	start := time.Now()
	txn := pt.s.db.NewTransaction(true)
	defer txn.Discard()
	st, err := pt.stage(txn, cursor, clock, outbox)
	if err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return txnError(err)
	}
	pt.finish(st, cursor, clock, len(outbox))
	pt.s.m.committed(start, st.users, st.bytes)
	return nil
}

// stagedTxn is what stage wrote into a transaction, for finish.
type stagedTxn struct {
	ob           []byte // the encoded outbox (nil: none)
	users, bytes int
}

// stage writes the partition's staged batch (users, timers, traces,
// policies, cursor and clock, outbox) into txn, which the caller commits,
// alone (Commit) or with other partitions' (Store.CommitGroup). Nothing
// of the partition changes until finish.
func (pt *Partition) stage(txn *badger.Txn, cursor uint64, clock int64, outbox []OutMsg) (stagedTxn, error) {
	switch {
	case pt.released:
		return stagedTxn{}, errors.New("partition released")
	case pt.s.closed.Load():
		return stagedTxn{}, ErrClosed
	case cursor < pt.cursor:
		return stagedTxn{}, fmt.Errorf("%w: %d after %d", ErrCursorRegress, cursor, pt.cursor)
	}

	// Encode everything first: the transaction keeps references to the
	// buffers, which must not move while it is open.
	kb, vb, spans := pt.keyBuf[:0], pt.valBuf[:0], pt.spans[:0]
	for _, e := range pt.dirty {
		if err := pt.stagePolicies(e.u); err != nil {
			return stagedTxn{}, fmt.Errorf("user %q: %w", e.u.ID, err)
		}
		k0, v0 := len(kb), len(vb)
		kb = appendKey(kb, pt.p, sufUser, e.u.ID)
		vb = record.AppendUser(vb, e.u)
		spans = append(spans, span{k0, len(kb), v0, len(vb)})
	}
	nUsers := len(spans)
	for u, d := range pt.t.staged {
		k0, v0 := len(kb), len(vb)
		kb = appendKey(kb, pt.p, sufTimer, u)
		if d != 0 {
			vb = binary.BigEndian.AppendUint64(vb, uint64(d))
		}
		spans = append(spans, span{k0, len(kb), v0, len(vb)}) // empty value: delete
	}
	p0 := len(kb)
	for i := range pt.newPols {
		kb = appendPolicyKey(kb, pt.p, pt.newPols[i].k)
	}
	m0 := len(vb)
	vb = record.AppendMeta(vb, cursor, clock)
	var ob []byte
	if len(outbox) > 0 {
		ob = record.AppendOutbox(pt.nextOutbox[:0], outbox)
	}
	pt.keyBuf, pt.valBuf, pt.spans = kb, vb, spans

	expires := uint64(time.Now().Unix()) + pt.s.ttl
	n := len(spans) + len(pt.trSpans) + 2
	entries := make([]badger.Entry, 0, n)
	set := func(k, v []byte, ttl bool) error {
		entries = append(entries, badger.Entry{Key: k, Value: v})
		e := &entries[len(entries)-1]
		if ttl {
			e.ExpiresAt = expires
		}
		return txn.SetEntry(e)
	}
	var bytes int
	for i, sp := range spans {
		k, v := kb[sp.k0:sp.k1], vb[sp.v0:sp.v1]
		bytes += len(k) + len(v)
		var err error
		if i >= nUsers && len(v) == 0 {
			err = txn.Delete(k)
		} else {
			err = set(k, v, true)
		}
		if err != nil {
			return stagedTxn{}, txnError(err)
		}
	}
	for _, sp := range pt.trSpans {
		k, v := pt.trKeys[sp.k0:sp.k1], pt.trVals[sp.v0:sp.v1]
		bytes += len(k) + len(v)
		if err := set(k, v, true); err != nil {
			return stagedTxn{}, txnError(err)
		}
	}
	// Policy records never expire: a user written later may refer to them.
	for i := range pt.newPols {
		k0 := p0 + i*(prefixLen+len(sufPolicy)+2*len(record.PolicyKey{}))
		k := kb[k0 : k0+prefixLen+len(sufPolicy)+2*len(record.PolicyKey{})]
		v := pt.newPols[i].rec
		bytes += len(k) + len(v)
		if err := set(k, v, false); err != nil {
			return stagedTxn{}, txnError(err)
		}
	}
	if err := set(pt.metaKey, vb[m0:], false); err != nil {
		return stagedTxn{}, txnError(err)
	}
	var err error
	switch {
	case len(ob) > 0:
		err = set(pt.outboxKey, ob, false)
	case pt.outboxN > 0:
		err = txn.Delete(pt.outboxKey)
	}
	if err != nil {
		return stagedTxn{}, txnError(err)
	}
	bytes += len(pt.metaKey) + len(vb) - m0 + len(ob)
	return stagedTxn{ob: ob, users: nUsers, bytes: bytes}, nil
}

// finish makes a committed stage the partition's state: cursor, clock
// and outbox, the staged users clean in the cache, timers and policies
// committed, the staged buffers cleared.
func (pt *Partition) finish(st stagedTxn, cursor uint64, clock int64, outboxN int) {
	ob := st.ob
	pt.cursor, pt.clock = cursor, clock
	pt.nextOutbox, pt.outboxRec, pt.outboxN = pt.outboxRec, ob, outboxN
	if len(ob) == 0 {
		pt.outboxRec = nil
	}
	var delta int64
	for i, e := range pt.dirty {
		e.dirty, e.est = false, 0
		sz := memSize(e.u)
		delta += sz - e.size
		e.size = sz
		pt.c.pushFront(e)
		pt.dirty[i] = nil
	}
	pt.dirty = pt.dirty[:0]
	pt.addCacheBytes(delta, 0)
	pt.t.commit()
	if len(pt.newPols) > 0 {
		for i := range pt.newPols {
			sp := &pt.newPols[i]
			sp.p = pt.s.pols.intern(sp.k, sp.p)
		}
		pt.pols.add(pt.newPols)
		pt.policiesGauge.Set(float64(len(pt.pols.m)))
	}
	pt.clearStaged()
	pt.evict(nil)
	pt.flushCounters()
	pt.outboxGauge.Set(float64(pt.outboxN))
	pt.timersGauge.Set(float64(len(pt.t.committed)))
}

// txnError marks Badger's transaction-too-big as ErrBatchTooBig, the one
// commit failure the caller fixes by cutting smaller batches rather than
// retrying.
func txnError(err error) error {
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("%w: %w", ErrBatchTooBig, err)
	}
	return err
}

// clearStaged forgets the staged policy records and traces, keeping their
// buffers for the next batch.
func (pt *Partition) clearStaged() {
	clear(pt.newPols)
	pt.newPols = pt.newPols[:0]
	pt.staged = 0
	pt.trKeys, pt.trVals, pt.trSpans = pt.trKeys[:0], pt.trVals[:0], pt.trSpans[:0]
}

// flushCounters adds the batch's cache counters to the shared metrics:
// counted in plain fields per lookup and published once per batch, so the
// hot path touches no shared memory.
func (pt *Partition) flushCounters() {
	m := pt.s.m
	if pt.hits > 0 {
		m.cacheHits.AddInt64(int64(pt.hits))
	}
	if pt.misses > 0 {
		m.cacheMisses.AddInt64(int64(pt.misses))
	}
	if pt.evictions > 0 {
		m.cacheEvicted.AddInt64(int64(pt.evictions))
	}
	pt.hits, pt.misses, pt.evictions = 0, 0, 0
}

// Discard abandons the batch: it drops the staged timer changes and traces,
// and drops the dirty users from the cache, since the caller mutated them in
// place; the next User reads their committed state from Badger. Cursor,
// clock and outbox are unchanged.
func (pt *Partition) Discard() {
	var freed int64
	for i, e := range pt.dirty {
		if pt.c.m[e.u.ID] == e {
			delete(pt.c.m, e.u.ID)
		}
		freed += e.size
		pt.dirty[i] = nil
	}
	if n := int64(len(pt.dirty)); n > 0 {
		pt.addCacheBytes(-freed, -n)
	}
	pt.dirty = pt.dirty[:0]
	pt.t.discard()
	pt.clearStaged()
	pt.lastPols = [2]*core.Policy{} // they may have been staged ones
	pt.flushCounters()
}

// DiscardAll is Discard after a panic of the code that mutates users: it
// also drops every clean cached user. Discard only knows the users marked
// dirty, but a panic can come part-way through a change, before the
// mutated user was marked (core.Apply mutates in place, MarkDirty comes
// after), and such a user would otherwise stay in the cache half-changed,
// to be read by the batch's re-application and committed with the next
// change of that shopper. Which users the panicking code touched is not
// known here, so all of them go; the cache refills from Badger (one point
// read per shopper, 2-4 µs or more), a price paid only on a panic.
func (pt *Partition) DiscardAll() {
	pt.Discard()
	pt.addCacheBytes(-pt.c.bytes, -int64(len(pt.c.m)))
	pt.c = newCache()
}

// OutboxLen returns the number of messages in the stored outbox (that of
// the last commit). A worker whose outputs are all acknowledged clears a
// non-empty one, so that a restart long after does not send them again.
func (pt *Partition) OutboxLen() int { return pt.outboxN }

// Release discards staged changes, drops the cache and gives the partition
// back to the store, which can then open it again (or import or drop it).
// The Partition must not be used afterwards.
func (pt *Partition) Release() {
	if pt.released {
		return
	}
	pt.Discard()
	pt.released = true
	pt.addCacheBytes(-pt.c.bytes, -int64(len(pt.c.m)))
	pt.c = newCache()
	pt.unregisterGauges()
	pt.s.unreserve(pt.p)
}

func (pt *Partition) unregisterGauges() {
	for _, n := range pt.gaugeNames {
		pt.s.m.set.UnregisterMetric(n)
	}
}

// CacheBytes returns the estimated bytes of the partition's cached users.
func (pt *Partition) CacheBytes() int64 { return pt.c.bytes }

// CachedUsers returns the number of users in the partition's cache.
func (pt *Partition) CachedUsers() int { return len(pt.c.m) }

// Pos is an output's position in its partition's output order
// (record.Pos).
type Pos = record.Pos

// GroupCommit is one partition's part of a [Store.CommitGroup]: the
// arguments its own [Partition.Commit] would take.
type GroupCommit struct {
	Pt     *Partition
	Cursor uint64
	Clock  int64
	Outbox []OutMsg
}

// CommitGroup commits the staged batches of several partitions in one
// Badger transaction: each partition's users, timers, traces, policies,
// cursor and clock, and outbox, exactly as its own Commit would, but all
// stored or none. A runner serving a group of partitions (the pipeline)
// commits its round with it, one transaction instead of one per
// partition. On error nothing is stored and every partition keeps its
// staged batch: the caller may retry, or commit the partitions one by
// one with Commit (ErrBatchTooBig: the group was too large for one
// transaction). The partitions must be distinct and owned by s; each is
// used by the calling goroutine only, as for Commit.
func (s *Store) CommitGroup(items []GroupCommit) error {
	switch len(items) {
	case 0:
		return nil
	case 1:
		it := items[0]
		return it.Pt.Commit(it.Cursor, it.Clock, it.Outbox)
	}
	start := time.Now()
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	sts := make([]stagedTxn, len(items))
	var users, bytes int
	for i, it := range items {
		st, err := it.Pt.stage(txn, it.Cursor, it.Clock, it.Outbox)
		if err != nil {
			s.m.commitErrors.Inc()
			return fmt.Errorf("state: commit group: partition %d: %w", it.Pt.p, err)
		}
		sts[i] = st
		users += st.users
		bytes += st.bytes
	}
	if err := txn.Commit(); err != nil {
		s.m.commitErrors.Inc()
		return fmt.Errorf("state: commit group of %d partitions: %w", len(items), txnError(err))
	}
	for i, it := range items {
		it.Pt.finish(sts[i], it.Cursor, it.Clock, len(it.Outbox))
	}
	s.m.committed(start, users, bytes)
	return nil
}

// committed counts one stored transaction that began at start.
func (m *storeMetrics) committed(start time.Time, users, bytes int) {
	m.commitSeconds.UpdateDuration(start)
	m.commits.Inc()
	m.commitUsers.Add(users)
	m.commitBytes.Add(bytes)
}
