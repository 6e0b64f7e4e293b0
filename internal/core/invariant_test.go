package core

import (
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestInvariants drives the core with seeded random histories and checks
// the contract's invariants after every step, money first:
//
//   - per order, refunds minus the clawbacks of refunded money never pass
//     the paid amount, and the order's RefundedFen says the same;
//   - a shopper's advanced plus promised money never passes the cap of the
//     policy that approved, at any approval;
//   - every approval pays, or says why not (cancelled, closed by its
//     return deadline, or a bad inspection);
//   - at most one output of each kind per request, a refund only after an
//     approval, a review resolution only for a request in review, a close
//     only for an approved one, and every output names the policy of the
//     decision of its request (promises keep their policy);
//   - a dead-lettered event changes nothing;
//   - the counters (OutstandingFen, PromisedFen, ReservedFen) equal what
//     the requests hold, and state stays bounded.
//
// A history is three shoppers' event sequences. Each seed runs it in
// several interleavings that keep every shopper's own order (what the
// partition guarantees), with redeliveries, review answers, and policy
// switches between events; the first interleaving is replayed from a
// fresh state and must give identical effects. Set FLASHRETURN_SEED to
// run one seed; failures print the seed.
func TestInvariants(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	if s := os.Getenv("FLASHRETURN_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seeds = []uint64{v}
	}
	steps := 3000
	if testing.Short() {
		steps = 500
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			h := generate(t, seed, steps)
			r := rand.New(rand.NewPCG(seed, 7))
			for k := range 3 {
				evs := h.interleave(r)
				first := runInvariants(t, seed, evs, h, true)
				if k > 0 {
					continue
				}
				second := runInvariants(t, seed, evs, h, false)
				if !reflect.DeepEqual(first, second) {
					for i := range min(len(first), len(second)) {
						if !reflect.DeepEqual(first[i], second[i]) {
							t.Fatalf("seed %d: replay differs at effect %d:\n%+v\n%+v", seed, i, first[i], second[i])
						}
					}
					t.Fatalf("seed %d: replay gave %d effects, first run %d", seed, len(second), len(first))
				}
			}
		})
	}
}

func invMerchants() map[string]*Merchant {
	return map[string]*Merchant{
		"m0": {ID: "m0", ReturnAddresses: []string{"A"}, ShipAddresses: []string{"A"}, Revision: 1},
		"m1": {ID: "m1", ReturnAddresses: []string{"A", "B"}, ShipAddresses: []string{"A"}, Revision: 2},
		"m2": {ID: "m2", ReturnAddresses: []string{"C"}, ShipAddresses: []string{"D"}, Revision: 3, Rules: []MerchantRule{
			{Name: "cheap", MaxAmountFen: 5000, HasMaxAmount: true},
			{Name: "fresh-quality", Reasons: ReasonSetOf(ReasonQuality), Categories: []string{"fresh"}, MaxDays: 3, HasMaxDays: true},
		}},
		"m3": {ID: "m3", Revision: 4, Rules: []MerchantRule{{Name: "all"}}}, // no return address
	}
}

// invPolicies are the policies a history switches between: the presets
// and variants of tmall (advances promised until tracking) and jd
// (advanced at approval) with a low cap, short deadlines and other
// penalties, so that the cap binds often.
func invPolicies(t *testing.T) []*Policy {
	var ps []*Policy
	for _, n := range PresetNames() {
		p, _ := Preset(n)
		ps = append(ps, p)
	}
	for _, base := range []string{PresetTmall, PresetJD} {
		v, _ := Preset(base)
		v.Name = base + "-tight"
		// Permissive rules, so that most requests are approved and the
		// tight cap is what binds.
		v.Reasons = allReasons
		v.MinStars, v.RequireSevenDay, v.ExcludedCategories, v.AmountCapFen = 1, false, nil, 0
		v.WindowDays = 30
		v.ExposureCapFen = 60000
		v.ReviewDeadline = 6 * time.Hour
		v.ReturnDeadline = 10 * 24 * time.Hour
		v.PickupGrace = 0
		v.CompensationFen = 900
		v.Penalties[OutcomeNotReturned] = 70
		if err := v.Finish(); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, v)
	}
	return ps
}

