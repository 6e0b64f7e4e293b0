package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/apply"
	"github.com/flashreturn/flashreturn/pipeline/cluster"
	"github.com/flashreturn/flashreturn/pipeline/httpapi"
	"github.com/flashreturn/flashreturn/pipeline/streams"
	"github.com/flashreturn/flashreturn/state"
)

// backend is the daemon as the HTTP API sees it: a real state store
// (Badger in a temporary directory) holding shoppers built by core.Apply,
// the tmall policy, no cluster. Only the daemon's interface is faked.
type backend struct {
	st  *state.Store
	pol *core.Policy
	loc *time.Location
}

const partitions = 4

func (b *backend) WriteMetrics(io.Writer)           {}
func (b *backend) Ready() bool                      { return true }
func (b *backend) Policy() *core.Policy             { return b.pol }
func (b *backend) Shadow() *apply.Shadow            { return nil }
func (b *backend) Status() httpapi.Status           { return httpapi.Status{} }
func (b *backend) Partitions() int                  { return partitions }
func (b *backend) Location() *time.Location         { return b.loc }
func (b *backend) State() *state.Store              { return b.st }
func (b *backend) Cluster() *cluster.Cluster        { return nil }
func (b *backend) PartitionReady() func(p int) bool { return nil }
func (b *backend) AdvertisedHTTP() string           { return "" }
func (b *backend) Durability() *streams.Durability  { return nil }

// world holds the events' clock and the environment Apply reads.
type world struct {
	t   *testing.T
	loc *time.Location
	env *core.Env
	st  *state.Store
}

func newWorld(t *testing.T) *world {
	t.Helper()
	loc := time.FixedZone("CST", 8*3600)
	tmall, ok := core.Preset(core.PresetTmall)
	if !ok {
		t.Fatal("no tmall preset")
	}
	shop := &core.Merchant{ID: "m1", ReturnAddresses: []string{"Hangzhou desk"}, ShipAddresses: []string{"Hangzhou desk"}, Revision: 1}
	env := &core.Env{Policy: tmall, Loc: loc, Merchant: func(id string) *core.Merchant {
		if id == shop.ID {
			return shop
		}
		return nil
	}}
	st, err := state.Open(state.Options{Dir: t.TempDir(), LegacyPolicy: tmall})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &world{t: t, loc: loc, env: env, st: st}
}

// at parses a wall time in the shoppers' zone.
func (w *world) at(s string) int64 {
	w.t.Helper()
	tm, err := time.ParseInLocation(time.DateTime, s, w.loc)
	if err != nil {
		w.t.Fatal(err)
	}
	return tm.UnixNano()
}

// commit applies evs to user id (then fires its timers due by fire, when
// not 0) and commits the result to the store, as a worker's batch would.
func (w *world) commit(id string, fire int64, evs ...core.Event) *core.User {
	w.t.Helper()
	pt, err := w.st.Partition(wire.Partition(id, partitions))
	if err != nil {
		w.t.Fatal(err)
	}
	defer pt.Release()
	u, err := pt.User(id)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []core.Effect
	for i := range evs {
		evs[i].UserID = id
		out = core.Apply(u, &evs[i], w.env, out)
	}
	if fire != 0 {
		out = core.Fire(u, fire, w.env, out)
	}
	for _, e := range out {
		if e.Kind == core.EffectDeadLetter {
			w.t.Fatalf("%s: event dead-lettered: %+v", id, e)
		}
	}
	pt.MarkDirty(u)
	if err := pt.Commit(pt.Cursor()+1, fire, nil); err != nil {
		w.t.Fatal(err)
	}
	return u
}

// buy is a shopper with the given stars and a paid, delivered order of
// shoes from m1.
func (w *world) buy(stars int) []core.Event {
	return []core.Event{
		{Type: core.EventCreditUpdated, At: w.at("2026-11-11 09:00:00"), Stars: stars},
		{Type: core.EventOrderPaid, At: w.at("2026-11-11 09:00:00"), OrderID: "o1", MerchantID: "m1",
			Category: "shoes", Size: core.SizeSmall, PaidFen: 12900, SevenDay: true},
		{Type: core.EventOrderDelivered, At: w.at("2026-11-12 12:00:00"), OrderID: "o1"},
	}
}

// ask is a no-reason return of o1, with or without a courier pickup.
func (w *world) ask(pickup bool) core.Event {
	return core.Event{Type: core.EventReturnRequested, At: w.at("2026-11-13 10:00:00"), AtRaw: "2026-11-13T10:00:00+08:00",
		RequestID: "r1", OrderID: "o1", Kind: core.KindReturnRefund, Reason: core.ReasonNoReason, Pickup: pickup}
}

// get answers GET path from the API and decodes its JSON generically, so
// that the test sees field names and omitted fields as a client does.
func get(t *testing.T, srv *httptest.Server, path string) map[string]any {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return m
}

