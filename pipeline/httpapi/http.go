package httpapi

import (
	"io"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/bytedance/sonic"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/apply"
	"github.com/flashreturn/flashreturn/pipeline/cluster"
	"github.com/flashreturn/flashreturn/pipeline/streams"
	"github.com/flashreturn/flashreturn/state"
)

// Backend is what the HTTP API reads of a daemon (*pipeline.Daemon
// implements it). Every method is safe for concurrent use and may be
// called before the daemon has started its workers.
type Backend interface {
	// WriteMetrics writes the daemon's metrics in Prometheus' text format
	// (the process metrics are added by the handler).
	WriteMetrics(w io.Writer)
	// Ready reports the daemon's readiness (/readyz).
	Ready() bool
	// Policy is the live policy in force.
	Policy() *core.Policy
	// Shadow is the shadow policy's comparison, nil when none runs.
	Shadow() *apply.Shadow
	// Status computes the status page's numbers (/api/status).
	Status() Status
	// Partitions is P; Location the shoppers' zone, in which times are
	// shown.
	Partitions() int
	Location() *time.Location
	// State is the daemon's store of committed state (the query API reads
	// it; nil before the daemon has opened it).
	State() *state.Store
	// Cluster is the daemon's cluster machinery, nil outside cluster mode.
	Cluster() *cluster.Cluster
	// PartitionReady reports a partition's readiness; nil before the
	// workers exist.
	PartitionReady() func(p int) bool
	// AdvertisedHTTP is the base URL the daemon advertises to the other
	// members ("" none).
	AdvertisedHTTP() string
	// Durability is what FR_IN and FR_OUT survive (nil before the
	// streams are set up).
	Durability() *streams.Durability
}

// New returns the daemon's HTTP endpoint: /metrics, /healthz, /readyz,
// the read-only query API (/v1/users/<user_id>[/requests/<request_id>]),
// the cluster view (/v1/cluster) and the operator's status page (/ and its
// JSON, /api/status).
// The query API reads committed state, so it may lag the stream by one
// batch. In cluster mode it answers from the partition owner's state only:
// a query for a partition owned elsewhere is forwarded to its owner, or
// answered 503 (pipeline/cluster's query routing).
func New(b Backend) http.Handler {
	a := &api{b: b}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		b.WriteMetrics(w)
		metrics.WriteProcessMetrics(w)
	})
	// pprof on the same listener: the HTTP address is loopback unless an
	// operator exposes it, and a profile taken on the night (with the
	// workers' partition labels) is worth more than a separate port to
	// firewall. Goroutine profiles show each worker's partition label.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	// healthz says the process serves HTTP (a liveness probe: restart
	// when it fails); readyz says it decides (a readiness probe: stop
	// routing to it), which is false while it starts, catches up with the
	// merchant view, retries a failing commit, or holds no valid lease.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !b.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /v1/shadow", func(w http.ResponseWriter, _ *http.Request) {
		sh := b.Shadow()
		if sh == nil {
			http.Error(w, "no shadow policy (start flashreturnd with --shadow)", http.StatusNotFound)
			return
		}
		s := sh.Summary()
		writeJSON(w, &s)
	})
	mux.HandleFunc("GET /v1/policy", func(w http.ResponseWriter, _ *http.Request) {
		p := b.Policy()
		writeJSON(w, &apply.PolicyRef{Name: p.Name, Version: p.Version})
	})
	index, assets := statusPage() // status.go: the operator's page and its JSON
	mux.Handle("GET /{$}", index)
	mux.Handle("GET /static/", assets)
	// The query routes go through the cluster's routing in cluster mode:
	// only the owner's state answers (see routeQuery).
	mux.HandleFunc("GET /api/status", a.serveStatus)
	mux.HandleFunc("GET /v1/cluster", a.serveCluster)
	mux.HandleFunc("GET /v1/users/{user}", a.routeQuery(a.serveUser))
	mux.HandleFunc("GET /v1/users/{user}/requests/{request}", a.routeQuery(a.serveRequest))
	return mux
}

// api is the handlers' shared state: the backend, nothing else (the
// handlers keep no state of their own between requests).
type api struct{ b Backend }

// routeQuery wraps a query handler that answers from local state: outside
// cluster mode it runs as is; in cluster mode the cluster routes it (local
// when the partition is owned here, else forwarded or 503).
func (a *api) routeQuery(local http.HandlerFunc) http.HandlerFunc {
	if c := a.b.Cluster(); c != nil {
		return c.RouteQuery(local)
	}
	return local
}

// serveCluster answers GET /v1/cluster: the cluster's view in cluster
// mode; outside it, a single daemon's view (mode "single", no member,
// every partition owned locally), so that tools need not special-case it.
func (a *api) serveCluster(w http.ResponseWriter, _ *http.Request) {
	var st cluster.Status
	if c := a.b.Cluster(); c != nil {
		st = c.Status()
	} else {
		st = cluster.SingleStatus(a.b.Partitions(), a.b.AdvertisedHTTP(), a.b.PartitionReady())
	}
	st.Durability = a.b.Durability()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, &st)
}

