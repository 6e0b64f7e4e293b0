package world

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/flashreturn/flashreturn/loadgen/contract"
)

// Options sizes and seeds the simulated marketplace. The zero value
// means the documented defaults; see [Options.withDefaults].
type Options struct {
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

	// The after-sales lifecycle (shared/domain.md, Money safety, After
	// review, Input that cannot stand). For each fraction below 0 means
	// its documented default and a negative value turns the behaviour
	// off.

	// Classic turns every lifecycle behaviour below off at once: the
	// world and its event sequence for a seed are then those of before
	// the lifecycle was added, to bisect a failure.
	Classic bool
	// AnswerFraction is the share of requests that a merchant or a
	// platform reviewer answers (review.approved or review.rejected,
	// sometimes with a note), whatever their decision turns out to be: an
	// Answer to a request in review resolves it, one to a request that
	// was approved or rejected must change nothing. 0 means 0.25.
	AnswerFraction float64
	// DuplicateAnswerFraction is the share of answered requests that get
	// a second Answer (only the first counts). 0 means 0.1.
	DuplicateAnswerFraction float64
	// AgedFraction is the share of requests dated, with their order,
	// more than the 72-hour review deadline back (3 days plus 1 to 5
	// hours), so that a request in review is resolved by timeout in a
	// short run; their answers, if any, come after the deadline (late).
	// 0 means 0.03.
	AgedFraction float64
	// UnreturnedFraction is the share of requests whose goods never come
	// back (return_refund or exchange, no tracking, pickup.done nor
	// inspection), dated with their order more than the 7-day return
	// deadline back (7 days plus 1 to 5 hours), so that an approved one
	// is closed in a short run. 0 means 0.02.
	UnreturnedFraction float64
	// RepeatFraction is the share of requests followed, once they are
	// over, by a second request on the same order: half of them for the
	// whole paid amount (past the per-order ceiling once the first was
	// refunded), half split 60% then 40% (fits). 0 means 0.04.
	RepeatFraction float64
	// SplurgeFraction is the share of new activities that are a splurge:
	// a shopper with 3 stars or more buys three orders of 170000 to
	// 250000 fen and asks to return all three before sending any back,
	// so that promised advances reach the 500000-fen exposure cap.
	// 0 means 0.002.
	SplurgeFraction float64
	// InvalidFraction is the share of events that are well formed but
	// cannot stand, on a real shopper's subject: an order.shipped or
	// order.delivered for an order the shopper does not have
	// (unknown_order), a follow-up or review Answer for a request the
	// shopper does not have (unknown_request), an event dated an hour
	// ahead (future_time) and a return.requested with amount_fen 0
	// (bad_value). Each is followed by a new order of the same shopper,
	// with a request, that must be decided. 0 means 0.002.
	InvalidFraction float64
}

// Defaults of the lifecycle fractions of [Options].
const (
	DefaultAnswerFraction          = 0.25
	DefaultDuplicateAnswerFraction = 0.1
	DefaultAgedFraction            = 0.03
	DefaultUnreturnedFraction      = 0.02
	DefaultRepeatFraction          = 0.04
	DefaultSplurgeFraction         = 0.002
	DefaultInvalidFraction         = 0.002
)

// WithDefaults fills in the documented default of every zero field and
// turns the lifecycle fractions that Classic or a negative value turn off
// into -1, the one value [Generator] reads as "draw nothing".
func (o Options) WithDefaults() Options {
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
	for _, f := range []struct {
		v   *float64
		def float64
	}{{&o.AnswerFraction, DefaultAnswerFraction}, {&o.DuplicateAnswerFraction, DefaultDuplicateAnswerFraction},
		{&o.AgedFraction, DefaultAgedFraction}, {&o.UnreturnedFraction, DefaultUnreturnedFraction},
		{&o.RepeatFraction, DefaultRepeatFraction}, {&o.SplurgeFraction, DefaultSplurgeFraction},
		{&o.InvalidFraction, DefaultInvalidFraction}} {
		switch {
		case o.Classic || *f.v < 0:
			*f.v = -1
		case *f.v == 0:
			*f.v = f.def
		}
	}
	return o
}

