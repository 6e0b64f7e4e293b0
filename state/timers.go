package state

// timerItem is one (deadline, user) pair in the heap.
type timerItem struct {
	d int64
	u string
}

// less orders the heap by deadline, then user ID: ties must break the same
// way on every run, because the worker fires due users in this order and
// a replay must emit the same effects in the same order.
func (a timerItem) less(b timerItem) bool { return a.d < b.d || a.d == b.d && a.u < b.u }

// timers is a partition's timer index: the committed deadlines, the staged
// changes of the current batch, and a min-heap over (deadline, user) with
// lazy deletion: an item is live only while it equals the user's effective
// deadline (staged if any, else committed).
type timers struct {
	committed map[string]int64
	staged    map[string]int64 // 0 = cleared in this batch
	h         []timerItem
	keep      []timerItem // scratch for due
}

// newTimers returns an empty index; loadPartition fills committed from the
// partition's timer keys before the heap is built.
func newTimers() *timers {
	return &timers{committed: make(map[string]int64), staged: make(map[string]int64)}
}

// effective is u's deadline as the current batch sees it: a staged change
// (0 meaning cleared) shadows the committed one, so a heap item that no
// longer equals it is stale and is skipped rather than searched for and
// removed (lazy deletion keeps set O(log n)).
func (t *timers) effective(u string) int64 {
	if d, ok := t.staged[u]; ok {
		return d
	}
	return t.committed[u]
}

// set stages deadline d (0 clears) for user u.
func (t *timers) set(u string, d int64) {
	t.staged[u] = d
	if d != 0 {
		t.push(timerItem{d, u})
	}
	t.maybeCompact()
}

// due appends, in (deadline, user) order, at most max of the users whose
// effective deadline is below now.
func (t *timers) due(now int64, max int, dst []string) []string {
	keep := t.keep[:0]
	for len(t.h) > 0 && t.h[0].d < now && len(keep) < max {
		it := t.pop()
		if t.effective(it.u) != it.d {
			continue // stale
		}
		if n := len(keep); n > 0 && keep[n-1] == it {
			continue // duplicate of a live item
		}
		keep = append(keep, it)
		dst = append(dst, it.u)
	}
	for _, it := range keep {
		t.push(it)
	}
	clear(keep)
	t.keep = keep[:0]
	return dst
}

// commit makes the staged changes committed.
func (t *timers) commit() {
	for u, d := range t.staged {
		if d == 0 {
			delete(t.committed, u)
		} else {
			t.committed[u] = d
		}
	}
	clear(t.staged)
}

// discard drops the staged changes. Heap items of committed deadlines that
// due dropped as stale while a staged value hid them are pushed again.
func (t *timers) discard() {
	for u := range t.staged {
		if d, ok := t.committed[u]; ok {
			t.push(timerItem{d, u})
		}
	}
	clear(t.staged)
	t.maybeCompact()
}

// maybeCompact rebuilds the heap from the effective deadlines when stale
// items outnumber live ones.
func (t *timers) maybeCompact() {
	live := len(t.committed) + len(t.staged)
	if len(t.h) < 2*live+1024 {
		return
	}
	h := t.h[:0]
	for u, d := range t.committed {
		if _, ok := t.staged[u]; !ok {
			h = append(h, timerItem{d, u})
		}
	}
	for u, d := range t.staged {
		if d != 0 {
			h = append(h, timerItem{d, u})
		}
	}
	clear(t.h[len(h):])
	t.h = h
	for i := len(h)/2 - 1; i >= 0; i-- {
		t.down(i)
	}
}

// len returns the number of users with an effective deadline.
func (t *timers) len() int {
	n := len(t.committed)
	for u, d := range t.staged {
		_, had := t.committed[u]
		switch {
		case d == 0 && had:
			n--
		case d != 0 && !had:
			n++
		}
	}
	return n
}

// push adds an item and sifts it up. Hand-written rather than
// container/heap, whose Push takes an interface: boxing a timerItem would
// cost an allocation per push on the worker's hot path.
func (t *timers) push(it timerItem) {
	t.h = append(t.h, it)
	i := len(t.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !t.h[i].less(t.h[p]) {
			break
		}
		t.h[i], t.h[p] = t.h[p], t.h[i]
		i = p
	}
}

// pop removes the earliest item; the vacated slot is zeroed so that the
// heap's spare capacity does not pin user ID strings.
func (t *timers) pop() timerItem {
	it := t.h[0]
	n := len(t.h) - 1
	t.h[0] = t.h[n]
	t.h[n] = timerItem{}
	t.h = t.h[:n]
	if n > 0 {
		t.down(0)
	}
	return it
}

// down sifts the item at i down to restore the heap order.
func (t *timers) down(i int) {
	n := len(t.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.h[r].less(t.h[l]) {
			m = r
		}
		if !t.h[m].less(t.h[i]) {
			return
		}
		t.h[i], t.h[m] = t.h[m], t.h[i]
		i = m
	}
}
