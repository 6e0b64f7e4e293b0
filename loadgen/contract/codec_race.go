//go:build race

package contract

import "encoding/json"

// api is the JSON codec. Under the race detector sonic costs ~90 µs per
// small message (30x encoding/json), which would make the race-enabled
// tests measure the codec instead of the scheduling; the standard
// library gives the same bytes for loadgen's structs (no maps, no HTML
// characters), so race builds use it.
var api = stdCodec{}

type stdCodec struct{}

func (stdCodec) Marshal(v any) ([]byte, error)   { return json.Marshal(v) }
func (stdCodec) Unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