// Validate reports the first setting of defaulted options that no world
// can be built from.
func (o Options) Validate() error {
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
	for _, f := range []struct {
		name string
		v    float64
	}{{"Answer", o.AnswerFraction}, {"duplicate Answer", o.DuplicateAnswerFraction}, {"aged", o.AgedFraction},
		{"unreturned", o.UnreturnedFraction}, {"repeat", o.RepeatFraction}, {"splurge", o.SplurgeFraction},
		{"invalid", o.InvalidFraction}} {
		if f.v > 1 {
			return fmt.Errorf("loadgen: %s fraction %v above 1", f.name, f.v)
		}
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
	Rules []contract.MerchantRule
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
	// were signed for long before the request (outside the 7-day window),
	// and for the order of an aged or unreturned request (dated back
	// with it, so that its window still holds).
	Shift time.Duration
	// Shipped is the position (Event.N+1) of the order.shipped sent, 0
	// until then; the audit needs it for douyin's promise, which holds
	// only for a request after shipment.
	Shipped int64
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
	// Shift is added to the event time of the return.requested (its
	// follow-ups are dated when they are sent): the order's Shift for an
	// aged or unreturned request, else 0.
	Shift time.Duration
	// Aged says the request is dated past the review deadline (Shift
	// about -3 days); Unreturned that its goods never come back (Shift
	// about -7 days, no tracking, pickup.done nor inspection).
	Aged, Unreturned bool
	// Splurge says the request is one of a splurge's three; Second that
	// it is the second request on its order, sent once the first is
	// over; Repeat that a second request follows this one.
	Splurge, Second, Repeat bool
	// repeatFen is the amount of the second request (0: the paid amount).
	repeatFen int64
	// Hist is what the world has sent about the request so far; the
	// audit places the daemon's outputs against it. It grows as Next
	// plans the request's follow-ups, so it may be read only under the
	// caller's own ordering with the goroutine that drives Next.
	Hist History
}

// History records what the world sent about one request, for the audit.
// Positions are Event.N+1, so that 0 means "not sent": a position of 0
// can then never be mistaken for the first event of the run.
type History struct {
	// Sent is the return.requested's position; Cancel the
	// return.cancelled's; Back the first of tracking or pickup.done (the
	// goods on their way back); Inspect the inspection.result's.
	Sent, Cancel, Back, Inspect int64
	// Outcome is the inspection's outcome.
	Outcome string
	// Answers are the review answers sent, in order; only the first one
	// counts for the daemon.
	Answers []Answer
}

// Answer is one review answer sent.
type Answer struct {
	// Pos is the answer's position (Event.N+1).
	Pos int64
	// Approve says review.approved (else review.rejected).
	Approve bool
	// By is the answer's `by`: merchant or platform.
	By string
}

// Bad is one event that must be dead-lettered, and the reason it must
// get: a malformed one (on a subject of a user who does not exist), or a
// well-formed one that cannot stand (on a real shopper's subject).
type Bad struct {
	// Reason is the contract's DLQ reason the event must get.
	Reason string
	// Subject is where it is published; a dead letter names it.
	Subject string
	// Payload is the exact bytes sent, set when the event is encoded.
	Payload []byte
	// Type is the event type a well-formed bad event carries; empty for
	// a malformed one.
	Type string
	// Shopper and Order index the generator's slices for a well-formed
	// bad event (Order -1 when it names none of the shopper's orders).
	Shopper, Order int32
	// Follow is the order planned right after a well-formed bad event
	// for the same shopper (with a request that must be decided), -1
	// for none.
	Follow int32
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
	// By is a review Answer's `by` (merchant or platform).
	By string
	// Shift is added to the event's send time to get its `at`.
	Shift time.Duration
}

// Generator plans the event sequence of a seeded world: shoppers, merchants,
// orders and their after-sales flow, interleaved as a marketplace would
// produce them. It is not safe for concurrent use; the exported slices may
// be read once generation has stopped or under the caller's own ordering.
type Generator struct {
	opts     Options
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
	// lastOrder is each shopper's latest order, -1 for none.
	lastOrder []int32
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

// The lifecycle's shapes.
const (
	// AgedShift and UnreturnedShift date a request back past the review
	// deadline (72 h) and the return deadline (7 days); each gets up to
	// shiftJitterMinutes more.
	AgedShift          = -(72*time.Hour + time.Hour)
	UnreturnedShift    = -(7*24*time.Hour + time.Hour)
	shiftJitterMinutes = 240
	// futureShift dates a future_time event ahead of its send time, far
	// past the daemon's default --max-future (5 minutes).
	futureShift = time.Hour
	// splurgeOrders orders of splurgeMinFen to splurgeMinFen+
	// splurgeSpanFen each: two fit under the 500000-fen exposure cap,
	// three do not.
	splurgeOrders  = 3
	splurgeMinFen  = 170000
	splurgeSpanFen = 80000
	// answerApproveShare of review answers approve; answerMerchantShare
	// come from the merchant (the rest from a platform reviewer).
	answerApproveShare  = 0.75
	answerMerchantShare = 0.7
)

// NewGenerator builds the shoppers and merchants of a world; events come
// from [Generator.Next].
func NewGenerator(o Options) (*Generator, error) {
	o = o.WithDefaults()
	if err := o.Validate(); err != nil {
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
	g.lastOrder = make([]int32, o.Shoppers)
	for i := range g.lastOrder {
		g.lastOrder[i] = -1
	}
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
			r := contract.MerchantRule{Name: fmt.Sprintf("assistant-%d", k)}
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

// ValidOnly stops the generator planning events that must be
// dead-lettered (malformed or invalid), for a throughput run.
func (g *Generator) ValidOnly() {
	g.opts.BadFraction, g.opts.InvalidFraction = 0, -1
}

// Options returns the options the world was built with, defaults filled in.
func (g *Generator) Options() Options { return g.opts }

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

// InvalidID is the order or request id that the well-formed bad event at
// position n names: an id of the "q" namespace, which no shopper has.
func (g *Generator) InvalidID(n int64) string {
	return "q" + g.opts.RunID + "-" + strconv.FormatInt(n, 10)
}

// IsInvalidID reports whether id was made by InvalidID.
func (g *Generator) IsInvalidID(id string) bool {
	p := "q" + g.opts.RunID + "-"
	return len(id) > len(p) && id[:len(p)] == p
}

// RequestIndex parses a request id made by RequestID; ok is false for ids
// of other runs or publishers.
func (g *Generator) RequestIndex(id string) (int32, bool) {
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

// IsOwnEventID reports whether id is the event_id of one of this
// generator's valid events or merchant profiles.
func (g *Generator) IsOwnEventID(id string) bool {
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
	b, err := marshal(contract.MerchantUpdated{EventID: id, Type: contract.TypeMerchantUpdated, At: formatAt(at), MerchantID: g.MerchantID(i),
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
	planAnswer
)

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
	defer func() { g.n++ }()
	if g.opts.BadFraction > 0 && g.rng.Float64() < g.opts.BadFraction {
		return g.nextBad()
	}
	if g.chance(g.opts.InvalidFraction) {
		if e, ok := g.nextInvalid(); ok {
			return e
		}
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
	if g.chance(g.opts.SplurgeFraction) {
		if e, ok := g.splurge(); ok {
			return e
		}
	}
	s := g.rank[g.zipf.Uint64()]
	if !g.credited[s] {
		g.credited[s] = true
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
	if g.Shoppers[s].Stars < 3 {
		return Event{}, false
	}
	m := int32(-1)
	for range 10 {
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
			if unreturned && r.Kind == "refund_only" {
				// Goods that could come back and do not.
				r.Kind = "return_refund"
				if g.rng.IntN(4) == 0 {
					r.Kind = "exchange"
				}
			}
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

// invalidKinds are the well-formed events that cannot stand, with the
// subject kind they are sent on and their dead-letter reason.
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
	b := Bad{Reason: k.reason, Subject: "fr.in." + k.subject + "." + g.ShopperID(s), Type: k.typ, Shopper: s, Order: -1}
	if k.typ == contract.TypeReturnRequested {
		b.Order = g.lastOrder[s]
	}
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
