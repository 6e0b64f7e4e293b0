package apply

import (
	"strings"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
)

// TestVersionAt: the version in force at a time is the latest stored at
// or before it; before the first, there is none.
func TestVersionAt(t *testing.T) {
	v1, v2 := &core.Merchant{ID: "m", Revision: 1}, &core.Merchant{ID: "m", Revision: 2}
	vs := []MerchantVersion{{At: 10, M: v1}, {At: 20, M: v2}}
	for at, want := range map[int64]*core.Merchant{5: nil, 10: v1, 15: v1, 20: v2, 99: v2} {
		if got := VersionAt(vs, at); got != want {
			t.Errorf("VersionAt(%d) = %v, want %v", at, got, want)
		}
	}
	if VersionAt(nil, 10) != nil {
		t.Error("a merchant without versions has a profile")
	}
}

// TestFutureTime: an event is refused only when its at is more than
// maxFuture after its stored time; a non-positive bound turns it off.
func TestFutureTime(t *testing.T) {
	stored := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC).UnixNano()
	ev := func(ahead time.Duration) *core.Event {
		at := stored + int64(ahead)
		return &core.Event{At: at, AtRaw: time.Unix(0, at).UTC().Format(time.RFC3339)}
	}
	if s := FutureTime(ev(5*time.Minute), stored, 5*time.Minute); s != "" {
		t.Errorf("exactly at the bound refused: %s", s)
	}
	if s := FutureTime(ev(6*time.Minute), stored, 5*time.Minute); !strings.Contains(s, "more than the allowed 5m0s") {
		t.Errorf("6 min ahead: %q", s)
	}
	if s := FutureTime(ev(time.Hour), stored, -1); s != "" {
		t.Errorf("check off, still refused: %s", s)
	}
}
