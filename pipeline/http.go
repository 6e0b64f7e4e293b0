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

// userView is the answer of GET /v1/users/<user_id>.
type userView struct {
	UserID         string      `json:"user_id"`
	Partition      int         `json:"partition"`
	Stars          int         `json:"stars"`
	Orders         []orderView `json:"orders"`
	OpenRequests   []string    `json:"open_requests"`
	OutstandingFen int64       `json:"outstanding_fen"`
	Trust          trustView   `json:"trust"`
	RecentRequests int         `json:"recent_requests"`
	LastEventAt    string      `json:"last_event_at,omitempty"`
}

type orderView struct {
	OrderID     string `json:"order_id"`
	MerchantID  string `json:"merchant_id"`
	Category    string `json:"category"`
	PaidFen     int64  `json:"paid_fen"`
	Shipped     bool   `json:"shipped"`
	Delivered   bool   `json:"delivered"`
	DeliveredAt string `json:"delivered_at,omitempty"`
}

type trustView struct {
	BadInspections int  `json:"bad_inspections"`
	Flagged        bool `json:"flagged"`
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
	Effects   []effectView `json:"effects"`
	Trace     []traceCheck `json:"trace"`
	Record    *traceRecord `json:"decision_record,omitempty"`
	Pickup    *pickupView  `json:"pickup,omitempty"`
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
	v := userView{UserID: u.ID, Partition: p, Stars: u.Stars, OutstandingFen: u.OutstandingFen,
		Orders: []orderView{}, OpenRequests: []string{}, RecentRequests: len(u.RecentRequests)}
	for _, o := range u.Orders {
		ov := orderView{OrderID: o.ID, MerchantID: o.MerchantID, Category: o.Category, PaidFen: o.PaidFen,
			Shipped: o.ShippedAt != 0, Delivered: o.DeliveredAt != 0}
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
	for _, t := range u.BadInspections {
		if t > cutoff {
			v.Trust.BadInspections++
		}
	}
	v.Trust.Flagged = v.Trust.BadInspections > 0
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
	reqID := r.PathValue("request")
	var rq *core.Request
	for i := range u.Requests {
		if u.Requests[i].ID == reqID {
			rq = &u.Requests[i]
		}
	}
	if rq == nil {
		http.Error(w, "unknown request", http.StatusNotFound)
		return
	}
	v := requestView{RequestID: rq.ID, UserID: u.ID, OrderID: rq.OrderID, Kind: rq.Kind.String(), Reason: rq.Reason.String(),
		Stage: stage(rq), Decision: rq.Verdict.String(), Reasons: rq.Reasons.AppendStrings([]string{}),
		AmountFen: rq.AmountFen, Effects: requestEffects(u.ID, rq), Trace: []traceCheck{}}
	if rec, found, err := d.store.ReadTrace(p, u.ID, rq.ID); err == nil && found {
		var tr traceRecord
		if sonic.Unmarshal(rec, &tr) == nil {
			v.Policy = &tr.Policy
			v.Trace = tr.Trace
			tr.Trace = nil
			v.Record = &tr
		}
	}
	if rq.WindowEnd != 0 {
		v.Pickup = &pickupView{WindowStart: d.fmtTime(rq.WindowStart), WindowEnd: d.fmtTime(rq.WindowEnd), Done: rq.PickupDone, Compensated: rq.CompensationSent}
	}
	writeJSON(w, &v)
}

// stage maps a request to the contract's four after-sales stages.
func stage(rq *core.Request) string {
	switch {
	case rq.Verdict == core.VerdictNone:
		return "application"
	case rq.Status != core.StatusOpen:
		return "feedback"
	case rq.Verdict == core.VerdictReview:
		return "review"
	default:
		return "processing"
	}
}

// requestEffects lists the effects a request has produced, with their IDs.
func requestEffects(user string, rq *core.Request) []effectView {
	e := core.Effect{UserID: user, RequestID: rq.ID}
	out := []effectView{}
	add := func(k core.EffectKind, id string) {
		e.Kind = k
		if id == "" {
			id = e.MsgID()
		}
		out = append(out, effectView{Kind: k.String(), ID: id})
	}
	if rq.Verdict != core.VerdictNone {
		add(core.EffectDecision, "")
	}
	if rq.RefundSent {
		add(core.EffectRefund, e.RefundID())
	}
	if rq.WindowEnd != 0 {
		add(core.EffectPickup, e.PickupID())
	}
	if rq.CompensationSent {
		add(core.EffectCompensation, "")
	}
	if rq.Inspection != core.OutcomeNone {
		if rq.Inspection.Bad() && rq.RefundSent && rq.RefundAdvance {
			add(core.EffectClawback, "")
		}
		add(core.EffectTrust, "")
	}
	return out
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
