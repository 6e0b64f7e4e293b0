package wire

import (
	"reflect"
	"runtime"
	"strings"
	"sync"

	"github.com/bytedance/sonic"
	"github.com/bytedance/sonic/decoder"
)

// FastPath reports whether Decode runs on sonic's JIT decoder rather than a
// fallback. sonic picks its implementation by build constraints: on
// amd64 (and arm64 from Go 1.20) with Go older than 1.28 it is native
// (sonic.APIKind == sonic.UseSonicJSON, file sonic.go), elsewhere it
// silently wraps encoding/json (compat.go); with SONIC_USE_OPTDEC=1 it
// uses its non-JIT "optdec" decoder instead of "jitdec". FastPath checks
// both: APIKind must be UseSonicJSON, and a probe decoded with Decode's
// options must reach a json.Unmarshaler through
// github.com/bytedance/sonic/internal/decoder/jitdec (the code that calls
// into JIT-compiled decoders) and not through encoding/json.
//
// The first call runs the probe and compiles the event decoder ahead of
// the first message (the daemon calls it once at start-up and logs it);
// later calls return the cached answer. It is safe for concurrent use.
func FastPath() bool { return fastPath().ok }

type probeResult struct {
	apiKind int
	jit     bool // a jitdec frame was on the stack
	std     bool // an encoding/json frame was on the stack
	frames  []string
	ok      bool
}

var fastPath = sync.OnceValue(func() probeResult {
	var p struct {
		P sonicProbe `json:"p"`
	}
	var d decoder.Decoder
	d.Reset(`{"p":0}`)
	d.SetOptions(decodeOpts)
	err := d.Decode(&p)
	r := probeResult{apiKind: sonic.APIKind, jit: p.P.jit, std: p.P.std, frames: p.P.frames}
	r.ok = err == nil && r.apiKind == sonic.UseSonicJSON && r.jit && !r.std
	// Compile the event decoder now rather than on the first message.
	_ = sonic.Pretouch(reflect.TypeFor[rawEvent]())
	return r
})

// sonicProbe records who called its UnmarshalJSON.
type sonicProbe struct {
	jit, std bool
	frames   []string
}

const jitdecPkg = "github.com/bytedance/sonic/internal/decoder/jitdec."

// UnmarshalJSON implements json.Unmarshaler.
func (p *sonicProbe) UnmarshalJSON([]byte) error {
	var pcs [64]uintptr
	n := runtime.Callers(2, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		p.frames = append(p.frames, f.Function)
		switch {
		case strings.HasPrefix(f.Function, jitdecPkg):
			p.jit = true
		case strings.HasPrefix(f.Function, "encoding/json."):
			p.std = true
		}
		if !more {
			break
		}
	}
	return nil
}
