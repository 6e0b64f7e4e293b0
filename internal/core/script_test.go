package core

// A small datadriven runner in the format of cockroachdb/datadriven (and
// etcd raft's interaction tests): each file in testdata/ is a list of
//
//	command arg=value ...
//	input lines
//	----
//	expected output
//
// blocks separated by blank lines. `go test -run TestScripts -rewrite`
// regenerates the expected outputs; review the diff.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/script"
)

func TestScripts(t *testing.T) {
	script.Run(t, "testdata/*.txt", func(t *testing.T) func(*testing.T, script.Case) string {
		w := newWorld(t)
		return w.run
	})
}

// world is the scripted environment: users, merchants, policy, zone and
// the partition clock (which fires timers as pipeline does).
type world struct {
	users     map[string]*User
	order     []string // user IDs in first-seen order
	merchants map[string]*Merchant
	env       Env
	clock     int64
	out       []Effect
}

func newWorld(t *testing.T) *world {
	p, _ := Preset(PresetTmall)
	w := &world{users: map[string]*User{}, merchants: map[string]*Merchant{}}
	w.env = Env{Policy: p, Loc: shanghai(t), Merchant: func(id string) *Merchant { return w.merchants[id] }}
	return w
}

func shanghai(t testing.TB) *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func kv(arg string) (string, string) {
	k, v, _ := strings.Cut(arg, "=")
	return k, v
}

func (w *world) user(id string) *User {
	u, ok := w.users[id]
	if !ok {
		u = &User{ID: id}
		w.users[id] = u
		w.order = append(w.order, id)
	}
	return u
}

func (w *world) run(t *testing.T, c script.Case) string {
	var b strings.Builder
	switch c.Cmd {
	case "policy":
		p, ok := Preset(c.Args[0])
		if !ok {
			t.Fatalf("%s: unknown preset %s", c.Pos, c.Args[0])
		}
		for _, l := range c.Input {
			if l = strings.TrimSpace(l); l != "" {
				setPolicy(t, c.Pos, p, l)
			}
		}
		if err := p.Finish(); err != nil {
			fmt.Fprintf(&b, "error: %v\n", err)
			return b.String()
		}
		w.env.Policy = p
	case "merchant":
		m := &Merchant{}
		for _, a := range c.Args {
			switch k, v := kv(a); k {
			case "id":
				m.ID = v
			case "rev":
				n, _ := strconv.ParseUint(v, 10, 64)
				m.Revision = n
			}
		}
		for _, l := range c.Input {
			l = strings.TrimSpace(l)
			switch k, v, _ := strings.Cut(l, ":"); k {
			case "return":
				m.ReturnAddresses = append(m.ReturnAddresses, strings.TrimSpace(v))
			case "ship":
				m.ShipAddresses = append(m.ShipAddresses, strings.TrimSpace(v))
			case "rule":
				m.Rules = append(m.Rules, parseRule(t, c.Pos, strings.Fields(v)))
			}
		}
		w.merchants[m.ID] = m
	case "events":
		trace := slices.Contains(c.Args, "trace")
		for _, l := range c.Input {
			if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			ev := parseEvent(t, c.Pos, l)
			w.advance(&b, ev.At)
			if ev.Type == EventClock {
				continue
			}
			u := w.user(ev.UserID)
			w.out = Apply(u, &ev, &w.env, w.out[:0])
			for i := range w.out {
				b.WriteString(w.formatEffect(&w.out[i], trace))
			}
		}
	case "fire":
		_, v := kv(c.Args[0])
		w.advance(&b, parseTime(t, c.Pos, v))
	case "reset":
		// A fresh world (no shoppers, clock at zero), keeping the policy
		// and merchants: scenarios that follow do not see each other's
		// timers.
		w.users, w.order, w.clock = map[string]*User{}, nil, 0
	case "state":
		id := "u1"
		if len(c.Args) > 0 {
			_, id = kv(c.Args[0])
		}
		b.WriteString(formatUser(w.user(id), w.env.Loc))
	case "query":
		id := "u1"
		if len(c.Args) > 0 {
			_, id = kv(c.Args[0])
		}
		b.WriteString(formatQuery(w.user(id), w.env.Policy, w.env.Loc))
	default:
		t.Fatalf("%s: unknown command %q", c.Pos, c.Cmd)
	}
	return b.String()
}

