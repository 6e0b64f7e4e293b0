package wire

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
)

const at0 = "2026-11-11T00:00:03.250+08:00"

var at0ns = time.Date(2026, 11, 11, 0, 0, 3, 250e6, time.FixedZone("", 8*3600)).UnixNano()

// validEvents holds one valid payload of every inbound type, with the
// subject kind it goes on and the Event it decodes to.
var validEvents = []struct {
	kind string
	json map[string]any
	want core.Event
	// required and optional list the type's own fields (beyond type).
	required, optional []string
}{
	{
		kind: KindOrder,
		json: map[string]any{"type": "order.paid", "event_id": "e1", "at": at0, "user_id": "u1",
			"order_id": "o1", "merchant_id": "m1", "category": "apparel", "size": "small",
			"paid_fen": 12900, "seven_day": true, "freight_insurance": true, "city": "Hangzhou"},
		want: core.Event{Type: core.EventOrderPaid, EventID: "e1", At: at0ns, AtRaw: at0, UserID: "u1",
			OrderID: "o1", MerchantID: "m1", Category: "apparel", Size: core.SizeSmall,
			PaidFen: 12900, SevenDay: true, FreightInsurance: true, City: "Hangzhou"},
		required: []string{"event_id", "at", "user_id", "order_id", "merchant_id", "category", "size", "paid_fen", "seven_day"},
		optional: []string{"freight_insurance", "city"},
	},
	{
		kind:     KindOrder,
		json:     map[string]any{"type": "order.shipped", "event_id": "e2", "at": at0, "user_id": "u1", "order_id": "o1"},
		want:     core.Event{Type: core.EventOrderShipped, EventID: "e2", At: at0ns, AtRaw: at0, UserID: "u1", OrderID: "o1"},
		required: []string{"event_id", "at", "user_id", "order_id"},
	},
	{
		kind:     KindOrder,
		json:     map[string]any{"type": "order.delivered", "event_id": "e3", "at": at0, "user_id": "u1", "order_id": "o1"},
		want:     core.Event{Type: core.EventOrderDelivered, EventID: "e3", At: at0ns, AtRaw: at0, UserID: "u1", OrderID: "o1"},
		required: []string{"event_id", "at", "user_id", "order_id"},
	},
	{
		kind:     KindCredit,
		json:     map[string]any{"type": "credit.updated", "event_id": "e4", "at": at0, "user_id": "u1", "stars": 4},
		want:     core.Event{Type: core.EventCreditUpdated, EventID: "e4", At: at0ns, AtRaw: at0, UserID: "u1", Stars: 4},
		required: []string{"event_id", "at", "user_id", "stars"},
	},
	{
		kind: KindReturn,
		json: map[string]any{"type": "return.requested", "event_id": "e5", "at": at0, "user_id": "u1",
			"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason",
			"pickup": true, "amount_fen": 9900},
		want: core.Event{Type: core.EventReturnRequested, EventID: "e5", At: at0ns, AtRaw: at0, UserID: "u1",
			RequestID: "r1", OrderID: "o1", Kind: core.KindReturnRefund, Reason: core.ReasonNoReason,
			Pickup: true, AmountFen: 9900, HasAmount: true},
		required: []string{"event_id", "at", "user_id", "request_id", "order_id", "kind", "reason", "pickup"},
		optional: []string{"amount_fen"},
	},
	{
		kind:     KindReturn,
		json:     map[string]any{"type": "return.cancelled", "event_id": "e6", "at": at0, "user_id": "u1", "request_id": "r1"},
		want:     core.Event{Type: core.EventReturnCancelled, EventID: "e6", At: at0ns, AtRaw: at0, UserID: "u1", RequestID: "r1"},
		required: []string{"event_id", "at", "user_id", "request_id"},
	},
	{
		kind: KindLogistics,
		json: map[string]any{"type": "logistics.tracking", "event_id": "e7", "at": at0, "user_id": "u1",
			"request_id": "r1", "tracking_no": "SF1234567890"},
		want: core.Event{Type: core.EventLogisticsTracking, EventID: "e7", At: at0ns, AtRaw: at0, UserID: "u1",
			RequestID: "r1", TrackingNo: "SF1234567890"},
		required: []string{"event_id", "at", "user_id", "request_id", "tracking_no"},
	},
	{
		kind:     KindLogistics,
		json:     map[string]any{"type": "pickup.done", "event_id": "e8", "at": at0, "user_id": "u1", "request_id": "r1"},
		want:     core.Event{Type: core.EventPickupDone, EventID: "e8", At: at0ns, AtRaw: at0, UserID: "u1", RequestID: "r1"},
		required: []string{"event_id", "at", "user_id", "request_id"},
	},
	{
		kind: KindInspection,
		json: map[string]any{"type": "inspection.result", "event_id": "e9", "at": at0, "user_id": "u1",
			"request_id": "r1", "outcome": "empty_box"},
		want: core.Event{Type: core.EventInspectionResult, EventID: "e9", At: at0ns, AtRaw: at0, UserID: "u1",
			RequestID: "r1", Outcome: core.OutcomeEmptyBox},
		required: []string{"event_id", "at", "user_id", "request_id", "outcome"},
	},
	{
		kind: KindReview,
		json: map[string]any{"type": "review.approved", "event_id": "e10", "at": at0, "user_id": "u1",
			"request_id": "r1", "by": "merchant", "note": "photos fine"},
		want: core.Event{Type: core.EventReviewApproved, EventID: "e10", At: at0ns, AtRaw: at0, UserID: "u1",
			RequestID: "r1", By: core.ActorMerchant, Note: "photos fine"},
		required: []string{"event_id", "at", "user_id", "request_id", "by"},
		optional: []string{"note"},
	},
	{
		kind: KindReview,
		json: map[string]any{"type": "review.rejected", "event_id": "e11", "at": at0, "user_id": "u1",
			"request_id": "r1", "by": "platform"},
		want: core.Event{Type: core.EventReviewRejected, EventID: "e11", At: at0ns, AtRaw: at0, UserID: "u1",
			RequestID: "r1", By: core.ActorPlatform},
		required: []string{"event_id", "at", "user_id", "request_id", "by"},
	},
	{
		kind: KindClock,
		json: map[string]any{"type": "clock.tick", "event_id": "clock-3-1794326403", "at": "2026-11-10T16:00:03Z"},
		want: core.Event{Type: core.EventClock, EventID: "clock-3-1794326403",
			At: time.Date(2026, 11, 10, 16, 0, 3, 0, time.UTC).UnixNano(), AtRaw: "2026-11-10T16:00:03Z"},
		required: []string{"event_id", "at"},
	},
}

