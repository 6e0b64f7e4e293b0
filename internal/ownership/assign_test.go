package ownership

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the randomized tests (0: from the clock, printed)")

// testSeed returns the seed of a randomized test and logs it, so that a
// failure can be replayed with -seed.
func testSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: go test -run '%s$' ./internal/ownership/ -seed %d)", seed, t.Name(), seed)
	return seed
}

func testMembers(n int) []string {
	m := make([]string, n)
	for i := range m {
		m[i] = fmt.Sprintf("daemon-%d", i)
	}
	slices.Sort(m)
	return m
}

func loads(a []string) map[string]int {
	l := map[string]int{}
	for _, m := range a {
		l[m]++
	}
	return l
}

func TestAssignBalanced(t *testing.T) {
	for _, parts := range []int{1, 7, 8, 64, 256} {
		for n := 1; n <= 10; n++ {
			ms := testMembers(n)
			a := Assign(ms, parts)
			l := loads(a)
			lo, hi := parts, 0
			for _, m := range ms {
				lo, hi = min(lo, l[m]), max(hi, l[m])
			}
			if l[""] != 0 || hi-lo > 1 {
				t.Fatalf("P=%d N=%d: loads %v", parts, n, l)
			}
			if b := Assign(slices.Clone(ms), parts); !slices.Equal(a, b) {
				t.Fatalf("P=%d N=%d: not deterministic", parts, n)
			}
		}
	}
	if a := Assign(nil, 4); !slices.Equal(a, []string{"", "", "", ""}) {
		t.Fatalf("no members: %v", a)
	}
}

// TestAssignSticky measures how many partitions a membership change moves
// against the minimum (the partitions that must move to keep balance).
// Contiguous ranges over the sorted members (orbit.go's balanced mapping)
// are shown for comparison.
func TestAssignSticky(t *testing.T) {
	ranges := func(ms []string, parts int) []string {
		out := make([]string, parts)
		n := len(ms)
		per := parts / n
		for i := range parts {
			if i < n*per {
				out[i] = ms[(i/per)%n]
			} else {
				out[i] = ms[(i-n*per)%n]
			}
		}
		return out
	}
	moved := func(a, b []string) int {
		n := 0
		for i := range a {
			if a[i] != b[i] {
				n++
			}
		}
		return n
	}
	const parts = 64
	var hrwTotal, rangeTotal, minTotal int
	for n := 1; n < 8; n++ {
		from := testMembers(n + 1)
		for drop := range from {
			// Remove one member, then add it back: both directions.
			to := slices.Delete(slices.Clone(from), drop, drop+1)
			a, b := Assign(from, parts), Assign(to, parts)
			m := moved(a, b)
			need := loads(a)[from[drop]] // its partitions must move, no others need to
			if m > 2*need+2 {
				t.Errorf("N %d->%d: moved %d, minimum %d", n+1, n, m, need)
			}
			hrwTotal += m
			rangeTotal += moved(ranges(from, parts), ranges(to, parts))
			minTotal += need
		}
	}
	t.Logf("P=%d, every single-member removal for N=2..8: moved %d partitions in total (minimum %d); contiguous ranges: %d", parts, hrwTotal, minTotal, rangeTotal)
	if hrwTotal >= rangeTotal {
		t.Errorf("bounded HRW moved %d, ranges %d", hrwTotal, rangeTotal)
	}
}

// naiveAssign is Assign's definition run literally: P times, take the
// highest-scored (partition, member) pair among the partitions not yet
// assigned and the members with room (ties: lower partition, then lower
// member). Quadratic; the model TestAssignQuick checks Assign against.
func naiveAssign(members []string, parts int) []string {
	out := make([]string, parts)
	n := len(members)
	if n == 0 {
		return out
	}
	base, extra := parts/n, parts%n
	load := map[string]int{}
	big := 0
	room := func(m string) bool { return load[m] < base || (load[m] == base && big < extra) }
	for range parts {
		bp, bm, bs := -1, "", uint64(0)
		for p := range parts {
			if out[p] != "" {
				continue
			}
			for _, m := range members {
				if !room(m) {
					continue
				}
				s := score(fnv64(m), p)
				if bp < 0 || s > bs || s == bs && (p < bp || p == bp && m < bm) {
					bp, bm, bs = p, m, s
				}
			}
		}
		if load[bm] == base {
			big++
		}
		load[bm]++
		out[bp] = bm
	}
	return out
}

// TestAssignQuick checks Assign against naiveAssign on random member
// sets and partition counts (etcd raft's quorum/quick_test.go pattern),
// and the properties every caller relies on.
func TestAssignQuick(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 1))
	for i := range 300 {
		n := rng.IntN(7)
		set := map[string]bool{}
		for len(set) < n {
			set[fmt.Sprintf("m%d-%x", rng.IntN(50), rng.IntN(4))] = true
		}
		var ms []string
		for m := range set {
			ms = append(ms, m)
		}
		slices.Sort(ms)
		parts := 1 + rng.IntN(40)
		got, want := Assign(ms, parts), naiveAssign(ms, parts)
		if !slices.Equal(got, want) {
			t.Fatalf("case %d: P=%d members %v:\n got %v\nwant %v", i, parts, ms, got, want)
		}
		if n == 0 {
			continue
		}
		l := loads(got)
		lo, hi := parts, 0
		for _, m := range ms {
			lo, hi = min(lo, l[m]), max(hi, l[m])
		}
		if l[""] != 0 || hi-lo > 1 {
			t.Fatalf("case %d: P=%d members %v: loads %v", i, parts, ms, l)
		}
	}
}

func TestSnapshotName(t *testing.T) {
	n := SnapshotName(12, 3, 4567)
	if n != "p12-e3-c4567" {
		t.Fatal(n)
	}
	if p, ok := SnapshotPartition(n); !ok || p != 12 {
		t.Fatal(p, ok)
	}
	for _, bad := range []string{"", "x1-e", "p-1", "pq-e1"} {
		if _, ok := SnapshotPartition(bad); ok {
			t.Fatalf("%q parsed", bad)
		}
	}
}
