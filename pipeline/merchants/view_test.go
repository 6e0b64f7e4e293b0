package merchants

import (
	"log/slog"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
)

// TestMerchantViewKeepsWhatTheStreamKeeps: after more updates than
// FR_MERCHANT keeps per merchant, the live view knows exactly the
// versions a restart would read back from the stream, no older one; a
// request stored before the oldest kept version is decided alike live and
// after a restart (merchant_unknown in both).
func TestMerchantViewKeepsWhatTheStreamKeeps(t *testing.T) {
	v := New(slog.New(slog.DiscardHandler), metrics.NewSet())
	n := wire.MerchantHistory + 3
	for i := 1; i <= n; i++ {
		v.put(&core.Merchant{ID: "m1", Revision: uint64(i)}, int64(i)*100)
	}
	if m := v.LookupAt("m1", 3*100); m != nil {
		t.Fatalf("revision %d still known, older than the stream's %d kept versions", m.Revision, wire.MerchantHistory)
	}
	oldest := n - wire.MerchantHistory + 1
	if m := v.LookupAt("m1", int64(oldest)*100); m == nil || m.Revision != uint64(oldest) {
		t.Fatalf("oldest kept version: %+v, want revision %d", m, oldest)
	}
	if m := v.Lookup("m1"); m == nil || m.Revision != uint64(n) {
		t.Fatalf("latest: %+v, want revision %d", m, n)
	}
}