// advance moves the partition clock to at and fires due timers, in
// first-seen user order.
func (w *world) advance(b *strings.Builder, at int64) {
	if at <= w.clock {
		return
	}
	w.clock = at
	for _, id := range w.order {
		u := w.users[id]
		if dl, ok := NextDeadline(u); ok && dl < w.clock {
			w.out = Fire(u, w.clock, &w.env, w.out[:0])
			for i := range w.out {
				b.WriteString(w.formatEffect(&w.out[i], false))
			}
		}
	}
}

func setPolicy(t *testing.T, pos string, p *Policy, l string) {
	k, v := kv(l)
	list := func() []string {
		if v == "" {
			return nil
		}
		return strings.Split(v, ",")
	}
	atoi := func() int {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s: %s: %v", pos, l, err)
		}
		return n
	}
	switch k {
	case "cities":
		p.Cities = list()
	case "excluded_categories":
		p.ExcludedCategories = list()
	case "min_stars":
		p.MinStars = atoi()
	case "amount_cap_fen":
		p.AmountCapFen = int64(atoi())
	case "velocity_max":
		p.VelocityMax = atoi()
	case "exposure_cap_fen":
		p.ExposureCapFen = int64(atoi())
	case "compensation_fen":
		p.CompensationFen = int64(atoi())
	case "window_days":
		p.WindowDays = atoi()
	case "pickup_grace", "review_deadline", "return_deadline", "trust_window", "velocity_window":
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %s: %v", pos, l, err)
		}
		*map[string]*time.Duration{"pickup_grace": &p.PickupGrace, "review_deadline": &p.ReviewDeadline, "return_deadline": &p.ReturnDeadline,
			"trust_window": &p.TrustWindow, "velocity_window": &p.VelocityWindow}[k] = d
	case "kinds":
		p.Kinds = 0
		for _, s := range list() {
			kd, ok := ParseKind(s)
			if !ok {
				t.Fatalf("%s: kind %q", pos, s)
			}
			p.Kinds |= KindSetOf(kd)
		}
	case "refunds.return_refund", "refunds.refund_only", "refunds.exchange":
		kd, _ := ParseKind(strings.TrimPrefix(k, "refunds."))
		trig, adv, _ := strings.Cut(v, ",")
		tr, ok := ParseTrigger(trig)
		if !ok {
			t.Fatalf("%s: trigger %q", pos, trig)
		}
		p.Refunds[kd] = RefundRule{Trigger: tr, Advance: adv == "advance"}
	default:
		t.Fatalf("%s: unknown policy key %q", pos, k)
	}
}

func parseRule(t *testing.T, pos string, args []string) MerchantRule {
	var r MerchantRule
	for _, a := range args {
		k, v := kv(a)
		switch k {
		case "name":
			r.Name = v
		case "kinds":
			for s := range strings.SplitSeq(v, ",") {
				kd, ok := ParseKind(s)
				if !ok {
					t.Fatalf("%s: kind %q", pos, s)
				}
				r.Kinds |= KindSetOf(kd)
			}
		case "reasons":
			for s := range strings.SplitSeq(v, ",") {
				rs, ok := ParseReason(s)
				if !ok {
					t.Fatalf("%s: reason %q", pos, s)
				}
				r.Reasons |= ReasonSetOf(rs)
			}
		case "min_stars":
			r.MinStars, _ = strconv.Atoi(v)
		case "max_amount":
			r.MaxAmountFen, _ = strconv.ParseInt(v, 10, 64)
			r.HasMaxAmount = true
		case "max_days":
			r.MaxDays, _ = strconv.Atoi(v)
			r.HasMaxDays = true
		case "categories":
			r.Categories = strings.Split(v, ",")
		default:
			t.Fatalf("%s: unknown rule key %q", pos, k)
		}
	}
	return r
}

