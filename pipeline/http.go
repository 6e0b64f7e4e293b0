package pipeline

import (
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/bytedance/sonic"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
)

// Handler serves the daemon's HTTP endpoint: /metrics, /healthz, /readyz,
// the read-only query API (/v1/users/<user_id>[/requests/<request_id>]),
// the cluster view (/v1/cluster) and the operator's status page (/ and its
// JSON, /api/status).
// The query API reads committed state, so it may lag the stream by one
// batch. In cluster mode it answers from the partition owner's state only:
// a query for a partition owned elsewhere is forwarded to its owner, or
// answered 503 (cluster_http.go).
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		d.observePolicies()
		d.cfg.Metrics.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /v1/shadow", func(w http.ResponseWriter, _ *http.Request) {
		if d.shadow == nil {
			http.Error(w, "no shadow policy (start flashreturnd with --shadow)", http.StatusNotFound)
			return
		}
		s := d.shadow.Summary()
		writeJSON(w, &s)
	})
	mux.HandleFunc("GET /v1/policy", func(w http.ResponseWriter, _ *http.Request) {
		p := d.policy.Load()
		writeJSON(w, &policyRef{Name: p.Name, Version: p.Version})
	})
	index, assets := statusPage() // status.go: the operator's page and its JSON
	mux.Handle("GET /{$}", index)
	mux.Handle("GET /static/", assets)
	mux.HandleFunc("GET /api/status", d.serveStatus)
	mux.HandleFunc("GET /v1/cluster", d.serveCluster)
	mux.HandleFunc("GET /v1/users/{user}", d.routeQuery(d.serveUser))
	mux.HandleFunc("GET /v1/users/{user}/requests/{request}", d.routeQuery(d.serveRequest))
	return mux
}

// userView is the answer of GET /v1/users/<user_id>: the state that
// decisions read. outstanding_fen is what was advanced and not got back
// (advance refunds, replace exchanges' goods), promised_fen the advances
// promised at approval and not yet paid; their sum is what the exposure
// cap compares.
type userView struct {
	UserID         string      `json:"user_id"`
	Partition      int         `json:"partition"`
	Stars          int         `json:"stars"`
	Orders         []orderView `json:"orders"`
	OpenRequests   []string    `json:"open_requests"`
	OutstandingFen int64       `json:"outstanding_fen"`
	PromisedFen    int64       `json:"promised_fen"`
	ExposureFen    int64       `json:"exposure_fen"`
	Trust          trustView   `json:"trust"`
	RecentRequests int         `json:"recent_requests"`
	LastEventAt    string      `json:"last_event_at,omitempty"`
}

