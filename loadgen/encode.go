package loadgen

import (
	"fmt"
	"strconv"
	"time"
)

// shanghai is the shoppers' zone; a fixed offset so no tz database is needed.
var shanghai = time.FixedZone("CST", 8*3600)

const atLayout = "2006-01-02T15:04:05.000Z07:00"

// formatAt renders an event time as RFC 3339 with millisecond precision and
// the +08:00 offset of the contract's examples.
func formatAt(t time.Time) string { return t.In(shanghai).Format(atLayout) }

func marshal(v any) ([]byte, error) { return api.Marshal(v) }

// Encode renders event e with event time at (plus e.Shift) as the JSON
// payload to publish. Malformed events get their broken bytes, which are
// also kept in g.Bads for the dead-letter audit.
func (g *Generator) Encode(e Event, at time.Time) ([]byte, error) {
	ts := formatAt(at.Add(e.Shift))
	switch e.Type {
	case typeCreditUpdated:
		return marshal(evCredit{EventID: e.ID, Type: e.Type, At: ts, UserID: g.ShopperID(e.Shopper), Stars: g.Shoppers[e.Shopper].Stars})
	case typeOrderPaid:
		o := g.Orders[e.Order]
		return marshal(evOrderPaid{EventID: e.ID, Type: e.Type, At: ts, UserID: g.ShopperID(e.Shopper), OrderID: g.OrderID(e.Order),
			MerchantID: g.MerchantID(o.Merchant), Category: o.Category, Size: o.Size, PaidFen: o.PaidFen, SevenDay: o.SevenDay,
			FreightInsurance: o.Insured, City: o.City})
	case typeOrderShipped, typeOrderDelivered:
		return marshal(evOrder{EventID: e.ID, Type: e.Type, At: ts, UserID: g.ShopperID(e.Shopper), OrderID: g.OrderID(e.Order)})
	case typeReturnRequested:
		r := g.Requests[e.Request]
		ev := evReturnRequested{EventID: e.ID, Type: e.Type, At: ts, UserID: g.ShopperID(e.Shopper), RequestID: g.RequestID(e.Request),
			OrderID: g.OrderID(r.Order), Kind: r.Kind, Reason: r.Reason, Pickup: r.Pickup}
		if r.AmountFen > 0 {
			a := r.AmountFen
			ev.AmountFen = &a
		}
		return marshal(ev)
	case typeReturnCancelled, typePickupDone, typeTracking, typeInspection:
		ev := evRequestRef{EventID: e.ID, Type: e.Type, At: ts, UserID: g.ShopperID(e.Shopper), RequestID: g.RequestID(e.Request),
			Outcome: e.Outcome}
		if e.Type == typeTracking {
			ev.TrackingNo = "SF" + strconv.FormatInt(e.N, 10)
		}
		return marshal(ev)
	}
	if e.Bad < 0 {
		return nil, fmt.Errorf("loadgen: encode: unknown event type %q", e.Type)
	}
	b := &g.Bads[e.Bad]
	user := b.Subject[len("fr.in.credit."):]
	if b.Subject[:len("fr.in.order.")] == "fr.in.order." {
		user = b.Subject[len("fr.in.order."):]
	}
	var s string
	switch b.Reason {
	case "bad_json":
		s = `{"event_id":"` + e.ID + `","type":"order.paid","at":"` + ts + `","user_id":"` + user + `","order_id":`
	case "missing_field":
		s = `{"event_id":"` + e.ID + `","type":"order.paid","at":"` + ts + `","user_id":"` + user +
			`","merchant_id":"m0","category":"apparel","size":"small","paid_fen":1000,"seven_day":true}`
	case "bad_value":
		s = `{"event_id":"` + e.ID + `","type":"credit.updated","at":"` + ts + `","user_id":"` + user + `","stars":9}`
	case "unknown_type":
		s = `{"event_id":"` + e.ID + `","type":"order.teleported","at":"` + ts + `","user_id":"` + user + `","order_id":"o1"}`
	default: // subject_mismatch
		s = `{"event_id":"` + e.ID + `","type":"credit.updated","at":"` + ts + `","user_id":"` + user + `z","stars":4}`
	}
	b.Payload = []byte(s)
	return b.Payload, nil
}
