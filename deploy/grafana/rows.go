package grafana

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// row is a titled group of panels about one concern. Panels flow left to
// right in the order given and wrap at Grafana's 24 columns; a row whose
// widths add up to multiples of 24 keeps its lines even.
type row struct {
	title  string
	panels []cog.Builder[dashboard.Panel]
}

// panels is shorthand for a row's panel list; the builders differ in type
// (stat, time series, table) and share only the cog.Builder interface.
func panels(ps ...cog.Builder[dashboard.Panel]) []cog.Builder[dashboard.Panel] { return ps }

// rows is the dashboard, top to bottom: the order is the order of an
// on-call's questions (are shoppers answered? is money right? is input
// flowing? where is it stuck? what does a batch cost? is the process
// healthy? which policy runs?), so that reading down stops at the first
// row that looks wrong. To add a panel, add it to the
// row of its concern (or a new row here); deploy/README.md explains each
// panel to operators, keep it in step. Rows for metrics that other work
// is adding are in later.go, ready to be listed here once those metrics
// are exposed by every flashreturnd (TestPrometheusEvaluatesEveryExpression
// in deploy/ fails on a panel whose series are absent).
func rows() []row {
	return []row{
		shoppersRow(),
		moneyRow(),
		flowRow(),
		partitionsRow(),
		batchesRow(),
		processRow(),
		policyRow(),
		stagesRow(pipelineStages), // issue 15: flashreturn_stage_<stage>_seconds
		reviewRow(),               // issue 14: resolutions and deadlines
		fencingRow(),              // issue 16: atomic batches and the broker's fencing
	}
}

// shoppersRow: what the shopper sees, the decision and how long it took.
func shoppersRow() row {
	return row{title: "Shoppers' answer", panels: append(shopperStats(), panels(
		decisionsByOutcome().Span(12),
		decisionLatency().Span(12),
		sloBurnRate().Span(12),
		notApprovedReasons().Span(12),
	)...)}
}

// shopperStats are the six numbers at the top of the dashboard.
func shopperStats() []cog.Builder[dashboard.Panel] {
	return panels(
		statPanel("Decisions / s",
			"Return requests decided per second (approved + review + rejected), all policies.",
			unitDecisions,
			`sum(rate(flashreturn_decisions_total{instance=~"$instance"}[$__rate_interval]))`,
			steps("green")).Decimals(1),
		statPanel("Approval rate",
			"Share of decisions that approved the request at once, last 5 minutes. A sudden drop means shoppers are sent to review or rejected: check the reasons panel and the policy in force; a sudden rise with an exposure surge means the policy approves too much.",
			unitRatio,
			`sum(rate(flashreturn_decisions_total{instance=~"$instance",decision="approved"}[5m])) / sum(rate(flashreturn_decisions_total{instance=~"$instance"}[5m]))`,
			steps("green")).Decimals(1),
		statPanel("p99 request → decision",
			"99th percentile from the request's JetStream ingest to its decision being acknowledged by FR_OUT, last 5 minutes. The promise is a 0-second answer; the SLO is 99% within 1 s.",
			unitSeconds,
			quantiles("flashreturn_decision_latency_seconds", "5m", p99)[0].expr,
			steps("green", from(0.5, "orange"), from(1, "red"))),
		statPanel("Within 1 s (SLO 99%)",
			"Share of decisions published within 1 s of ingest over the last hour. Below 99% the error budget burns faster than allowed.",
			unitRatio,
			`sum(rate(flashreturn_decision_latency_seconds_bucket{instance=~"$instance",le="1"}[1h])) / sum(rate(flashreturn_decision_latency_seconds_count{instance=~"$instance"}[1h]))`,
			steps("red", from(0.99, "orange"), from(0.995, "green"))).Decimals(2),
		statPanel("Not-ready partitions",
			"Partitions whose worker is not consuming (consumer being rebuilt, commit or publish retrying). Anything above 0 for minutes means some shoppers get no answer.",
			unitCount,
			`sum(1 - flashreturn_partition_ready{instance=~"$instance"})`,
			steps("green", from(1, "red"))),
		statPanel("Backlog (pending events)",
			"Events stored in JetStream and not yet delivered to the partition workers, all partitions.",
			unitCount,
			`sum(flashreturn_consumer_pending_events{instance=~"$instance"})`,
			steps("green", from(1000, "orange"), from(10000, "red"))),
	)
}

