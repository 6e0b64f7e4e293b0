package loadgen

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// WorldOptions sizes and seeds the simulated marketplace. The zero value
// means the documented defaults; see [WorldOptions.withDefaults].
type WorldOptions struct {
	// Seed drives every random choice. The same Seed, RunID and sizes give
	// the same world and the same event sequence, byte for byte once the
	// event times are fixed.
	Seed uint64
	// RunID prefixes every id (users, merchants, orders, requests, events),
	// so two runs against the same daemon never collide. It must match
	// [A-Za-z0-9_-]{1,16}. Empty means "run".
	RunID string
	// Shoppers is the population size; 0 means 200000.
	Shoppers int
	// Merchants is the number of shops; 0 means 2000.
	Merchants int
	// ReturnFraction is the share of orders that get an after-sales
	// request; 0 means 0.06.
	ReturnFraction float64
	// BadFraction is the share of events that are malformed and must be
	// dead-lettered; 0 means none, 1 is the maximum.
	BadFraction float64
	// ZipfS and ZipfV shape shopper activity: the shopper of rank k is
	// picked with probability proportional to (ZipfV + k)^-ZipfS. 0 means
	// 1.1 and 50: with 200000 shoppers the hottest makes ~0.35% of the
	// traffic and the top 1% about half of it.
	ZipfS, ZipfV float64
}

func (o WorldOptions) withDefaults() WorldOptions {
	if o.RunID == "" {
		o.RunID = "run"
	}
	if o.Shoppers == 0 {
		o.Shoppers = 200000
	}
	if o.Merchants == 0 {
		o.Merchants = 2000
	}
	if o.ReturnFraction == 0 {
		o.ReturnFraction = 0.06
	}
	if o.ZipfS == 0 {
		o.ZipfS = 1.1
	}
	if o.ZipfV == 0 {
		o.ZipfV = 50
	}
	return o
}

func (o WorldOptions) validate() error {
	if len(o.RunID) > 16 || !validID(o.RunID) {
		return fmt.Errorf("loadgen: run id %q must match [A-Za-z0-9_-]{1,16}", o.RunID)
	}
	if o.Shoppers < 1 || o.Merchants < 1 {
		return fmt.Errorf("loadgen: shoppers (%d) and merchants (%d) must be positive", o.Shoppers, o.Merchants)
	}
	if o.ReturnFraction <= 0 || o.ReturnFraction > 1 {
		return fmt.Errorf("loadgen: return fraction %v outside (0, 1]", o.ReturnFraction)
	}
	if o.BadFraction < 0 || o.BadFraction > 1 {
		return fmt.Errorf("loadgen: bad fraction %v outside [0, 1]", o.BadFraction)
	}
	if o.ZipfS <= 1 || o.ZipfV < 1 {
		return fmt.Errorf("loadgen: zipf s %v must be > 1 and v %v >= 1", o.ZipfS, o.ZipfV)
	}
	return nil
}

