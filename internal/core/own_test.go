package core

import (
	"testing"
	"unsafe"
)

// TestStateOwnsItsStrings: the strings a shopper's state keeps from an
// event do not point into the event's buffer (a decoded payload), so a
// cached shopper does not keep payloads alive.
func TestStateOwnsItsStrings(t *testing.T) {
	payload := string([]byte("u-own|o-own|m-own|apparel|shanghai|r-own"))
	within := func(s string) bool {
		if s == "" {
			return false
		}
		p, b := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(payload)))
		return p >= b && p < b+uintptr(len(payload))
	}
	pol, _ := Preset("tmall-fast-return")
	env := &Env{Policy: pol, Merchant: func(string) *Merchant { return nil }}
	u := &User{}
	paid := Event{Type: EventOrderPaid, UserID: payload[0:5], At: 1, OrderID: payload[6:11], MerchantID: payload[12:17],
		Category: payload[18:25], City: payload[26:34], PaidFen: 100, SevenDay: true}
	Apply(u, &paid, env, nil)
	req := Event{Type: EventReturnRequested, UserID: payload[0:5], At: 2, AtRaw: "x", RequestID: payload[35:40], OrderID: payload[6:11],
		Kind: KindReturnRefund, Reason: ReasonNoReason}
	Apply(u, &req, env, nil)
	if len(u.Orders) != 1 || len(u.Requests) != 1 {
		t.Fatalf("orders %d requests %d", len(u.Orders), len(u.Requests))
	}
	o, r := u.Orders[0], u.Requests[0]
	for name, s := range map[string]string{"user": u.ID, "order": o.ID, "merchant": o.MerchantID, "category": o.Category, "city": o.City, "request": r.ID, "request order": r.OrderID} {
		if within(s) {
			t.Errorf("%s id %q points into the event's payload", name, s)
		}
	}
	if o.ID != "o-own" || o.City != "shanghai" || r.ID != "r-own" || r.OrderID != "o-own" || u.ID != "u-own" {
		t.Fatalf("copied strings differ: %+v %+v %q", o, r, u.ID)
	}
}