func parseTime(t testing.TB, pos, s string) int64 {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s: time %q: %v", pos, s, err)
	}
	return tm.UnixNano()
}

// parseEvent reads "<RFC 3339 time> <type> key=value ... flag ...".
func parseEvent(t testing.TB, pos, line string) Event {
	f := strings.Fields(line)
	if len(f) < 2 {
		t.Fatalf("%s: event %q: want <time> <type> ...", pos, line)
	}
	ev := Event{AtRaw: f[0], At: parseTime(t, pos, f[0]), UserID: "u1"}
	ev.EventID = "e" + strconv.FormatInt(ev.At, 36)
	ev.Size = SizeSmall
	ok := true
	for _, a := range f[1:] {
		if ev.Type == EventInvalid && !strings.Contains(a, "=") {
			if ev.Type, ok = ParseEventType(a); !ok {
				t.Fatalf("%s: event type %q", pos, a)
			}
			continue
		}
		k, v := kv(a)
		var err error
		switch k {
		case "user":
			ev.UserID = v
		case "order":
			ev.OrderID = v
		case "merchant":
			ev.MerchantID = v
		case "category":
			ev.Category = v
		case "city":
			ev.City = v
		case "size":
			ev.Size, ok = ParseSize(v)
		case "paid":
			ev.PaidFen, err = strconv.ParseInt(v, 10, 64)
		case "seven_day":
			ev.SevenDay = true
		case "insurance":
			ev.FreightInsurance = true
		case "stars":
			ev.Stars, err = strconv.Atoi(v)
		case "req":
			ev.RequestID = v
			if ev.Type == EventReviewApproved || ev.Type == EventReviewRejected {
				ev.By = ActorMerchant // unless by= says otherwise
			}
		case "kind":
			ev.Kind, ok = ParseKind(v)
		case "reason":
			ev.Reason, ok = ParseReason(v)
		case "pickup":
			ev.Pickup = true
		case "amount":
			ev.AmountFen, err = strconv.ParseInt(v, 10, 64)
			ev.HasAmount = true
		case "no":
			ev.TrackingNo = v
		case "outcome":
			ev.Outcome, ok = ParseOutcome(v)
		case "by":
			ev.By, ok = ParseActor(v)
		case "note":
			ev.Note = strings.ReplaceAll(v, "_", " ")
		default:
			t.Fatalf("%s: unknown event key %q", pos, k)
		}
		if err != nil || !ok {
			t.Fatalf("%s: bad %s=%q", pos, k, v)
		}
	}
	return ev
}

func fmtTime(ns int64, loc *time.Location) string {
	return time.Unix(0, ns).In(loc).Format("2006-01-02T15:04:05.000Z07:00")
}

