package audit

import (
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/loadgen/contract"
	"github.com/flashreturn/flashreturn/loadgen/world"
)

// The audit's rules, fed planted outputs directly.
func TestAuditRules(t *testing.T) {
	g, err := world.NewGenerator(world.Options{Seed: 5, RunID: "a", Shoppers: 10, Merchants: 2})
	if err != nil {
		t.Fatal(err)
	}
	g.Orders = []world.Order{{Shopper: 0, Merchant: 0, PaidFen: 1000}}
	g.Merchants[0].Rules = nil
	g.Requests = []world.Request{
		{Order: 0, Stars: 5},                  // r0: two decisions
		{Order: 0, Stars: 5},                  // r1: no decision
		{Order: 0, Stars: 5},                  // r2: refund after review
		{Order: 0, Stars: 5},                  // r3: approved, refund over paid, twice
		{Order: 0, Stars: 1},                  // r4: 1 star approved
		{Order: 0, Stars: 5, AmountFen: 2000}, // r5: over paid, approved
		{Order: -1, Stars: 5},                 // r6: unknown order, review
		{Order: 0, Stars: 5},                  // r7: fine
	}
	g.Bads = []world.Bad{{Reason: "bad_json", Subject: "fr.in.order.x"}, {Reason: "bad_value", Subject: "fr.in.credit.x"}}
	tr := NewTracker(g, time.Now())
	for i := range g.Requests {
		tr.RequestSent(int32(i), 0)
	}
	tr.BadSent(0, []byte("{"))
	tr.BadSent(1, []byte(`{"stars":9}`))
	dec := func(i int, d string) {
		tr.Output("fr.out.decision.u", []byte(`{"request_id":"`+g.RequestID(int32(i))+`","decision":"`+d+`","reasons":[],"policy":{"name":"tmall-fast-return"}}`), time.Now())
	}
	ref := func(i int, fen string) {
		tr.Output("fr.out.refund.u", []byte(`{"request_id":"`+g.RequestID(int32(i))+`","amount_fen":`+fen+`}`), time.Now())
	}
	dec(0, contract.DecisionApproved)
	dec(0, contract.DecisionApproved)
	dec(2, contract.DecisionReview)
	ref(2, "500")
	dec(3, contract.DecisionApproved)
	ref(3, "1500")
	ref(3, "1500")
	dec(4, contract.DecisionApproved)
	dec(5, contract.DecisionApproved)
	dec(6, contract.DecisionReview)
	dec(7, contract.DecisionApproved)
	ref(7, "1000")
	tr.DeadLetter([]byte(`{"reason":"bad_json","payload_b64":"ew=="}`))                         // "{"
	tr.DeadLetter([]byte(`{"reason":"bad_json","payload_b64":"eyJldmVudF9pZCI6ImVhLTEyIn0="}`)) // {"event_id":"ea-12"}

	got := map[string]int64{}
	for _, c := range Run(Input{Gen: g, Tracker: tr, ExpectDecisions: true}) {
		got[c.Name] = c.Failed
	}
	want := map[string]int64{"events_accepted": 0, "decision_exactly_once": 2, "refund_at_most_once": 1, "refund_not_over_paid": 1,
		"refund_only_if_approved": 1, "malformed_dead_lettered": 1, "dead_letter_reason": 0, "valid_not_dead_lettered": 1,
		"low_stars_not_approved": 1, "amount_over_paid_rejected": 1, "unknown_order_rejected": 1, "outside_window_not_approved": 0}
	for name, n := range want {
		if got[name] != n {
			t.Errorf("%s: %d failures, want %d", name, got[name], n)
		}
	}
}

// A step run against a receiver with a fixed capacity (10 ms per request,
// about 100 requests/s, about 1250 events/s of this world) finds a limit
// below it and stops at the first step it cannot sustain.