// decisionsByOutcome stacks decisions by verdict and policy: stacked, the
// top of the graph is the total rate, so a shift from approved to review
// shows as bands changing size under a flat line, not as a traffic drop.
func decisionsByOutcome() *timeseries.PanelBuilder {
	return timeseriesPanel("Decisions / s by outcome and policy",
		"Decisions per second split by verdict and by the policy that made them.",
		unitDecisions,
		query{`sum by (decision, policy) (rate(flashreturn_decisions_total{instance=~"$instance"}[$__rate_interval]))`, "{{decision}} · {{policy}}"},
	).Stacking(stacking(common.StackingModeNormal))
}

// decisionLatency draws the quantiles of the decision latency across all
// selected instances: the buckets are summed by le before the quantile,
// because a quantile of per-instance quantiles is not a quantile of
// anything. p99.9 is there because the tail, not the median, is what a
// stalled partition or a commit retry shows up in first.
func decisionLatency() *timeseries.PanelBuilder {
	return timeseriesPanel("Request → decision latency",
		"From JetStream ingest of return.requested to the publish ack of its decision (p50, p99, p99.9). Includes time queued behind a backlog.",
		unitSeconds,
		quantiles("flashreturn_decision_latency_seconds", "$__rate_interval", p50, p99, p999)...,
	).Min(0)
}

// sloBurnRate draws the burn rate of the 1 s / 99% SLO's error budget over
// the windows the burn-rate alerts of prometheus/alerts.yml confirm with.
func sloBurnRate() *timeseries.PanelBuilder {
	burn := func(window string) query {
		return query{`(1 - sum(rate(flashreturn_decision_latency_seconds_bucket{instance=~"$instance",le="1"}[` + window + `])) / sum(rate(flashreturn_decision_latency_seconds_count{instance=~"$instance"}[` + window + `]))) / 0.01`, window}
	}
	return timeseriesPanel("SLO error-budget burn rate (1 s, 99%)",
		"How fast the 1% error budget burns: 1 = exactly on budget over 30 days; the fast-burn page fires above 14.4 (1 h and 5 m windows), the slow-burn ticket above 6 (6 h and 30 m).",
		unitCount,
		burn("5m"), burn("1h"),
	).Min(0)
}

// notApprovedReasons shows the top 8 reason codes: the contract has 17,
// and a legend of all of them hides the two or three that move when a
// policy or a merchant's rules change. Not stacked, since one request can
// count under several reasons and a stack would suggest a total.
func notApprovedReasons() *timeseries.PanelBuilder {
	return timeseriesPanel("Why requests are not approved at once",
		"Reason codes of review and rejected decisions per second (top 8). A request can carry several reasons.",
		unitDecisions,
		query{`topk(8, sum by (reason) (rate(flashreturn_decision_reasons_total{instance=~"$instance"}[$__rate_interval])))`, "{{reason}}"},
	)
}

// moneyRow: money paid, advanced, released and clawed back. The metrics
// count fen; the panels divide by 100 and show yuan.
func moneyRow() row {
	return row{title: "Money (fen counted, shown in ¥)", panels: panels(
		moneyPerMinute().Span(12),
		advancedOutstanding().Span(12),
	)}
}

// moneyPerMinute shows money as ¥ per minute rather than per second:
// at per-second scale typical refunds are fractions of a yuan that
// round to nothing on the axis, and finance reads amounts per minute.
func moneyPerMinute() *timeseries.PanelBuilder {
	perMinute := func(counter, legend string) query {
		return query{`sum(rate(` + counter + `{instance=~"$instance"}[$__rate_interval])) * 60 / 100`, legend}
	}
	return timeseriesPanel("Money per minute",
		"Refunds (all), refunds paid in advance (before the goods are back), clawbacks after a bad inspection, courier compensation, and advanced money released by inspections, in ¥ per minute.",
		unitYuan,
		perMinute("flashreturn_refunds_fen_total", "refunds"),
		perMinute("flashreturn_advanced_fen_total", "advanced"),
		perMinute("flashreturn_advance_released_fen_total", "released by inspection"),
		perMinute("flashreturn_clawbacks_fen_total", "clawbacks"),
		perMinute("flashreturn_compensation_fen_total", "compensation"),
	).Min(0)
}