// formatEffect renders one effect as a line (plus its trace when asked).
// An effect whose request follows another policy than the one in force
// names it (policy=...).
func (w *world) formatEffect(e *Effect, trace bool) string {
	loc := w.env.Loc
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s.%s", e.Kind, e.UserID, e.RequestID)
	if e.OrderID != "" {
		fmt.Fprintf(&b, " order=%s", e.OrderID)
	}
	switch e.Kind {
	case EffectDecision:
		fmt.Fprintf(&b, " %s reasons=%v", e.Verdict, e.Reasons.AppendStrings(nil))
		if e.ReturnAddress != "" {
			fmt.Fprintf(&b, " address=%q", e.ReturnAddress)
		}
		if e.MerchantRule != "" {
			fmt.Fprintf(&b, " rule=%s", e.MerchantRule)
		}
		if e.MerchantRevision != 0 {
			fmt.Fprintf(&b, " rev=%d", e.MerchantRevision)
		}
	case EffectRefund:
		fmt.Fprintf(&b, " amount=%d trigger=%s advance=%t", e.AmountFen, e.Trigger, e.Advance)
	case EffectPickup:
		fmt.Fprintf(&b, " size=%s window=%s..%s replace=%t", e.Size, fmtTime(e.WindowStart, loc), fmtTime(e.WindowEnd, loc), e.Replace)
	case EffectCompensation:
		fmt.Fprintf(&b, " amount=%d reason=%s", e.AmountFen, CompensationReason)
	case EffectClawback:
		fmt.Fprintf(&b, " amount=%d outcome=%s", e.AmountFen, e.Outcome)
	case EffectTrust:
		fmt.Fprintf(&b, " outcome=%s penalty=%d", e.Outcome, e.Penalty)
	case EffectResolution:
		fmt.Fprintf(&b, " %s by=%s at=%s reasons=%v", e.Resolution, e.By, fmtTime(e.At, loc), e.Reasons.AppendStrings(nil))
		if e.ReturnAddress != "" {
			fmt.Fprintf(&b, " address=%q", e.ReturnAddress)
		}
		if e.Note != "" {
			fmt.Fprintf(&b, " note=%q", e.Note)
		}
	case EffectDeadLetter:
		fmt.Fprintf(&b, " %s", e.Fault)
	}
	if e.Kind != EffectDeadLetter && (e.Policy == nil || e.Policy.Version != w.env.Policy.Version) {
		name := "<nil>"
		if e.Policy != nil {
			name = e.Policy.Name
		}
		fmt.Fprintf(&b, " policy=%s", name)
	}
	b.WriteByte('\n')
	if trace && (e.Kind == EffectDecision || e.Kind == EffectResolution) {
		for _, c := range e.Trace.List() {
			mark := "pass"
			if !c.Pass {
				mark = "FAIL"
			}
			fmt.Fprintf(&b, "  %s %s: %s\n", mark, c.Name(), c)
		}
	}
	return b.String()
}

