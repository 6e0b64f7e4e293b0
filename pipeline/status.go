package pipeline

import (
	"math"
	"sort"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/pipeline/apply"
	"github.com/flashreturn/flashreturn/pipeline/httpapi"
	"github.com/flashreturn/flashreturn/pipeline/stages"
)

// statusWindow is the window over which the status page's rates and
// latency percentiles are computed: long enough that a page refreshed
// every second shows steady numbers, short enough that a spike or a stall
// shows within seconds (Grafana has the long view).
const statusWindow = 15 * time.Second

// statusSamplesMax bounds the samples kept for the rate window. Samples
// are kept at most one a second, so 15 s needs 16; the bound caps memory
// whatever the clock does.
const statusSamplesMax = 64

// statusSample is a point of the daemon's counters for rate windows.
type statusSample struct {
	at                                 time.Time
	events, decisions, approved, deadN uint64
	lat                                latencySnapshot
	stg                                stages.Snapshot // zero at the start
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
	// A base younger than half a second gives rates from a handful of
	// events (two page loads in a row); the start of the process is the
	// better base then.
	if len(keep) > 0 && cur.at.Sub(keep[0].at) >= 500*time.Millisecond {
		base = keep[0]
	}
	// One sample a second at most, whatever the number of viewers: two
	// open pages must not shrink the window each other sees.
	if n := len(o.samples); (n == 0 || cur.at.Sub(o.samples[n-1].at) >= time.Second) && n < statusSamplesMax {
		o.samples = append(o.samples, cur)
	}
	return base
}

// observePolicies registers flashreturn_policy_info for the live and
// shadow policies (called at scrape time). At scrape time rather than at
// each swap, so that the reload path stays free of metrics bookkeeping
// and a scrape always reports the policy in force when it ran.
func (d *Daemon) observePolicies() {
	d.m.ops.observePolicy("live", d.policy.Load(), d.policy.Load)
	if d.shadow != nil {
		sp := d.shadow.Policy()
		d.m.ops.observePolicy("shadow", sp, func() *core.Policy { return sp })
	}
}

// Status computes the status page's numbers from the daemon's counters.
// Safe to call concurrently with Run. It reads the same counters
// /metrics exports, never the state store, so the page costs the workers
// nothing however often it is refreshed; the price is that its numbers
// count since this process started, not since the streams began.
func (d *Daemon) Status() httpapi.Status {
	now := time.Now()
	m := d.m
	pol := d.policy.Load()
	st := httpapi.Status{
		Now: now.In(d.cfg.Loc).Format(time.RFC3339), UptimeSeconds: now.Sub(m.ops.start).Seconds(),
		Ready: d.Ready(), Partitions: d.cfg.Partitions,
		Policy:       apply.PolicyRef{Name: pol.Name, Version: pol.Version},
		Decisions:    map[string]uint64{"approved": 0, "review": 0, "rejected": 0},
		DeadByReason: map[string]uint64{}, Reasons: []httpapi.StatusCount{}, Backlog: []httpapi.PartitionStatus{},
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
		// The page shows the last ten disagreements; /v1/shadow has all
		// that are kept.
		s := d.shadow.Summary()
		if n := len(s.RecentDisagreements); n > 10 {
			s.RecentDisagreements = s.RecentDisagreements[n-10:]
		}
		st.Shadow = &s
	}
	cur := statusSample{at: now, lat: m.ops.latencySnapshot(), stg: m.stages.Snapshot()}
	// Clock ticks are not events anyone sent: they are left out of the
	// rates, as they are of the partition event counters.
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
			st.Reasons = append(st.Reasons, httpapi.StatusCount{Name: c.String(), Count: n})
		}
	}
	// Most frequent reason first: the page lists them to answer "why are
	// requests being sent to review?", and a stable sort keeps equal
	// counts in code order between refreshes.
	sort.SliceStable(st.Reasons, func(i, j int) bool { return st.Reasons[i].Count > st.Reasons[j].Count })

	base := m.ops.window(cur)
	dt := now.Sub(base.at).Seconds()
	st.WindowSeconds = math.Round(dt*10) / 10
	if dt > 0 {
		st.Rates.EventsPerSecond = float64(cur.events-base.events) / dt
		st.Rates.DecisionsPerSecond = float64(cur.decisions-base.decisions) / dt
		st.Rates.DeadLettersPerSecond = float64(cur.deadN-base.deadN) / dt
	}
	// -1, not 0, when nothing was decided in the window: an idle night is
	// not a night on which everything was rejected.
	st.Rates.ApprovalRate = -1
	if n := cur.decisions - base.decisions; n > 0 {
		st.Rates.ApprovalRate = float64(cur.approved-base.approved) / float64(n)
	}
	st.Latency = latencyBetween(base.lat, cur.lat)
	st.LatencyAll = latencyBetween(latencySnapshot{}, cur.lat)
	st.Stages = stagesBetween(m.stages, base.stg, cur.stg)
	st.StagesAll = stagesBetween(m.stages, stages.Snapshot{}, cur.stg)

	st.Totals = httpapi.StatusTotals{
		EventsIn: cur.events, Decisions: cur.decisions, DeadLetters: cur.deadN,
		RefundsFen: m.refundFen.Get(), AdvancedFen: m.advanceFen.Get(), ClawbacksFen: m.clawbackFen.Get(),
		CompensationFen: m.compensFen.Get(), AdvancedOutstandingFen: m.ops.outstandingFen.Load(),
		PromisedOutstandingFen: m.ops.promisedFen.Load(),
	}
	select {
	case <-d.started: // d.workers is set before started is closed
		for _, w := range d.workers {
			ps := httpapi.PartitionStatus{Partition: w.p, Ready: w.ready.Load(), Pending: w.pending.Load(), Events: w.events.Get()}
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
func latencyBetween(from, to latencySnapshot) httpapi.StatusLatency {
	p50, n := quantile(0.5, from, to)
	if n == 0 {
		return httpapi.StatusLatency{P50Seconds: -1, P99Seconds: -1}
	}
	p99, _ := quantile(0.99, from, to)
	return httpapi.StatusLatency{Decisions: n, P50Seconds: p50, P99Seconds: p99}
}

// stagesBetween summarises the stage timings between two snapshots.
func stagesBetween(h *stages.Histograms, from, to stages.Snapshot) []httpapi.StageLatency {
	out := make([]httpapi.StageLatency, 0, stages.NumStages)
	for _, s := range h.Between(from, to) {
		out = append(out, httpapi.StageLatency{Stage: s.Stage.String(), P50Seconds: s.P50, P99Seconds: s.P99, Count: s.Count})
	}
	return out
}
