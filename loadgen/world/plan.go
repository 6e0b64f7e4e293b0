package world

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/flashreturn/flashreturn/loadgen/contract"
)

// planKind is what a planned event will be once it is due; plans wait
// in a heap ordered by due position, then by the order they were made,
// so that ties break the same way in every run of a seed.
type planKind uint8

const (
	planPaid planKind = iota
	planShipped
	planDelivered
	planRequest
	planCancel
	planTracking
	planPickup
	planInspection
	planAnswer
)

// plan is an event decided but not yet due. Its due is a position in
// the event sequence, not a time: the sequence is then the same at any
// rate, and a seed names one world however fast it is sent.
type plan struct {
	due     int64
	seq     uint64
	kind    planKind
	order   int32
	request int32
	outcome string // inspection outcome, or "approved"/"rejected" for an Answer
	by      string // an Answer's by
	// planPaid: force gives the order a request; fixed says its other
	// events are planned already (a splurge's).
	force, fixed bool
	// fields of a request not yet sent
	req *Request
}

type planHeap []plan

func (h planHeap) Len() int { return len(h) }
func (h planHeap) Less(i, j int) bool {
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].seq < h[j].seq
}
func (h planHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *planHeap) Push(x any)   { *h = append(*h, x.(plan)) }
func (h *planHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (g *Generator) push(p plan) {
	g.seq++
	p.seq = g.seq
	heap.Push(&g.pending, p)
}

// after is a due position lo to hi events from now. Delays are lower
// bounds: when several plans fall due together they leave one per
// event, which stretches an order's life a little at busy positions
// but never reorders it.
func (g *Generator) after(lo, hi int) int64 { return g.n + int64(lo+g.rng.IntN(hi-lo+1)) }

// chance draws true with probability p; a p of 0 or less (a behaviour
// turned off) draws nothing, so that a classic world's sequence does not
// depend on the lifecycle's knobs.
func (g *Generator) chance(p float64) bool { return p > 0 && g.rng.Float64() < p }

// jitter is 0 to shiftJitterMinutes minutes.
func (g *Generator) jitter() time.Duration {
	return time.Duration(g.rng.IntN(shiftJitterMinutes+1)) * time.Minute
}

// Next plans the next event of the sequence. It never runs out.
func (g *Generator) Next() Event {
	// The draws below happen in a fixed order on every call: the order
	// is part of what a seed means, and reordering them would change
	// every world (and break Classic's byte-for-byte promise).
	defer func() { g.n++ }()
	if g.opts.BadFraction > 0 && g.rng.Float64() < g.opts.BadFraction {
		return g.nextBad()
	}
	if g.chance(g.opts.InvalidFraction) {
		if e, ok := g.nextInvalid(); ok {
			return e
		}
	}
	// Due plans come before new activity, so follow-ups are never
	// starved by fresh orders, however hot the traffic.
	if len(g.pending) > 0 && g.pending[0].due <= g.n {
		return g.fromPlan(heap.Pop(&g.pending).(plan))
	}
	return g.newActivity()
}

// base starts an event on its shopper's subject: the last token is the
// user id because the contract requires user_id to equal it
// (subject_mismatch otherwise) and the daemon partitions by it.
func (g *Generator) base(typ, subjectKind string, shopper int32) Event {
	return Event{N: g.n, Type: typ, Subject: contract.InSubject(subjectKind, g.ShopperID(shopper)), ID: g.eventID(g.n),
		Shopper: shopper, Order: -1, Request: -1, Bad: -1}
}

func (g *Generator) newActivity() Event {
	// A request about an order that was never paid: rare, and rejected.
	if g.rng.Float64() < g.opts.ReturnFraction*ghostShare/3 {
		s := g.rank[g.zipf.Uint64()]
		// Only for a credited shopper, so that the order is the one
		// thing wrong (domain.md, Outcomes: order_unknown rejects).
		// Each ghost gets its own negative index, so that no two
		// share an order id and none is duplicate_request.
		if g.credited[s] {
			g.ghosts++
			r := g.newRequest(-int32(g.ghosts), s)
			return g.emitRequest(r)
		}
	}
	if g.chance(g.opts.SplurgeFraction) {
		if e, ok := g.splurge(); ok {
			return e
		}
	}
	s := g.rank[g.zipf.Uint64()]
	if !g.credited[s] {
		g.credited[s] = true
		// A shopper's first event is credit.updated and the order
		// comes one event later: stars are upstream data (domain.md,
		// Preset 1) that a request's decision must be able to read.
		e := g.base(contract.TypeCreditUpdated, "credit", s)
		g.push(plan{due: g.n + 1, kind: planPaid, order: g.newOrder(s)})
		return e
	}
	return g.fromPlan(plan{kind: planPaid, order: g.newOrder(s)})
}

func (g *Generator) newOrder(s int32) int32 {
	sh := g.Shoppers[s]
	cat := categories[pick(g.rng, categoryWeights)]
	o := Order{Shopper: s, Merchant: int32(g.rng.IntN(len(g.Merchants))), Category: cat, Size: "small",
		SevenDay: cat != "fresh" && g.rng.Float64() < 0.9, Insured: g.rng.IntN(2) == 0, City: sh.City}
	// Log-normal prices, median 150 yuan for most categories: most
	// ordinary orders fit under douyin's 30000-fen and jd's 20000-fen
	// caps and a fifth to a third do not, so the amount rules are
	// exercised both ways. Fresh food never supports 7-day returns,
	// as on the platforms (domain.md, Preset 1 excludes it).
	mu := math.Log(15000)
	switch cat {
	case "large_appliance":
		o.Size, mu = "large", math.Log(300000)
	case "electronics":
		mu = math.Log(80000)
	case "home":
		if g.rng.Float64() < 0.3 {
			o.Size = "large"
		}
	}
	o.PaidFen = min(max(int64(math.Exp(mu+0.9*g.rng.NormFloat64())), 100), 5_000_000)
	return g.addOrder(o)
}

func (g *Generator) addOrder(o Order) int32 {
	g.Orders = append(g.Orders, o)
	i := int32(len(g.Orders) - 1)
	g.lastOrder[o.Shopper] = i
	return i
}

// splurge plans a good shopper's three large orders, delivered, then
// three return requests in a row before any goods go back: promised
// advances that reach the exposure cap. It returns the splurge's first
// event, or false when the drawn shopper or merchant does not fit.
func (g *Generator) splurge() (Event, bool) {
	s := int32(g.rng.IntN(len(g.Shoppers)))
	// Three stars is the preset minimum of tmall and douyin: a splurge
	// must be approved at once, or its advances never count.
	if g.Shoppers[s].Stars < 3 {
		return Event{}, false
	}
	m := int32(-1)
	for range 10 {
		// A merchant without a return address would make every
		// request merchant_unknown (review), which advances nothing.
		if c := int32(g.rng.IntN(len(g.Merchants))); len(g.Merchants[c].ReturnAddresses) > 0 {
			m = c
			break
		}
	}
	if m < 0 {
		return Event{}, false
	}
	var first Event
	start := g.n
	if !g.credited[s] {
		g.credited[s] = true
		first = g.base(contract.TypeCreditUpdated, "credit", s)
		start++
	}
	for j := range int64(splurgeOrders) {
		o := g.addOrder(Order{Shopper: s, Merchant: m, Category: "electronics", Size: "small",
			PaidFen: splurgeMinFen + g.rng.Int64N(splurgeSpanFen+1), SevenDay: true, Insured: g.rng.IntN(2) == 0,
			City: g.Shoppers[s].City})
		if j == 0 && start == g.n {
			first = g.fromPlan(plan{kind: planPaid, order: o, fixed: true})
		} else {
			g.push(plan{due: start + j, kind: planPaid, order: o, fixed: true})
		}
		g.push(plan{due: start + splurgeOrders + j, kind: planShipped, order: o})
		g.push(plan{due: start + 2*splurgeOrders + j, kind: planDelivered, order: o})
		// The requests come after every delivery and before any goods
		// go back, so all three advances are outstanding together:
		// three of 170000 to 250000 fen pass the 500000-fen cap.
		g.push(plan{due: start + 3*splurgeOrders + 1 + 2*j, kind: planRequest, order: o,
			req: &Request{Order: o, Shopper: s, Kind: "return_refund", Reason: "no_reason", Stars: g.Shoppers[s].Stars,
				Splurge: true}})
	}
	return first, true
}

func (g *Generator) newRequest(order int32, s int32) *Request {
	r := &Request{Order: order, Shopper: s, Kind: kinds[pick(g.rng, kindWeights)], Reason: reasons[pick(g.rng, reasonWeights)],
		Pickup: g.rng.Float64() < 0.4, Stars: g.Shoppers[s].Stars}
	paid := int64(10000)
	if order >= 0 {
		paid = g.Orders[order].PaidFen
	}
	switch u := g.rng.Float64(); {
	case u < overPaidShare:
		// Over paid: rejected amount_exceeds_paid (domain.md, Money
		// safety, Per-order ceiling) under every policy.
		r.AmountFen = paid + 1 + g.rng.Int64N(paid)
	case u < overPaidShare+partialShare && paid > 1:
		r.AmountFen = 1 + g.rng.Int64N(paid-1)
	}
	r.Cancelled = g.rng.Float64() < cancelShare
	return r
}

func (g *Generator) fromPlan(p plan) Event {
	switch p.kind {
	case planPaid:
		o := &g.Orders[p.order]
		e := g.base(contract.TypeOrderPaid, "order", o.Shopper)
		e.Order = p.order
		if p.fixed {
			return e
		}
		ret := g.rng.Float64() < g.opts.ReturnFraction || p.force
		var stale, early, aged, unreturned bool
		if ret {
			u := g.rng.Float64()
			stale, early = u < staleShare, u >= staleShare && u < staleShare+earlyShare
		}
		if stale {
			o.Shift = staleShift
		}
		// At most one date anomaly per request: the audit's
		// expectation for each kind is then unambiguous (a stale
		// and aged request would be judged by two rules at once).
		if ret && !stale && !early {
			switch {
			case g.chance(g.opts.AgedFraction):
				aged, o.Shift = true, AgedShift-g.jitter()
			case g.chance(g.opts.UnreturnedFraction):
				unreturned, o.Shift = true, UnreturnedShift-g.jitter()
			}
		}
		e.Shift = o.Shift
		ship := g.after(5, 40)
		g.push(plan{due: ship, kind: planShipped, order: p.order})
		deliver := ship + int64(5+g.rng.IntN(36))
		if ret {
			r := g.newRequest(p.order, o.Shopper)
			r.Stale, r.Early = stale, early
			if aged || unreturned {
				r.Aged, r.Unreturned, r.Shift, r.Cancelled = true, unreturned, o.Shift, false
			}
			// refund_only sends nothing back, so it could never be
			// closed by the return deadline.
			if unreturned && r.Kind == "refund_only" {
				// Goods that could come back and do not.
				r.Kind = "return_refund"
				if g.rng.IntN(4) == 0 {
					r.Kind = "exchange"
				}
			}
			// Second requests only on plain orders: after an aged,
			// stale or early first request (review, rejection) the
			// second's expected outcome would hang on a resolution.
			if !r.Aged && !stale && !early && g.chance(g.opts.RepeatFraction) {
				r.Repeat, r.Cancelled = true, false
				if g.rng.IntN(2) == 0 && o.PaidFen >= 2 {
					r.AmountFen = max(o.PaidFen*6/10, 1)
					r.repeatFen = o.PaidFen - r.AmountFen
				}
			}
			due := deliver + int64(5+g.rng.IntN(56))
			if early {
				due = ship + 1 + int64(g.rng.IntN(4))
				deliver = due + int64(5+g.rng.IntN(36))
			}
			g.push(plan{due: due, kind: planRequest, order: p.order, req: r})
		}
		g.push(plan{due: deliver, kind: planDelivered, order: p.order})
		return e
	case planShipped, planDelivered:
		o := &g.Orders[p.order]
		typ := contract.TypeOrderShipped
		if p.kind == planDelivered {
			typ = contract.TypeOrderDelivered
		} else {
			o.Shipped = g.n + 1
		}
		e := g.base(typ, "order", o.Shopper)
		e.Order, e.Shift = p.order, o.Shift
		return e
	case planRequest:
		return g.emitRequest(p.req)
	default:
		r := &g.Requests[p.request]
		h := &r.Hist
		var e Event
		switch p.kind {
		case planCancel:
			e = g.base(contract.TypeReturnCancelled, "return", r.Shopper)
			h.Cancel = g.n + 1
		case planTracking, planPickup:
			if p.kind == planTracking {
				e = g.base(contract.TypeTracking, "logistics", r.Shopper)
			} else {
				e = g.base(contract.TypePickupDone, "logistics", r.Shopper)
			}
			if h.Back == 0 {
				h.Back = g.n + 1
			}
		case planAnswer:
			typ := contract.TypeReviewRejected
			if p.outcome == contract.DecisionApproved {
				typ = contract.TypeReviewApproved
			}
			e = g.base(typ, "review", r.Shopper)
			e.By = p.by
			h.Answers = append(h.Answers, Answer{Pos: g.n + 1, Approve: p.outcome == contract.DecisionApproved, By: p.by})
		default:
			e = g.base(contract.TypeInspection, "inspection", r.Shopper)
			e.Outcome = p.outcome
			h.Inspect, h.Outcome = g.n+1, p.outcome
		}
		e.Request, e.Order = p.request, r.Order
		return e
	}
}

func (g *Generator) emitRequest(r *Request) Event {
	// Positions are stored +1 so that 0 in a History means "never"; the
	// audit's lifecycle checks rely on that.
	r.Hist = History{Sent: g.n + 1}
	g.Requests = append(g.Requests, *r)
	idx := int32(len(g.Requests) - 1)
	e := g.base(contract.TypeReturnRequested, "return", r.Shopper)
	e.Request, e.Order, e.Shift = idx, r.Order, r.Shift
	end := g.n // when the request is over, as far as the world goes
	switch {
	case r.Cancelled:
		end = g.after(3, 20)
		g.push(plan{due: end, kind: planCancel, request: idx})
	// Goods come back unless the request is unreturned (its whole
	// point), a refund_only or a ghost. The tracking follows the
	// pickup: the courier uploads it at pickup (domain.md, Pickup
	// windows), and some shoppers send without a pickup.
	case r.Kind != "refund_only" && r.Order >= 0 && !r.Unreturned:
		back := g.after(5, 40)
		if r.Pickup {
			g.push(plan{due: back, kind: planPickup, request: idx})
		}
		if !r.Pickup || g.rng.IntN(2) == 0 {
			g.push(plan{due: back + 1, kind: planTracking, request: idx})
		}
		end = back + int64(20+g.rng.IntN(41))
		g.push(plan{due: end, kind: planInspection, request: idx, outcome: outcomes[pick(g.rng, outcomeWeights)]})
	}
	// Answers go to requests whatever their decision: an answer to
	// one not in review must change nothing (domain.md, After
	// review), and only traffic that sends such answers tests it.
	if g.chance(g.opts.AnswerFraction) {
		due := g.after(2, 12)
		g.push(g.answerPlan(due, idx))
		if g.chance(g.opts.DuplicateAnswerFraction) {
			g.push(g.answerPlan(due+int64(1+g.rng.IntN(10)), idx))
		}
		end = max(end, due)
	}
	if r.Repeat {
		second := &Request{Order: r.Order, Shopper: r.Shopper, Kind: "return_refund", Reason: r.Reason, Stars: r.Stars,
			AmountFen: r.repeatFen, Second: true}
		if g.rng.IntN(10) < 3 {
			second.Kind = "refund_only"
		}
		// After the first is over, so the first holds nothing
		// reserved and the ceiling check can say what must happen.
		g.push(plan{due: end + int64(3+g.rng.IntN(8)), kind: planRequest, order: r.Order, req: second})
	}
	return e
}

// answerPlan plans a review Answer to request idx.
func (g *Generator) answerPlan(due int64, idx int32) plan {
	p := plan{due: due, kind: planAnswer, request: idx, outcome: contract.DecisionRejected, by: "platform"}
	if g.rng.Float64() < answerApproveShare {
		p.outcome = contract.DecisionApproved
	}
	if g.rng.Float64() < answerMerchantShare {
		p.by = "merchant"
	}
	return p
}

var badReasons = []string{"bad_json", "missing_field", "bad_value", "unknown_type", "subject_mismatch"}

func (g *Generator) nextBad() Event {
	b := Bad{Reason: badReasons[g.rng.IntN(len(badReasons))], Shopper: -1, Order: -1, Follow: -1}
	// Malformed events go to users of an "x" namespace that no real
	// shopper has: were one processed by mistake, it could not change a
	// real shopper's state and make a later decision look wrong.
	user := "x" + g.opts.RunID + "-" + strconv.FormatInt(g.n, 10)
	switch b.Reason {
	case "bad_value", "subject_mismatch":
		b.Subject = contract.InSubject(contract.KindCredit, user)
	default:
		b.Subject = contract.InSubject(contract.KindOrder, user)
	}
	g.Bads = append(g.Bads, b)
	return Event{N: g.n, Type: "bad." + b.Reason, Subject: b.Subject, ID: g.eventID(g.n), Shopper: -1, Order: -1, Request: -1,
		Bad: int32(len(g.Bads) - 1)}
}

// invalidKinds are the well-formed events that cannot stand, with the
// subject kind they are sent on and their dead-letter reason.
// Entries repeat to weight the draw: future_time and bad_value, one
// event type each, get two entries like unknown_order (two types), so
// every reason is drawn at least a sixth of the time.
var invalidKinds = []struct{ typ, subject, reason string }{
	{contract.TypeOrderShipped, "order", contract.ReasonUnknownOrder},
	{contract.TypeOrderDelivered, "order", contract.ReasonUnknownOrder},
	{contract.TypeReturnCancelled, "return", contract.ReasonUnknownRequest},
	{contract.TypeTracking, "logistics", contract.ReasonUnknownRequest},
	{contract.TypePickupDone, "logistics", contract.ReasonUnknownRequest},
	{contract.TypeInspection, "inspection", contract.ReasonUnknownRequest},
	{contract.TypeReviewApproved, "review", contract.ReasonUnknownRequest},
	{contract.TypeReviewRejected, "review", contract.ReasonUnknownRequest},
	{contract.TypeCreditUpdated, "credit", contract.ReasonFutureTime},
	{contract.TypeCreditUpdated, "credit", contract.ReasonFutureTime},
	{contract.TypeReturnRequested, "return", contract.ReasonBadValue},
	{contract.TypeReturnRequested, "return", contract.ReasonBadValue},
}

// nextInvalid plans a well-formed event that cannot stand, on a known
// shopper's subject, and a new order of the same shopper right after it.
func (g *Generator) nextInvalid() (Event, bool) {
	s := g.rank[g.zipf.Uint64()]
	if !g.credited[s] {
		return Event{}, false
	}
	k := invalidKinds[g.rng.IntN(len(invalidKinds))]
	b := Bad{Reason: k.reason, Subject: contract.InSubject(k.subject, g.ShopperID(s)), Type: k.typ, Shopper: s, Order: -1}
	if k.typ == contract.TypeReturnRequested {
		b.Order = g.lastOrder[s]
	}
	// The follow-up order carries a request that must be decided:
	// "the rest of the partition goes on" (domain.md, Input that
	// cannot stand) is only tested if something comes after.
	b.Follow = g.newOrder(s)
	g.push(plan{due: g.n + 1, kind: planPaid, order: b.Follow, force: true})
	g.Bads = append(g.Bads, b)
	e := Event{N: g.n, Type: "bad." + b.Reason, Subject: b.Subject, ID: g.eventID(g.n), Shopper: s, Order: -1, Request: -1,
		Bad: int32(len(g.Bads) - 1)}
	if k.reason == contract.ReasonFutureTime {
		e.Shift = futureShift
	}
	return e, true
}

// pick draws an index with the given weights (which sum to about 1).
func pick(rng *rand.Rand, w []float64) int {
	u := rng.Float64()
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}