// userToken is the subject token the valid events are sent with.
const userToken = "u1"

func tokenFor(kind string) string {
	if kind == KindClock {
		return "c0"
	}
	return userToken
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// with returns a copy of m with the given fields set (a nil value deletes
// the field; use jsonNull to send null).
func with(m map[string]any, kv ...any) map[string]any {
	c := maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(c, k)
		} else {
			c[k] = kv[i+1]
		}
	}
	return c
}

// jsonNull encodes as JSON null in with().
var jsonNull = json.RawMessage("null")

func wireErr(t *testing.T, err error) *Error {
	t.Helper()
	var we *Error
	if !errors.As(err, &we) {
		t.Fatalf("error %v (%T) is not a *wire.Error", err, err)
	}
	return we
}

func TestDecodeValid(t *testing.T) {
	for _, tc := range validEvents {
		t.Run(tc.want.Type.String(), func(t *testing.T) {
			var ev core.Event
			if err := Decode(tc.kind, tokenFor(tc.kind), mustJSON(t, tc.json), &ev); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if ev != tc.want {
				t.Fatalf("got  %+v\nwant %+v", ev, tc.want)
			}
			// Round trip through the publisher's encoder.
			var ev2 core.Event
			b := AppendEvent(nil, &ev)
			if err := Decode(tc.kind, tokenFor(tc.kind), b, &ev2); err != nil {
				t.Fatalf("Decode(AppendEvent): %v\n%s", err, b)
			}
			if ev2 != ev {
				t.Fatalf("round trip: got %+v\nwant %+v", ev2, ev)
			}
			// The partitioned subject form decodes the same way.
			_, kind, user, ok := ParseSubject("fr.p.7." + tc.kind + "." + tokenFor(tc.kind))
			if !ok || kind != tc.kind || user != tokenFor(tc.kind) {
				t.Fatalf("ParseSubject: %q %q %v", kind, user, ok)
			}
		})
	}
}

