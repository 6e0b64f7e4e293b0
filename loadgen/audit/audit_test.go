package audit

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/loadgen/contract"
	"github.com/flashreturn/flashreturn/loadgen/world"
)

// fixture is a hand-built world and what a run saw of it, for the
// lifecycle checks: requests are placed in the shopper's input order by
// explicit positions (the history the world would have recorded).
type fixture struct {
	t  *testing.T
	g  *world.Generator
	tr *Tracker
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	g, err := world.NewGenerator(world.Options{Seed: 1, RunID: "a", Shoppers: 4, Merchants: 2})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, g: g}
}

// order adds an order of shopper 0 paid paid fen.
func (f *fixture) order(paid int64) int32 {
	f.g.Orders = append(f.g.Orders, world.Order{Shopper: 0, Merchant: 0, PaidFen: paid})
	return int32(len(f.g.Orders) - 1)
}

// req adds a request sent at position pos (Event.N+1) and returns its
// index; mod adjusts it.
func (f *fixture) req(order int32, kind string, pos int64, mod func(r *world.Request)) int {
	r := world.Request{Order: order, Shopper: 0, Kind: kind, Reason: "no_reason", Stars: 5, Hist: world.History{Sent: pos}}
	if mod != nil {
		mod(&r)
	}
	f.g.Requests = append(f.g.Requests, r)
	return len(f.g.Requests) - 1
}

// send marks every request sent (call once, after the requests are built).
func (f *fixture) send() {
	f.tr = NewTracker(f.g, time.Now())
	for i := range f.g.Requests {
		f.tr.RequestSent(int32(i), 0)
	}
}

// out delivers an output of kind about request i with the given JSON
// fields and the fixture's policy.
func (f *fixture) out(kind string, i int, fields string) {
	f.outPolicy(kind, i, fields, `{"name":"tmall-fast-return","version":"v1"}`)
}

func (f *fixture) outPolicy(kind string, i int, fields, policy string) {
	if fields != "" {
		fields = "," + fields
	}
	f.tr.Output("fr.out."+kind+".u", []byte(fmt.Sprintf(`{"request_id":%q,"policy":%s%s}`, f.g.RequestID(int32(i)), policy, fields)),
		time.Now())
}

func (f *fixture) decide(i int, decision string, reasons ...string) {
	rs := "[]"
	if len(reasons) > 0 {
		rs = `["` + strings.Join(reasons, `","`) + `"]`
	}
	f.out(contract.OutDecision, i, fmt.Sprintf(`"decision":%q,"reasons":%s`, decision, rs))
}

func (f *fixture) resolve(i int, outcome, by string, reasons ...string) {
	rs := "[]"
	if len(reasons) > 0 {
		rs = `["` + strings.Join(reasons, `","`) + `"]`
	}
	f.out(contract.OutResolution, i, fmt.Sprintf(`"outcome":%q,"by":%q,"reasons":%s`, outcome, by, rs))
}

func (f *fixture) refund(i int, fen int64, trigger string, advance bool) {
	f.out(contract.OutRefund, i, fmt.Sprintf(`"amount_fen":%d,"trigger":%q,"advance":%v`, fen, trigger, advance))
}

// check runs the audit and returns the named check.
func (f *fixture) check(name string) Check {
	f.t.Helper()
	for _, c := range Run(Input{Gen: f.g, Tracker: f.tr, ExpectDecisions: true, Policy: "tmall-fast-return"}) {
		if c.Name == name {
			return c
		}
	}
	f.t.Fatalf("no check %s", name)
	return Check{}
}

func answered(pos int64, approve bool, by string) func(r *world.Request) {
	return func(r *world.Request) {
		r.Hist.Answers = append(r.Hist.Answers, world.Answer{Pos: pos, Approve: approve, By: by})
	}
}

func aged(r *world.Request)       { r.Aged, r.Shift = true, world.AgedShift }
func unreturned(r *world.Request) { r.Aged, r.Unreturned, r.Shift = true, true, world.UnreturnedShift }

func both(mods ...func(r *world.Request)) func(r *world.Request) {
	return func(r *world.Request) {
		for _, m := range mods {
			m(r)
		}
	}
}

