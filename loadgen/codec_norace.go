//go:build !race

package loadgen

import "github.com/bytedance/sonic"

// api is the JSON codec: sonic, as everywhere in flashreturn.
var api = sonic.ConfigDefault