// advancedOutstanding is per instance, not summed: the gauge is the
// change since each process started (see its description), so a sum over
// processes that started at different times would mean nothing.
func advancedOutstanding() *timeseries.PanelBuilder {
	return timeseriesPanel("Advanced money outstanding (change this run)",
		"Money refunded in advance and not yet covered by an inspection, added during the current run of each process (it starts at 0 when flashreturnd starts; its slope is exact). Per instance.",
		unitYuan,
		query{`sum by (instance) (flashreturn_advanced_outstanding_fen{instance=~"$instance"}) / 100`, "{{instance}}"},
	)
}

// flowRow: what comes in, what goes out, what is dead-lettered, and how
// far behind the workers are.
func flowRow() row {
	return row{title: "Flow", panels: panels(
		eventsIn().Span(8),
		effectsOut().Span(8),
		deadLetters().Span(8),
		endToEndLag().Span(8),
		deadLetterShare().Span(8),
		timersAndRedeliveries().Span(8),
	)}
}

// eventsIn stacks inbound events by type; clock ticks are left out
// because they are the daemon's own heartbeat, one per partition every
// ClockInterval, and would make the idle floor look like traffic.
func eventsIn() *timeseries.PanelBuilder {
	return timeseriesPanel("Events in / s by type",
		"Valid inbound events applied per second, by type (clock ticks excluded).",
		unitEvents,
		query{`sum by (type) (rate(flashreturn_events_in_total{instance=~"$instance",type!="clock"}[$__rate_interval]))`, "{{type}}"},
	).Stacking(stacking(common.StackingModeNormal))
}

// effectsOut stacks published effects by kind (the fr.out subjects):
// read against eventsIn, it shows how many outputs an event mix yields.
func effectsOut() *timeseries.PanelBuilder {
	return timeseriesPanel("Effects out / s by kind",
		"Outputs published to FR_OUT per second, by kind.",
		unitMessages,
		query{`sum by (kind) (rate(flashreturn_effects_out_total{instance=~"$instance"}[$__rate_interval]))`, "{{kind}}"},
	).Stacking(stacking(common.StackingModeNormal))
}

// deadLetters stacks dead letters by reason (the fr.dlq subjects): a
// publisher's bug shows as one reason rising (missing_field after a
// schema change, subject_mismatch after a routing change).
func deadLetters() *timeseries.PanelBuilder {
	return timeseriesPanel("Dead letters / s by reason",
		"Inbound messages sent to fr.dlq.<reason>. bad_json/missing_field/bad_value/unknown_type/subject_mismatch are publisher bugs; poison is ours.",
		unitEvents,
		query{`sum by (reason) (rate(flashreturn_dead_letters_total{instance=~"$instance"}[$__rate_interval]))`, "{{reason}}"},
	).Stacking(stacking(common.StackingModeNormal))
}

// endToEndLag is lag for every event, where decisionLatency covers only
// return requests: a backlog of other events delays the requests queued
// behind them, and this panel shows it before the decision SLO burns.
func endToEndLag() *timeseries.PanelBuilder {
	return timeseriesPanel("End-to-end lag",
		"Processing time minus JetStream ingest time of each event (p50, p99): how far behind the workers are.",
		unitSeconds,
		quantiles("flashreturn_event_lag_seconds", "$__rate_interval", p50, p99)...,
	).Min(0)
}

// deadLetterShare divides dead letters by everything received (applied
// plus dead-lettered, clock ticks left out): a rate alone cannot tell a
// broken publisher from a busy day, a share can.
func deadLetterShare() *timeseries.PanelBuilder {
	return timeseriesPanel("Dead-letter share",
		"Dead letters as a share of inbound events (valid + dead-lettered, clock ticks excluded). The DLQ-spike page fires above 1%.",
		unitRatio,
		query{`sum(rate(flashreturn_dead_letters_total{instance=~"$instance"}[5m])) / (sum(rate(flashreturn_events_in_total{instance=~"$instance",type!="clock"}[5m])) + sum(rate(flashreturn_dead_letters_total{instance=~"$instance"}[5m])))`, "dead-letter share"},
	).Min(0)
}

