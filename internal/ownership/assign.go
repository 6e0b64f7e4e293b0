package ownership

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Assign returns the target owner of each of parts partitions among the
// sorted, distinct members: rendezvous (highest random weight) hashing
// with bounded loads. Every (partition, member) pair gets a hash score;
// pairs are taken from the highest score down, a partition going to the
// first member that still has room, where room is parts/n for every
// member plus one for the first parts%n members to fill up.
//
// So loads differ by at most one, the result depends only on the member
// set (every daemon computes the same), and a membership change moves
// about the partitions it must: a partition stays with its top-scored
// member unless that member is full. Removing one member from 2..8
// members (P=64) moves 550 partitions in total where 448 must move,
// against 953 for contiguous ranges over the sorted members
// (TestAssignSticky). With no members every entry is "".
func Assign(members []string, parts int) []string {
	out := make([]string, parts)
	n := len(members)
	if n == 0 {
		return out
	}
	base, extra := parts/n, parts%n
	type pair struct {
		score uint64
		p, m  int
	}
	pairs := make([]pair, 0, parts*n)
	hs := make([]uint64, n)
	for m, id := range members {
		hs[m] = fnv64(id)
	}
	for p := range parts {
		for m := range members {
			pairs = append(pairs, pair{score(hs[m], p), p, m})
		}
	}
	// Ties (astronomically rare) are broken by partition, then member, so
	// that the order, and with it the result, never depends on the sort.
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if c := cmp.Compare(a.p, b.p); c != 0 {
			return c
		}
		return cmp.Compare(members[a.m], members[b.m])
	})
	load := make([]int, n)
	big, left := 0, parts
	for _, pr := range pairs {
		if out[pr.p] != "" {
			continue
		}
		l := load[pr.m]
		// Room: base for everyone, base+1 for the first extra members to
		// reach base (big counts them).
		if l < base || (l == base && big < extra) {
			if l == base {
				big++
			}
			load[pr.m]++
			out[pr.p] = members[pr.m]
			if left--; left == 0 {
				break
			}
		}
	}
	return out
}

// score is the rendezvous weight of member hash h for partition p. The
// golden-ratio multiplier spreads consecutive partitions over the whole
// 64-bit space before mixing.
func score(h uint64, p int) uint64 {
	return mix64(h ^ (uint64(p)+1)*0x9e3779b97f4a7c15)
}

// fnv64 is FNV-1a over the member ID: stable across processes and
// versions (unlike hash/maphash), so every daemon scores alike.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is splitmix64's finaliser: FNV alone leaves the low bits of
// similar IDs ("a-1", "a-2") correlated.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// SnapshotName is the object in FR_SNAPSHOTS holding partition p's state
// as exported by the owner of epoch at (at least) cursor:
// p<p>-e<epoch>-c<cursor>. Names never repeat for one partition (an
// epoch's owner exports each cursor at most once), so an upload never
// overwrites a snapshot that a record may point at.
func SnapshotName(p int, epoch, cursor uint64) string {
	return "p" + strconv.Itoa(p) + "-e" + strconv.FormatUint(epoch, 10) + "-c" + strconv.FormatUint(cursor, 10)
}

// SnapshotPartition parses the partition out of a snapshot object name
// (see [SnapshotName]); ok is false for any other name.
func SnapshotPartition(name string) (p int, ok bool) {
	rest, ok := strings.CutPrefix(name, "p")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	p, err := strconv.Atoi(num)
	return p, err == nil
}