// Each lifecycle check against hand-built runs: each case builds a run
// and says whether the named check must fail; every check has cases that
// pass and cases that fail.
func TestLifecycleChecks(t *testing.T) {
	cases := []struct {
		name  string
		check string
		fail  bool
		build func(f *fixture)
	}{
		// A review answered by the merchant ends in its resolution.
		{"answer resolves", "review_resolved", false, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, answered(3, true, "merchant"))
			f.send()
			f.decide(i, contract.DecisionReview, "credit_low")
			f.resolve(i, contract.ResolutionApproved, "merchant")
		}},
		{"answer ignored", "review_resolved", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, answered(3, true, "merchant"))
			f.send()
			f.decide(i, contract.DecisionReview, "credit_low")
		}},
		{"answer by the wrong person", "review_resolved", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, answered(3, true, "merchant"))
			f.send()
			f.decide(i, contract.DecisionReview, "credit_low")
			f.resolve(i, contract.ResolutionApproved, "platform")
		}},
		{"second answer counted", "review_resolved", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, both(answered(3, true, "merchant"), answered(4, false, "platform")))
			f.send()
			f.decide(i, contract.DecisionReview, "credit_low")
			f.resolve(i, contract.ResolutionRejected, "platform")
		}},
		{"approval over the ceiling rejected", "review_resolved", false, func(f *fixture) {
			i := f.req(f.order(10000), "refund_only", 1, answered(3, true, "platform"))
			f.send()
			f.decide(i, contract.DecisionReview, "kind_not_eligible")
			f.resolve(i, contract.ResolutionRejected, "platform", contract.ReasonAmountExceedsPaid)
		}},
		{"deadline passed: timeout, late answer ignored", "review_resolved", false, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, both(aged, answered(3, false, "merchant")))
			f.send()
			f.decide(i, contract.DecisionReview, "credit_low")
			f.resolve(i, contract.ResolutionApproved, contract.ByTimeout)
		}},
		{"late answer counted", "review_resolved", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, both(aged, answered(3, false, "merchant")))
			f.send()
			f.decide(i, contract.DecisionReview, "credit_low")
			f.resolve(i, contract.ResolutionRejected, "merchant")
		}},
		{"deadline passed, nothing", "review_resolved", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, aged)
			f.send()
			f.decide(i, contract.DecisionReview, "outside_window")
		}},
		{"safety waits for a person", "resolution_has_reason", false, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, aged)
			f.send()
			f.decide(i, contract.DecisionReview, contract.ReasonExposureCap)
		}},
		{"safety answered late", "review_resolved", false, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, both(aged, answered(3, true, "platform")))
			f.send()
			f.decide(i, contract.DecisionReview, contract.ReasonTrustFlagged)
			f.resolve(i, contract.ResolutionApproved, "platform")
		}},

		{"approved at once, stray answer acted on", "resolution_has_reason", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, answered(3, false, "merchant"))
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.resolve(i, contract.ResolutionRejected, "merchant")
		}},
		{"approved at once, closed", "resolution_has_reason", false, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, unreturned)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.resolve(i, contract.ResolutionClosed, contract.ByTimeout)
		}},
		{"timeout within the deadline", "resolution_has_reason", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, nil)
			f.send()
			f.decide(i, contract.DecisionReview, "credit_low")
			f.resolve(i, contract.ResolutionApproved, contract.ByTimeout)
		}},
		{"timeout after a safety rule", "resolution_has_reason", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, aged)
			f.send()
			f.decide(i, contract.DecisionReview, "credit_low", contract.ReasonVelocityCap)
			f.resolve(i, contract.ResolutionApproved, contract.ByTimeout)
		}},
		{"rejected, then resolved", "resolution_has_reason", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, answered(3, true, "merchant"))
			f.send()
			f.decide(i, contract.DecisionRejected, contract.ReasonDuplicateRequest)
			f.resolve(i, contract.ResolutionApproved, "merchant")
		}},
		{"answer after a cancellation", "resolution_has_reason", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, both(func(r *world.Request) { r.Hist.Cancel = 2 }, answered(3, true, "merchant")))
			f.send()
			f.decide(i, contract.DecisionReview, "credit_low")
			f.resolve(i, contract.ResolutionApproved, "merchant")
		}},
		{"two resolutions", "resolution_has_reason", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, answered(3, true, "merchant"))
			f.send()
			f.decide(i, contract.DecisionReview, "credit_low")
			f.resolve(i, contract.ResolutionApproved, "merchant")
			f.resolve(i, contract.ResolutionRejected, "merchant")
		}},

		{"unreturned closed", "return_deadline_close", false, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, unreturned)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.resolve(i, contract.ResolutionClosed, contract.ByTimeout)
		}},
		{"unreturned never closed", "return_deadline_close", true, func(f *fixture) {
			i := f.req(f.order(10000), "exchange", 1, unreturned)
			f.send()
			f.decide(i, contract.DecisionApproved)
		}},
		{"closed within the deadline", "return_deadline_close", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, aged)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.resolve(i, contract.ResolutionClosed, contract.ByTimeout)
		}},
		{"closed by a person", "return_deadline_close", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, unreturned)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.resolve(i, contract.ResolutionClosed, "merchant")
		}},

		{"advance clawed back", "not_returned_clawback", false, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, unreturned)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.refund(i, 10000, contract.TriggerApproval, true)
			f.resolve(i, contract.ResolutionClosed, contract.ByTimeout)
			f.out(contract.OutClawback, i, `"amount_fen":10000,"outcome":"not_returned"`)
			f.out(contract.OutTrust, i, `"outcome":"not_returned","penalty":50`)
		}},
		{"goods advanced clawed back", "not_returned_clawback", false, func(f *fixture) {
			i := f.req(f.order(10000), "exchange", 1, both(unreturned, func(r *world.Request) { r.AmountFen = 7000 }))
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.out(contract.OutPickup, i, `"replace":true`)
			f.resolve(i, contract.ResolutionClosed, contract.ByTimeout)
			f.out(contract.OutClawback, i, `"amount_fen":7000,"outcome":"not_returned"`)
			f.out(contract.OutTrust, i, `"outcome":"not_returned","penalty":50`)
		}},
		{"advance not clawed back", "not_returned_clawback", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, unreturned)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.refund(i, 10000, contract.TriggerApproval, true)
			f.resolve(i, contract.ResolutionClosed, contract.ByTimeout)
			f.out(contract.OutTrust, i, `"outcome":"not_returned","penalty":50`)
		}},
		{"clawback of the wrong amount", "not_returned_clawback", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, unreturned)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.refund(i, 10000, contract.TriggerApproval, true)
			f.resolve(i, contract.ResolutionClosed, contract.ByTimeout)
			f.out(contract.OutClawback, i, `"amount_fen":5000,"outcome":"not_returned"`)
			f.out(contract.OutTrust, i, `"outcome":"not_returned","penalty":50`)
		}},
		{"wrong penalty", "not_returned_clawback", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, unreturned)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.refund(i, 10000, contract.TriggerApproval, true)
			f.resolve(i, contract.ResolutionClosed, contract.ByTimeout)
			f.out(contract.OutClawback, i, `"amount_fen":10000,"outcome":"not_returned"`)
			f.out(contract.OutTrust, i, `"outcome":"not_returned","penalty":20`)
		}},
		{"promise released, nothing to claw back", "not_returned_clawback", false, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, unreturned)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.resolve(i, contract.ResolutionClosed, contract.ByTimeout)
		}},
		{"clawback of nothing advanced", "not_returned_clawback", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, unreturned)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.resolve(i, contract.ResolutionClosed, contract.ByTimeout)
			f.out(contract.OutClawback, i, `"amount_fen":10000,"outcome":"not_returned"`)
		}},
		{"not_returned without a close", "not_returned_clawback", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, nil)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.refund(i, 10000, contract.TriggerTracking, true)
			f.out(contract.OutClawback, i, `"amount_fen":10000,"outcome":"not_returned"`)
		}},

		{"reviewed approval refunds at inspection", "reviewed_not_advanced", false, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, both(answered(2, true, "merchant"), func(r *world.Request) { r.Hist.Inspect = 5 }))
			f.send()
			f.decide(i, contract.DecisionReview, "credit_low")
			f.resolve(i, contract.ResolutionApproved, "merchant")
			f.refund(i, 10000, contract.TriggerInspection, false)
		}},
		{"reviewed approval advances", "reviewed_not_advanced", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, answered(2, true, "merchant"))
			f.send()
			f.decide(i, contract.DecisionReview, "credit_low")
			f.resolve(i, contract.ResolutionApproved, "merchant")
			f.refund(i, 10000, contract.TriggerTracking, true)
		}},

		{"one policy everywhere", "policy_on_every_output", false, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, nil)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.refund(i, 10000, contract.TriggerTracking, true)
			f.out(contract.OutPickup, i, `"replace":false`)
		}},
		{"output without policy version", "policy_on_every_output", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, nil)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.outPolicy(contract.OutRefund, i, `"amount_fen":10000`, `{"name":"tmall-fast-return"}`)
		}},
		{"output under another policy", "policy_on_every_output", true, func(f *fixture) {
			i := f.req(f.order(10000), "return_refund", 1, nil)
			f.send()
			f.decide(i, contract.DecisionApproved)
			f.outPolicy(contract.OutTrust, i, `"outcome":"ok"`, `{"name":"jd-lightning-refund","version":"v2"}`)
		}},

		// tmall promises the advance at approval: three 200000 approvals
		// before any tracking pass the cap.
		{"three promises over the cap", "exposure_cap_kept", true, func(f *fixture) {
			for k := range int64(3) {
				f.req(f.order(200000), "return_refund", 1+k, nil)
			}
			f.send()
			for k := range 3 {
				f.decide(k, contract.DecisionApproved)
			}
		}},
		{"third sent to review", "exposure_cap_kept", false, func(f *fixture) {
			for k := range int64(3) {
				f.req(f.order(200000), "return_refund", 1+k, nil)
			}
			f.send()
			f.decide(0, contract.DecisionApproved)
			f.decide(1, contract.DecisionApproved)
			f.decide(2, contract.DecisionReview, contract.ReasonExposureCap)
		}},
		{"inspection releases", "exposure_cap_kept", false, func(f *fixture) {
			f.req(f.order(200000), "return_refund", 1, func(r *world.Request) { r.Hist.Back, r.Hist.Inspect = 2, 3 })
			f.req(f.order(200000), "return_refund", 4, nil)
			f.req(f.order(200000), "return_refund", 5, nil)
			f.send()
			for k := range 3 {
				f.decide(k, contract.DecisionApproved)
			}
			f.refund(0, 200000, contract.TriggerTracking, true)
		}},
		{"cancellation before the refund releases", "exposure_cap_kept", false, func(f *fixture) {
			f.req(f.order(200000), "return_refund", 1, func(r *world.Request) { r.Hist.Cancel = 2 })
			f.req(f.order(200000), "return_refund", 3, nil)
			f.req(f.order(200000), "return_refund", 4, nil)
			f.send()
			for k := range 3 {
				f.decide(k, contract.DecisionApproved)
			}
		}},
		{"cancellation after the refund does not", "exposure_cap_kept", true, func(f *fixture) {
			f.req(f.order(200000), "return_refund", 1, func(r *world.Request) { r.Hist.Back, r.Hist.Cancel = 2, 3 })
			f.req(f.order(200000), "return_refund", 4, nil)
			f.req(f.order(200000), "return_refund", 5, nil)
			f.send()
			for k := range 3 {
				f.decide(k, contract.DecisionApproved)
			}
			f.refund(0, 200000, contract.TriggerTracking, true)
		}},
		{"close releases", "exposure_cap_kept", false, func(f *fixture) {
			f.req(f.order(200000), "return_refund", 1, unreturned)
			f.req(f.order(200000), "return_refund", 2, nil)
			f.req(f.order(200000), "return_refund", 3, nil)
			f.send()
			for k := range 3 {
				f.decide(k, contract.DecisionApproved)
			}
			f.resolve(0, contract.ResolutionClosed, contract.ByTimeout)
		}},
		{"one request over the cap", "exposure_cap_kept", true, func(f *fixture) {
			i := f.req(f.order(600000), "refund_only", 1, nil)
			f.send()
			f.decide(i, contract.DecisionApproved)
		}},

		{"refunded twice over two requests", "order_refunds_within_paid", true, func(f *fixture) {
			o := f.order(10000)
			a := f.req(o, "refund_only", 1, nil)
			b := f.req(o, "refund_only", 2, nil)
			f.send()
			f.decide(a, contract.DecisionApproved)
			f.refund(a, 10000, contract.TriggerApproval, false)
			f.decide(b, contract.DecisionApproved)
			f.refund(b, 10000, contract.TriggerApproval, false)
		}},
		{"6000 then 4000", "order_refunds_within_paid", false, func(f *fixture) {
			o := f.order(10000)
			a := f.req(o, "refund_only", 1, func(r *world.Request) { r.AmountFen = 6000 })
			b := f.req(o, "refund_only", 2, func(r *world.Request) { r.AmountFen = 4000 })
			f.send()
			f.decide(a, contract.DecisionApproved)
			f.refund(a, 6000, contract.TriggerApproval, false)
			f.decide(b, contract.DecisionApproved)
			f.refund(b, 4000, contract.TriggerApproval, false)
		}},
		{"clawback gives the ceiling back", "order_refunds_within_paid", false, func(f *fixture) {
			o := f.order(10000)
			a := f.req(o, "return_refund", 1, func(r *world.Request) { r.Hist.Back, r.Hist.Inspect = 2, 3 })
			b := f.req(o, "refund_only", 4, nil)
			f.send()
			f.decide(a, contract.DecisionApproved)
			f.refund(a, 10000, contract.TriggerTracking, true)
			f.out(contract.OutClawback, a, `"amount_fen":10000,"outcome":"empty_box"`)
			f.decide(b, contract.DecisionApproved)
			f.refund(b, 10000, contract.TriggerApproval, false)
		}},

		{"second request over the ceiling rejected", "order_ceiling_rejects", false, func(f *fixture) {
			o := f.order(10000)
			a := f.req(o, "refund_only", 1, nil)
			b := f.req(o, "refund_only", 5, nil)
			f.send()
			f.decide(a, contract.DecisionApproved)
			f.refund(a, 10000, contract.TriggerApproval, false)
			f.decide(b, contract.DecisionRejected, contract.ReasonAmountExceedsPaid)
		}},
		{"second request over the ceiling approved", "order_ceiling_rejects", true, func(f *fixture) {
			o := f.order(10000)
			a := f.req(o, "return_refund", 1, func(r *world.Request) { r.Hist.Back, r.Hist.Inspect = 2, 3 })
			b := f.req(o, "return_refund", 5, nil)
			f.send()
			f.decide(a, contract.DecisionApproved)
			f.refund(a, 10000, contract.TriggerTracking, true)
			f.decide(b, contract.DecisionApproved)
		}},
		{"4000 after 6000 allowed", "order_ceiling_allows", false, func(f *fixture) {
			o := f.order(10000)
			a := f.req(o, "refund_only", 1, func(r *world.Request) { r.AmountFen = 6000 })
			b := f.req(o, "refund_only", 5, func(r *world.Request) { r.AmountFen = 4000 })
			f.send()
			f.decide(a, contract.DecisionApproved)
			f.refund(a, 6000, contract.TriggerApproval, false)
			f.decide(b, contract.DecisionApproved)
		}},
		{"4000 after 6000 refused", "order_ceiling_allows", true, func(f *fixture) {
			o := f.order(10000)
			a := f.req(o, "return_refund", 1, func(r *world.Request) { r.AmountFen, r.Hist.Back, r.Hist.Inspect = 6000, 2, 3 })
			b := f.req(o, "refund_only", 5, func(r *world.Request) { r.AmountFen = 4000 })
			f.send()
			f.decide(a, contract.DecisionApproved)
			f.refund(a, 6000, contract.TriggerTracking, true)
			f.decide(b, contract.DecisionRejected, contract.ReasonAmountExceedsPaid)
		}},
	}
	for _, c := range cases {
		f := newFixture(t)
		c.build(f)
		got := f.check(c.check)
		if got.Checked == 0 {
			t.Errorf("%s: %s checked nothing", c.name, c.check)
		}
		if (got.Failed > 0) != c.fail {
			t.Errorf("%s: %s failed %d (%v), want failure %v", c.name, c.check, got.Failed, got.Examples, c.fail)
		}
	}
}