// orderView is one order with its money under the per-order ceiling:
// reserved (approved, refund promised) plus refunded (net of clawbacks)
// never passes paid.
type orderView struct {
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

// trustView: marks are what flags a shopper for the trust rule (bad
// inspections after an advance, returns closed as not_returned) within
// the trust window of the policy in force.
type trustView struct {
	Marks   int  `json:"marks"`
	Flagged bool `json:"flagged"`
}

// requestView is the answer of GET /v1/users/<u>/requests/<r>.
type requestView struct {
	RequestID string       `json:"request_id"`
	UserID    string       `json:"user_id"`
	OrderID   string       `json:"order_id"`
	Kind      string       `json:"kind"`
	Reason    string       `json:"reason"`
	Stage     string       `json:"stage"`
	Decision  string       `json:"decision"`
	Reasons   []string     `json:"reasons"`
	Policy    *policyRef   `json:"policy,omitempty"`
	AmountFen int64        `json:"amount_fen"`
	// Status is where the request stands in the engine (open, rejected,
	// cancelled, finished, closed); Stage is the contract's view of it.
	Status     string          `json:"status"`
	Resolution *resolutionView `json:"resolution,omitempty"`
	Closed     *closeView      `json:"closed,omitempty"`
	Refund     *refundView     `json:"refund,omitempty"`
	Deadline   *deadlineView   `json:"next_deadline,omitempty"`
	Effects    []effectView    `json:"effects"`
	Trace      []traceCheck    `json:"trace"`
	Record     *traceRecord    `json:"decision_record,omitempty"`
	Pickup     *pickupView     `json:"pickup,omitempty"`
}

// resolutionView is how a request in review was resolved: by whom, when,
// the answer's note, and the reasons when the engine turned an approval
// down (amount_exceeds_paid).
type resolutionView struct {
	Outcome string   `json:"outcome"`
	By      string   `json:"by"`
	At      string   `json:"at"`
	Note    string   `json:"note,omitempty"`
	Reasons []string `json:"reasons"`
}

// closeView is the close of an approved request by its return deadline.
type closeView struct {
	Outcome string `json:"outcome"` // "closed"
	By      string `json:"by"`      // "timeout"
	At      string `json:"at"`
}

// refundView is the request's money: what its approval promised (trigger,
// advance) and what was paid.
type refundView struct {
	Trigger  string `json:"trigger"`
	Advance  bool   `json:"advance"`
	Reserved bool   `json:"reserved"`
	Sent     bool   `json:"sent"`
	SentAt   string `json:"sent_at,omitempty"`
}

// deadlineView is the request's next timer.
type deadlineView struct {
	Timer string `json:"timer"` // pickup, review, return
	At    string `json:"at"`
}

type effectView struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

type pickupView struct {
	WindowStart string `json:"window_start"`
	WindowEnd   string `json:"window_end"`
	Done        bool   `json:"done"`
	Compensated bool   `json:"compensated"`
}

func (d *Daemon) lookupUser(w http.ResponseWriter, id string) (*core.User, int, bool) {
	p := wire.Partition(id, d.cfg.Partitions)
	u, ok, err := d.store.ReadUser(p, id)
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

func (d *Daemon) serveUser(w http.ResponseWriter, r *http.Request) {
	u, p, ok := d.lookupUser(w, r.PathValue("user"))
	if !ok {
		return
	}
	pol := d.policy.Load()
	v := userView{UserID: u.ID, Partition: p, Stars: u.Stars, OutstandingFen: u.OutstandingFen, PromisedFen: u.PromisedFen,
		ExposureFen: u.OutstandingFen + u.PromisedFen, Orders: []orderView{}, OpenRequests: []string{}, RecentRequests: len(u.RecentRequests)}
	for _, o := range u.Orders {
		ov := orderView{OrderID: o.ID, MerchantID: o.MerchantID, Category: o.Category, PaidFen: o.PaidFen,
			ReservedFen: o.ReservedFen, RefundedFen: o.RefundedFen, Shipped: o.ShippedAt != 0, Delivered: o.DeliveredAt != 0}
		if o.DeliveredAt != 0 {
			ov.DeliveredAt = d.fmtTime(o.DeliveredAt)
		}
		v.Orders = append(v.Orders, ov)
	}
	for _, rq := range u.Requests {
		if rq.Status == core.StatusOpen {
			v.OpenRequests = append(v.OpenRequests, rq.ID)
		}
	}
	cutoff := u.MaxAt - int64(pol.TrustWindow)
	for _, t := range u.TrustMarks {
		if t > cutoff {
			v.Trust.Marks++
		}
	}
	v.Trust.Flagged = u.TrustFlagged(u.MaxAt, pol)
	if u.MaxAt != 0 {
		v.LastEventAt = d.fmtTime(u.MaxAt)
	}
	writeJSON(w, &v)
}

func (d *Daemon) serveRequest(w http.ResponseWriter, r *http.Request) {
	u, p, ok := d.lookupUser(w, r.PathValue("user"))
	if !ok {
		return
	}
	rq := u.Request(r.PathValue("request"))
	if rq == nil {
		http.Error(w, "unknown request", http.StatusNotFound)
		return
	}
	v := requestView{RequestID: rq.ID, UserID: u.ID, OrderID: rq.OrderID, Kind: rq.Kind.String(), Reason: rq.Reason.String(),
		Stage: rq.Stage().String(), Status: rq.Status.String(), Decision: rq.Verdict.String(), Reasons: rq.Reasons.AppendStrings([]string{}),
		AmountFen: rq.AmountFen, Effects: []effectView{}, Trace: []traceCheck{}}
	for _, e := range rq.Effects(u.ID) {
		v.Effects = append(v.Effects, effectView{Kind: e.Kind.String(), ID: e.ID})
	}
	if rq.Policy != nil {
		v.Policy = &policyRef{Name: rq.Policy.Name, Version: rq.Policy.Version}
	}
	if rq.Resolution != core.ResolutionNone {
		v.Resolution = &resolutionView{Outcome: rq.Resolution.String(), By: rq.ResolvedBy.String(), At: d.fmtTime(rq.ResolvedAt),
			Note: rq.Note, Reasons: rq.ResolveCodes.AppendStrings([]string{})}
	}
	if rq.Status == core.StatusClosed {
		v.Closed = &closeView{Outcome: core.ResolutionClosed.String(), By: core.ActorTimeout.String(), At: d.fmtTime(rq.ClosedAt)}
	}
	if rq.Approved() && (rq.PayTrigger != core.TriggerNone || rq.RefundSent) {
		rv := &refundView{Trigger: rq.PayTrigger.String(), Advance: rq.PayAdvance, Reserved: rq.Reserved, Sent: rq.RefundSent}
		if rq.RefundSent {
			rv.Trigger, rv.Advance, rv.SentAt = rq.RefundTrigger.String(), rq.RefundAdvance, d.fmtTime(rq.RefundAt)
		}
		v.Refund = rv
	}
	if k, at := rq.Timer(); k != core.TimerNone {
		v.Deadline = &deadlineView{Timer: k.String(), At: d.fmtTime(at)}
	}
	if rec, found, err := d.store.ReadTrace(p, u.ID, rq.ID); err == nil && found {
		var tr traceRecord
		if sonic.Unmarshal(rec, &tr) == nil {
			v.Trace = tr.Trace
			tr.Trace = nil
			v.Record = &tr
		}
	}
	if rq.WindowEnd != 0 {
		v.Pickup = &pickupView{WindowStart: d.fmtTime(rq.WindowStart), WindowEnd: d.fmtTime(rq.WindowEnd), Done: rq.PickupDone || rq.CourierOnTime, Compensated: rq.CompensationSent}
	}
	writeJSON(w, &v)
}

func (d *Daemon) fmtTime(ns int64) string {
	return time.Unix(0, ns).In(d.cfg.Loc).Format(time.RFC3339Nano)
}

func writeJSON(w http.ResponseWriter, v any) {
	writeJSONStatus(w, http.StatusOK, v)
}

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	b, err := sonic.Marshal(v)
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
