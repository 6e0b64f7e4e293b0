package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
)

var update = flag.Bool("update", false, "rewrite testdata/effects golden files")

var (
	goldenPolicy    = &core.Policy{Name: "tmall-fast-return", Version: "3f9a6c2d81e04b7a"}
	goldenShanghai  = time.FixedZone("CST", 8*3600)
	goldenDecidedAt = time.Date(2026, 11, 10, 16, 0, 3, 251_900_000, time.UTC)
	// 2026-11-11 10:15:00.123 +08:00
	goldenWindowStart = time.Date(2026, 11, 11, 10, 15, 0, 123_456_789, goldenShanghai).UnixNano()
)

var goldenEffects = []struct {
	name string
	e    core.Effect
	// keys lists the top-level keys in their required order.
	keys []string
}{
	{"decision_approved", core.Effect{Policy: goldenPolicy, Kind: core.EffectDecision, UserID: "u1", RequestID: "r1", OrderID: "o1",
		Verdict: core.VerdictApproved, ReturnAddress: "Hangzhou, Xihu District, No. 1", RequestAt: at0, MerchantRevision: 7},
		[]string{"request_id", "order_id", "user_id", "decision", "reasons", "policy", "return_address", "merchant_revision", "request_at", "decided_at"}},
	{"decision_merchant_rule", core.Effect{Policy: goldenPolicy, Kind: core.EffectDecision, UserID: "u1", RequestID: "r2", OrderID: "o2",
		Verdict: core.VerdictApproved, ReturnAddress: "退货仓 \"A\"\n3楼", MerchantRule: "small-apparel", RequestAt: at0, MerchantRevision: 12},
		[]string{"request_id", "order_id", "user_id", "decision", "reasons", "policy", "return_address", "merchant_rule", "merchant_revision", "request_at", "decided_at"}},
	{"decision_review", core.Effect{Policy: goldenPolicy, Kind: core.EffectDecision, UserID: "u1", RequestID: "r3", OrderID: "o3",
		Verdict: core.VerdictReview, Reasons: core.CodeSet(0).With(core.CodeVelocityCap).With(core.CodeCreditLow).With(core.CodeOutsideWindow),
		ReturnAddress: "ignored unless approved", RequestAt: at0},
		[]string{"request_id", "order_id", "user_id", "decision", "reasons", "policy", "merchant_revision", "request_at", "decided_at"}},
	{"decision_rejected", core.Effect{Policy: goldenPolicy, Kind: core.EffectDecision, UserID: "u1", RequestID: "r4", OrderID: "o-unknown",
		Verdict: core.VerdictRejected, Reasons: core.CodeSet(0).With(core.CodeOrderUnknown), RequestAt: "2026-11-10T16:00:03Z"},
		[]string{"request_id", "order_id", "user_id", "decision", "reasons", "policy", "merchant_revision", "request_at", "decided_at"}},
	{"refund_tracking", core.Effect{Policy: goldenPolicy, Kind: core.EffectRefund, UserID: "u1", RequestID: "r1", OrderID: "o1",
		AmountFen: 12900, Trigger: core.TriggerTracking, Advance: true},
		[]string{"refund_id", "request_id", "order_id", "user_id", "amount_fen", "trigger", "advance", "policy"}},
	{"refund_pre_shipment", core.Effect{Policy: goldenPolicy, Kind: core.EffectRefund, UserID: "u1", RequestID: "r5", OrderID: "o5",
		AmountFen: 0, Trigger: core.TriggerPreShipment},
		[]string{"refund_id", "request_id", "order_id", "user_id", "amount_fen", "trigger", "advance", "policy"}},
	{"pickup_small", core.Effect{Policy: goldenPolicy, Kind: core.EffectPickup, UserID: "u1", RequestID: "r1", OrderID: "o1",
		Size: core.SizeSmall, WindowStart: goldenWindowStart, WindowEnd: goldenWindowStart + int64(2*time.Hour)},
		[]string{"pickup_id", "request_id", "user_id", "order_id", "size", "window_start", "window_end", "replace", "policy"}},
	{"pickup_replace", core.Effect{Policy: goldenPolicy, Kind: core.EffectPickup, UserID: "u1", RequestID: "r6", OrderID: "o6",
		Size: core.SizeLarge, WindowStart: goldenWindowStart, WindowEnd: goldenWindowStart + int64(4*time.Hour), Replace: true},
		[]string{"pickup_id", "request_id", "user_id", "order_id", "size", "window_start", "window_end", "replace", "policy"}},
	{"compensation", core.Effect{Policy: goldenPolicy, Kind: core.EffectCompensation, UserID: "u1", RequestID: "r1", AmountFen: 500},
		[]string{"request_id", "user_id", "reason", "amount_fen", "policy"}},
	{"clawback", core.Effect{Policy: goldenPolicy, Kind: core.EffectClawback, UserID: "u1", RequestID: "r1", AmountFen: 12900, Outcome: core.OutcomeEmptyBox},
		[]string{"request_id", "user_id", "amount_fen", "outcome", "policy"}},
	{"trust_bad", core.Effect{Policy: goldenPolicy, Kind: core.EffectTrust, UserID: "u1", RequestID: "r1", Outcome: core.OutcomeWrongItem, Penalty: 50},
		[]string{"user_id", "request_id", "outcome", "penalty", "policy"}},
	{"trust_ok", core.Effect{Policy: goldenPolicy, Kind: core.EffectTrust, UserID: "u1", RequestID: "r7", Outcome: core.OutcomeOK},
		[]string{"user_id", "request_id", "outcome", "penalty", "policy"}},
	{"trust_not_returned", core.Effect{Policy: goldenPolicy, Kind: core.EffectTrust, UserID: "u1", RequestID: "r8", Outcome: core.OutcomeNotReturned, Penalty: 50},
		[]string{"user_id", "request_id", "outcome", "penalty", "policy"}},
	{"clawback_not_returned", core.Effect{Policy: goldenPolicy, Kind: core.EffectClawback, UserID: "u1", RequestID: "r8", AmountFen: 9000, Outcome: core.OutcomeNotReturned},
		[]string{"request_id", "user_id", "amount_fen", "outcome", "policy"}},
	{"resolution_approved", core.Effect{Policy: goldenPolicy, Kind: core.EffectResolution, UserID: "u1", RequestID: "r3", OrderID: "o3",
		Resolution: core.ResolutionApproved, By: core.ActorMerchant, ReturnAddress: "Hangzhou, Xihu District, No. 1", Note: "photos \"ok\"", At: goldenWindowStart},
		[]string{"resolution_id", "request_id", "order_id", "user_id", "outcome", "by", "reasons", "return_address", "note", "policy", "at"}},
	{"resolution_rejected_ceiling", core.Effect{Policy: goldenPolicy, Kind: core.EffectResolution, UserID: "u1", RequestID: "r3", OrderID: "o3",
		Resolution: core.ResolutionRejected, By: core.ActorPlatform, Reasons: core.CodeSet(0).With(core.CodeAmountExceedsPaid), At: goldenWindowStart},
		[]string{"resolution_id", "request_id", "order_id", "user_id", "outcome", "by", "reasons", "policy", "at"}},
	{"resolution_closed", core.Effect{Policy: goldenPolicy, Kind: core.EffectResolution, UserID: "u1", RequestID: "r8", OrderID: "o8",
		Resolution: core.ResolutionClosed, By: core.ActorTimeout, At: goldenWindowStart},
		[]string{"resolution_id", "request_id", "order_id", "user_id", "outcome", "by", "reasons", "policy", "at"}},
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "effects", name+".json")
	got = append(bytes.Clone(got), '\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from %s (go test -update rewrites it)\ngot:  %s\nwant: %s", name, path, got, want)
	}
}

