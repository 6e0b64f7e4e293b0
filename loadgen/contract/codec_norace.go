//go:build !race

package contract

import "github.com/bytedance/sonic"

// api is the JSON codec: sonic, as everywhere in flashreturn.
var api = sonic.ConfigDefault
