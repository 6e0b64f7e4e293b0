package wire

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/bytedance/sonic"

	"github.com/flashreturn/flashreturn/internal/core"
)

var benchReturnRequested = []byte(`{"type":"return.requested","event_id":"e-20261111-000123","at":"2026-11-11T00:00:03.250+08:00","user_id":"u-000042","request_id":"r-000077","order_id":"o-000099","kind":"return_refund","reason":"no_reason","pickup":true,"amount_fen":12900}`)

// bareReturnRequested is what a plain sonic decode of the same payload
// fills: no presence tracking, no validation.
type bareReturnRequested struct {
	Type      string `json:"type"`
	EventID   string `json:"event_id"`
	At        string `json:"at"`
	UserID    string `json:"user_id"`
	RequestID string `json:"request_id"`
	OrderID   string `json:"order_id"`
	Kind      string `json:"kind"`
	Reason    string `json:"reason"`
	Pickup    bool   `json:"pickup"`
	AmountFen int64  `json:"amount_fen"`
}

func BenchmarkDecodeReturnRequested(b *testing.B) {
	var ev core.Event
	b.SetBytes(int64(len(benchReturnRequested)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(KindReturn, "u-000042", benchReturnRequested, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSonicBareDecode is the baseline: sonic.Unmarshal of the same
// bytes into a plain struct.
func BenchmarkSonicBareDecode(b *testing.B) {
	var v bareReturnRequested
	b.SetBytes(int64(len(benchReturnRequested)))
	b.ReportAllocs()
	for b.Loop() {
		if err := sonic.Unmarshal(benchReturnRequested, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStdBareDecode is encoding/json on the same bytes, for scale.
func BenchmarkStdBareDecode(b *testing.B) {
	var v bareReturnRequested
	b.SetBytes(int64(len(benchReturnRequested)))
	b.ReportAllocs()
	for b.Loop() {
		if err := json.Unmarshal(benchReturnRequested, &v); err != nil {
			b.Fatal(err)
		}
	}
}

var (
	benchPolicy   = &core.Policy{Name: "tmall-fast-return", Version: "9f2c1e0b7a4d3c58"}
	benchShanghai = time.FixedZone("CST", 8*3600)
	benchDecision = core.Effect{
		Kind: core.EffectDecision, UserID: "u-000042", RequestID: "r-000077", OrderID: "o-000099",
		Verdict: core.VerdictReview, Reasons: core.CodeSet(0).With(core.CodeCreditLow).With(core.CodeOutsideWindow),
		RequestAt: "2026-11-11T00:00:03.250+08:00", MerchantRevision: 17, Policy: benchPolicy,
	}
	benchDecidedAt = time.Date(2026, 11, 10, 16, 0, 3, 251e6, time.UTC)
)

func BenchmarkAppendDecision(b *testing.B) {
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEffect(buf[:0], &benchDecision, benchShanghai, benchDecidedAt)
	}
	b.SetBytes(int64(len(buf)))
}

// decisionJSON mirrors the decision shape for BenchmarkSonicMarshalDecision.
type decisionJSON struct {
	RequestID string   `json:"request_id"`
	OrderID   string   `json:"order_id"`
	UserID    string   `json:"user_id"`
	Decision  string   `json:"decision"`
	Reasons   []string `json:"reasons"`
	Policy    struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"policy"`
	ReturnAddress    string `json:"return_address,omitempty"`
	MerchantRule     string `json:"merchant_rule,omitempty"`
	MerchantRevision uint64 `json:"merchant_revision"`
	RequestAt        string `json:"request_at"`
	DecidedAt        string `json:"decided_at"`
}

// BenchmarkSonicMarshalDecision is the alternative to AppendEffect: fill a
// tagged struct and sonic.Marshal it.
func BenchmarkSonicMarshalDecision(b *testing.B) {
	var reasons [core.NumCodes]string
	var tbuf [64]byte
	b.ReportAllocs()
	var n int
	for b.Loop() {
		e := &benchDecision
		d := decisionJSON{RequestID: e.RequestID, OrderID: e.OrderID, UserID: e.UserID,
			Decision: e.Verdict.String(), Reasons: e.Reasons.AppendStrings(reasons[:0]),
			MerchantRevision: e.MerchantRevision, RequestAt: e.RequestAt,
			DecidedAt: string(benchDecidedAt.In(benchShanghai).AppendFormat(tbuf[:0], TimeLayout))}
		d.Policy.Name, d.Policy.Version = benchPolicy.Name, benchPolicy.Version
		out, err := sonic.Marshal(&d)
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.SetBytes(int64(n))
}

func BenchmarkPartition(b *testing.B) {
	b.ReportAllocs()
	var s int
	for b.Loop() {
		s += Partition("u-000042", 64)
	}
	_ = s
}

func BenchmarkParseSubject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, ok := ParseSubject("fr.p.17.return.u-000042"); !ok {
			b.Fatal("parse")
		}
	}
}