// topKeys returns the keys of a JSON object in document order.
func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", b)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestEffectsGolden(t *testing.T) {
	for _, tc := range goldenEffects {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendEffect(nil, &tc.e, goldenShanghai, goldenDecidedAt)
			checkGolden(t, tc.name, got)
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			if keys := topKeys(t, got); !reflect.DeepEqual(keys, tc.keys) {
				t.Fatalf("keys %v, want %v", keys, tc.keys)
			}
			// Values as a consumer reads them.
			var m map[string]any
			if err := json.Unmarshal(got, &m); err != nil {
				t.Fatal(err)
			}
			if m["user_id"] != tc.e.UserID || m["request_id"] != tc.e.RequestID {
				t.Fatalf("ids: %v", m)
			}
			switch tc.e.Kind {
			case core.EffectDecision:
				want := []any{}
				for _, s := range tc.e.Reasons.AppendStrings(nil) {
					want = append(want, s)
				}
				if !reflect.DeepEqual(m["reasons"], want) {
					t.Fatalf("reasons %v, want %v", m["reasons"], want)
				}
				if m["decided_at"] != "2026-11-11T00:00:03.251+08:00" || m["request_at"] != tc.e.RequestAt {
					t.Fatalf("times %v %v", m["decided_at"], m["request_at"])
				}
				if tc.e.Verdict == core.VerdictApproved && m["return_address"] != tc.e.ReturnAddress {
					t.Fatalf("return_address %q", m["return_address"])
				}
				pol := m["policy"].(map[string]any)
				if pol["name"] != goldenPolicy.Name || pol["version"] != goldenPolicy.Version {
					t.Fatalf("policy %v", pol)
				}
			case core.EffectRefund:
				if m["refund_id"] != tc.e.RefundID() || m["refund_id"] != "rf."+tc.e.UserID+"."+tc.e.RequestID {
					t.Fatalf("refund_id %v", m["refund_id"])
				}
			case core.EffectPickup:
				if m["pickup_id"] != tc.e.PickupID() || m["pickup_id"] != "pk."+tc.e.UserID+"."+tc.e.RequestID {
					t.Fatalf("pickup_id %v", m["pickup_id"])
				}
				if m["window_start"] != "2026-11-11T10:15:00.123+08:00" {
					t.Fatalf("window_start %v", m["window_start"])
				}
			case core.EffectCompensation:
				if m["reason"] != "pickup_missed" {
					t.Fatalf("reason %v", m["reason"])
				}
			}
		})
	}
}