// TestRequestView checks the request and user views the query API builds
// from core's query functions, on shoppers in different states. The
// wanted values are literal JSON, so a renamed field, a lost omitempty
// or a mapping that reads the wrong state fails here, in this package's
// own test, and not only in the daemon's end-to-end tests.
func TestRequestView(t *testing.T) {
	w := newWorld(t)
	srv := httptest.NewServer(httpapi.New(&backend{st: w.st, pol: w.env.Policy, loc: w.loc}))
	t.Cleanup(srv.Close)

	tracking := core.Event{Type: core.EventLogisticsTracking, At: w.at("2026-11-13 15:00:00"), RequestID: "r1", TrackingNo: "SF123"}
	// Approved with a courier pickup: the advance waits for tracking,
	// the pickup window is open, its compensation timer armed.
	w.commit("u1", 0, append(w.buy(5), w.ask(true))...)
	// The courier came inside the window: pickup done, timer gone.
	w.commit("u2", 0, append(w.buy(5), w.ask(true),
		core.Event{Type: core.EventPickupDone, At: w.at("2026-11-13 11:00:00"), RequestID: "r1"})...)
	// Tracking came: the advance is paid and no longer reserved.
	w.commit("u3", 0, append(w.buy(5), w.ask(false), tracking)...)
	// One star: review, nothing promised, the review deadline armed.
	w.commit("u4", 0, append(w.buy(1), w.ask(false))...)
	// Nothing sent back by the return deadline: closed by timeout (the
	// clock fired weeks later); nothing was advanced, so no trust mark.
	w.commit("u5", w.at("2026-12-31 00:00:00"), append(w.buy(5), w.ask(false))...)
	// Advanced, then a bad inspection: clawed back and a trust mark, which
	// flags the shopper at once (the mark is at the last event).
	w.commit("u6", 0, append(w.buy(5), w.ask(false), tracking,
		core.Event{Type: core.EventInspectionResult, At: w.at("2026-11-16 10:00:00"), RequestID: "r1", Outcome: core.OutcomeDamaged})...)

	for _, c := range []struct {
		user string
		// want is field -> JSON value; "" means the field must be absent.
		want map[string]string
	}{
		{"u1", map[string]string{"stage": `"processing"`, "status": `"open"`, "decision": `"approved"`, "closed": "",
			"refund":        `{"trigger":"tracking","advance":true,"reserved":true,"sent":false}`,
			"pickup":        `{"window_start":"2026-11-13T10:00:00+08:00","window_end":"2026-11-13T12:00:00+08:00","done":false,"compensated":false}`,
			"next_deadline": `{"timer":"pickup","at":"2026-11-13T12:10:00+08:00"}`,
			"effects":       `[{"kind":"decision","id":"decision.u1.r1"},{"kind":"pickup","id":"pk.u1.r1"}]`}},
		{"u2", map[string]string{"stage": `"processing"`, "closed": "",
			"pickup": `{"window_start":"2026-11-13T10:00:00+08:00","window_end":"2026-11-13T12:00:00+08:00","done":true,"compensated":false}`}},
		{"u3", map[string]string{"stage": `"processing"`, "status": `"open"`, "closed": "", "pickup": "", "next_deadline": "",
			"refund":  `{"trigger":"tracking","advance":true,"reserved":false,"sent":true,"sent_at":"2026-11-13T15:00:00+08:00"}`,
			"effects": `[{"kind":"decision","id":"decision.u3.r1"},{"kind":"refund","id":"rf.u3.r1"}]`}},
		{"u4", map[string]string{"stage": `"review"`, "status": `"open"`, "decision": `"review"`, "reasons": `["credit_low"]`,
			"refund": "", "pickup": "", "closed": "", "resolution": "",
			"next_deadline": `{"timer":"review","at":"2026-11-16T10:00:00+08:00"}`,
			"effects":       `[{"kind":"decision","id":"decision.u4.r1"}]`}},
		{"u5", map[string]string{"stage": `"feedback"`, "status": `"closed"`, "decision": `"approved"`, "next_deadline": "", "pickup": "",
			"closed":  `{"outcome":"closed","by":"timeout","at":"2026-11-20T10:00:00+08:00"}`,
			"refund":  `{"trigger":"tracking","advance":true,"reserved":false,"sent":false}`,
			"effects": `[{"kind":"decision","id":"decision.u5.r1"},{"kind":"resolution","id":"rs.u5.r1.closed"}]`}},
		{"u6", map[string]string{"stage": `"feedback"`, "closed": "", "next_deadline": ""}},
	} {
		got := get(t, srv, "/v1/users/"+c.user+"/requests/r1")
		for field, want := range c.want {
			check(t, c.user+" request "+field, got, field, want)
		}
	}

	// The user view: open requests, exposure and the trust rule.
	for _, c := range []struct {
		user string
		want map[string]string
	}{
		{"u1", map[string]string{"open_requests": `["r1"]`, "outstanding_fen": "0", "promised_fen": "12900", "exposure_fen": "12900",
			"trust": `{"marks":0,"flagged":false}`, "last_event_at": `"2026-11-13T10:00:00+08:00"`}},
		{"u3", map[string]string{"open_requests": `["r1"]`, "outstanding_fen": "12900", "promised_fen": "0", "exposure_fen": "12900"}},
		{"u5", map[string]string{"open_requests": `[]`, "exposure_fen": "0", "trust": `{"marks":0,"flagged":false}`}},
		{"u6", map[string]string{"open_requests": `[]`, "exposure_fen": "0", "trust": `{"marks":1,"flagged":true}`}},
	} {
		got := get(t, srv, "/v1/users/"+c.user)
		for field, want := range c.want {
			check(t, c.user+" "+field, got, field, want)
		}
	}
}

// check compares got[field] with want, a JSON value ("" for absent).
func check(t *testing.T, what string, got map[string]any, field, want string) {
	t.Helper()
	v, present := got[field]
	if want == "" {
		if present {
			t.Errorf("%s: present (%v), want absent", what, v)
		}
		return
	}
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad want %s: %v", what, want, err)
	}
	if !present || !reflect.DeepEqual(v, w) {
		b, _ := json.Marshal(v)
		t.Errorf("%s = %s (present %t), want %s", what, b, present, want)
	}
}