// TestDecodeFields removes, nulls and mistypes every field of every type.
func TestDecodeFields(t *testing.T) {
	// A value of the wrong JSON type for each field.
	wrongType := func(name string) any {
		switch name {
		case "paid_fen", "amount_fen", "stars":
			return "12"
		case "seven_day", "freight_insurance", "pickup":
			return "true"
		}
		return 7
	}
	for _, tc := range validEvents {
		typ := tc.want.Type.String()
		for _, f := range tc.required {
			t.Run(typ+"/"+f, func(t *testing.T) {
				for _, m := range []map[string]any{with(tc.json, f, nil), with(tc.json, f, jsonNull)} {
					var ev core.Event
					err := Decode(tc.kind, tokenFor(tc.kind), mustJSON(t, m), &ev)
					we := wireErr(t, err)
					if we.Reason != ReasonMissingField || we.Field != f {
						t.Fatalf("missing %s: got %s/%s: %v", f, we.Reason, we.Field, err)
					}
					if !strings.Contains(we.Error(), `"`+f+`"`) {
						t.Fatalf("message does not name %s: %v", f, err)
					}
				}
				var ev core.Event
				err := Decode(tc.kind, tokenFor(tc.kind), mustJSON(t, with(tc.json, f, wrongType(f))), &ev)
				we := wireErr(t, err)
				if we.Reason != ReasonBadValue || we.Field != f {
					t.Fatalf("wrong type for %s: got %s/%s: %v", f, we.Reason, we.Field, err)
				}
			})
		}
		for _, f := range tc.optional {
			t.Run(typ+"/optional/"+f, func(t *testing.T) {
				for _, m := range []map[string]any{with(tc.json, f, nil), with(tc.json, f, jsonNull)} {
					var ev core.Event
					if err := Decode(tc.kind, tokenFor(tc.kind), mustJSON(t, m), &ev); err != nil {
						t.Fatalf("without %s: %v", f, err)
					}
					switch f {
					case "freight_insurance":
						if ev.FreightInsurance {
							t.Fatal("freight_insurance should default to false")
						}
					case "city":
						if ev.City != "" {
							t.Fatal("city should default to empty")
						}
					case "amount_fen":
						if ev.HasAmount || ev.AmountFen != 0 {
							t.Fatal("amount_fen absent should leave HasAmount false")
						}
					}
				}
				var ev core.Event
				err := Decode(tc.kind, tokenFor(tc.kind), mustJSON(t, with(tc.json, f, wrongType(f))), &ev)
				we := wireErr(t, err)
				if we.Reason != ReasonBadValue || we.Field != f {
					t.Fatalf("wrong type for optional %s: got %s/%s: %v", f, we.Reason, we.Field, err)
				}
			})
		}
	}
}