func validID(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// Shopper is one simulated buyer.
type Shopper struct {
	// Stars is the credit rating sent in credit.updated, 1..5.
	Stars int
	// City is where the shopper lives and orders are delivered.
	City string
}

// Merchant is one simulated shop, published as merchant.updated before any
// order that names it.
type Merchant struct {
	// ReturnAddresses and ShipAddresses are sent as merchant.updated has
	// them (possibly empty).
	ReturnAddresses []string
	ShipAddresses   []string
	// Rules are the merchant's own auto-approval rules, often none.
	Rules []MerchantRule
}

// Order is one paid order of the world.
type Order struct {
	// Shopper and Merchant index the generator's slices.
	Shopper  int32
	Merchant int32
	// Category, Size, PaidFen, SevenDay, Insured (freight insurance) and
	// City are sent in order.paid.
	Category string
	Size     string
	PaidFen  int64
	SevenDay bool
	Insured  bool
	City     string
	// Shift is added to the event times of the order's own events
	// (paid, shipped, delivered): negative for a stale order whose goods
	// were signed for long before the request (outside the 7-day window).
	Shift time.Duration
}

// Request is one after-sales request of the world.
type Request struct {
	// Order indexes Generator.Orders, or is negative for a request about
	// an order that was never paid (expected: rejected, order_unknown).
	Order int32
	// Shopper indexes Generator.Shoppers.
	Shopper int32
	// Kind, Reason and Pickup are sent in return.requested.
	Kind   string
	Reason string
	Pickup bool
	// AmountFen is the requested amount; 0 means omitted (the paid amount).
	AmountFen int64
	// Stars is the shopper's rating when the request was sent.
	Stars int
	// Stale and Early say the request was planned outside the window or
	// before the delivery.
	Stale, Early bool
	// Cancelled says a return.cancelled follows.
	Cancelled bool
}

// Bad is one malformed event and the dead-letter reason it must get.
type Bad struct {
	// Reason is the contract's DLQ reason the event must get.
	Reason string
	// Subject is where it is published.
	Subject string
	// Payload is the exact bytes sent, set when the event is encoded.
	Payload []byte
}

// Event is one inbound message the generator plans. Its payload is made by
// [Generator.Encode] once its event time is known.
type Event struct {
	// N is the event's position in the sequence, from 0.
	N int64
	// Type is the contract's event type ("bad.<reason>" for a malformed
	// event).
	Type string
	// Subject is the inbound subject it is published to.
	Subject string
	// ID is the event_id and the Nats-Msg-Id.
	ID string
	// Shopper, Order, Request and Bad index the generator's slices; -1
	// when the event has none, except that the Order of a request event
	// about a ghost order (never paid) is negative, see Generator.OrderID.
	Shopper, Order, Request, Bad int32
	// Outcome is an inspection.result's outcome.
	Outcome string
	// Shift is added to the event's send time to get its `at`.
	Shift time.Duration
}

// Generator plans the event sequence of a seeded world: shoppers, merchants,
// orders and their after-sales flow, interleaved as a marketplace would
// produce them. It is not safe for concurrent use; the exported slices may
// be read once generation has stopped or under the caller's own ordering.
type Generator struct {
	opts     WorldOptions
	rng      *rand.Rand
	zipf     *rand.Zipf
	rank     []int32 // zipf rank -> shopper index
	credited []bool
	// Shoppers and Merchants are fixed at construction.
	Shoppers  []Shopper
	Merchants []Merchant
	// Orders, Requests and Bads grow as Next plans events; an Event's
	// indices point into them.
	Orders   []Order
	Requests []Request
	Bads     []Bad
	pending  planHeap
	seq      uint64
	n        int64
	ghosts   int
}

var (
	cities = []string{"shanghai", "beijing", "hangzhou", "shenzhen", "guangzhou", "chengdu", "wuhan", "nanjing",
		"chongqing", "tianjin", "suzhou", "xian", "changsha", "zhengzhou", "qingdao", "dongguan", "shenyang", "ningbo",
		"kunming", "hefei", "foshan", "fuzhou", "xiamen", "harbin", "jinan", "wenzhou", "dalian", "changchun",
		"nanning", "guiyang", "shijiazhuang", "taiyuan", "nanchang", "urumqi", "lanzhou", "haikou", "hohhot", "yinchuan",
		"xining", "lhasa"}
	starWeights     = []float64{0.04, 0.06, 0.20, 0.30, 0.40} // 1..5 stars
	categories      = []string{"apparel", "electronics", "beauty", "home", "books", "toys", "fresh", "large_appliance"}
	categoryWeights = []float64{0.35, 0.15, 0.12, 0.12, 0.06, 0.06, 0.08, 0.06}
	reasons         = []string{"no_reason", "dislike", "wrong_order", "quality", "damaged", "not_as_described", "other"}
	reasonWeights   = []float64{0.40, 0.15, 0.10, 0.15, 0.08, 0.08, 0.04}
	kinds           = []string{"return_refund", "refund_only", "exchange"}
	kindWeights     = []float64{0.75, 0.15, 0.10}
	outcomes        = []string{"ok", "damaged", "used", "empty_box", "wrong_item"}
	outcomeWeights  = []float64{0.95, 0.02, 0.015, 0.005, 0.01}
)

// Shares of requests with special shapes (of all requests).
const (
	staleShare     = 0.03  // delivered 10 days before the request
	earlyShare     = 0.02  // requested before the delivery
	overPaidShare  = 0.02  // amount_fen > paid_fen
	partialShare   = 0.08  // amount_fen < paid_fen
	cancelShare    = 0.03  // return.cancelled follows
	ghostShare     = 0.005 // request for an order never paid
	ruleShare      = 0.15  // merchants with their own rules
	mismatchShare  = 0.12  // merchants whose return and ship addresses differ
	noAddressShare = 0.03  // merchants with no return address
	staleShift     = -10 * 24 * time.Hour
)

// NewGenerator builds the shoppers and merchants of a world; events come
// from [Generator.Next].
func NewGenerator(o WorldOptions) (*Generator, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	g := &Generator{opts: o, rng: rng}
	g.Shoppers = make([]Shopper, o.Shoppers)
	for i := range g.Shoppers {
		g.Shoppers[i] = Shopper{Stars: 1 + pick(rng, starWeights), City: cities[rng.IntN(len(cities))]}
	}
	g.rank = make([]int32, o.Shoppers)
	for i := range g.rank {
		g.rank[i] = int32(i)
	}
	rng.Shuffle(len(g.rank), func(i, j int) { g.rank[i], g.rank[j] = g.rank[j], g.rank[i] })
	g.credited = make([]bool, o.Shoppers)
	g.zipf = rand.NewZipf(rng, o.ZipfS, o.ZipfV, uint64(o.Shoppers-1))
	g.Merchants = make([]Merchant, o.Merchants)
	for i := range g.Merchants {
		g.Merchants[i] = g.newMerchant(i)
	}
	return g, nil
}

func (g *Generator) newMerchant(i int) Merchant {
	addr := func(k int) string { return fmt.Sprintf("warehouse %d-%d, %s", i, k, cities[(i+k)%len(cities)]) }
	var m Merchant
	switch u := g.rng.Float64(); {
	case u < noAddressShare:
		m.ShipAddresses = []string{addr(0)}
		m.ReturnAddresses = []string{}
	case u < noAddressShare+mismatchShare:
		if g.rng.IntN(2) == 0 {
			m.ReturnAddresses, m.ShipAddresses = []string{addr(1)}, []string{addr(0)}
		} else {
			m.ReturnAddresses, m.ShipAddresses = []string{addr(0), addr(1)}, []string{addr(0)}
		}
	default:
		m.ReturnAddresses, m.ShipAddresses = []string{addr(0)}, []string{addr(0)}
	}
	if g.rng.Float64() < ruleShare {
		n := 1 + g.rng.IntN(2)
		for k := 0; k < n; k++ {
			r := MerchantRule{Name: fmt.Sprintf("assistant-%d", k)}
			switch g.rng.IntN(3) {
			case 0: // small quality claims from decent shoppers
				r.Reasons = []string{"quality", "damaged", "not_as_described"}
				r.MinStars = 3
				r.MaxAmountFen = 10000
			case 1: // any reason within 3 days, good shoppers
				r.Kinds = []string{"return_refund"}
				r.MinStars = 4
				r.MaxDays = 3
			default: // cheap apparel, anyone
				r.Categories = []string{"apparel"}
				r.MaxAmountFen = 5000
			}
			m.Rules = append(m.Rules, r)
		}
	}
	return m
}

// Options returns the options the world was built with, defaults filled in.
func (g *Generator) Options() WorldOptions { return g.opts }

// ShopperID is the user_id of shopper i.
func (g *Generator) ShopperID(i int32) string { return "u" + g.opts.RunID + "-" + strconv.Itoa(int(i)) }

// MerchantID is the merchant_id of merchant i.
func (g *Generator) MerchantID(i int32) string {
	return "m" + g.opts.RunID + "-" + strconv.Itoa(int(i))
}

// OrderID is the order_id of order i; a negative i names a ghost order
// that was never paid.
func (g *Generator) OrderID(i int32) string {
	if i < 0 {
		return "g" + g.opts.RunID + "-" + strconv.Itoa(int(-i))
	}
	return "o" + g.opts.RunID + "-" + strconv.Itoa(int(i))
}

// RequestID is the request_id of request i.
func (g *Generator) RequestID(i int32) string { return "r" + g.opts.RunID + "-" + strconv.Itoa(int(i)) }

// requestIndex parses a request id made by RequestID; ok is false for ids
// of other runs or publishers.
func (g *Generator) requestIndex(id string) (int32, bool) {
	p := "r" + g.opts.RunID + "-"
	if len(id) <= len(p) || id[:len(p)] != p {
		return 0, false
	}
	n, err := strconv.ParseInt(id[len(p):], 10, 32)
	if err != nil || n < 0 {
		return 0, false
	}
	return int32(n), true
}

func (g *Generator) eventID(n int64) string {
	return "e" + g.opts.RunID + "-" + strconv.FormatInt(n, 10)
}

// isOwnEventID reports whether id is the event_id of one of this
// generator's valid events or merchant profiles.
func (g *Generator) isOwnEventID(id string) bool {
	for _, p := range []string{"e" + g.opts.RunID + "-", "p" + g.opts.RunID + "-"} {
		if len(id) > len(p) && id[:len(p)] == p {
			return true
		}
	}
	return false
}

// MerchantEvent is the merchant.updated message of merchant i: its subject
// and payload.
func (g *Generator) MerchantEvent(i int32, at time.Time) (subject string, id string, payload []byte, err error) {
	m := g.Merchants[i]
	id = "p" + g.opts.RunID + "-" + strconv.Itoa(int(i))
	b, err := marshal(evMerchant{EventID: id, Type: typeMerchantUpdated, At: formatAt(at), MerchantID: g.MerchantID(i),
		ReturnAddresses: m.ReturnAddresses, ShipAddresses: m.ShipAddresses, Rules: m.Rules})
	return "fr.merchant." + g.MerchantID(i), id, b, err
}

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
)