// timersAndRedeliveries puts together three rates that are normally near
// zero or steady and that rise together after a restart or a takeover:
// timers (missed pickup windows) fired as event time catches up,
// redelivered events skipped as already applied, and consumers rebuilt;
// and what must stay zero, inbound events expired before they were
// processed (alert FlashreturnEventsExpired).
func timersAndRedeliveries() *timeseries.PanelBuilder {
	return timeseriesPanel("Timers and redeliveries / s",
		"Timers fired (missed pickup windows), redelivered events skipped by the cursor, consumer rebuilds; inbound events that expired before they were processed, and streams found behind their partition's cursor (both must stay 0).",
		unitOps,
		query{`sum(rate(flashreturn_timers_fired_total{instance=~"$instance"}[$__rate_interval]))`, "timers fired"},
		query{`sum(rate(flashreturn_events_skipped_total{instance=~"$instance"}[$__rate_interval]))`, "redelivered, skipped"},
		query{`sum(rate(flashreturn_consumer_resets_total{instance=~"$instance"}[$__rate_interval]))`, "consumer resets"},
		query{`sum(rate(flashreturn_events_expired_total{instance=~"$instance"}[$__rate_interval]))`, "expired unprocessed"},
		query{`sum(rate(flashreturn_stream_rewinds_total{instance=~"$instance"}[$__rate_interval]))`, "stream behind cursor"},
	)
}

// partitionsRow: backlog and load per partition.
func partitionsRow() row {
	return row{title: "Partitions", panels: panels(
		pendingTop10().Span(8),
		hottestPartitions().Span(8),
		skewAndOutbox().Span(8),
	)}
}

// pendingTop10 draws the ten most backlogged partitions and the total:
// with 64 partitions a line each is unreadable, and a backlog that is one
// partition's (a hot shopper, a stuck worker) looks different from one
// spread over all of them (the daemon is simply too slow).
func pendingTop10() *timeseries.PanelBuilder {
	return timeseriesPanel("Consumer pending, top 10 partitions",
		"Events waiting in JetStream per partition (the 10 largest). One partition far above the rest is a hot shopper or a stuck worker.",
		unitCount,
		query{`topk(10, sum by (partition) (flashreturn_consumer_pending_events{instance=~"$instance"}))`, "p{{partition}}"},
		query{`sum(flashreturn_consumer_pending_events{instance=~"$instance"})`, "total"},
	)
}

// hottestPartitions shows the five busiest partitions' event rates; a
// partition far above the rest is a hot user, whose events must stay on
// one partition for ordering, so the fix is elsewhere than adding workers.
func hottestPartitions() *timeseries.PanelBuilder {
	return timeseriesPanel("Hottest partitions (events / s)",
		"Inbound events applied per second by the 5 busiest partitions (clock ticks excluded).",
		unitEvents,
		query{`topk(5, sum by (partition) (rate(flashreturn_partition_events_total{instance=~"$instance"}[$__rate_interval])))`, "p{{partition}}"},
	)
}

// skewAndOutbox: the hottest-to-average ratio over 5 minutes (a steadier
// window than the zoom's, since skew is a property of the load, not a
// spike), partitions not ready, and outputs committed but not yet
// acknowledged by FR_OUT, which grows when publishing stalls.
func skewAndOutbox() *timeseries.PanelBuilder {
	return timeseriesPanel("Partition skew and outbox",
		"Busiest partition's rate over the average partition's (1 = even), partitions not ready, and outputs committed but not yet acknowledged.",
		unitCount,
		query{`max(sum by (partition) (rate(flashreturn_partition_events_total{instance=~"$instance"}[5m]))) / avg(sum by (partition) (rate(flashreturn_partition_events_total{instance=~"$instance"}[5m])))`, "hottest / average"},
		query{`sum(1 - flashreturn_partition_ready{instance=~"$instance"})`, "not ready"},
		query{`sum(flashreturn_partition_outbox_messages{instance=~"$instance"})`, "outbox messages"},
	)
}

