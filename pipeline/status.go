package pipeline

import (
	"embed"
	"io/fs"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashreturn/flashreturn/internal/core"
)

// staticFiles is the status page: plain HTML, one script and one style
// sheet, no build step.
//
//go:embed static
var staticFiles embed.FS

// statusWindow is the window over which the status page's rates and
// latency percentiles are computed.
const statusWindow = 15 * time.Second

// statusSamplesMax bounds the samples kept for the rate window.
const statusSamplesMax = 64

// statusPage serves the embedded status page: "/" is static/index.html,
// "/static/..." the assets.
func statusPage() (index, assets http.Handler) {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic("pipeline: embedded status page: " + err.Error()) // a build bug
	}
	files := http.FileServerFS(sub)
	index = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(sub, "index.html")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	})
	return index, http.StripPrefix("/static/", files)
}

// Status is the answer of GET /api/status: what the status page shows,
// computed from the daemon's own counters. Rates and percentiles cover
// the last WindowSeconds (up to 15 s; since start on the first call or
// after a long idle spell); totals count since this process started.
type Status struct {
	Now             string            `json:"now"`
	UptimeSeconds   float64           `json:"uptime_seconds"`
	Ready           bool              `json:"ready"`
	Partitions      int               `json:"partitions"`
	PartitionsReady int               `json:"partitions_ready"`
	Policy          policyRef         `json:"policy"`
	Shadow          *ShadowSummary    `json:"shadow,omitempty"`
	WindowSeconds   float64           `json:"window_seconds"`
	Rates           StatusRates       `json:"rates"`
	Latency         StatusLatency     `json:"latency"`
	LatencyAll      StatusLatency     `json:"latency_since_start"`
	Totals          StatusTotals      `json:"totals"`
	Decisions       map[string]uint64 `json:"decisions"`
	// Resolutions counts the ends of reviews and closes since start, by
	// "<outcome>/<by>": approved/merchant, approved/platform,
	// approved/timeout, rejected/merchant, rejected/platform,
	// closed/timeout.
	Resolutions map[string]uint64 `json:"resolutions"`
	Reasons         []StatusCount     `json:"reasons"`
	DeadByReason    map[string]uint64 `json:"dead_letters_by_reason"`
	Backlog         []PartitionStatus `json:"backlog"`
	DeadLetters     []DeadLetterInfo  `json:"recent_dead_letters"`
}

// StatusRates are per-second rates over the status window.
type StatusRates struct {
	EventsPerSecond      float64 `json:"events_per_second"`
	DecisionsPerSecond   float64 `json:"decisions_per_second"`
	DeadLettersPerSecond float64 `json:"dead_letters_per_second"`
	// ApprovalRate is approved/decided over the window (0..1); -1 when
	// nothing was decided in the window.
	ApprovalRate float64 `json:"approval_rate"`
}

// StatusLatency is request-to-decision latency (ingest to publish ack) in
// seconds, over the status window or since start; -1 when nothing was
// decided in it.
type StatusLatency struct {
	Decisions  uint64  `json:"decisions"`
	P50Seconds float64 `json:"p50_seconds"`
	P99Seconds float64 `json:"p99_seconds"`
}

// StatusTotals are counts and money (fen) since this process started.
type StatusTotals struct {
	EventsIn               uint64 `json:"events_in"`
	Decisions              uint64 `json:"decisions"`
	DeadLetters            uint64 `json:"dead_letters"`
	RefundsFen             uint64 `json:"refunds_fen"`
	AdvancedFen            uint64 `json:"advanced_fen"`
	ClawbacksFen           uint64 `json:"clawbacks_fen"`
	CompensationFen        uint64 `json:"compensation_fen"`
	AdvancedOutstandingFen int64  `json:"advanced_outstanding_fen"`
	PromisedOutstandingFen int64  `json:"promised_outstanding_fen"`
	Pending                int64  `json:"pending"`
}

// StatusCount is one labelled count.
type StatusCount struct {
	Name  string `json:"name"`
	Count uint64 `json:"count"`
}

// PartitionStatus is one partition's backlog.
type PartitionStatus struct {
	Partition int    `json:"partition"`
	Ready     bool   `json:"ready"`
	Pending   int64  `json:"pending"`
	Events    uint64 `json:"events"`
}

// statusSample is a point of the daemon's counters for rate windows.
type statusSample struct {
	at                                 time.Time
	events, decisions, approved, deadN uint64
	lat                                latencySnapshot
}

// window records cur and returns the sample to compute rates from: the
// oldest one at most statusWindow old, or the start of the process.
func (o *opsMetrics) window(cur statusSample) statusSample {
	o.sampleMu.Lock()
	defer o.sampleMu.Unlock()
	base := statusSample{at: o.start}
	keep := o.samples[:0]
	for _, s := range o.samples {
		if cur.at.Sub(s.at) <= statusWindow {
			keep = append(keep, s)
		}
	}
	o.samples = keep
	if len(keep) > 0 && cur.at.Sub(keep[0].at) >= 500*time.Millisecond {
		base = keep[0]
	}
	if n := len(o.samples); (n == 0 || cur.at.Sub(o.samples[n-1].at) >= time.Second) && n < statusSamplesMax {
		o.samples = append(o.samples, cur)
	}
	return base
}