type plan struct {
	due     int64
	seq     uint64
	kind    planKind
	order   int32
	request int32
	outcome string
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

func (g *Generator) after(lo, hi int) int64 { return g.n + int64(lo+g.rng.IntN(hi-lo+1)) }

// Next plans the next event of the sequence. It never runs out.
func (g *Generator) Next() Event {
	defer func() { g.n++ }()
	if g.opts.BadFraction > 0 && g.rng.Float64() < g.opts.BadFraction {
		return g.nextBad()
	}
	if len(g.pending) > 0 && g.pending[0].due <= g.n {
		return g.fromPlan(heap.Pop(&g.pending).(plan))
	}
	return g.newActivity()
}

func (g *Generator) base(typ, subjectKind string, shopper int32) Event {
	return Event{N: g.n, Type: typ, Subject: "fr.in." + subjectKind + "." + g.ShopperID(shopper), ID: g.eventID(g.n),
		Shopper: shopper, Order: -1, Request: -1, Bad: -1}
}

func (g *Generator) newActivity() Event {
	// A request about an order that was never paid: rare, and rejected.
	if g.rng.Float64() < g.opts.ReturnFraction*ghostShare/3 {
		s := g.rank[g.zipf.Uint64()]
		if g.credited[s] {
			g.ghosts++
			r := g.newRequest(-int32(g.ghosts), s)
			return g.emitRequest(r)
		}
	}
	s := g.rank[g.zipf.Uint64()]
	if !g.credited[s] {
		g.credited[s] = true
		e := g.base(typeCreditUpdated, "credit", s)
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
	g.Orders = append(g.Orders, o)
	return int32(len(g.Orders) - 1)
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
		e := g.base(typeOrderPaid, "order", o.Shopper)
		e.Order = p.order
		ret := g.rng.Float64() < g.opts.ReturnFraction
		var stale, early bool
		if ret {
			u := g.rng.Float64()
			stale, early = u < staleShare, u >= staleShare && u < staleShare+earlyShare
		}
		if stale {
			o.Shift = staleShift
		}
		e.Shift = o.Shift
		ship := g.after(5, 40)
		g.push(plan{due: ship, kind: planShipped, order: p.order})
		deliver := ship + int64(5+g.rng.IntN(36))
		if ret {
			r := g.newRequest(p.order, o.Shopper)
			r.Stale, r.Early = stale, early
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
		o := g.Orders[p.order]
		typ := typeOrderShipped
		if p.kind == planDelivered {
			typ = typeOrderDelivered
		}
		e := g.base(typ, "order", o.Shopper)
		e.Order, e.Shift = p.order, o.Shift
		return e
	case planRequest:
		return g.emitRequest(p.req)
	default:
		r := g.Requests[p.request]
		var e Event
		switch p.kind {
		case planCancel:
			e = g.base(typeReturnCancelled, "return", r.Shopper)
		case planTracking:
			e = g.base(typeTracking, "logistics", r.Shopper)
		case planPickup:
			e = g.base(typePickupDone, "logistics", r.Shopper)
		default:
			e = g.base(typeInspection, "inspection", r.Shopper)
			e.Outcome = p.outcome
		}
		e.Request, e.Order = p.request, r.Order
		return e
	}
}

func (g *Generator) emitRequest(r *Request) Event {
	g.Requests = append(g.Requests, *r)
	idx := int32(len(g.Requests) - 1)
	e := g.base(typeReturnRequested, "return", r.Shopper)
	e.Request, e.Order = idx, r.Order
	switch {
	case r.Cancelled:
		g.push(plan{due: g.after(3, 20), kind: planCancel, request: idx})
	case r.Kind != "refund_only" && r.Order >= 0:
		back := g.after(5, 40)
		if r.Pickup {
			g.push(plan{due: back, kind: planPickup, request: idx})
		}
		if !r.Pickup || g.rng.IntN(2) == 0 {
			g.push(plan{due: back + 1, kind: planTracking, request: idx})
		}
		g.push(plan{due: back + int64(20+g.rng.IntN(41)), kind: planInspection, request: idx,
			outcome: outcomes[pick(g.rng, outcomeWeights)]})
	}
	return e
}

var badReasons = []string{"bad_json", "missing_field", "bad_value", "unknown_type", "subject_mismatch"}

func (g *Generator) nextBad() Event {
	b := Bad{Reason: badReasons[g.rng.IntN(len(badReasons))]}
	user := "x" + g.opts.RunID + "-" + strconv.FormatInt(g.n, 10)
	switch b.Reason {
	case "bad_value", "subject_mismatch":
		b.Subject = "fr.in.credit." + user
	default:
		b.Subject = "fr.in.order." + user
	}
	g.Bads = append(g.Bads, b)
	return Event{N: g.n, Type: "bad." + b.Reason, Subject: b.Subject, ID: g.eventID(g.n), Shopper: -1, Order: -1, Request: -1,
		Bad: int32(len(g.Bads) - 1)}
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
