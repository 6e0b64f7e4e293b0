package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/flashreturn/flashreturn/internal/core"
)

var fuzzKinds = []string{KindOrder, KindCredit, KindReturn, KindLogistics, KindInspection, KindClock, "refund", ""}

// FuzzDecode: Decode never panics; every rejection is a *Error with a
// contract reason and a message naming its field; every acceptance is a
// well-formed event of the subject's kind that survives AppendEvent; and
// bad_json agrees with encoding/json's idea of a JSON object.
func FuzzDecode(f *testing.F) {
	for _, tc := range validEvents {
		for i, k := range fuzzKinds {
			if k == tc.kind {
				f.Add(uint8(i), tokenFor(tc.kind), mustJSON(f, tc.json))
			}
		}
	}
	f.Add(uint8(0), "u1", []byte(`{"type":"order.paid","paid_fen":1.5,"user_id":7}`))
	f.Add(uint8(2), "u1", []byte(`{"type":"return.requested","amount_fen":-1,"kind":null}`))
	f.Add(uint8(1), "u1", []byte(`[{"type":"credit.updated"}]`))
	f.Add(uint8(1), "u1", []byte(`{"type":"credit.updated","stars":"5","event_id":"e","at":"2026-11-11T00:00:03Z","user_id":"u1"} `))
	f.Add(uint8(5), "c0", []byte(`{"type":"clock.tick","event_id":"x","at":"2026-11-11T00:00:03.5-01:30","user_id":{"a":[1,2]}}`))
	f.Fuzz(func(t *testing.T, kindIdx uint8, user string, data []byte) {
		kind := fuzzKinds[int(kindIdx)%len(fuzzKinds)]
		var ev core.Event
		err := Decode(kind, user, data, &ev)
		object := json.Valid(data) && strings.HasPrefix(strings.TrimLeft(string(data), " \t\r\n"), "{")
		if err != nil {
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("error %v (%T) is not a *wire.Error", err, err)
			}
			if !KnownReason(we.Reason) || we.Reason == ReasonPoison || we.Msg == "" {
				t.Fatalf("bad error %+v", we)
			}
			if we.Field != "" && !strings.Contains(we.Msg, `"`+we.Field+`"`) {
				t.Fatalf("message does not name field %q: %s", we.Field, we.Msg)
			}
			if (we.Reason == ReasonBadJSON) == object {
				t.Fatalf("Decode says %v; encoding/json says object=%v for %q", err, object, data)
			}
			return
		}
		if !object {
			t.Fatalf("Decode accepted %q, which encoding/json rejects", data)
		}
		if KindOf(ev.Type) != kind || !ValidID(ev.EventID) {
			t.Fatalf("accepted %+v on kind %q", ev, kind)
		}
		if ns, ok := parseRFC3339(ev.AtRaw); !ok || ns != ev.At {
			t.Fatalf("at %q -> %d", ev.AtRaw, ev.At)
		}
		if ev.Type != core.EventClock && (ev.UserID != user || !ValidID(ev.UserID)) {
			t.Fatalf("user_id %q on token %q", ev.UserID, user)
		}
		if ev.PaidFen < 0 || ev.AmountFen < 0 || (ev.Type == core.EventCreditUpdated && (ev.Stars < 1 || ev.Stars > 5)) {
			t.Fatalf("bad numbers %+v", ev)
		}
		checkOracle(t, data, &ev)
		var ev2 core.Event
		b := AppendEvent(nil, &ev)
		if err := Decode(kind, user, b, &ev2); err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		if ev2 != ev {
			t.Fatalf("round trip:\n%+v\n%+v", ev, ev2)
		}
	})
}

// FuzzDecodeMerchant: no panic, every rejection classified, every
// acceptance survives AppendMerchant.
func FuzzDecodeMerchant(f *testing.F) {
	f.Add("m1", mustJSON(f, validMerchant))
	f.Add("m1", []byte(`{"type":"merchant.updated","event_id":"e","at":"2026-11-11T00:00:03Z","merchant_id":"m1","return_addresses":[],"ship_addresses":[],"rules":[{"name":"x","max_days":3}]}`))
	f.Fuzz(func(t *testing.T, token string, data []byte) {
		m, err := DecodeMerchant(token, data, 9)
		if err != nil {
			var we *Error
			if !errors.As(err, &we) || !KnownReason(we.Reason) || we.Reason == ReasonPoison || m != nil {
				t.Fatalf("bad error %v (%T) with %v", err, err, m)
			}
			if we.Field != "" && !strings.Contains(we.Msg, `"`+we.Field+`"`) {
				t.Fatalf("message does not name field %q: %s", we.Field, we.Msg)
			}
			return
		}
		if m.ID != token || m.Revision != 9 || m.ReturnAddresses == nil || m.ShipAddresses == nil {
			t.Fatalf("accepted %+v", m)
		}
		b := AppendMerchant(nil, m, "e", "2026-11-11T00:00:03Z")
		m2, err := DecodeMerchant(token, b, 9)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		if !merchantEqual(m, m2) {
			t.Fatalf("round trip:\n%+v\n%+v", m, m2)
		}
	})
}

func merchantEqual(a, b *core.Merchant) bool { return reflect.DeepEqual(a, b) }

// checkOracle compares an accepted event with encoding/json's reading of
// the same payload.
func checkOracle(t *testing.T, data []byte, ev *core.Event) {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	str := func(name, got string) {
		if v, ok := m[name].(string); !ok || v != got {
			t.Fatalf("%s: Decode says %q, encoding/json %#v", name, got, m[name])
		}
	}
	num := func(name string, got int64) {
		if v, ok := m[name].(json.Number); !ok || v.String() != strconv.FormatInt(got, 10) {
			t.Fatalf("%s: Decode says %d, encoding/json %#v", name, got, m[name])
		}
	}
	boolean := func(name string, got bool) {
		if v, ok := m[name].(bool); !ok || v != got {
			t.Fatalf("%s: Decode says %v, encoding/json %#v", name, got, m[name])
		}
	}
	str("type", ev.Type.String())
	str("event_id", ev.EventID)
	str("at", ev.AtRaw)
	if ev.Type != core.EventClock {
		str("user_id", ev.UserID)
	}
	switch ev.Type {
	case core.EventOrderPaid:
		str("order_id", ev.OrderID)
		str("merchant_id", ev.MerchantID)
		str("category", ev.Category)
		str("size", ev.Size.String())
		num("paid_fen", ev.PaidFen)
		boolean("seven_day", ev.SevenDay)
		if m["freight_insurance"] != nil {
			boolean("freight_insurance", ev.FreightInsurance)
		}
		if m["city"] != nil {
			str("city", ev.City)
		}
	case core.EventOrderShipped, core.EventOrderDelivered:
		str("order_id", ev.OrderID)
	case core.EventCreditUpdated:
		num("stars", int64(ev.Stars))
	case core.EventReturnRequested:
		str("request_id", ev.RequestID)
		str("order_id", ev.OrderID)
		str("kind", ev.Kind.String())
		str("reason", ev.Reason.String())
		boolean("pickup", ev.Pickup)
		if m["amount_fen"] != nil {
			num("amount_fen", ev.AmountFen)
		}
	case core.EventReturnCancelled, core.EventPickupDone:
		str("request_id", ev.RequestID)
	case core.EventLogisticsTracking:
		str("request_id", ev.RequestID)
		str("tracking_no", ev.TrackingNo)
	case core.EventInspectionResult:
		str("request_id", ev.RequestID)
		str("outcome", ev.Outcome.String())
	}
}