// serveStatus answers GET /api/status (the status page's JSON).
func (a *api) serveStatus(w http.ResponseWriter, _ *http.Request) {
	st := a.b.Status()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, &st)
}

// UserView is the answer of GET /v1/users/<user_id>: the state that
// decisions read. outstanding_fen is what was advanced and not got back
// (advance refunds, replace exchanges' goods), promised_fen the advances
// promised at approval and not yet paid; their sum is what the exposure
// cap compares.
type UserView struct {
	UserID         string      `json:"user_id"`
	Partition      int         `json:"partition"`
	Stars          int         `json:"stars"`
	Orders         []OrderView `json:"orders"`
	OpenRequests   []string    `json:"open_requests"`
	OutstandingFen int64       `json:"outstanding_fen"`
	PromisedFen    int64       `json:"promised_fen"`
	ExposureFen    int64       `json:"exposure_fen"`
	Trust          TrustView   `json:"trust"`
	// RecentRequests is what the velocity rule of the policy in force
	// counts as of the shopper's last event.
	RecentRequests int    `json:"recent_requests"`
	LastEventAt    string `json:"last_event_at,omitempty"`
}

// OrderView is one order with its money under the per-order ceiling:
// reserved (approved, refund promised) plus refunded (net of clawbacks)
// never passes paid.
type OrderView struct {
	OrderID     string `json:"order_id"`
	MerchantID  string `json:"merchant_id"`
	Category    string `json:"category"`
	PaidFen     int64  `json:"paid_fen"`
	ReservedFen int64  `json:"reserved_fen"`
	RefundedFen int64  `json:"refunded_fen"`
	Shipped     bool   `json:"shipped"`
	Delivered   bool   `json:"delivered"`
	DeliveredAt string `json:"delivered_at,omitempty"`
}

// TrustView is the shopper's trust standing: marks are what flags a shopper for the trust rule (bad
// inspections after an advance, returns closed as not_returned) within
// the trust window of the policy in force.
type TrustView struct {
	Marks   int  `json:"marks"`
	Flagged bool `json:"flagged"`
}

// RequestView is the answer of GET /v1/users/<u>/requests/<r>.
type RequestView struct {
	RequestID string           `json:"request_id"`
	UserID    string           `json:"user_id"`
	OrderID   string           `json:"order_id"`
	Kind      string           `json:"kind"`
	Reason    string           `json:"reason"`
	Stage     string           `json:"stage"`
	Decision  string           `json:"decision"`
	Reasons   []string         `json:"reasons"`
	Policy    *apply.PolicyRef `json:"policy,omitempty"`
	AmountFen int64            `json:"amount_fen"`
	// Status is where the request stands in the engine (open, rejected,
	// cancelled, finished, closed); Stage is the contract's view of it.
	Status     string             `json:"status"`
	Resolution *ResolutionView    `json:"resolution,omitempty"`
	Closed     *CloseView         `json:"closed,omitempty"`
	Refund     *RefundView        `json:"refund,omitempty"`
	Deadline   *DeadlineView      `json:"next_deadline,omitempty"`
	Effects    []EffectView       `json:"effects"`
	Trace      []apply.TraceCheck `json:"trace"`
	Record     *apply.TraceRecord `json:"decision_record,omitempty"`
	Pickup     *PickupView        `json:"pickup,omitempty"`
}

// ResolutionView is how a request in review was resolved: by whom, when,
// the answer's note, and the reasons when the engine turned an approval
// down (amount_exceeds_paid).
type ResolutionView struct {
	Outcome string   `json:"outcome"`
	By      string   `json:"by"`
	At      string   `json:"at"`
	Note    string   `json:"note,omitempty"`
	Reasons []string `json:"reasons"`
}

// CloseView is the close of an approved request by its return deadline.
type CloseView struct {
	Outcome string `json:"outcome"` // "closed"
	By      string `json:"by"`      // "timeout"
	At      string `json:"at"`
}

// RefundView is the request's money: what its approval promised (trigger,
// advance) and what was paid.
type RefundView struct {
	Trigger  string `json:"trigger"`
	Advance  bool   `json:"advance"`
	Reserved bool   `json:"reserved"`
	Sent     bool   `json:"sent"`
	SentAt   string `json:"sent_at,omitempty"`
}

// DeadlineView is the request's next timer.
type DeadlineView struct {
	Timer string `json:"timer"` // pickup, review, return
	At    string `json:"at"`
}

// EffectView is one output a request produced: its kind and the ID a
// consumer keys on (request_id, refund_id...).
type EffectView struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// PickupView is the request's pickup window and whether the courier
// came (or the shopper was compensated for a missed window).
type PickupView struct {
	WindowStart string `json:"window_start"`
	WindowEnd   string `json:"window_end"`
	Done        bool   `json:"done"`
	Compensated bool   `json:"compensated"`
}

