package pipeline

import (
	"math"
	"sort"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/pipeline/apply"
	"github.com/flashreturn/flashreturn/pipeline/httpapi"
	"github.com/flashreturn/flashreturn/pipeline/opsmetrics"
	"github.com/flashreturn/flashreturn/pipeline/stages"
)

// observePolicies registers flashreturn_policy_info for the live and
// shadow policies (called at scrape time). At scrape time rather than at
// each swap, so that the reload path stays free of metrics bookkeeping
// and a scrape always reports the policy in force when it ran.
func (d *Daemon) observePolicies() {
	d.m.Ops.ObservePolicy("live", d.policy.Load(), d.policy.Load)
	if d.shadow != nil {
		sp := d.shadow.Policy()
		d.m.Ops.ObservePolicy("shadow", sp, func() *core.Policy { return sp })
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
		Now: now.In(d.cfg.Loc).Format(time.RFC3339), UptimeSeconds: now.Sub(m.Ops.Start).Seconds(),
		Ready: d.Ready(), Partitions: d.cfg.Partitions,
		Policy:       apply.PolicyRef{Name: pol.Name, Version: pol.Version},
		Decisions:    map[string]uint64{"approved": 0, "review": 0, "rejected": 0},
		DeadByReason: map[string]uint64{}, Reasons: []httpapi.StatusCount{}, Backlog: []httpapi.PartitionStatus{},
		Resolutions: map[string]uint64{},
	}
	for o, byActor := range m.Resolutions {
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
	cur := opsmetrics.Sample{At: now, Lat: m.Ops.LatencySnapshot(), Stg: m.Stages.Snapshot()}
	// Clock ticks are not events anyone sent: they are left out of the
	// rates, as they are of the partition event counters.
	for t := core.EventOrderPaid; t < core.EventClock; t++ {
		cur.Events += m.EventsIn[t].Get()
	}
	m.Decisions.Range(func(_, v any) bool {
		for verdict, c := range v.(*[core.VerdictRejected + 1]*metrics.Counter) {
			if c == nil {
				continue
			}
			n := c.Get()
			st.Decisions[core.Verdict(verdict).String()] += n
			cur.Decisions += n
			if core.Verdict(verdict) == core.VerdictApproved {
				cur.Approved += n
			}
		}
		return true
	})
	for r, c := range m.DLQ {
		n := c.Get()
		st.DeadByReason[r] = n
		cur.DeadN += n
	}
	for c := core.Code(0); c < core.NumCodes; c++ {
		if n := m.Reasons[c].Get(); n > 0 {
			st.Reasons = append(st.Reasons, httpapi.StatusCount{Name: c.String(), Count: n})
		}
	}
	// Most frequent reason first: the page lists them to answer "why are
	// requests being sent to review?", and a stable sort keeps equal
	// counts in code order between refreshes.
	sort.SliceStable(st.Reasons, func(i, j int) bool { return st.Reasons[i].Count > st.Reasons[j].Count })

	base := m.Ops.Window(cur)
	dt := now.Sub(base.At).Seconds()
	st.WindowSeconds = math.Round(dt*10) / 10
	if dt > 0 {
		st.Rates.EventsPerSecond = float64(cur.Events-base.Events) / dt
		st.Rates.DecisionsPerSecond = float64(cur.Decisions-base.Decisions) / dt
		st.Rates.DeadLettersPerSecond = float64(cur.DeadN-base.DeadN) / dt
	}
	// -1, not 0, when nothing was decided in the window: an idle night is
	// not a night on which everything was rejected.
	st.Rates.ApprovalRate = -1
	if n := cur.Decisions - base.Decisions; n > 0 {
		st.Rates.ApprovalRate = float64(cur.Approved-base.Approved) / float64(n)
	}
	st.Latency = opsmetrics.LatencyBetween(base.Lat, cur.Lat)
	st.LatencyAll = opsmetrics.LatencyBetween(opsmetrics.LatencySnapshot{}, cur.Lat)
	st.Stages = stagesBetween(m.Stages, base.Stg, cur.Stg)
	st.StagesAll = stagesBetween(m.Stages, stages.Snapshot{}, cur.Stg)

	st.Totals = httpapi.StatusTotals{
		EventsIn: cur.Events, Decisions: cur.Decisions, DeadLetters: cur.DeadN,
		RefundsFen: m.RefundFen.Get(), AdvancedFen: m.AdvanceFen.Get(), ClawbacksFen: m.ClawbackFen.Get(),
		CompensationFen: m.CompensFen.Get(), AdvancedOutstandingFen: m.Ops.OutstandingFen.Load(),
		PromisedOutstandingFen: m.Ops.PromisedFen.Load(),
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
	st.DeadLetters = m.Ops.RecentDeadLetters()
	return st
}

// stagesBetween summarises the stage timings between two snapshots.
func stagesBetween(h *stages.Histograms, from, to stages.Snapshot) []httpapi.StageLatency {
	out := make([]httpapi.StageLatency, 0, stages.NumStages)
	for _, s := range h.Between(from, to) {
		out = append(out, httpapi.StageLatency{Stage: s.Stage.String(), P50Seconds: s.P50, P99Seconds: s.P99, Count: s.Count})
	}
	return out
}
