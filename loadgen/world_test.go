package loadgen

import (
	"bytes"
	"math"
	"slices"
	"testing"
	"time"
)

var fixedAt = time.Date(2026, 11, 11, 0, 0, 0, 0, shanghai)

// genEvents plans n events and encodes the first enc of them.
func genEvents(t *testing.T, o WorldOptions, n, enc int) (*Generator, []Event, [][]byte) {
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
	o := WorldOptions{Seed: 42, RunID: "t", Shoppers: 5000, Merchants: 100, BadFraction: 0.01}
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
	o := WorldOptions{Seed: seed, RunID: "t", Shoppers: 20000, Merchants: 500, BadFraction: 0.01}
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
		if e.Type == typeOrderPaid {
			perShopper[e.Shopper]++
		}
		if e.Bad >= 0 {
			bad++
		}
	}
	paid := types[typeOrderPaid]
	// Requests are planned at order.paid; the last few hundred orders'
	// requests are still pending when the sequence is cut.
	reqShare := float64(types[typeReturnRequested]) / float64(paid)
	if math.Abs(reqShare-0.06) > 0.01 {
		t.Errorf("seed %d: requests per order %.4f, want 0.06±0.01", seed, reqShare)
	}
	if got := float64(bad) / float64(len(evs)); math.Abs(got-0.01) > 0.002 {
		t.Errorf("seed %d: malformed share %.4f, want 0.01±0.002", seed, got)
	}
	for _, typ := range []string{typeCreditUpdated, typeOrderShipped, typeOrderDelivered, typeTracking, typePickupDone, typeInspection, typeReturnCancelled} {
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
		kinds[r.Kind]++
		reasonsSeen[r.Reason]++
	}
	n := float64(len(g.Requests))
	if got := float64(kinds["return_refund"]) / n; math.Abs(got-0.75) > 0.04 {
		t.Errorf("seed %d: return_refund share %.3f, want 0.75±0.04", seed, got)
	}
	if got := float64(reasonsSeen["no_reason"]) / n; math.Abs(got-0.40) > 0.04 {
		t.Errorf("seed %d: no_reason share %.3f, want 0.40±0.04", seed, got)
	}

	// Every payload is JSON with the event's id, except bad_json ones.
	for i, e := range evs[:5000] {
		var v eventIDOnly
		err := api.Unmarshal(payloads[i], &v)
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
	g, evs, _ := genEvents(t, WorldOptions{Seed: seed, RunID: "t", Shoppers: 3000, Merchants: 50}, 100000, 0)
	seenPaid := map[int32]bool{}
	seenDelivered := map[int32]bool{}
	seenRequest := map[int32]bool{}
	credited := map[int32]bool{}
	for i, e := range evs {
		switch e.Type {
		case typeCreditUpdated:
			credited[e.Shopper] = true
		case typeOrderPaid:
			if !credited[e.Shopper] {
				t.Fatalf("seed %d: event %d: order.paid before the shopper's credit.updated", seed, i)
			}
			seenPaid[e.Order] = true
		case typeOrderDelivered:
			seenDelivered[e.Order] = true
		case typeReturnRequested:
			r := g.Requests[e.Request]
			if r.Order >= 0 && !seenPaid[r.Order] {
				t.Fatalf("seed %d: event %d: request before its order.paid", seed, i)
			}
			if r.Order >= 0 && !r.Early && !seenDelivered[r.Order] {
				t.Fatalf("seed %d: event %d: request before delivery", seed, i)
			}
			seenRequest[e.Request] = true
		case typeTracking, typePickupDone, typeInspection, typeReturnCancelled:
			if !seenRequest[e.Request] {
				t.Fatalf("seed %d: event %d: %s before its request", seed, i, e.Type)
			}
		}
	}
}

func TestScheduleShapes(t *testing.T) {
	count := func(s Shape) (n int, last time.Duration) {
		sch := schedule{shape: s}
		for {
			off, ok := sch.next()
			if !ok {
				return n, last
			}
			if off < last {
				t.Fatalf("%s: offsets go back: %v after %v", s.Name(), off, last)
			}
			n, last = n+1, off
		}
	}
	if n, _ := count(Steady{EventsPerSec: 1000, Duration: 10 * time.Second}); n < 9999 || n > 10001 {
		t.Errorf("steady 1000/s for 10s: %d events", n)
	}
	d := Double11{Base: 100, Peak: 1000, Duration: 100 * time.Second}.withDefaults()
	if r := d.Rate(d.Ramp + d.Hold/2); r != 1000 {
		t.Errorf("double11 at the hold: rate %v, want the peak", r)
	}
	if r := d.Rate(d.Ramp / 2); math.Abs(r-550) > 1 {
		t.Errorf("double11 half-way up the ramp: rate %v, want 550", r)
	}
	if r := d.Rate(99 * time.Second); r < 100 || r > 110 {
		t.Errorf("double11 at the end: rate %v, want back near the base", r)
	}
	// integral: ramp 5s avg 550 + hold 10s at 1000 + decay 85s
	tail := 85.0
	want := 5*550.0 + 10*1000.0 + 100*tail + 900*15*(1-math.Exp(-tail/15))
	if n, _ := count(d); math.Abs(float64(n)-want)/want > 0.01 {
		t.Errorf("double11: %d events, want %.0f±1%%", n, want)
	}
	st := Step{Start: 100, Increment: 100, StepDuration: time.Second, MaxSteps: 3}
	if n, _ := count(st); n < 599 || n > 601 {
		t.Errorf("step 100,200,300 for 1s each: %d events", n)
	}
}