func TestDecodeReasons(t *testing.T) {
	paid := validEvents[0].json
	req := validEvents[4].json
	credit := validEvents[3].json
	cases := []struct {
		name       string
		kind, user string
		payload    string
		reason     string
		field      string
	}{
		// bad_json
		{"empty", KindOrder, "u1", ``, ReasonBadJSON, ""},
		{"spaces", KindOrder, "u1", " \n\t", ReasonBadJSON, ""},
		{"not json", KindOrder, "u1", `hello`, ReasonBadJSON, ""},
		{"truncated", KindOrder, "u1", `{"type":"order.shipped"`, ReasonBadJSON, ""},
		{"array", KindOrder, "u1", `[{"type":"order.shipped"}]`, ReasonBadJSON, ""},
		{"null", KindOrder, "u1", `null`, ReasonBadJSON, ""},
		{"string", KindOrder, "u1", `"order.paid"`, ReasonBadJSON, ""},
		{"number", KindOrder, "u1", `42`, ReasonBadJSON, ""},
		{"trailing garbage", KindOrder, "u1", `{"type":"order.shipped"} x`, ReasonBadJSON, ""},
		{"two objects", KindOrder, "u1", `{} {}`, ReasonBadJSON, ""},
		{"trailing after mismatch", KindOrder, "u1", `{"type":5} x`, ReasonBadJSON, ""},
		{"raw control char", KindOrder, "u1", "{\"type\":\"order.\x01shipped\"}", ReasonBadJSON, ""},
		{"single quotes", KindOrder, "u1", `{'type':'order.shipped'}`, ReasonBadJSON, ""},
		// missing_field
		{"empty object", KindOrder, "u1", `{}`, ReasonMissingField, "type"},
		{"type null", KindOrder, "u1", `{"type":null}`, ReasonMissingField, "type"},
		{"type wrong case key", KindOrder, "u1", `{"TYPE":"order.shipped"}`, ReasonMissingField, "type"},
		{"user_id wrong case key", KindOrder, "u1", `{"type":"order.shipped","event_id":"e","at":"` + at0 + `","User_Id":"u1","order_id":"o"}`, ReasonMissingField, "user_id"},
		// unknown_type
		{"unknown type", KindOrder, "u1", `{"type":"order.lost"}`, ReasonUnknownType, "type"},
		{"type case", KindOrder, "u1", `{"type":"Order.Paid"}`, ReasonUnknownType, "type"},
		{"empty type", KindOrder, "u1", `{"type":""}`, ReasonUnknownType, "type"},
		// bad_value
		{"type number", KindOrder, "u1", `{"type":5}`, ReasonBadValue, "type"},
		{"bad event_id", KindOrder, "u1", `{"type":"order.shipped","event_id":"e 1","at":"` + at0 + `","user_id":"u1","order_id":"o"}`, ReasonBadValue, "event_id"},
		{"long order_id", KindOrder, "u1", string(mustJSON(t, with(paid, "order_id", strings.Repeat("o", 65)))), ReasonBadValue, "order_id"},
		{"dotted merchant_id", KindOrder, "u1", string(mustJSON(t, with(paid, "merchant_id", "m.1"))), ReasonBadValue, "merchant_id"},
		{"empty user_id", KindOrder, "", string(mustJSON(t, with(paid, "user_id", ""))), ReasonBadValue, "user_id"},
		{"unicode request_id", KindReturn, "u1", string(mustJSON(t, with(req, "request_id", "r\u00e9"))), ReasonBadValue, "request_id"},
		{"size", KindOrder, "u1", string(mustJSON(t, with(paid, "size", "huge"))), ReasonBadValue, "size"},
		{"negative paid", KindOrder, "u1", string(mustJSON(t, with(paid, "paid_fen", -1))), ReasonBadValue, "paid_fen"},
		{"float paid", KindOrder, "u1", `{"type":"order.paid","event_id":"e","at":"` + at0 + `","user_id":"u1","order_id":"o","merchant_id":"m","category":"c","size":"small","paid_fen":12.5,"seven_day":true}`, ReasonBadValue, "paid_fen"},
		{"exponent paid", KindOrder, "u1", `{"type":"order.paid","event_id":"e","at":"` + at0 + `","user_id":"u1","order_id":"o","merchant_id":"m","category":"c","size":"small","paid_fen":1e3,"seven_day":true}`, ReasonBadValue, "paid_fen"},
		{"huge paid", KindOrder, "u1", `{"type":"order.paid","event_id":"e","at":"` + at0 + `","user_id":"u1","order_id":"o","merchant_id":"m","category":"c","size":"small","paid_fen":99999999999999999999,"seven_day":true}`, ReasonBadValue, "paid_fen"},
		{"seven_day number", KindOrder, "u1", string(mustJSON(t, with(paid, "seven_day", 1))), ReasonBadValue, "seven_day"},
		{"stars 0", KindCredit, "u1", string(mustJSON(t, with(credit, "stars", 0))), ReasonBadValue, "stars"},
		{"stars 6", KindCredit, "u1", string(mustJSON(t, with(credit, "stars", 6))), ReasonBadValue, "stars"},
		{"stars 3.0", KindCredit, "u1", `{"type":"credit.updated","event_id":"e","at":"` + at0 + `","user_id":"u1","stars":3.0}`, ReasonBadValue, "stars"},
		{"kind", KindReturn, "u1", string(mustJSON(t, with(req, "kind", "refund"))), ReasonBadValue, "kind"},
		{"reason", KindReturn, "u1", string(mustJSON(t, with(req, "reason", "bored"))), ReasonBadValue, "reason"},
		{"negative amount", KindReturn, "u1", string(mustJSON(t, with(req, "amount_fen", -5))), ReasonBadValue, "amount_fen"},
		{"zero amount", KindReturn, "u1", string(mustJSON(t, with(req, "amount_fen", 0))), ReasonBadValue, "amount_fen"},
		{"review by timeout", KindReview, "u1", `{"type":"review.approved","event_id":"e","at":"` + at0 + `","user_id":"u1","request_id":"r","by":"timeout"}`, ReasonBadValue, "by"},
		{"review by nobody", KindReview, "u1", `{"type":"review.rejected","event_id":"e","at":"` + at0 + `","user_id":"u1","request_id":"r"}`, ReasonMissingField, "by"},
		{"review note number", KindReview, "u1", `{"type":"review.rejected","event_id":"e","at":"` + at0 + `","user_id":"u1","request_id":"r","by":"merchant","note":5}`, ReasonBadValue, "note"},
		{"review on return subject", KindReturn, "u1", `{"type":"review.approved","event_id":"e","at":"` + at0 + `","user_id":"u1","request_id":"r","by":"merchant"}`, ReasonSubjectMismatch, "type"},
		{"inspection not_returned", KindInspection, "u1", `{"type":"inspection.result","event_id":"e","at":"` + at0 + `","user_id":"u1","request_id":"r","outcome":"not_returned"}`, ReasonBadValue, "outcome"},
		{"outcome", KindInspection, "u1", `{"type":"inspection.result","event_id":"e","at":"` + at0 + `","user_id":"u1","request_id":"r","outcome":"fine"}`, ReasonBadValue, "outcome"},
		{"empty tracking", KindLogistics, "u1", `{"type":"logistics.tracking","event_id":"e","at":"` + at0 + `","user_id":"u1","request_id":"r","tracking_no":""}`, ReasonBadValue, "tracking_no"},
		{"at without offset", KindOrder, "u1", string(mustJSON(t, with(paid, "at", "2026-11-11T00:00:03.250"))), ReasonBadValue, "at"},
		{"at date only", KindOrder, "u1", string(mustJSON(t, with(paid, "at", "2026-11-11"))), ReasonBadValue, "at"},
		{"at unix number", KindOrder, "u1", string(mustJSON(t, with(paid, "at", 1794326403))), ReasonBadValue, "at"},
		{"at month 13", KindOrder, "u1", string(mustJSON(t, with(paid, "at", "2026-13-11T00:00:03Z"))), ReasonBadValue, "at"},
		{"at Feb 30", KindOrder, "u1", string(mustJSON(t, with(paid, "at", "2026-02-30T00:00:03Z"))), ReasonBadValue, "at"},
		{"object for string", KindOrder, "u1", string(mustJSON(t, with(paid, "category", map[string]any{"a": 1}))), ReasonBadValue, "category"},
		{"array for id", KindOrder, "u1", string(mustJSON(t, with(paid, "order_id", []any{"o1"}))), ReasonBadValue, "order_id"},
		// subject_mismatch
		{"user differs", KindOrder, "u2", string(mustJSON(t, paid)), ReasonSubjectMismatch, "user_id"},
		{"type on wrong kind", KindReturn, "u1", string(mustJSON(t, paid)), ReasonSubjectMismatch, "type"},
		{"user type on clock", KindClock, "u1", string(mustJSON(t, paid)), ReasonSubjectMismatch, "type"},
		{"clock on user kind", KindOrder, "u1", `{"type":"clock.tick","event_id":"c","at":"` + at0 + `"}`, ReasonSubjectMismatch, "type"},
		{"unknown kind", "refund", "u1", string(mustJSON(t, paid)), ReasonSubjectMismatch, "type"},
		{"merchant type on user subject", KindOrder, "u1", `{"type":"merchant.updated"}`, ReasonSubjectMismatch, "type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if fallback && strings.Contains(tc.name, "case key") {
				t.Skip("sonic's encoding/json fallback matches keys case-insensitively")
			}
			var ev core.Event
			err := Decode(tc.kind, tc.user, []byte(tc.payload), &ev)
			we := wireErr(t, err)
			if we.Reason != tc.reason || we.Field != tc.field {
				t.Fatalf("got %s field %q (%v), want %s field %q", we.Reason, we.Field, err, tc.reason, tc.field)
			}
			if !KnownReason(we.Reason) || we.Msg == "" || strings.Contains(we.Msg, "\n") {
				t.Fatalf("bad error %+v", we)
			}
			if tc.field != "" && !strings.Contains(we.Error(), `"`+tc.field+`"`) {
				t.Fatalf("message does not name the field: %v", err)
			}
			if ReasonOf(err) != tc.reason {
				t.Fatalf("ReasonOf = %q", ReasonOf(err))
			}
		})
	}
}

