package world

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/flashreturn/flashreturn/loadgen/contract"
)

// The codec (sonic, or encoding/json under -race) writes the same bytes as
// encoding/json for every shape loadgen sends, so race-enabled tests see
// the payloads a normal build sends.
func TestCodecMatchesEncodingJSON(t *testing.T) {
	g, evs, payloads := genEvents(t, Options{Seed: 8, RunID: "c", Shoppers: 500, Merchants: 20}, 3000, 3000)
	for i, e := range evs {
		if e.Bad >= 0 {
			continue
		}
		var v map[string]any
		if err := json.Unmarshal(payloads[i], &v); err != nil {
			t.Fatalf("seed 8: event %d: %v: %s", i, err, payloads[i])
		}
	}
	for i := range g.Merchants {
		_, _, b, err := g.MerchantEvent(int32(i), fixedAt)
		if err != nil {
			t.Fatal(err)
		}
		m := g.Merchants[i]
		want, _ := json.Marshal(contract.MerchantUpdated{EventID: "p" + g.opts.RunID + "-" + itoa(i), Type: contract.TypeMerchantUpdated, At: formatAt(fixedAt),
			MerchantID: g.MerchantID(int32(i)), ReturnAddresses: m.ReturnAddresses, ShipAddresses: m.ShipAddresses, Rules: m.Rules})
		if !bytes.Equal(b, want) {
			t.Fatalf("seed 8: merchant %d:\n got %s\nwant %s", i, b, want)
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
