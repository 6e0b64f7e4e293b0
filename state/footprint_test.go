package state

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

// footprintEnv selects TestFootprint and its number of users, e.g.
//
//	FLASHRETURN_STATE_FOOTPRINT_USERS=1000000 go test ./state -run Footprint -v
const footprintEnv = "FLASHRETURN_STATE_FOOTPRINT_USERS"

// TestFootprint measures the process's memory and the disk bytes for N
// typical shoppers (3 orders, 1 request) spread over 16 partitions, with
// the default cache budget: it writes every user in batches of 256, then
// reads every user once (the cache fills to its budget and evicts), and
// reports RSS (anonymous and file-backed), Go heap and Badger's sizes. Run
// it alone (other tests would add to the heap).
func TestFootprint(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(footprintEnv))
	if n <= 0 {
		t.Skipf("set %s=N to measure N shoppers", footprintEnv)
	}
	const parts = 16
	dir := t.TempDir()
	s := openStore(t, Options{Dir: dir})
	pts := make([]*Partition, parts)
	for p := range pts {
		pts[p] = mustPartition(t, s, p)
	}
	start := time.Now()
	cursor := uint64(0)
	for base := 0; base < n; base += benchBatch * parts {
		cursor++
		for p, pt := range pts {
			for i := base + p*benchBatch; i < min(n, base+(p+1)*benchBatch); i++ {
				u := mustUser(t, pt, fmt.Sprintf("u%08d", i))
				*u = *recordtest.TypicalUser(i)
				pt.MarkDirty(u)
			}
			if err := pt.Commit(cursor, 0, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	wrote := time.Since(start)
	start = time.Now()
	for base := 0; base < n; base += benchBatch * parts {
		for p, pt := range pts {
			for i := base + p*benchBatch; i < min(n, base+(p+1)*benchBatch); i++ {
				mustUser(t, pt, fmt.Sprintf("u%08d", i))
			}
		}
	}
	read := time.Since(start)
	var cached int
	var cacheBytes int64
	for _, pt := range pts {
		cached += pt.CachedUsers()
		cacheBytes += pt.CacheBytes()
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := procStatus(t)
	lsm, vlog := s.db.Size()
	var disk int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil && strings.HasSuffix(d.Name(), ".sst") {
				disk += fi.Size()
			}
		}
		return nil
	})
	t.Logf("%d users: write %v (%.0f users/s), read all %v", n, wrote.Round(time.Millisecond), float64(n)/wrote.Seconds(), read.Round(time.Millisecond))
	t.Logf("cache: %d users, %d MiB estimated (budget %d MiB)", cached, cacheBytes>>20, s.opts.CacheBytes>>20)
	t.Logf("RSS %d MiB (anon %d, file %d, peak %d); Go heap in use %d MiB, heap sys %d MiB, GC goal %d MiB",
		st["VmRSS"]>>10, st["RssAnon"]>>10, st["RssFile"]>>10, st["VmHWM"]>>10,
		ms.HeapInuse>>20, ms.HeapSys>>20, ms.NextGC>>20)
	if path := os.Getenv(footprintEnv + "_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	debug.FreeOSMemory()
	st2 := procStatus(t)
	t.Logf("after debug.FreeOSMemory: RSS %d MiB (anon %d, file %d)", st2["VmRSS"]>>10, st2["RssAnon"]>>10, st2["RssFile"]>>10)
	for _, pt := range pts {
		pt.Release()
	}
	runtime.GC()
	heapWith := ms.HeapAlloc
	runtime.ReadMemStats(&ms)
	t.Logf("releasing the caches frees %d MiB of heap (%d B/user, estimate %d B/user)",
		(heapWith-ms.HeapAlloc)>>20, int64(heapWith-ms.HeapAlloc)/int64(max(cached, 1)), cacheBytes/int64(max(cached, 1)))
	t.Logf("disk: sst %d MiB = %d B/user (Badger lsm %d MiB, vlog %d MiB)", disk>>20, disk/int64(n), lsm>>20, vlog>>20)
}

// procStatus returns the kB fields of /proc/self/status.
func procStatus(t *testing.T) map[string]int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		if fs := strings.Fields(v); len(fs) == 2 && fs[1] == "kB" {
			out[k], _ = strconv.ParseInt(fs[0], 10, 64)
		}
	}
	return out
}