// observePolicies registers flashreturn_policy_info for the live and
// shadow policies (called at scrape time).
func (d *Daemon) observePolicies() {
	d.m.ops.observePolicy("live", d.policy.Load(), d.policy.Load)
	if d.shadow != nil {
		sp := d.shadow.policy
		d.m.ops.observePolicy("shadow", sp, func() *core.Policy { return sp })
	}
}

// Status computes the status page's numbers from the daemon's counters.
// Safe to call concurrently with Run.
func (d *Daemon) Status() Status {
	now := time.Now()
	m := d.m
	pol := d.policy.Load()
	st := Status{
		Now: now.In(d.cfg.Loc).Format(time.RFC3339), UptimeSeconds: now.Sub(m.ops.start).Seconds(),
		Ready: d.Ready(), Partitions: d.cfg.Partitions,
		Policy:       policyRef{Name: pol.Name, Version: pol.Version},
		Decisions:    map[string]uint64{"approved": 0, "review": 0, "rejected": 0},
		DeadByReason: map[string]uint64{}, Reasons: []StatusCount{}, Backlog: []PartitionStatus{},
		Resolutions: map[string]uint64{},
	}
	for o, byActor := range m.resolutions {
		for a, c := range byActor {
			if c != nil {
				st.Resolutions[core.Resolution(o).String()+"/"+core.Actor(a).String()] = c.Get()
			}
		}
	}
	if d.shadow != nil {
		s := d.shadow.Summary()
		if n := len(s.RecentDisagreements); n > 10 {
			s.RecentDisagreements = s.RecentDisagreements[n-10:]
		}
		st.Shadow = &s
	}
	cur := statusSample{at: now, lat: m.ops.latencySnapshot()}
	for t := core.EventOrderPaid; t < core.EventClock; t++ {
		cur.events += m.eventsIn[t].Get()
	}
	m.decisions.Range(func(_, v any) bool {
		for verdict, c := range v.(*[core.VerdictRejected + 1]*metrics.Counter) {
			if c == nil {
				continue
			}
			n := c.Get()
			st.Decisions[core.Verdict(verdict).String()] += n
			cur.decisions += n
			if core.Verdict(verdict) == core.VerdictApproved {
				cur.approved += n
			}
		}
		return true
	})
	for r, c := range m.dlq {
		n := c.Get()
		st.DeadByReason[r] = n
		cur.deadN += n
	}
	for c := core.Code(0); c < core.NumCodes; c++ {
		if n := m.reasons[c].Get(); n > 0 {
			st.Reasons = append(st.Reasons, StatusCount{Name: c.String(), Count: n})
		}
	}
	sort.SliceStable(st.Reasons, func(i, j int) bool { return st.Reasons[i].Count > st.Reasons[j].Count })

	base := m.ops.window(cur)
	dt := now.Sub(base.at).Seconds()
	st.WindowSeconds = math.Round(dt*10) / 10
	if dt > 0 {
		st.Rates.EventsPerSecond = float64(cur.events-base.events) / dt
		st.Rates.DecisionsPerSecond = float64(cur.decisions-base.decisions) / dt
		st.Rates.DeadLettersPerSecond = float64(cur.deadN-base.deadN) / dt
	}
	st.Rates.ApprovalRate = -1
	if n := cur.decisions - base.decisions; n > 0 {
		st.Rates.ApprovalRate = float64(cur.approved-base.approved) / float64(n)
	}
	st.Latency = latencyBetween(base.lat, cur.lat)
	st.LatencyAll = latencyBetween(latencySnapshot{}, cur.lat)

	st.Totals = StatusTotals{
		EventsIn: cur.events, Decisions: cur.decisions, DeadLetters: cur.deadN,
		RefundsFen: m.refundFen.Get(), AdvancedFen: m.advanceFen.Get(), ClawbacksFen: m.clawbackFen.Get(),
		CompensationFen: m.compensFen.Get(), AdvancedOutstandingFen: m.ops.outstandingFen.Load(),
		PromisedOutstandingFen: m.ops.promisedFen.Load(),
	}
	select {
	case <-d.started: // d.workers is set before started is closed
		for _, w := range d.workers {
			ps := PartitionStatus{Partition: w.p, Ready: w.ready.Load(), Pending: w.pending.Load(), Events: w.ops.events.Get()}
			if ps.Ready {
				st.PartitionsReady++
			}
			st.Totals.Pending += ps.Pending
			st.Backlog = append(st.Backlog, ps)
		}
	default:
	}
	st.DeadLetters = m.ops.recentDeadLetters()
	return st
}

// latencyBetween summarises the decisions between two snapshots.
func latencyBetween(from, to latencySnapshot) StatusLatency {
	p50, n := quantile(0.5, from, to)
	if n == 0 {
		return StatusLatency{P50Seconds: -1, P99Seconds: -1}
	}
	p99, _ := quantile(0.99, from, to)
	return StatusLatency{Decisions: n, P50Seconds: p50, P99Seconds: p99}
}

func (d *Daemon) serveStatus(w http.ResponseWriter, _ *http.Request) {
	st := d.Status()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, &st)
}