// history is a generated test input: each shopper's events in its own
// order, plus policy switches attached to events.
type history struct {
	users    []string
	perUser  map[string][]Event
	policies []*Policy
	start    int // index of the policy in force at the start
	// switchTo[eventID] is the policy index switched to just before the
	// event with that EventID is applied.
	switchTo map[string]int
}

// interleave merges the shoppers' sequences into one, keeping each
// shopper's order, choosing the next shopper at random, with clock ticks
// sprinkled in.
func (h *history) interleave(r *rand.Rand) []Event {
	pos := map[string]int{}
	var out []Event
	for {
		var live []string
		for _, u := range h.users {
			if pos[u] < len(h.perUser[u]) {
				live = append(live, u)
			}
		}
		if len(live) == 0 {
			return out
		}
		u := live[r.IntN(len(live))]
		ev := h.perUser[u][pos[u]]
		pos[u]++
		out = append(out, ev)
		if r.IntN(30) == 0 {
			out = append(out, Event{Type: EventClock, At: ev.At + r.Int64N(int64(time.Hour))})
		}
	}
}

// generate builds three shoppers' random event sequences. Even seeds are
// friendly worlds (good shoppers, eligible orders) so that approvals,
// advances, pickups, clawbacks and closes are common; odd seeds spread
// over every rule.
func generate(t *testing.T, seed uint64, steps int) *history {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	h := &history{users: []string{"u0", "u1", "u2"}, perUser: map[string][]Event{}, policies: invPolicies(t), switchTo: map[string]int{}}
	h.start = r.IntN(len(h.policies))
	// Seeds above 16 stress money: only the tight policies, friendly
	// shoppers, orders that fill the cap in two or three requests.
	money := seed > 16
	if money {
		h.start = len(h.policies) - 1 - r.IntN(2)
	}
	friendly := seed%2 == 0 || money
	chance := func(friendlyPct, otherPct int) bool {
		if friendly {
			return r.IntN(100) < friendlyPct
		}
		return r.IntN(100) < otherPct
	}
	type gen struct {
		at               int64
		orders, requests int
		reqIDs           []string
		lastReqAt        int64
		reqEvents        []Event // every new return.requested, for old redeliveries
	}
	g := map[string]*gen{}
	t0 := parseTime(t, "", "2026-01-01T00:00:00+08:00")
	for _, u := range h.users {
		g[u] = &gen{at: t0}
	}
	pick := func(n int) int { return r.IntN(max(n, 1)) }
	for i := range steps {
		u := h.users[[]int{0, 0, 0, 0, 0, 0, 1, 1, 1, 2}[r.IntN(10)]] // one hot shopper
		st := g[u]
		switch x := r.IntN(100); {
		case x < 60:
			st.at += r.Int64N(int64(30 * time.Minute))
		case x < 92:
			st.at += r.Int64N(int64(24 * time.Hour))
		case x < 95:
			st.at += r.Int64N(int64(20 * 24 * time.Hour))
		default:
			st.at -= r.Int64N(int64(time.Hour)) // event time may step back
		}
		at := st.at
		ev := Event{At: at, UserID: u, EventID: "e" + strconv.Itoa(i)}
		ev.AtRaw = time.Unix(0, at).UTC().Format(time.RFC3339Nano)
		order := func() string {
			if st.orders == 0 || r.IntN(20) == 0 {
				return "ox" // never paid
			}
			return "o" + strconv.Itoa(st.orders-1-pick(min(st.orders, 3)))
		}
		request := func() string {
			if len(st.reqIDs) == 0 || r.IntN(20) == 0 {
				return "rx"
			}
			return st.reqIDs[len(st.reqIDs)-1-pick(min(len(st.reqIDs), 3))]
		}
		switch x := r.IntN(100); {
		case x < 16:
			ev.Type = EventOrderPaid
			ev.OrderID = "o" + strconv.Itoa(st.orders)
			st.orders++
			ev.MerchantID = []string{"m0", "m1", "m2", "m3", "mx"}[r.IntN(5)]
			if chance(80, 0) {
				ev.MerchantID = "m0"
			}
			ev.Category = []string{"shoes", "shoes", "shoes", "fresh", "large_appliance", "phone"}[r.IntN(6)]
			ev.Size = Size(1 + r.IntN(2))
			ev.PaidFen = []int64{100, 5000, 10000, 20000, 20001, 30000, 30001, 250000, 400000, 500000}[r.IntN(10)]
			if chance(70, 0) {
				ev.PaidFen = []int64{100, 5000, 10000, 20000, 25000, 40000, 250000, 400000}[r.IntN(8)]
			}
			if money {
				ev.PaidFen = []int64{15000, 20000, 25000, 30000, 45000}[r.IntN(5)]
			}
			ev.SevenDay = chance(95, 75)
			ev.City = []string{"", "Hangzhou", "Beijing"}[r.IntN(3)]
		case x < 23:
			ev.Type, ev.OrderID = EventOrderShipped, order()
		case x < 32:
			ev.Type, ev.OrderID = EventOrderDelivered, order()
		case x < 35:
			ev.Type, ev.Stars = EventCreditUpdated, []int{1, 2, 3, 4, 5, 5, 5}[r.IntN(7)]
			if chance(90, 0) {
				ev.Stars = 5
			}
		case x < 57:
			ev.Type = EventReturnRequested
			// A redelivery mostly comes within a day (in production within
			// the stream's 2-minute duplicate window), the same request
			// with other fields. Some are exact copies of a request of up
			// to 300 days ago (a replay of the stream), which state may
			// have pruned; some requests are stored late, dated up to 12
			// days before the shopper's latest event (past LateAllowance).
			if n := len(st.reqEvents); n > 0 && r.IntN(25) == 0 {
				old := st.reqEvents[r.IntN(n)]
				if old.At > at-int64(300*24*time.Hour) {
					old.EventID = ev.EventID + "-replayed"
					h.perUser[u] = append(h.perUser[u], old)
					continue
				}
			}
			if r.IntN(12) == 0 {
				ev.At -= r.Int64N(int64(12 * 24 * time.Hour))
				ev.AtRaw = time.Unix(0, ev.At).UTC().Format(time.RFC3339Nano)
			}
			if len(st.reqIDs) > 0 && at-st.lastReqAt < int64(24*time.Hour) && r.IntN(10) == 0 {
				ev.RequestID = st.reqIDs[len(st.reqIDs)-1]
			} else {
				ev.RequestID = "r" + strconv.Itoa(st.requests)
				st.requests++
				st.reqIDs = append(st.reqIDs, ev.RequestID)
				st.lastReqAt = at
			}
			ev.OrderID = order()
			ev.Kind = Kind(1 + r.IntN(3))
			ev.Reason = Reason(1 + r.IntN(7))
			if chance(90, 50) { // a reason some policy fast-tracks
				ev.Reason = []Reason{ReasonNoReason, ReasonDislike, ReasonQuality, ReasonDamaged}[r.IntN(4)]
			}
			if chance(70, 0) {
				ev.Kind = KindReturnRefund
			}
			ev.Pickup = r.IntN(2) == 0
			if r.IntN(3) == 0 { // partial amounts, some too large
				ev.HasAmount = true
				// 2^63-1: held + amount must not wrap past the ceiling.
				ev.AmountFen = []int64{1, 100, 2500, 4000, 5000, 6000, 30001, 600000, 1<<63 - 1}[r.IntN(9)]
			}
		case x < 61:
			ev.Type, ev.RequestID = EventReturnCancelled, request()
		case x < 69:
			ev.Type, ev.RequestID, ev.TrackingNo = EventLogisticsTracking, request(), "T"
		case x < 76:
			ev.Type, ev.RequestID = EventPickupDone, request()
		case x < 86:
			ev.Type, ev.RequestID = EventInspectionResult, request()
			ev.Outcome = Outcome(1 + r.IntN(5))
		case x < 97:
			ev.Type = []EventType{EventReviewApproved, EventReviewApproved, EventReviewRejected}[r.IntN(3)]
			ev.RequestID, ev.By = request(), []Actor{ActorMerchant, ActorPlatform}[r.IntN(2)]
			if r.IntN(4) == 0 {
				ev.Note = "looked at it"
			}
		default:
			// A redelivery of the shopper's previous event (same
			// content): it must not produce a second copy of anything.
			if evs := h.perUser[u]; len(evs) > 0 {
				ev = evs[len(evs)-1]
				ev.EventID += "-again"
			} else {
				ev.Type, ev.Stars = EventCreditUpdated, 4
			}
		}
		if r.IntN(60) == 0 {
			h.switchTo[ev.EventID] = r.IntN(len(h.policies))
			if money || r.IntN(2) == 0 { // the tight ones half the time
				h.switchTo[ev.EventID] = len(h.policies) - 1 - r.IntN(2)
			}
		}
		if ev.Type == EventReturnRequested && ev.OrderID != "ox" && !slices.ContainsFunc(st.reqEvents, func(e Event) bool { return e.RequestID == ev.RequestID }) {
			// Not "ox": a request rejected order_unknown holds no order to
			// remember it by, and is decided (rejected) again once pruned.
			st.reqEvents = append(st.reqEvents, ev)
		}
		h.perUser[u] = append(h.perUser[u], ev)
	}
	return h
}