// batchesRow: the cost of a batch, step by step, and the state store.
func batchesRow() row {
	return row{title: "Batches, commit and publish", panels: panels(
		latencyPanel("Commit latency (one Badger txn per batch)",
			"Time to commit a batch's states, cursor and outbox (p50, p99).",
			"flashreturn_commit_duration_seconds").Span(8),
		latencyPanel("Publish-ack latency (FR_OUT)",
			"Time from publishing a batch's outputs to the last publish ack (p50, p99).",
			"flashreturn_publish_ack_duration_seconds").Span(8),
		latencyPanel("Apply latency per event",
			"Decode + decision core + encode per event (p50, p99).",
			"flashreturn_apply_duration_seconds").Span(8),
		batchSize().Span(8),
		errorsAndRetries().Span(8),
		stateStore().Span(8),
	)}
}

// latencyPanel is the family of p50 and p99 of a latency histogram named
// hist (without _bucket), in seconds.
func latencyPanel(title, description, hist string) *timeseries.PanelBuilder {
	return timeseriesPanel(title, description, unitSeconds,
		quantiles(hist, "$__rate_interval", p50, p99)...,
	).Min(0)
}

// batchSize shows quantiles and the mean of events per batch, and the
// partitions per runner round: both grow with load by design (a runner
// takes what is waiting), so small batches under a backlog mean the
// runner is not getting messages fast enough, not that it is idle.
func batchSize() *timeseries.PanelBuilder {
	qs := quantiles("flashreturn_batch_size_events", "$__rate_interval", p50, p99)
	qs = append(qs, query{`sum(rate(flashreturn_batch_size_events_sum{instance=~"$instance"}[$__rate_interval])) / sum(rate(flashreturn_batch_size_events_count{instance=~"$instance"}[$__rate_interval]))`, "mean"},
		query{`sum(rate(flashreturn_round_size_partitions_sum{instance=~"$instance"}[$__rate_interval])) / sum(rate(flashreturn_round_size_partitions_count{instance=~"$instance"}[$__rate_interval]))`, "partitions per round (mean)"})
	return timeseriesPanel("Batch size",
		"Events per partition batch (p50, p99, mean), and partitions committed together per runner round (mean). Both grow by themselves under load.",
		unitCount, qs...,
	).Min(0)
}

// errorsAndRetries: commit and publish errors are retried, so a rate here
// is latency, not loss; poison events are dead-lettered and each one is
// a shopper's event that did not apply.
func errorsAndRetries() *timeseries.PanelBuilder {
	return timeseriesPanel("Errors and retries / s",
		"Commit and publish failures (retried, never skipped), poison events (core panics or unreadable state) and batches applied again smaller because their commit did not fit one Badger transaction.",
		unitOps,
		query{`sum(rate(flashreturn_commit_errors_total{instance=~"$instance"}[$__rate_interval]))`, "commit errors"},
		query{`sum(rate(flashreturn_publish_errors_total{instance=~"$instance"}[$__rate_interval]))`, "publish errors"},
		query{`sum(rate(flashreturn_poison_events_total{instance=~"$instance"}[$__rate_interval]))`, "poison"},
		query{`sum(rate(flashreturn_oversized_batches_total{instance=~"$instance"}[$__rate_interval]))`, "oversized batches"},
	).Min(0)
}

// stateStore shows Badger's on-disk sizes and the cache against its
// budget; a value log that keeps growing while the LSM stays flat is the
// usual sign that value-log GC is not keeping up with rewrites of users'
// records, which disk alerts would only catch much later.
func stateStore() *timeseries.PanelBuilder {
	return timeseriesPanel("State store",
		"Badger LSM and value-log size on disk, and the state cache size against its budget (--cache-mb).",
		unitBytes,
		query{`sum(flashreturn_state_lsm_bytes{instance=~"$instance"})`, "LSM"},
		query{`sum(flashreturn_state_vlog_bytes{instance=~"$instance"})`, "value log"},
		query{`sum(flashreturn_state_cache_bytes{instance=~"$instance"})`, "cache"},
		query{`sum(flashreturn_state_cache_budget_bytes{instance=~"$instance"})`, "cache budget"},
	).Min(0)
}

// stage is one step of an event's way through a daemon, timed by the
// histogram flashreturn_stage_<name>_seconds (pipeline/stages).
type stage struct {
	name   string // metric name part, as pipeline/stages names it
	legend string
}

