package state

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashreturn/flashreturn/internal/core"
)

// openStore opens a store in a fresh temp dir, closed at cleanup.
func openStore(t testing.TB, o Options) *Store {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustPartition(t testing.TB, s *Store, p int) *Partition {
	t.Helper()
	pt, err := s.Partition(p)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

func mustUser(t testing.TB, pt *Partition, id string) *core.User {
	t.Helper()
	u, err := pt.User(id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// metricValue returns the value of the sample called name (with labels,
// if any) in set's Prometheus output, and whether it is there.
func metricValue(set *metrics.Set, name string) (float64, bool) {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