// Dead letters name the subject the event was published to; outputs about
// events that cannot stand, and a shopper stopped by one, fail.
func TestInvalidInputChecks(t *testing.T) {
	f := func(name, check string, fail bool, build func(f *fixture)) {
		t.Helper()
		fx := newFixture(t)
		build(fx)
		got := fx.check(check)
		if (got.Failed > 0) != fail || got.Checked == 0 {
			t.Errorf("%s: %s checked %d failed %d (%v), want failure %v", name, check, got.Checked, got.Failed, got.Examples, fail)
		}
	}
	dead := func(fx *fixture, subject, reason string) {
		fx.g.Bads = append(fx.g.Bads, world.Bad{Reason: contract.ReasonUnknownRequest, Subject: "fr.in.logistics.ua-0", Type: contract.TypeTracking, Shopper: 0, Order: -1, Follow: -1})
		payload := []byte(`{"event_id":"ea-9","request_id":"qa-9"}`)
		fx.tr.BadSent(int32(len(fx.g.Bads)-1), payload)
		fx.tr.DeadLetter([]byte(fmt.Sprintf(`{"reason":%q,"subject":%q,"payload_b64":"eyJldmVudF9pZCI6ImVhLTkiLCJyZXF1ZXN0X2lkIjoicWEtOSJ9"}`, reason, subject)))
	}
	f("subject as published", "dead_letter_subject", false, func(fx *fixture) {
		fx.send()
		dead(fx, "fr.in.logistics.ua-0", contract.ReasonUnknownRequest)
	})
	f("subject as stored", "dead_letter_subject", true, func(fx *fixture) {
		fx.send()
		dead(fx, "fr.p.3.logistics.ua-0", contract.ReasonUnknownRequest)
	})
	f("reason", "dead_letter_reason", true, func(fx *fixture) {
		fx.send()
		dead(fx, "fr.in.logistics.ua-0", "poison")
	})
	f("silent", "no_output_for_invalid", false, func(fx *fixture) {
		fx.send()
		dead(fx, "fr.in.logistics.ua-0", contract.ReasonUnknownRequest)
	})
	f("a refund for an unknown request", "no_output_for_invalid", true, func(fx *fixture) {
		fx.send()
		dead(fx, "fr.in.logistics.ua-0", contract.ReasonUnknownRequest)
		fx.tr.Output("fr.out.refund.ua-0", []byte(`{"request_id":"qa-9","amount_fen":100}`), time.Now())
	})
	follow := func(decided bool) func(fx *fixture) {
		return func(fx *fixture) {
			o := fx.order(5000)
			i := fx.req(o, "return_refund", 3, nil)
			fx.send()
			fx.g.Bads = append(fx.g.Bads, world.Bad{Reason: contract.ReasonFutureTime, Subject: "fr.in.credit.ua-0", Type: contract.TypeCreditUpdated, Follow: o})
			fx.tr.BadSent(0, []byte("x"))
			if decided {
				fx.decide(i, contract.DecisionApproved)
			}
		}
	}
	f("shopper goes on", "valid_after_invalid", false, follow(true))
	f("shopper stopped", "valid_after_invalid", true, follow(false))
}

// The drain waits for the resolutions that deadlines passed before the
// run make due, and only for those.
func TestResolutionsDue(t *testing.T) {
	fx := newFixture(t)
	a := fx.req(fx.order(10000), "return_refund", 1, aged)
	b := fx.req(fx.order(10000), "exchange", 2, unreturned)
	c := fx.req(fx.order(10000), "return_refund", 3, aged)
	d := fx.req(fx.order(10000), "return_refund", 4, nil)
	fx.send()
	due := func(want int64) {
		t.Helper()
		if got := fx.tr.Snapshot().Due; got != want {
			t.Fatalf("due %d, want %d", got, want)
		}
	}
	due(0)
	fx.decide(a, contract.DecisionReview, "credit_low")
	fx.decide(b, contract.DecisionApproved)
	fx.decide(c, contract.DecisionReview, contract.ReasonExposureCap) // waits for a person
	fx.decide(d, contract.DecisionReview, "credit_low")               // within its deadline
	due(2)
	fx.resolve(a, contract.ResolutionApproved, contract.ByTimeout)
	due(1)
	fx.resolve(b, contract.ResolutionClosed, contract.ByTimeout)
	due(0)
}