// TestDecodeLenient covers what the contract says to accept.
func TestDecodeLenient(t *testing.T) {
	ship := `"event_id":"e","at":"` + at0 + `","user_id":"u1","order_id":"o1"`
	cases := []struct {
		name    string
		payload string
	}{
		{"unknown fields", `{"type":"order.shipped",` + ship + `,"x":{"y":[1,2,{"z":null}]},"note":"hi"}`},
		// Fields the type does not list are ignored whatever their value.
		{"irrelevant mistyped fields", `{"type":"order.shipped",` + ship + `,"paid_fen":"lots","city":5,"stars":99,"kind":[1]}`},
		{"leading and trailing space", " \n{\"type\":\"order.shipped\"," + ship + "}\n "},
		{"escaped strings", `{"type":"order.shipp\u0065d",` + ship + `}`},
		{"mistyped unknown before", `{"zzz":{"a":[true]},"type":"order.shipped",` + ship + `}`},
		{"mistyped irrelevant before", `{"city":5,"kind":[1],"outcome":{"a":1},"seven_day":"x","type":"order.shipped",` + ship + `}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ev core.Event
			if err := Decode(KindOrder, "u1", []byte(tc.payload), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Type != core.EventOrderShipped || ev.OrderID != "o1" || ev.UserID != "u1" || ev.At != at0ns {
				t.Fatalf("got %+v", ev)
			}
		})
	}
	// Times: offsets, Z, fractions of any length.
	for _, s := range []string{"2026-11-10T16:00:03.25Z", "2026-11-10T16:00:03.250000000Z", "2026-11-11T00:00:03.250+08:00",
		"2026-11-10T11:00:03.25-05:00", "2026-11-10t16:00:03.2500000000001z"} {
		var ev core.Event
		b := mustJSON(t, with(validEvents[1].json, "at", s))
		if err := Decode(KindOrder, "u1", b, &ev); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if ev.At != at0ns || ev.AtRaw != s {
			t.Fatalf("%s: At %d AtRaw %q", s, ev.At, ev.AtRaw)
		}
	}
	// Invalid UTF-8 in free text is replaced, as encoding/json does.
	var ev core.Event
	p := "{\"type\":\"logistics.tracking\",\"event_id\":\"e\",\"at\":\"" + at0 + "\",\"user_id\":\"u1\",\"request_id\":\"r\",\"tracking_no\":\"SF\xff1\"}"
	if err := Decode(KindLogistics, "u1", []byte(p), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.TrackingNo != "SF\uFFFD1" {
		t.Fatalf("tracking_no %q", ev.TrackingNo)
	}
}

// TestDecodeOverwrites checks that every field of a reused Event is reset.
func TestDecodeOverwrites(t *testing.T) {
	var ev core.Event
	if err := Decode(KindOrder, "u1", mustJSON(t, validEvents[0].json), &ev); err != nil {
		t.Fatal(err)
	}
	if err := Decode(KindOrder, "u1", mustJSON(t, validEvents[1].json), &ev); err != nil {
		t.Fatal(err)
	}
	if ev != validEvents[1].want {
		t.Fatalf("stale fields: %+v", ev)
	}
}

// TestDecodeNoAlias checks that decoded strings survive reuse of the input.
func TestDecodeNoAlias(t *testing.T) {
	b := mustJSON(t, validEvents[4].json)
	var ev core.Event
	if err := Decode(KindReturn, "u1", b, &ev); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'x'
	}
	if ev != validEvents[4].want {
		t.Fatalf("decoded strings alias the input: %+v", ev)
	}
}

func TestDecodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	b := mustJSON(t, validEvents[4].json)
	var ev core.Event
	n := testing.AllocsPerRun(200, func() {
		if err := Decode(KindReturn, "u1", b, &ev); err != nil {
			t.Fatal(err)
		}
	})
	if n > 1 {
		t.Fatalf("Decode allocates %.1f times, want at most 1 (the payload copy)", n)
	}
}

func TestDecodeConcurrent(t *testing.T) {
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 200; i++ {
				tc := validEvents[(g+i)%len(validEvents)]
				var ev core.Event
				if err := Decode(tc.kind, tokenFor(tc.kind), mustJSON(t, tc.json), &ev); err != nil || ev != tc.want {
					t.Errorf("%v %+v", err, ev)
					return
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}
