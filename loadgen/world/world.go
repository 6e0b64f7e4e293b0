package world

import (
	"fmt"
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
	return contract.MerchantSubject(g.MerchantID(i)), id, b, err
}
