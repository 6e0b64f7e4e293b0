package state

import (
	"unsafe"

	"github.com/flashreturn/flashreturn/internal/core"
)

// centry is one cached user. Clean entries are on the LRU list; dirty ones
// (changed since the last commit) are off it, so eviction never sees them.
type centry struct {
	u          *core.User
	size       int64 // estimated memory, as accounted in cache.bytes
	est        int   // staged-bytes estimate while dirty
	dirty      bool
	prev, next *centry
}

// cache is a partition's write-back user cache: a map plus an intrusive LRU
// list of the clean entries. Owned by the partition's goroutine.
type cache struct {
	m     map[string]*centry
	lru   centry // sentinel: lru.next is the most recently used
	bytes int64  // estimated bytes of every entry, clean or dirty
}

// newCache returns an empty cache whose LRU list is the sentinel alone
// (a circular list: no nil checks on insert or unlink).
func newCache() *cache {
	c := &cache{m: make(map[string]*centry)}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	return c
}

// pushFront inserts a clean entry as the most recently used.
func (c *cache) pushFront(e *centry) {
	e.prev, e.next = &c.lru, c.lru.next
	e.next.prev = e
	c.lru.next = e
}

// unlink takes an entry out of the LRU list (it became dirty, or is
// evicted); dirty entries are never on the list, which is what keeps
// eviction from dropping uncommitted changes.
func (c *cache) unlink(e *centry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// touch moves a clean entry to the front.
func (c *cache) touch(e *centry) {
	if e.dirty || c.lru.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = &c.lru, c.lru.next
	e.next.prev = e
	c.lru.next = e
}

// Sizes used by the memory estimate of a cached user.
const (
	userStructBytes    = int64(unsafe.Sizeof(core.User{}))
	orderStructBytes   = int64(unsafe.Sizeof(core.Order{}))
	requestStructBytes = int64(unsafe.Sizeof(core.Request{}))
	// entryBytes: the centry, plus a Go map slot (key string header, value
	// pointer, control byte) with load-factor and tombstone slack.
	entryBytes = int64(unsafe.Sizeof(centry{})) + 48
	// stringBytes is added per string: a decoded user's strings share one
	// allocation holding the whole record, varints included.
	stringBytes = 8
)

// sizeClasses are the Go allocator's small size classes
// (internal/runtime/gc/sizeclasses.go).
var sizeClasses = [...]int64{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224,
	240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408,
	1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192,
	9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264,
	28672, 32768}

// allocBytes returns what the allocator hands out for an n-byte object.
func allocBytes(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if n > sizeClasses[len(sizeClasses)-1] {
		return (n + 8191) &^ 8191
	}
	lo, hi := 0, len(sizeClasses)-1
	for lo < hi {
		m := (lo + hi) / 2
		if sizeClasses[m] < n {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return sizeClasses[lo]
}

// memSize estimates the heap a cached user holds: structs and slice backing
// arrays (by capacity) rounded to the allocator's size classes, string
// bytes (review notes included), and the cache entry. Policies are shared
// by every user of a version (see the partition's policy table), so a
// request's policy costs only its pointer, counted in the Request struct.
// The spare room of the string slab core keeps for a user it changed is
// not visible here (see the package doc). TestMemSizeEstimate checks the
// estimate against the heap that cached users really hold.
func memSize(u *core.User) int64 {
	n := entryBytes + allocBytes(userStructBytes) +
		allocBytes(int64(cap(u.Orders))*orderStructBytes) + allocBytes(int64(cap(u.Requests))*requestStructBytes) +
		allocBytes(8*int64(cap(u.RecentRequests))) + allocBytes(8*int64(cap(u.TrustMarks)))
	// The ID has its own allocation (record.DecodeUser); its varint is
	// in the record's.
	n += allocBytes(int64(len(u.ID)))
	strs := int64(stringBytes)
	forgotten := func(ids []string) { // a slice of string headers, IDs in the record
		if len(ids) > 0 {
			n += allocBytes(int64(cap(ids)) * int64(unsafe.Sizeof("")))
			for _, id := range ids {
				strs += int64(len(id)) + stringBytes
			}
		}
	}
	forgotten(u.Forgotten)
	for i := range u.Orders {
		o := &u.Orders[i]
		strs += int64(len(o.ID)+len(o.MerchantID)+len(o.Category)+len(o.City)) + 4*stringBytes
		forgotten(o.Forgotten)
	}
	for i := range u.Requests {
		r := &u.Requests[i]
		strs += int64(len(r.ID)+len(r.OrderID)+len(r.MerchantRule)+len(r.Note)) + 4*stringBytes
	}
	return n + allocBytes(strs)
}