// pipelineStages are the stages a flashreturnd times, in the order an
// event passes them; pipeline/stages' TestNames holds the same names.
// Issue 15's fifth stage, ack → visible to a consumer, is not here: it
// happens in the consumer's process and the daemon does not estimate it
// (loadgen's request → decision covers it).
var pipelineStages = []stage{
	{"stored_pulled", "stored → pulled"},
	{"pulled_applied", "pulled → applied"},
	{"commit", "commit (per batch)"},
	{"publish_ack", "to the publisher → stored with its marker (per batch)"},
}

func (s stage) histogram() string { return "flashreturn_stage_" + s.name + "_seconds" }

// stagesRow: where an event's time goes, stage by stage. The first two
// stages are counted per event, commit and publish → ack per batch (a
// batch's events all wait for its one commit and its acks).
func stagesRow(stages []stage) row {
	return row{title: "Stages", panels: panels(
		stageP99(stages).Span(12),
		stageMeans(stages).Span(12),
	)}
}

// stageP99 draws each stage's p99: the stage whose line rises is the one
// that stalls.
func stageP99(stages []stage) *timeseries.PanelBuilder {
	qs := make([]query, 0, len(stages))
	for _, s := range stages {
		q := quantiles(s.histogram(), "$__rate_interval", p99)[0]
		q.legend = s.legend
		qs = append(qs, q)
	}
	return timeseriesPanel("p99 by stage",
		"99th percentile of each stage: stored → pulled (JetStream storage to the consumer handing the event over), pulled → applied (the worker's queue, merchant wait and core, to the end of its batch's apply), the batch's commit, and publish → ack of the batch's outputs. Per event for the first two, per batch for the others. The stage whose line rises is the one that stalls.",
		unitSeconds, qs...,
	).Min(0)
}

// stageMeans stacks the stages' mean times: their sum is roughly the
// mean time from storage to acknowledged output, and each band its share
// ("roughly" because commit and publish → ack are means per batch, and a
// batch's events each wait for the whole of them).
func stageMeans(stages []stage) *timeseries.PanelBuilder {
	qs := make([]query, 0, len(stages))
	for _, s := range stages {
		h := s.histogram()
		qs = append(qs, query{
			expr:   `sum(rate(` + h + `_sum{instance=~"$instance"}[$__rate_interval])) / sum(rate(` + h + `_count{instance=~"$instance"}[$__rate_interval]))`,
			legend: s.legend,
		})
	}
	return timeseriesPanel("Mean time by stage (stacked)",
		"Mean time of each stage, stacked: the top of the stack is about the mean time from JetStream storage to the publish ack of the outputs, each band a stage's share of it.",
		unitSeconds, qs...,
	).Min(0).Stacking(stacking(common.StackingModeNormal))
}

// processRow: CPU, memory and the Go runtime, per instance.
func processRow() row {
	return row{title: "Process and Go runtime", panels: panels(
		cpu().Span(6),
		memory().Span(6),
		goroutines().Span(6),
		gcPauses().Span(6),
	)}
}

// cpu is per instance and in cores (not percent), so that it reads the
// same on any machine size; the GC line is the share worth tuning
// (GOGC, the state cache) before adding machines.
func cpu() *timeseries.PanelBuilder {
	return timeseriesPanel("CPU",
		"CPU cores used by flashreturnd (the embedded NATS server included when embedded) and by the Go GC.",
		unitCount,
		query{`sum by (instance) (rate(process_cpu_seconds_total{instance=~"$instance"}[$__rate_interval]))`, "{{instance}} total"},
		query{`sum by (instance) (rate(go_gc_cpu_seconds_total{instance=~"$instance"}[$__rate_interval]))`, "{{instance}} GC"},
	).Min(0).AxisLabel("cores")
}

// memory puts RSS next to the Go heap: a gap that grows between them is
// memory outside the heap (Badger's mmap'd tables and caches), which the
// Go runtime's numbers alone would not show.
func memory() *timeseries.PanelBuilder {
	return timeseriesPanel("Memory",
		"Resident memory and Go heap in use.",
		unitBytes,
		query{`sum by (instance) (process_resident_memory_bytes{instance=~"$instance"})`, "{{instance}} RSS"},
		query{`sum by (instance) (go_memstats_heap_inuse_bytes{instance=~"$instance"})`, "{{instance}} heap in use"},
	).Min(0)
}

