package world

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/loadgen/contract"
)

var fixedAt = time.Date(2026, 11, 11, 0, 0, 0, 0, shanghai)

// genEvents plans n events and encodes the first enc of them.
func genEvents(t *testing.T, o Options, n, enc int) (*Generator, []Event, [][]byte) {
	t.Helper()
	g, err := NewGenerator(o)
	if err != nil {
		t.Fatal(err)
	}
	evs := make([]Event, n)
	payloads := make([][]byte, n)
	for i := range evs {
		evs[i] = g.Next()
		if i >= enc {
			continue
		}
		p, err := g.Encode(evs[i], fixedAt.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatalf("seed %d: encode event %d: %v", o.Seed, i, err)
		}
		payloads[i] = p
	}
	return g, evs, payloads
}

func TestGeneratorDeterministic(t *testing.T) {
	o := Options{Seed: 42, RunID: "t", Shoppers: 5000, Merchants: 100, BadFraction: 0.01}
	_, a, pa := genEvents(t, o, 20000, 20000)
	_, b, pb := genEvents(t, o, 20000, 20000)
	for i := range a {
		if a[i] != b[i] || !bytes.Equal(pa[i], pb[i]) {
			t.Fatalf("seed 42: event %d differs between two generators:\n%+v %s\n%+v %s", i, a[i], pa[i], b[i], pb[i])
		}
	}
	o.Seed = 43
	_, _, pc := genEvents(t, o, 20000, 20000)
	same := 0
	for i := range pa {
		if bytes.Equal(pa[i], pc[i]) {
			same++
		}
	}
	if same > len(pa)/2 {
		t.Fatalf("seeds 42 and 43 give %d identical events of %d", same, len(pa))
	}
}