func formatUser(u *User, loc *time.Location) string {
	var b strings.Builder
	fmt.Fprintf(&b, "user %s stars=%d outstanding=%d promised=%d max_at=%s\n", u.ID, u.Stars, u.OutstandingFen, u.PromisedFen, fmtTime(u.MaxAt, loc))
	for _, o := range u.Orders {
		fmt.Fprintf(&b, "order %s paid=%d", o.ID, o.PaidFen)
		if o.ShippedAt != 0 {
			fmt.Fprintf(&b, " shipped")
		}
		if o.DeliveredAt != 0 {
			fmt.Fprintf(&b, " delivered=%s", fmtTime(o.DeliveredAt, loc))
		}
		if o.ReservedFen != 0 || o.RefundedFen != 0 {
			fmt.Fprintf(&b, " reserved=%d refunded=%d", o.ReservedFen, o.RefundedFen)
		}
		if len(o.Forgotten) > 0 {
			fmt.Fprintf(&b, " forgotten=%s", strings.Join(o.Forgotten, ","))
		}
		b.WriteByte('\n')
	}
	for _, r := range u.Requests {
		fmt.Fprintf(&b, "request %s order=%s %s %s amount=%d", r.ID, r.OrderID, r.Status, r.Verdict, r.AmountFen)
		if r.Resolution != ResolutionNone {
			fmt.Fprintf(&b, " resolved=%s/%s", r.Resolution, r.ResolvedBy)
		}
		if r.RefundSent {
			fmt.Fprintf(&b, " refund=%s", r.RefundTrigger)
		} else if r.PayTrigger != TriggerNone && r.Status == StatusOpen {
			fmt.Fprintf(&b, " pays_on=%s", r.PayTrigger)
		}
		if r.Pickup {
			fmt.Fprintf(&b, " pickup_end=%s", fmtTime(r.WindowEnd, loc))
		}
		if r.PickupDone {
			b.WriteString(" picked_up")
		}
		if r.CompensationSent {
			b.WriteString(" compensated")
		}
		if r.Inspection != OutcomeNone {
			fmt.Fprintf(&b, " inspection=%s", r.Inspection)
		}
		if k, dl := r.Timer(); k != TimerNone {
			fmt.Fprintf(&b, " timer=%s@%s", k, fmtTime(dl, loc))
		}
		if r.Policy != nil && r.Policy.Name != "" {
			fmt.Fprintf(&b, " policy=%s", r.Policy.Name)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "velocity=%d trust_marks=%d", len(u.RecentRequests), len(u.TrustMarks))
	if u.VelocityPrunedTo != 0 {
		fmt.Fprintf(&b, " velocity_pruned_to=%s", fmtTime(u.VelocityPrunedTo, loc))
	}
	if u.TrustPrunedTo != 0 {
		fmt.Fprintf(&b, " trust_pruned_to=%s", fmtTime(u.TrustPrunedTo, loc))
	}
	if dl, ok := NextDeadline(u); ok {
		fmt.Fprintf(&b, " deadline=%s", fmtTime(dl, loc))
	}
	b.WriteByte('\n')
	return b.String()
}

// TestScriptsCoverEveryCode checks that the scripts exercise every reason
// code in a decision and every preset.
func TestScriptsCoverEveryCode(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	var all strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	text := all.String()
	seen := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		_, rest, ok := strings.Cut(l, " reasons=[")
		if !strings.HasPrefix(l, "decision ") || !ok {
			continue
		}
		list, _, _ := strings.Cut(rest, "]")
		for _, c := range strings.Fields(list) {
			seen[c] = true
		}
	}
	for c := Code(0); c < NumCodes; c++ {
		if !seen[c.String()] {
			t.Errorf("no script decision lists %s", c)
		}
	}
	for _, p := range PresetNames() {
		if !strings.Contains(text, "\npolicy "+p+"\n") {
			t.Errorf("no script runs %s", p)
		}
	}
	for _, k := range []string{"\nrefund ", "\npickup ", "\ncompensation ", "\nclawback ", "\ntrust ", "trigger=pre_shipment", "trigger=approval", "trigger=tracking", "trigger=inspection", "replace=true", "replace=false", " rule=",
		"\nresolution ", " approved by=merchant", " approved by=platform", " approved by=timeout", " rejected by=", " closed by=timeout", "outcome=not_returned",
		"unknown_order", "unknown_request", "order ceiling", " promised + "} {
		if !strings.Contains(text, k) {
			t.Errorf("no script output contains %q", k)
		}
	}
}

// formatQuery renders what the query API shows of a shopper and each of
// its requests, from the query functions of query.go (the HTTP API renders
// the same values as JSON).
func formatQuery(u *User, p *Policy, loc *time.Location) string {
	var b strings.Builder
	marks, flagged := u.Trust(p)
	fmt.Fprintf(&b, "query %s exposure=%d open=%v trust_marks=%d flagged=%t\n", u.ID, u.Exposure(), u.OpenRequests(nil), marks, flagged)
	for i := range u.Requests {
		r := &u.Requests[i]
		fmt.Fprintf(&b, "  %s stage=%s status=%s", r.ID, r.Stage(), r.Status)
		if rs, ok := r.RefundState(); ok {
			fmt.Fprintf(&b, " refund=%s/advance=%t/reserved=%t/sent=%t", rs.Trigger, rs.Advance, rs.Reserved, rs.Sent)
			if rs.Sent {
				fmt.Fprintf(&b, "@%s", fmtTime(rs.SentAt, loc))
			}
		}
		if ps, ok := r.PickupState(); ok {
			fmt.Fprintf(&b, " pickup=%s..%s/done=%t/compensated=%t", fmtTime(ps.WindowStart, loc), fmtTime(ps.WindowEnd, loc), ps.Done, ps.Compensated)
		}
		if at, ok := r.Closed(); ok {
			fmt.Fprintf(&b, " closed@%s", fmtTime(at, loc))
		}
		b.WriteString("\n    effects:")
		for _, e := range r.Effects(u.ID) {
			fmt.Fprintf(&b, " %s=%s", e.Kind, e.ID)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
