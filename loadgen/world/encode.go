package world

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flashreturn/flashreturn/loadgen/contract"
)

// shanghai is the shoppers' zone; a fixed offset so no tz database is needed.
// Shanghai has had no daylight saving since 1991, so the fixed offset
// is exact for every date a run can produce.
var shanghai = time.FixedZone("CST", 8*3600)

// Milliseconds: the window ends at 23:59:59.999 (domain.md, Window),
// and a coarser stamp could not place a request on either side of it.
const atLayout = "2006-01-02T15:04:05.000Z07:00"

// formatAt renders an event time as RFC 3339 with millisecond precision and
// the +08:00 offset of the contract's examples.
func formatAt(t time.Time) string { return t.In(shanghai).Format(atLayout) }

// marshal goes through the contract codec so that loadgen encodes
// exactly as its audit decodes.
func marshal(v any) ([]byte, error) { return contract.Marshal(v) }

// Encode renders event e with event time at (plus e.Shift) as the JSON
// payload to publish. Malformed events get their broken bytes, which are
// also kept in g.Bads for the dead-letter audit.
func (g *Generator) Encode(e Event, at time.Time) ([]byte, error) {
	ts := formatAt(at.Add(e.Shift))
	switch e.Type {
	case contract.TypeCreditUpdated:
		return marshal(contract.CreditUpdated{EventID: e.ID, Type: e.Type, At: ts, UserID: g.ShopperID(e.Shopper), Stars: g.Shoppers[e.Shopper].Stars})
	case contract.TypeOrderPaid:
		o := g.Orders[e.Order]
		return marshal(contract.OrderPaid{EventID: e.ID, Type: e.Type, At: ts, UserID: g.ShopperID(e.Shopper), OrderID: g.OrderID(e.Order),
			MerchantID: g.MerchantID(o.Merchant), Category: o.Category, Size: o.Size, PaidFen: o.PaidFen, SevenDay: o.SevenDay,
			FreightInsurance: o.Insured, City: o.City})
	case contract.TypeOrderShipped, contract.TypeOrderDelivered:
		return marshal(contract.OrderEvent{EventID: e.ID, Type: e.Type, At: ts, UserID: g.ShopperID(e.Shopper), OrderID: g.OrderID(e.Order)})
	case contract.TypeReturnRequested:
		r := g.Requests[e.Request]
		ev := contract.ReturnRequested{EventID: e.ID, Type: e.Type, At: ts, UserID: g.ShopperID(e.Shopper), RequestID: g.RequestID(e.Request),
			OrderID: g.OrderID(r.Order), Kind: r.Kind, Reason: r.Reason, Pickup: r.Pickup}
		// Omitted rather than 0 when not set: amount_fen 0 is
		// bad_value (domain.md, Input that cannot stand), not "the
		// paid amount".
		if r.AmountFen > 0 {
			a := r.AmountFen
			ev.AmountFen = &a
		}
		return marshal(ev)
	case contract.TypeReturnCancelled, contract.TypePickupDone, contract.TypeTracking, contract.TypeInspection:
		ev := contract.RequestRef{EventID: e.ID, Type: e.Type, At: ts, UserID: g.ShopperID(e.Shopper), RequestID: g.RequestID(e.Request),
			Outcome: e.Outcome}
		if e.Type == contract.TypeTracking {
			ev.TrackingNo = "SF" + strconv.FormatInt(e.N, 10)
		}
		return marshal(ev)
	case contract.TypeReviewApproved, contract.TypeReviewRejected:
		return marshal(contract.ReviewAnswer{EventID: e.ID, Type: e.Type, At: ts, UserID: g.ShopperID(e.Shopper), RequestID: g.RequestID(e.Request),
			By: e.By, Note: answerNote(e.N)})
	}
	if e.Bad < 0 {
		return nil, fmt.Errorf("loadgen: encode: unknown event type %q", e.Type)
	}
	// The payload is kept in Bads: the tracker matches a dead letter
	// to its event by these exact bytes.
	b := &g.Bads[e.Bad]
	if b.Type != "" {
		p, err := g.encodeInvalid(e, b, ts)
		b.Payload = p
		return p, err
	}
	// The bad event's subject is one this generator built with
	// contract.InSubject, so its last token is the user.
	user := b.Subject[strings.LastIndexByte(b.Subject, '.')+1:]
	var s string
	switch b.Reason {
	// Each body is broken in exactly one way, so the reason the
	// daemon must give is unambiguous.
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

// answerNotes are the notes some review answers carry.
var answerNotes = []string{"", "", "checked the photos", "", "unboxing video reviewed", "", "shopper called", ""}

// answerNote is the note of the review Answer at position n (empty for
// most).
func answerNote(n int64) string { return answerNotes[n%int64(len(answerNotes))] }

// encodeInvalid renders a well-formed event that cannot stand: it names
// an order or request id of the "q" namespace, which no shopper has.
func (g *Generator) encodeInvalid(e Event, b *Bad, ts string) ([]byte, error) {
	user := g.ShopperID(b.Shopper)
	ghost := g.InvalidID(e.N)
	switch b.Type {
	case contract.TypeOrderShipped, contract.TypeOrderDelivered:
		return marshal(contract.OrderEvent{EventID: e.ID, Type: b.Type, At: ts, UserID: user, OrderID: ghost})
	case contract.TypeCreditUpdated:
		return marshal(contract.CreditUpdated{EventID: e.ID, Type: b.Type, At: ts, UserID: user, Stars: g.Shoppers[b.Shopper].Stars})
	case contract.TypeReturnRequested:
		order := ghost
		if b.Order >= 0 {
			order = g.OrderID(b.Order)
		}
		// amount_fen 0 on a real order: the amount is the only thing
		// wrong, so bad_value is the only reason that fits.
		zero := int64(0)
		return marshal(contract.ReturnRequested{EventID: e.ID, Type: b.Type, At: ts, UserID: user, RequestID: ghost, OrderID: order,
			Kind: "return_refund", Reason: "no_reason", AmountFen: &zero})
	case contract.TypeReviewApproved, contract.TypeReviewRejected:
		return marshal(contract.ReviewAnswer{EventID: e.ID, Type: b.Type, At: ts, UserID: user, RequestID: ghost, By: "merchant"})
	}
	ev := contract.RequestRef{EventID: e.ID, Type: b.Type, At: ts, UserID: user, RequestID: ghost}
	switch b.Type {
	case contract.TypeTracking:
		ev.TrackingNo = "SF" + strconv.FormatInt(e.N, 10)
	case contract.TypeInspection:
		ev.Outcome = "ok"
	}
	return marshal(ev)
}
