package core_test

import (
	"fmt"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
)

// ExampleApply decides a return under the tmall preset: a 5-star shopper
// asks to return shoes signed for the day before, for no reason, with a
// courier pickup. Every fast-track rule passes, so the request is approved
// at once with the merchant's return address; the refund is an advance
// promised until the courier's tracking number comes (so nothing is paid
// yet), and the pickup window starts at the request (inside service
// hours). Times are event times: Apply never reads the clock.
func ExampleApply() {
	loc := time.FixedZone("CST", 8*3600) // the daemon passes Asia/Shanghai
	at := func(s string) int64 {
		t, err := time.ParseInLocation(time.DateTime, s, loc)
		if err != nil {
			panic(err)
		}
		return t.UnixNano()
	}
	tmall, _ := core.Preset(core.PresetTmall)
	shop := &core.Merchant{ID: "m1", ReturnAddresses: []string{"Hangzhou desk"}, ShipAddresses: []string{"Hangzhou desk"}, Revision: 3}
	env := &core.Env{Policy: tmall, Loc: loc, Merchant: func(id string) *core.Merchant {
		if id == shop.ID {
			return shop
		}
		return nil
	}}

	u := &core.User{}
	var out []core.Effect
	for _, ev := range []core.Event{
		{Type: core.EventCreditUpdated, UserID: "u1", At: at("2026-11-11 09:00:00"), Stars: 5},
		{Type: core.EventOrderPaid, UserID: "u1", At: at("2026-11-11 09:00:00"), OrderID: "o1", MerchantID: "m1",
			Category: "shoes", Size: core.SizeSmall, PaidFen: 12900, SevenDay: true},
		{Type: core.EventOrderDelivered, UserID: "u1", At: at("2026-11-12 12:00:00"), OrderID: "o1"},
		{Type: core.EventReturnRequested, UserID: "u1", At: at("2026-11-13 10:00:00"), AtRaw: "2026-11-13T10:00:00+08:00",
			RequestID: "r1", OrderID: "o1", Kind: core.KindReturnRefund, Reason: core.ReasonNoReason, Pickup: true},
	} {
		out = core.Apply(u, &ev, env, out[:0])
	}
	for _, e := range out {
		switch e.Kind {
		case core.EffectDecision:
			fmt.Println(e.MsgID(), e.Verdict, "policy", e.Policy.Name, "address", e.ReturnAddress, "checks", e.Trace.N)
		case core.EffectPickup:
			fmt.Println(e.PickupID(), time.Unix(0, e.WindowStart).In(loc).Format("15:04"), "to", time.Unix(0, e.WindowEnd).In(loc).Format("15:04"))
		}
	}
	r := u.Request("r1")
	rs, _ := r.RefundState()
	fmt.Println("stage", r.Stage(), "refund on", rs.Trigger, "advance", rs.Advance, "sent", rs.Sent, "exposure", u.Exposure())
	// Output:
	// decision.u1.r1 approved policy tmall-fast-return address Hangzhou desk checks 14
	// pk.u1.r1 10:00 to 12:00
	// stage processing refund on tracking advance true sent false exposure 12900
}