// reqModel is what the test learns of a request from the effects alone.
type reqModel struct {
	decision           Verdict
	policy             *Policy
	approvedAt         int      // effect index of the approval; -1: not approved
	advanced           bool     // an advance refund or a replace pickup was sent
	counts             [10]int  // effects by kind (resolution: answers only)
	closes             int      // resolutions closed
	refunded, clawback int64    // money refunded, and clawed back of it
	orderKey           string   // user/order
	outcomes           []string // resolution outcomes seen
}

// runInvariants applies evs (firing timers from the partition clock as the
// pipeline does, switching policies where the history says) and checks
// the invariants when check is set; it returns every effect.
func runInvariants(t *testing.T, seed uint64, evs []Event, h *history, check bool) []Effect {
	merchants := invMerchants()
	env := Env{Policy: h.policies[h.start], Loc: shanghai(t), Merchant: func(id string) *Merchant { return merchants[id] }}
	users := map[string]*User{}
	var order []string
	var all []Effect
	var clock int64
	model := map[string]*reqModel{}
	paid := map[string]int64{}     // user/order → paid_fen of the first order.paid
	refunded := map[string]int64{} // user/order → refunds minus clawbacks of refunded money
	msgIDs := map[string]bool{}
	// The full history the safety rules read, never pruned: each
	// shopper's decided requests' times and every trust mark state has
	// held. A velocity or trust check that passed must pass on it too.
	decidedAt := map[string][]int64{}
	late := map[int64]bool{}        // times of requests dated before their shopper's latest event
	firstSeen := map[string]int64{} // each shopper's earliest event time applied
	marks := map[string]map[int64]bool{}
	noteMarks := func(u *User) {
		if marks[u.ID] == nil {
			marks[u.ID] = map[int64]bool{}
		}
		for _, t := range u.TrustMarks {
			marks[u.ID][t] = true
		}
	}
	fail := func(i int, format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, event %d (%+v): %s", seed, i, evs[i], fmt.Sprintf(format, args...))
	}
	// observe checks the effects all[start:] produced at event i.
	observe := func(i, start int) {
		for j := start; j < len(all); j++ {
			e := &all[j]
			if e.Kind == EffectDeadLetter {
				continue // checked where applied
			}
			key := e.UserID + "/" + e.RequestID
			m := model[key]
			if e.Kind == EffectDecision {
				if m != nil {
					fail(i, "second decision for %s", key)
				}
				m = &reqModel{decision: e.Verdict, policy: e.Policy, approvedAt: -1, orderKey: e.UserID + "/" + e.OrderID}
				model[key] = m
				if e.Verdict == VerdictApproved {
					m.approvedAt = j
				}
				if (e.Verdict == VerdictApproved) != (e.Reasons == 0) {
					fail(i, "verdict %s with reasons %v", e.Verdict, e.Reasons.AppendStrings(nil))
				}
				if e.Verdict == VerdictRejected && e.Reasons&^RejectCodes != 0 {
					fail(i, "rejection lists non-rejecting codes %v", e.Reasons.AppendStrings(nil))
				}
				if e.Verdict == VerdictApproved && e.MerchantRule != "" {
					for _, c := range e.Trace.List() {
						if !c.Pass && (SafetyCodes.Has(c.Code) || c.Code == CodeMerchantUnknown) {
							fail(i, "merchant rule overrode %s", c.Name())
						}
					}
				}
			}
			if m == nil {
				fail(i, "%s before any decision for %s", e.Kind, key)
			}
			if e.Policy == nil || e.Policy != m.policy {
				fail(i, "%s of %s names policy %v, its decision %s", e.Kind, key, e.Policy, m.policy.Name)
			}
			if e.OrderID == "" {
				fail(i, "effect %s without order_id", e.MsgID())
			}
			if msgIDs[e.MsgID()] {
				fail(i, "message ID %s emitted twice", e.MsgID())
			}
			msgIDs[e.MsgID()] = true
			if e.Kind != EffectResolution {
				m.counts[e.Kind]++
				if m.counts[e.Kind] > 1 {
					fail(i, "second %s for %s", e.Kind, key)
				}
			}
			switch e.Kind {
			case EffectRefund:
				m.advanced = m.advanced || e.Advance
				if e.Advance && m.decision != VerdictApproved {
					fail(i, "an advance refund after review (%s): a reviewed approval advances nothing", key)
				}
				if m.approvedAt < 0 {
					fail(i, "refund for a request not approved (%s)", key)
				}
				m.refunded = e.AmountFen
				refunded[m.orderKey] += e.AmountFen
				if refunded[m.orderKey] > paid[m.orderKey] || e.AmountFen <= 0 {
					fail(i, "order %s refunded %d (this refund %d), paid %d", m.orderKey, refunded[m.orderKey], e.AmountFen, paid[m.orderKey])
				}
			case EffectClawback:
				if e.Outcome != OutcomeNotReturned && !e.Outcome.Bad() {
					fail(i, "clawback with outcome %s", e.Outcome)
				}
				if m.refunded > 0 {
					m.clawback = m.refunded
					refunded[m.orderKey] -= m.refunded
				}
			case EffectCompensation:
				if m.approvedAt < 0 || m.counts[EffectPickup] == 0 {
					fail(i, "compensation for %s without an approved pickup", key)
				}
			case EffectPickup:
				m.advanced = m.advanced || (e.Replace && m.decision == VerdictApproved)
				if m.approvedAt < 0 {
					fail(i, "pickup for a request not approved (%s)", key)
				}
			case EffectResolution:
				m.outcomes = append(m.outcomes, e.Resolution.String())
				switch e.Resolution {
				case ResolutionClosed:
					if m.closes++; m.closes > 1 || m.approvedAt < 0 || e.By != ActorTimeout {
						fail(i, "close %d of %s by %s (approved: %t)", m.closes, key, e.By, m.approvedAt >= 0)
					}
					// "Claimed a return that never happened": an advanced
					// request's close is followed at once by its
					// not_returned clawback and trust feedback.
					if m.advanced {
						if j+2 >= len(all) || all[j+1].Kind != EffectClawback || all[j+1].Outcome != OutcomeNotReturned ||
							all[j+2].Kind != EffectTrust || all[j+2].Outcome != OutcomeNotReturned || all[j+2].Penalty != m.policy.Penalties[OutcomeNotReturned] {
							fail(i, "close of advanced %s without its not_returned clawback and trust feedback", key)
						}
					}
				case ResolutionApproved, ResolutionRejected:
					if m.counts[EffectResolution]++; m.counts[EffectResolution] > 1 || m.decision != VerdictReview {
						fail(i, "resolution %v of a request decided %s", m.outcomes, m.decision)
					}
					if e.Resolution == ResolutionApproved {
						m.approvedAt = j
					}
				default:
					fail(i, "resolution outcome %d", e.Resolution)
				}
			}
		}
	}
	var out []Effect
	for i := range evs {
		ev := evs[i]
		if to, ok := h.switchTo[ev.EventID]; ok {
			env.Policy = h.policies[to]
		}
		// The partition clock: fire due timers before the event.
		if ev.At > clock {
			clock = ev.At
			for _, id := range order {
				u := users[id]
				if dl, ok := NextDeadline(u); ok && dl < clock {
					n := len(all)
					all = Fire(u, clock, &env, all)
					if check {
						if len(all) == n {
							fail(i, "deadline %d < clock %d but Fire fired nothing", dl, clock)
						}
						observe(i, n)
						checkState(t, seed, i, u, env.Policy, false, late, firstSeen[u.ID])
						noteMarks(u)
					}
				}
			}
		}
		if ev.Type == EventClock {
			continue
		}
		u, ok := users[ev.UserID]
		if !ok {
			u = &User{ID: ev.UserID}
			users[ev.UserID] = u
			order = append(order, ev.UserID)
		}
		had := ev.Type == EventReturnRequested && (u.Request(ev.RequestID) != nil || u.forgotten(ev.RequestID))
		if ev.Type == EventReturnRequested && ev.At < u.MaxAt {
			late[ev.At] = true
		}
		if f, ok := firstSeen[ev.UserID]; !ok || ev.At < f {
			firstSeen[ev.UserID] = ev.At
		}
		if ev.Type == EventOrderPaid {
			if _, seen := paid[ev.UserID+"/"+ev.OrderID]; !seen && u.Order(ev.OrderID) == nil {
				paid[ev.UserID+"/"+ev.OrderID] = ev.PaidFen
			}
		}
		var before *User
		if check {
			before = u.Clone()
		}
		start := len(all)
		out = Apply(u, &ev, &env, out[:0])
		all = append(all, out...)
		if !check {
			continue
		}
		decisions, letters := 0, 0
		for _, e := range all[start:] {
			switch e.Kind {
			case EffectDecision:
				decisions++
			case EffectDeadLetter:
				letters++
			}
		}
		if letters > 0 {
			if len(all)-start != 1 {
				fail(i, "a dead letter with other effects")
			}
			before.slab, u.slab = nil, nil
			if !reflect.DeepEqual(before, u) {
				fail(i, "a dead-lettered event changed the state")
			}
			e := all[start]
			want := FaultUnknownRequest
			if ev.Type == EventOrderShipped || ev.Type == EventOrderDelivered {
				want = FaultUnknownOrder
			}
			if e.Fault != want || (want == FaultUnknownOrder && before.Order(ev.OrderID) != nil) || (want == FaultUnknownRequest && before.Request(ev.RequestID) != nil) {
				fail(i, "dead letter %s for a %s", e.Fault, ev.Type)
			}
			continue
		}
		if ev.Type == EventReturnRequested {
			want := 1
			if had {
				want = 0
			}
			if decisions != want {
				fail(i, "%d decisions, want %d (redelivery %t)", decisions, want, had)
			}
		} else if decisions != 0 {
			fail(i, "a decision for a %s", ev.Type)
		}
		observe(i, start)
		if decisions == 1 {
			p := env.Policy
			for _, c := range all[start].Trace.List() {
				switch {
				case c.Code == CodeVelocityCap && c.Pass:
					if n := countIn(decidedAt[ev.UserID], ev.At-int64(p.VelocityWindow), ev.At) + 1; n > int64(p.VelocityMax) {
						fail(i, "velocity_cap passed with %d requests in the window on the full history, max %d", n, p.VelocityMax)
					}
				case c.Code == CodeTrustFlagged && c.Pass:
					for t := range marks[ev.UserID] {
						if t > ev.At-int64(p.TrustWindow) && t <= ev.At {
							fail(i, "trust_flagged passed with a trust mark at %d in the window", t)
						}
					}
				}
			}
			decidedAt[ev.UserID] = append(decidedAt[ev.UserID], ev.At)
			if e := &all[start]; e.Verdict == VerdictApproved {
				// The exposure cap of the policy that approved holds
				// right after the approval, and the trace compared what
				// the shopper held before it.
				if sum := u.OutstandingFen + u.PromisedFen; sum > env.Policy.ExposureCapFen {
					fail(i, "after an approval the shopper holds %d advanced and promised, cap %d", sum, env.Policy.ExposureCapFen)
				}
			}
			for _, c := range all[start].Trace.List() {
				if c.Code == CodeExposureCap && (c.Held != before.OutstandingFen || c.Promised != before.PromisedFen) {
					fail(i, "exposure trace %d + %d promised, state held %d + %d", c.Held, c.Promised, before.OutstandingFen, before.PromisedFen)
				}
			}
		}
		checkState(t, seed, i, u, env.Policy, true, late, firstSeen[u.ID])
		noteMarks(u)
	}
	if check {
		checkEnd(t, seed, users, model, refunded)
	}
	return all
}

