package wire

import (
	"runtime"
	"strings"
	"testing"

	"github.com/bytedance/sonic"
)

// TestSonicFastPath fails when Decode does not run on sonic's JIT decoder:
// on a platform or Go version where sonic falls back to encoding/json
// (sonic.APIKind == UseStdJSON), or with SONIC_USE_OPTDEC=1 (no JIT).
func TestSonicFastPath(t *testing.T) {
	r := fastPath()
	t.Logf("%s/%s %s: sonic.APIKind=%d jitdec=%v encoding/json=%v", runtime.GOOS, runtime.GOARCH, runtime.Version(), r.apiKind, r.jit, r.std)
	t.Logf("probe stack:\n  %s", strings.Join(r.frames, "\n  "))
	if sonic.APIKind != sonic.UseSonicJSON {
		t.Fatalf("sonic.APIKind = %d: sonic fell back to encoding/json on %s/%s %s (its build constraints exclude this platform or Go version)",
			sonic.APIKind, runtime.GOOS, runtime.GOARCH, runtime.Version())
	}
	if !r.jit || r.std {
		t.Fatalf("a value decoded with Decode's options did not go through sonic's JIT decoder (jitdec=%v, encoding/json=%v); is SONIC_USE_OPTDEC set?", r.jit, r.std)
	}
	if !FastPath() {
		t.Fatal("FastPath() = false")
	}
}