func TestGeneratorDistributions(t *testing.T) {
	const seed = 7
	o := Options{Seed: seed, RunID: "t", Shoppers: 20000, Merchants: 500, BadFraction: 0.01}
	g, evs, payloads := genEvents(t, o, 200000, 5000)

	stars := make([]int, 6)
	for _, s := range g.Shoppers {
		stars[s.Stars]++
	}
	for k, want := range starWeights {
		got := float64(stars[k+1]) / float64(len(g.Shoppers))
		if math.Abs(got-want) > 0.02 {
			t.Errorf("seed %d: share of %d-star shoppers %.3f, want %.3f±0.02", seed, k+1, got, want)
		}
	}

	types := map[string]int{}
	perShopper := map[int32]int{}
	bad := 0
	for _, e := range evs {
		types[e.Type]++
		if e.Type == contract.TypeOrderPaid {
			perShopper[e.Shopper]++
		}
		if e.Bad >= 0 {
			bad++
		}
	}
	paid := types[contract.TypeOrderPaid]
	// Requests are planned at order.paid; the last few hundred orders'
	// requests are still pending when the sequence is cut. Second
	// requests, splurges and the orders that follow an invalid event are
	// extra.
	follow := map[int32]bool{}
	for _, b := range g.Bads {
		if b.Follow >= 0 {
			follow[b.Follow] = true
		}
	}
	plain := 0
	for _, r := range g.Requests {
		if !r.Second && !r.Splurge && (r.Order < 0 || !follow[r.Order]) {
			plain++
		}
	}
	reqShare := float64(plain) / float64(paid)
	if math.Abs(reqShare-0.06) > 0.01 {
		t.Errorf("seed %d: requests per order %.4f, want 0.06±0.01", seed, reqShare)
	}
	if got := float64(bad) / float64(len(evs)); math.Abs(got-0.01) > 0.002 {
		t.Errorf("seed %d: malformed share %.4f, want 0.01±0.002", seed, got)
	}
	for _, typ := range []string{contract.TypeCreditUpdated, contract.TypeOrderShipped, contract.TypeOrderDelivered, contract.TypeTracking, contract.TypePickupDone, contract.TypeInspection, contract.TypeReturnCancelled} {
		if types[typ] == 0 {
			t.Errorf("seed %d: no %s events in %d", seed, typ, len(evs))
		}
	}
	// Zipf: the hottest 1% of active shoppers place a large share of orders.
	counts := make([]int, 0, len(perShopper))
	for _, n := range perShopper {
		counts = append(counts, n)
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	top := 0
	for _, n := range counts[:max(len(counts)/100, 1)] {
		top += n
	}
	if share := float64(top) / float64(paid); share < 0.25 || share > 0.6 {
		t.Errorf("seed %d: top 1%% of shoppers place %.2f of orders, want a Zipf-skewed 0.25..0.6", seed, share)
	}
	if hottest := float64(counts[0]) / float64(paid); hottest > 0.02 {
		t.Errorf("seed %d: the hottest shopper places %.3f of orders, want < 0.02", seed, hottest)
	}

	kinds := map[string]int{}
	reasonsSeen := map[string]int{}
	for _, r := range g.Requests {
		if r.Second || r.Splurge || r.Unreturned {
			continue // shaped on purpose
		}
		kinds[r.Kind]++
		reasonsSeen[r.Reason]++
	}
	var shaped int
	for _, c := range kinds {
		shaped += c
	}
	n := float64(shaped)
	if got := float64(kinds["return_refund"]) / n; math.Abs(got-0.75) > 0.04 {
		t.Errorf("seed %d: return_refund share %.3f, want 0.75±0.04", seed, got)
	}
	if got := float64(reasonsSeen["no_reason"]) / n; math.Abs(got-0.40) > 0.04 {
		t.Errorf("seed %d: no_reason share %.3f, want 0.40±0.04", seed, got)
	}

	// Every payload is JSON with the event's id, except bad_json ones.
	for i, e := range evs[:5000] {
		var v contract.EventIDOnly
		err := contract.Unmarshal(payloads[i], &v)
		if e.Bad >= 0 && g.Bads[e.Bad].Reason == "bad_json" {
			if err == nil {
				t.Fatalf("seed %d: bad_json event %d parses: %s", seed, i, payloads[i])
			}
			continue
		}
		if err != nil || v.EventID != e.ID {
			t.Fatalf("seed %d: event %d: %v, id %q want %q: %s", seed, i, err, v.EventID, e.ID, payloads[i])
		}
	}
}

// Per user, the order's events come before its request, and a request's
// follow-ups after it: the sequence is causally ordered.
func TestGeneratorCausalOrder(t *testing.T) {
	const seed = 11
	g, evs, _ := genEvents(t, Options{Seed: seed, RunID: "t", Shoppers: 3000, Merchants: 50}, 100000, 0)
	seenPaid := map[int32]bool{}
	seenDelivered := map[int32]bool{}
	seenRequest := map[int32]bool{}
	credited := map[int32]bool{}
	for i, e := range evs {
		switch e.Type {
		case contract.TypeCreditUpdated:
			credited[e.Shopper] = true
		case contract.TypeOrderPaid:
			if !credited[e.Shopper] {
				t.Fatalf("seed %d: event %d: order.paid before the shopper's credit.updated", seed, i)
			}
			seenPaid[e.Order] = true
		case contract.TypeOrderDelivered:
			seenDelivered[e.Order] = true
		case contract.TypeReturnRequested:
			r := g.Requests[e.Request]
			if r.Order >= 0 && !seenPaid[r.Order] {
				t.Fatalf("seed %d: event %d: request before its order.paid", seed, i)
			}
			if r.Order >= 0 && !r.Early && !seenDelivered[r.Order] {
				t.Fatalf("seed %d: event %d: request before delivery", seed, i)
			}
			seenRequest[e.Request] = true
		case contract.TypeTracking, contract.TypePickupDone, contract.TypeInspection, contract.TypeReturnCancelled:
			if !seenRequest[e.Request] {
				t.Fatalf("seed %d: event %d: %s before its request", seed, i, e.Type)
			}
		}
	}
}

// worldHash digests the first n events of a world, encoded at fixedAt +
// i ms.
func worldHash(t *testing.T, o Options, n int) string {
	t.Helper()
	g, err := NewGenerator(o)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for i := range n {
		e := g.Next()
		p, err := g.Encode(e, fixedAt.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatalf("seed %d: encode event %d: %v", o.Seed, i, err)
		}
		h.Write([]byte(e.Subject))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// A classic world is, byte for byte, the world of before the lifecycle
// (digests taken from that code), so a failure can be bisected by
// turning the lifecycle off.
func TestClassicWorldUnchanged(t *testing.T) {
	want := map[uint64]string{
		1:  "6052045f34f4e62e127d74d3cb96ff376eefc64a30b045b270a6e1c06ac2e300",
		42: "7de53280777319f3976942850043af1404842b13c9778ac131707ca36fbdbcae",
	}
	for seed, w := range want {
		o := Options{Seed: seed, RunID: "h", Shoppers: 3000, Merchants: 60, BadFraction: 0.01, ReturnFraction: 0.2, Classic: true}
		if got := worldHash(t, o, 50000); got != w {
			t.Errorf("seed %d: classic world digest %s, want %s (the world before the lifecycle)", seed, got, w)
		}
		o.Classic = false
		if got := worldHash(t, o, 50000); got == w {
			t.Errorf("seed %d: the lifecycle world equals the classic one", seed)
		}
	}
	// Each behaviour turned off on its own also draws nothing.
	o := Options{Seed: 1, RunID: "h", Shoppers: 3000, Merchants: 60, BadFraction: 0.01, ReturnFraction: 0.2,
		AnswerFraction: -1, DuplicateAnswerFraction: -1, AgedFraction: -1, UnreturnedFraction: -1, RepeatFraction: -1,
		SplurgeFraction: -1, InvalidFraction: -1}
	if got := worldHash(t, o, 50000); got != want[1] {
		t.Errorf("seed 1: every lifecycle fraction negative: digest %s, want the classic %s", got, want[1])
	}
}

// The lifecycle's shapes appear in the shares asked for, and follow the
// world's own rules: unreturned goods never come back, splurges ask for
// all three returns before sending any back, second requests come after
// the first is over, every event that cannot stand is followed by a new
// order of the same shopper.
func TestGeneratorLifecycle(t *testing.T) {
	const seed = 9
	o := Options{Seed: seed, RunID: "t", Shoppers: 20000, Merchants: 300}
	g, evs, _ := genEvents(t, o, 300000, 0)
	types := map[string]int{}
	reasonsSent := map[string]int{}
	for _, e := range evs {
		types[e.Type]++
		if e.Bad >= 0 {
			reasonsSent[g.Bads[e.Bad].Reason]++
			if b := g.Bads[e.Bad]; b.Follow >= 0 && b.Shopper != g.Orders[b.Follow].Shopper {
				t.Fatalf("seed %d: %s followed by an order of another shopper", seed, b.Subject)
			}
		}
	}
	for _, r := range []string{contract.ReasonUnknownOrder, contract.ReasonUnknownRequest, contract.ReasonFutureTime, contract.ReasonBadValue} {
		if reasonsSent[r] == 0 {
			t.Errorf("seed %d: no event that must be dead-lettered %s in %d", seed, r, len(evs))
		}
	}
	if got := float64(reasonsSent[contract.ReasonUnknownOrder]+reasonsSent[contract.ReasonUnknownRequest]+reasonsSent[contract.ReasonFutureTime]+
		reasonsSent[contract.ReasonBadValue]) / float64(len(evs)); got < 0.001 || got > 0.003 {
		t.Errorf("seed %d: share of events that cannot stand %.4f, want about %v", seed, got, DefaultInvalidFraction)
	}
	var aged, unreturned, answered, dup, second, splurge, late int
	for i := range g.Requests {
		r := &g.Requests[i]
		h := &r.Hist
		if h.Sent == 0 {
			t.Fatalf("seed %d: request %d has no position", seed, i)
		}
		if r.Aged {
			aged++
		}
		if r.Unreturned {
			unreturned++
			if r.Kind == "refund_only" || h.Back != 0 || h.Inspect != 0 || h.Cancel != 0 {
				t.Fatalf("seed %d: unreturned request %d: kind %s, back %d, inspection %d, cancel %d", seed, i, r.Kind, h.Back, h.Inspect, h.Cancel)
			}
			if r.Shift > UnreturnedShift {
				t.Fatalf("seed %d: unreturned request %d dated only %v back", seed, i, -r.Shift)
			}
		} else if r.Aged && r.Shift > AgedShift {
			t.Fatalf("seed %d: aged request %d dated only %v back", seed, i, -r.Shift)
		}
		if len(h.Answers) > 0 {
			answered++
			if r.Aged {
				late++
			}
			if h.Answers[0].Pos <= h.Sent {
				t.Fatalf("seed %d: request %d answered before it was sent", seed, i)
			}
		}
		if len(h.Answers) > 1 {
			dup++
		}
		if r.Second {
			second++
		}
		if r.Splurge {
			splurge++
		}
	}
	n := float64(len(g.Requests))
	for _, c := range []struct {
		name     string
		got      int
		want     float64
		min, max float64
	}{
		{"answered", answered, DefaultAnswerFraction, 0.2, 0.3},
		{"aged", aged, DefaultAgedFraction + DefaultUnreturnedFraction, 0.035, 0.065},
		{"unreturned", unreturned, DefaultUnreturnedFraction, 0.012, 0.028},
		{"second", second, DefaultRepeatFraction, 0.025, 0.055},
	} {
		if share := float64(c.got) / n; share < c.min || share > c.max {
			t.Errorf("seed %d: %s share %.4f of %d requests, want about %v", seed, c.name, share, len(g.Requests), c.want)
		}
	}
	if dup == 0 || late == 0 || splurge < 3*10 {
		t.Errorf("seed %d: %d duplicate answers, %d late answers, %d splurge requests: too few", seed, dup, late, splurge)
	}

	// Splurges: three orders of one shopper, each alone under the cap,
	// all three over it, the three requests before any goods go back.
	byShopper := map[int32][]int{}
	for i := range g.Requests {
		if g.Requests[i].Splurge {
			byShopper[g.Requests[i].Shopper] = append(byShopper[g.Requests[i].Shopper], i)
		}
	}
	for s, rs := range byShopper {
		if len(rs)%splurgeOrders != 0 {
			continue // a shopper may splurge twice; a cut sequence may end inside one
		}
		for k := 0; k+splurgeOrders <= len(rs); k += splurgeOrders {
			var total int64
			lastSent, firstBack := int64(0), int64(math.MaxInt64)
			for _, i := range rs[k : k+splurgeOrders] {
				r := &g.Requests[i]
				total += g.Orders[r.Order].PaidFen
				lastSent = max(lastSent, r.Hist.Sent)
				if r.Hist.Back != 0 {
					firstBack = min(firstBack, r.Hist.Back)
				}
				if g.Orders[r.Order].PaidFen > exposureCapFen/2 {
					t.Fatalf("seed %d: splurge order of %d fen: two would not fit under the cap", seed, g.Orders[r.Order].PaidFen)
				}
			}
			if total <= exposureCapFen || firstBack < lastSent {
				t.Fatalf("seed %d: shopper %d splurge: total %d, last request at %d, first goods back at %d", seed, s, total, lastSent, firstBack)
			}
		}
	}

	// Second requests come after the first is over; a split fits.
	first := map[int32]int{}
	for i := range g.Requests {
		r := &g.Requests[i]
		if r.Repeat {
			first[r.Order] = i
		}
		if !r.Second {
			continue
		}
		f, ok := first[r.Order]
		if !ok {
			t.Fatalf("seed %d: second request %d before its first", seed, i)
		}
		fr := &g.Requests[f]
		if over := max(fr.Hist.Sent, fr.Hist.Inspect); r.Hist.Sent <= over {
			t.Fatalf("seed %d: second request %d at %d, first over at %d", seed, i, r.Hist.Sent, over)
		}
		if r.AmountFen != 0 && r.AmountFen+fr.AmountFen != g.Orders[r.Order].PaidFen {
			t.Fatalf("seed %d: split %d + %d of paid %d", seed, fr.AmountFen, r.AmountFen, g.Orders[r.Order].PaidFen)
		}
	}
}

// Event times: no valid event is dated after its send time (the daemon's
// --max-future), every future_time event is dated more than 5 minutes
// after it; a request is within the 7-day window of its order's sign-off
// unless planned stale; aged and unreturned requests are dated past the
// review and return deadlines; everything else is dated at its send.
func TestGeneratorDates(t *testing.T) {
	const seed = 13
	o := Options{Seed: seed, RunID: "t", Shoppers: 5000, Merchants: 100, BadFraction: 0.01}
	g, evs, payloads := genEvents(t, o, 100000, 100000)
	delivered := map[int32]time.Time{}
	for i, e := range evs {
		send := fixedAt.Add(time.Duration(i) * time.Millisecond)
		if e.Bad >= 0 && g.Bads[e.Bad].Reason == "bad_json" {
			continue
		}
		at := testkit.EventAt(t, payloads[i])
		if e.Bad >= 0 {
			if g.Bads[e.Bad].Reason == contract.ReasonFutureTime {
				if at.Sub(send) <= 5*time.Minute {
					t.Fatalf("seed %d: future_time event %d dated only %v ahead", seed, i, at.Sub(send))
				}
			} else if at.After(send) {
				t.Fatalf("seed %d: %s event %d dated %v ahead", seed, g.Bads[e.Bad].Reason, i, at.Sub(send))
			}
			continue
		}
		if at.After(send) {
			t.Fatalf("seed %d: valid event %d (%s) dated %v after its send", seed, i, e.Type, at.Sub(send))
		}
		switch e.Type {
		case contract.TypeOrderDelivered:
			delivered[e.Order] = at
		case contract.TypeReturnRequested:
			r := &g.Requests[e.Request]
			switch {
			case r.Unreturned && send.Sub(at) <= 7*24*time.Hour:
				t.Fatalf("seed %d: unreturned request %d dated %v back: its return deadline has not passed", seed, e.Request, send.Sub(at))
			case r.Aged && send.Sub(at) <= 72*time.Hour:
				t.Fatalf("seed %d: aged request %d dated %v back: its review deadline has not passed", seed, e.Request, send.Sub(at))
			case !r.Aged && !at.Equal(send):
				t.Fatalf("seed %d: request %d dated %v off its send", seed, e.Request, send.Sub(at))
			}
			if r.Order < 0 || r.Stale || r.Early {
				continue
			}
			d, ok := delivered[r.Order]
			if !ok {
				t.Fatalf("seed %d: request %d before its order's sign-off", seed, e.Request)
			}
			// The law's window: until 24:00 local of the 7th day after
			// the sign-off day.
			y, m, day := d.In(shanghai).Date()
			end := time.Date(y, m, day+8, 0, 0, 0, 0, shanghai)
			if at.Before(d) || !at.Before(end) {
				t.Fatalf("seed %d: request %d at %v outside the window of sign-off %v", seed, e.Request, at, d)
			}
		default:
			if e.Order < 0 || e.Type == contract.TypeOrderPaid || e.Type == contract.TypeOrderShipped {
				continue
			}
			if e.Request >= 0 && !at.Equal(send) {
				t.Fatalf("seed %d: follow-up %s of request %d dated %v off its send", seed, e.Type, e.Request, send.Sub(at))
			}
		}
	}
}

// exposureCapFen is the shipped presets' exposure cap (the audit's
// presetExposureCapFen): splurges are sized to cross it with their third
// order, which TestGeneratorLifecycle checks.
const exposureCapFen = 500000