// checkState checks the per-user invariants: money counters and
// boundedness. Nothing is abandoned before a year has passed, so until
// then the counters must equal what the requests hold. pruned says
// whether Apply has just pruned (Fire does not: a timer that fires late,
// the partition's clock having been held back by this shopper's event
// times, may close a request that the next Apply prunes).
func checkState(t *testing.T, seed uint64, i int, u *User, p *Policy, pruned bool, late map[int64]bool, first int64) {
	checkQuery(t, u, p)
	t.Helper()
	failf := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, event %d, user %s: %s", seed, i, u.ID, fmt.Sprintf(format, args...))
	}
	if u.OutstandingFen < 0 || u.PromisedFen < 0 {
		failf("OutstandingFen %d, PromisedFen %d", u.OutstandingFen, u.PromisedFen)
	}
	var outstanding, promised int64
	reserved := map[string]int64{}
	open := map[string]bool{}
	cutoff := u.MaxAt - int64(p.Retention())
	for _, r := range u.Requests {
		outstanding += r.Outstanding()
		if r.Promised {
			promised += r.AmountFen
			if r.Status != StatusOpen || r.RefundSent {
				failf("request %s (%s) still promised", r.ID, r.Status)
			}
		}
		if r.Reserved {
			reserved[r.OrderID] += r.AmountFen
			if r.Status != StatusOpen || r.RefundSent {
				failf("request %s (%s) still reserved", r.ID, r.Status)
			}
		}
		if r.Status == StatusOpen {
			if open[r.OrderID] {
				failf("two open requests on order %s", r.OrderID)
			}
			open[r.OrderID] = true
		} else if pruned && r.ClosedAt < cutoff {
			failf("closed request %s kept past retention", r.ID)
		}
		if r.RefundSent && !r.Approved() {
			failf("refunded %s request %s", r.Verdict, r.ID)
		}
		if r.Status == StatusCancelled && r.handedOver() {
			failf("request %s cancelled after its refund or its new item was handed over", r.ID)
		}
		if r.Policy == nil {
			failf("request %s without a policy", r.ID)
		}
	}
	// Exact sums until a request may have been abandoned (open a year):
	// first is the shopper's earliest event time ever applied.
	exact := u.MaxAt-first < int64(AbandonAfter)
	if outstanding > u.OutstandingFen || promised > u.PromisedFen || (exact && (outstanding != u.OutstandingFen || promised != u.PromisedFen)) {
		failf("OutstandingFen %d PromisedFen %d, requests hold %d and %d", u.OutstandingFen, u.PromisedFen, outstanding, promised)
	}
	for _, o := range u.Orders {
		if (exact && o.ReservedFen != reserved[o.ID]) || o.ReservedFen < reserved[o.ID] {
			failf("order %s reserved %d, its requests %d", o.ID, o.ReservedFen, reserved[o.ID])
		}
		if o.ReservedFen+o.RefundedFen > o.PaidFen || o.RefundedFen < 0 {
			failf("order %s: reserved %d + refunded %d > paid %d", o.ID, o.ReservedFen, o.RefundedFen, o.PaidFen)
		}
		if pruned && o.LastAt < u.MaxAt-int64(max(OrderRetention, p.Retention())) && !u.referenced(o.ID) && o.ReservedFen == 0 {
			failf("order %s kept past retention", o.ID)
		}
	}
	for _, ts := range u.RecentRequests {
		// A request stored late adds its time after pruning: it goes
		// when event time next advances.
		if pruned && ts <= u.MaxAt-int64(max(p.VelocityWindow, DefaultVelocityWindow)+LateAllowance) && !late[ts] {
			failf("stale velocity entry")
		}
	}
	for _, ts := range u.TrustMarks {
		if pruned && ts <= u.MaxAt-int64(max(p.TrustWindow, DefaultTrustWindow)+LateAllowance) {
			failf("stale trust mark")
		}
	}
	// With about 6 orders and 8 requests per user per simulated month, the
	// retentions keep some hundreds; thousands mean pruning is broken.
	if len(u.Orders) > 1000 || len(u.Requests) > 300 || len(u.RecentRequests) > 50 {
		failf("state not bounded: %d orders, %d requests, %d velocity entries", len(u.Orders), len(u.Requests), len(u.RecentRequests))
	}
}

// checkEnd checks what must hold once the history is over: every
// approval of a request that pays money paid, or says why not; the
// per-order refunded money agrees with the outputs.
func checkEnd(t *testing.T, seed uint64, users map[string]*User, model map[string]*reqModel, refunded map[string]int64) {
	t.Helper()
	for _, u := range users {
		for _, r := range u.Requests {
			if !r.Approved() || r.Status == StatusOpen || r.PayTrigger == TriggerNone {
				continue
			}
			if !r.RefundSent && r.Status != StatusCancelled && r.Status != StatusClosed && !r.Inspection.Bad() {
				t.Fatalf("seed %d: approved request %s/%s ended %s without a refund or a reason", seed, u.ID, r.ID, r.Status)
			}
		}
		for _, o := range u.Orders {
			if got := refunded[u.ID+"/"+o.ID]; got != o.RefundedFen {
				t.Fatalf("seed %d: order %s/%s: outputs refunded %d net, state says %d", seed, u.ID, o.ID, got, o.RefundedFen)
			}
		}
	}
	n := 0
	for _, m := range model {
		if m.approvedAt >= 0 {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("seed %d: no request was approved: the history tests little", seed)
	}
}