func goroutines() *timeseries.PanelBuilder {
	return timeseriesPanel("Goroutines and threads",
		"Go goroutines and OS threads.",
		unitCount,
		query{`sum by (instance) (go_goroutines{instance=~"$instance"})`, "{{instance}} goroutines"},
		query{`sum by (instance) (go_threads{instance=~"$instance"})`, "{{instance}} threads"},
	).Min(0)
}

// gcPauses is the maximum pause (quantile 1), not a percentile: a single
// long pause delays every partition at once, which is what the decision
// latency's tail would show without saying why.
func gcPauses() *timeseries.PanelBuilder {
	return timeseriesPanel("GC pauses",
		"Longest recent stop-the-world GC pause.",
		unitSeconds,
		query{`max by (instance) (go_gc_duration_seconds{instance=~"$instance",quantile="1"})`, "{{instance}} max pause"},
	).Min(0)
}

// policyRow: the policy in force and, with --shadow, the shadow policy
// against it.
func policyRow() row {
	return row{title: "Policy", panels: panels(
		tablePanel("Policy in force",
			"Live policy (and shadow policy, if any) with its content version, per instance; a reload shows up here.",
			`max by (instance, role, policy, version) (flashreturn_policy_info{instance=~"$instance"}) == 1`,
		).Span(12),
		shadowVsLive().Span(12).Height(6),
	)}
}

// shadowVsLive compares approval rates of the live and shadow policy on
// the same requests; disagreements, not the two rates, are what decide
// whether a shadow policy is safe to promote.
func shadowVsLive() *timeseries.PanelBuilder {
	return timeseriesPanel("Shadow policy vs live",
		"With --shadow: approvals per second of the live and shadow policy on the same requests, and disagreements. Empty without a shadow policy.",
		unitDecisions,
		query{`sum by (shadow) (rate(flashreturn_shadow_live_approved_total{instance=~"$instance"}[$__rate_interval]))`, "live approved"},
		query{`sum by (shadow) (rate(flashreturn_shadow_approved_total{instance=~"$instance"}[$__rate_interval]))`, "{{shadow}} approved"},
		query{`sum by (shadow) (rate(flashreturn_shadow_disagreements_total{instance=~"$instance"}[$__rate_interval]))`, "disagreements"},
	)
}

// reviewRow (issue 14): requests handed to a person, how they are
// resolved, and the deadlines that resolve them when nobody answers.
// Review answers arrive as events (review.approved, review.rejected:
// flashreturn_events_in_total{type}, registered per type at start, so
// they exist once the core knows the types); resolutions are counted by
// flashreturn_resolutions_total{outcome,by} (pipeline/metrics.go).
func reviewRow() row {
	return row{title: "Review: resolutions and deadlines", panels: panels(
		reviewAnswers().Span(8),
		resolutions().Span(8),
		deadlineResolutions().Span(8),
	)}
}

func reviewAnswers() *timeseries.PanelBuilder {
	return timeseriesPanel("Review answers in / s",
		"Answers of merchants and platform reviewers per second (review.approved, review.rejected). A second answer to the same request is counted here but changes nothing.",
		unitEvents,
		query{`sum by (type) (rate(flashreturn_events_in_total{instance=~"$instance",type=~"review\\..+"}[$__rate_interval]))`, "{{type}}"},
	).Stacking(stacking(common.StackingModeNormal))
}

func resolutions() *timeseries.PanelBuilder {
	return timeseriesPanel("Resolutions / s by outcome and who",
		"One resolution per reviewed request: approved, rejected or closed, by the merchant, the platform or a deadline (timeout).",
		unitDecisions,
		query{`sum by (outcome, by) (rate(flashreturn_resolutions_total{instance=~"$instance"}[$__rate_interval]))`, "{{outcome}} · {{by}}"},
	).Stacking(stacking(common.StackingModeNormal))
}

func deadlineResolutions() *timeseries.PanelBuilder {
	return timeseriesPanel("Resolved by a deadline / s",
		"approved: the merchant did not answer within the review deadline (72 h by default). closed: the goods did not come back within the return deadline (7 days); advanced money is clawed back (Money per minute).",
		unitDecisions,
		query{`sum by (outcome) (rate(flashreturn_resolutions_total{instance=~"$instance",by="timeout"}[$__rate_interval]))`, "{{outcome}} by timeout"},
	)
}
