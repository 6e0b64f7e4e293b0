package replay

import (
	"log/slog"
	"testing"
	"time"

	"github.com/bytedance/sonic"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/apply"
)

var benchRequest = []byte(`{"event_id":"e-000123","type":"return.requested","at":"2026-11-12T10:00:00.250+08:00","user_id":"u42","request_id":"r7","order_id":"o3","kind":"return_refund","reason":"no_reason","pickup":true}`)

// BenchmarkDecodeDecideEncode is one return.requested through the whole
// hot path of a worker minus IO: decode (sonic + validation), step (clock,
// apply with a warm shopper), and encoding every effect for publishing.
func BenchmarkDecodeDecideEncode(b *testing.B) {
	pol, _ := core.Preset("tmall-fast-return")
	loc, _ := time.LoadLocation("Asia/Shanghai")
	m := &core.Merchant{ID: "m1", ReturnAddresses: []string{"addr"}, ShipAddresses: []string{"addr"}}
	env := &core.Env{Policy: pol, Loc: loc, Merchant: func(string) *core.Merchant { return m }}
	mem := newMemStore()
	var out []byte
	now := time.Now()
	s := apply.Stepper{St: mem, Log: slog.New(slog.DiscardHandler)}
	s.Emit = func(e *core.Effect, env *core.Env) { out = wire.AppendEffect(out[:0], e, env.Loc, now) }
	at := time.Date(2026, 11, 11, 15, 0, 0, 0, loc).UnixNano()
	warm := func() *core.User {
		u := &core.User{ID: "u42", Stars: 4, MaxAt: at}
		for _, id := range []string{"o1", "o2", "o3"} {
			u.Orders = append(u.Orders, core.Order{ID: id, MerchantID: "m1", Category: "apparel", Size: core.SizeSmall, PaidFen: 12900, SevenDay: true, PaidAt: at - int64(24*time.Hour), ShippedAt: at - int64(12*time.Hour), DeliveredAt: at})
		}
		return u
	}
	var ev core.Event
	b.ReportAllocs()
	for b.Loop() {
		mem.users["u42"] = warm()
		ev = core.Event{}
		if err := wire.Decode("return", "u42", benchRequest, &ev); err != nil {
			b.Fatal(err)
		}
		if err := s.Step(&ev, env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBareSonicDecode is the baseline: a plain sonic decode of the
// same bytes into a struct, no validation, no decision.
func BenchmarkBareSonicDecode(b *testing.B) {
	var v struct {
		EventID   string `json:"event_id"`
		Type      string `json:"type"`
		At        string `json:"at"`
		UserID    string `json:"user_id"`
		RequestID string `json:"request_id"`
		OrderID   string `json:"order_id"`
		Kind      string `json:"kind"`
		Reason    string `json:"reason"`
		Pickup    bool   `json:"pickup"`
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := sonic.Unmarshal(benchRequest, &v); err != nil {
			b.Fatal(err)
		}
	}
}