func TestEffectsDeterministic(t *testing.T) {
	var wg sync.WaitGroup
	for _, tc := range goldenEffects {
		want := AppendEffect(nil, &tc.e, goldenShanghai, goldenDecidedAt)
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := []byte("prefix")
				for i := 0; i < 50; i++ {
					e := tc.e // a copy: equal effects give equal bytes
					buf = AppendEffect(buf[:6], &e, goldenShanghai, goldenDecidedAt)
					if string(buf[:6]) != "prefix" || !bytes.Equal(buf[6:], want) {
						t.Errorf("%s: nondeterministic output %s", tc.name, buf)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	// The same instant in another representation gives the same bytes.
	e := goldenEffects[0].e
	a := AppendEffect(nil, &e, goldenShanghai, goldenDecidedAt)
	b := AppendEffect(nil, &e, goldenShanghai, goldenDecidedAt.In(time.Local).Round(0))
	if !bytes.Equal(a, b) {
		t.Fatalf("%s\n%s", a, b)
	}
}

func TestOutSubject(t *testing.T) {
	e := &core.Effect{Policy: goldenPolicy, Kind: core.EffectPickup, UserID: "u1", RequestID: "r9"}
	if OutSubject(e) != "fr.out.pickup.u1" {
		t.Fatal(OutSubject(e))
	}
}

func TestAppendEffectAllocs(t *testing.T) {
	buf := make([]byte, 0, 1024)
	for _, tc := range goldenEffects {
		n := testing.AllocsPerRun(50, func() {
			buf = AppendEffect(buf[:0], &tc.e, goldenShanghai, goldenDecidedAt)
		})
		if n != 0 {
			t.Fatalf("%s: %.1f allocs", tc.name, n)
		}
	}
}

func TestAppendEffectUnknownKind(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	AppendEffect(nil, &core.Effect{Kind: 99, Policy: goldenPolicy}, nil, goldenDecidedAt)
}

func TestAppendDLQ(t *testing.T) {
	payload := []byte("{\"type\":\"order.paid\",\"user_id\":\"u\xff\"}")
	got := AppendDLQ(nil, ReasonBadValue, `field "user_id" has a bad value: "u\xff" does not match`, "fr.in.order.u1", 123456, payload)
	checkGolden(t, "dlq", got)
	var m struct {
		Reason     string `json:"reason"`
		Error      string `json:"error"`
		Subject    string `json:"subject"`
		StreamSeq  uint64 `json:"stream_seq"`
		PayloadB64 string `json:"payload_b64"`
	}
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(m.PayloadB64)
	if err != nil || !bytes.Equal(raw, payload) || m.StreamSeq != 123456 || m.Reason != ReasonBadValue || m.Subject != "fr.in.order.u1" {
		t.Fatalf("%+v %q %v", m, raw, err)
	}
	if !reflect.DeepEqual(topKeys(t, got), []string{"reason", "error", "subject", "stream_seq", "payload_b64"}) {
		t.Fatal(topKeys(t, got))
	}
	if DLQMsgID("FR_IN", 123456) != "dlq.FR_IN.123456" {
		t.Fatal(DLQMsgID("FR_IN", 123456))
	}
	// An empty payload still gives valid JSON.
	if !json.Valid(AppendDLQ(nil, ReasonBadJSON, "payload is empty", "fr.in.order.u1", 1, nil)) {
		t.Fatal("invalid JSON for empty payload")
	}
}

func TestAppendClock(t *testing.T) {
	at := time.Date(2026, 11, 11, 0, 0, 3, 999_999_999, goldenShanghai)
	got := AppendClock(nil, 3, at)
	checkGolden(t, "clock", got)
	// Every instant within the same second gives the same message and ID.
	for _, d := range []time.Duration{-999_999_999, -1, -500 * time.Millisecond} {
		other := at.Add(d).UTC()
		if !bytes.Equal(AppendClock(nil, 3, other), got) || ClockMsgID(3, other) != ClockMsgID(3, at) {
			t.Fatalf("clock tick for %v differs", other)
		}
	}
	if bytes.Equal(AppendClock(nil, 3, at.Add(time.Nanosecond)), got) {
		t.Fatal("the next second gives the same tick")
	}
	if bytes.Equal(AppendClock(nil, 4, at), got) {
		t.Fatal("another partition gives the same tick")
	}
	id := ClockMsgID(3, at)
	if !ValidID(id) || id != "clock-3-"+"1794326403" {
		t.Fatalf("ClockMsgID = %q", id)
	}
	// It decodes as a clock event on the clock subject.
	var ev core.Event
	if err := Decode(KindClock, ClockToken(3, 64), got, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != core.EventClock || ev.EventID != id || ev.At != time.Unix(1794326403, 0).UnixNano() || ev.UserID != "" {
		t.Fatalf("%+v", ev)
	}
}

func TestAppendString(t *testing.T) {
	cases := []string{"", "plain", `q"uote`, `back\slash`, "nl\n\r\t\b\f\x00\x1f\x7f", "中文 ünï", "\u2028\u2029",
		"bad\xffutf8\xc3", strings.Repeat("abcdefgh", 9) + "\"", "12345678\x01"}
	for _, s := range cases {
		checkAppendString(t, s)
	}
}

func checkAppendString(t *testing.T, s string) {
	t.Helper()
	got := appendString(nil, s)
	var back string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("appendString(%q) = %s: %v", s, got, err)
	}
	// encoding/json decodes to the same string as it would have encoded.
	std, _ := json.Marshal(s)
	var stdBack string
	_ = json.Unmarshal(std, &stdBack)
	if back != stdBack {
		t.Fatalf("appendString(%q) decodes to %q, encoding/json round trip gives %q", s, back, stdBack)
	}
	if bytes.ContainsAny(got, "\u2028\u2029") {
		t.Fatalf("U+2028/9 not escaped: %s", got)
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("plain")
	f.Add("q\"\\\n\xff\u2028中")
	f.Fuzz(checkAppendString)
}