// lookupUser reads user id's committed state, answering 404 or 500
// itself when there is none to show.
func (a *api) lookupUser(w http.ResponseWriter, id string) (*core.User, int, bool) {
	p := wire.Partition(id, a.b.Partitions())
	st := a.b.State()
	if st == nil {
		http.Error(w, "state: not open yet", http.StatusServiceUnavailable)
		return nil, p, false
	}
	u, ok, err := st.ReadUser(p, id)
	if err != nil {
		http.Error(w, "state: "+err.Error(), http.StatusInternalServerError)
		return nil, p, false
	}
	if !ok {
		http.Error(w, "unknown user", http.StatusNotFound)
		return nil, p, false
	}
	return u, p, true
}

// serveUser answers GET /v1/users/<user_id>.
func (a *api) serveUser(w http.ResponseWriter, r *http.Request) {
	u, p, ok := a.lookupUser(w, r.PathValue("user"))
	if !ok {
		return
	}
	v := UserView{UserID: u.ID, Partition: p, Stars: u.Stars, OutstandingFen: u.OutstandingFen, PromisedFen: u.PromisedFen,
		ExposureFen: u.Exposure(), Orders: []OrderView{}, OpenRequests: u.OpenRequests([]string{}), RecentRequests: u.Velocity(a.b.Policy())}
	for _, o := range u.Orders {
		ov := OrderView{OrderID: o.ID, MerchantID: o.MerchantID, Category: o.Category, PaidFen: o.PaidFen,
			ReservedFen: o.ReservedFen, RefundedFen: o.RefundedFen, Shipped: o.ShippedAt != 0, Delivered: o.DeliveredAt != 0}
		if o.DeliveredAt != 0 {
			ov.DeliveredAt = a.fmtTime(o.DeliveredAt)
		}
		v.Orders = append(v.Orders, ov)
	}
	v.Trust.Marks, v.Trust.Flagged = u.Trust(a.b.Policy())
	if u.MaxAt != 0 {
		v.LastEventAt = a.fmtTime(u.MaxAt)
	}
	writeJSON(w, &v)
}

// serveRequest answers GET /v1/users/<user_id>/requests/<request_id>.
func (a *api) serveRequest(w http.ResponseWriter, r *http.Request) {
	u, p, ok := a.lookupUser(w, r.PathValue("user"))
	if !ok {
		return
	}
	rq := u.Request(r.PathValue("request"))
	if rq == nil {
		http.Error(w, "unknown request", http.StatusNotFound)
		return
	}
	v := RequestView{RequestID: rq.ID, UserID: u.ID, OrderID: rq.OrderID, Kind: rq.Kind.String(), Reason: rq.Reason.String(),
		Stage: rq.Stage().String(), Status: rq.Status.String(), Decision: rq.Verdict.String(), Reasons: rq.Reasons.AppendStrings([]string{}),
		AmountFen: rq.AmountFen, Effects: []EffectView{}, Trace: []apply.TraceCheck{}}
	for _, e := range rq.Effects(u.ID) {
		v.Effects = append(v.Effects, EffectView{Kind: e.Kind.String(), ID: e.ID})
	}
	if rq.Policy != nil {
		v.Policy = &apply.PolicyRef{Name: rq.Policy.Name, Version: rq.Policy.Version}
	}
	if rq.Resolution != core.ResolutionNone {
		v.Resolution = &ResolutionView{Outcome: rq.Resolution.String(), By: rq.ResolvedBy.String(), At: a.fmtTime(rq.ResolvedAt),
			Note: rq.Note, Reasons: rq.ResolveCodes.AppendStrings([]string{})}
	}
	if at, ok := rq.Closed(); ok {
		v.Closed = &CloseView{Outcome: core.ResolutionClosed.String(), By: core.ActorTimeout.String(), At: a.fmtTime(at)}
	}
	if rs, ok := rq.RefundState(); ok {
		v.Refund = &RefundView{Trigger: rs.Trigger.String(), Advance: rs.Advance, Reserved: rs.Reserved, Sent: rs.Sent}
		if rs.Sent {
			v.Refund.SentAt = a.fmtTime(rs.SentAt)
		}
	}
	if k, at := rq.Timer(); k != core.TimerNone {
		v.Deadline = &DeadlineView{Timer: k.String(), At: a.fmtTime(at)}
	}
	if rec, found, err := a.b.State().ReadTrace(p, u.ID, rq.ID); err == nil && found {
		var tr apply.TraceRecord
		if sonic.Unmarshal(rec, &tr) == nil {
			v.Trace = tr.Trace
			tr.Trace = nil
			v.Record = &tr
		}
	}
	if ps, ok := rq.PickupState(); ok {
		v.Pickup = &PickupView{WindowStart: a.fmtTime(ps.WindowStart), WindowEnd: a.fmtTime(ps.WindowEnd), Done: ps.Done, Compensated: ps.Compensated}
	}
	writeJSON(w, &v)
}

// fmtTime shows a Unix ns time in the shoppers' zone, as the outputs do.
func (a *api) fmtTime(ns int64) string {
	return time.Unix(0, ns).In(a.b.Location()).Format(time.RFC3339Nano)
}

// writeJSON answers 200 with v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	cluster.WriteJSON(w, http.StatusOK, v)
}
