package grafana

import (
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// fencingRow (issue 16): how outputs reach FR_OUT (atomic batches ending
// with commit markers, pipeline/outbound) and the broker's fencing. A few
// rejections around a hand-over are the fencing working; a steady rate
// means two processes believe they own the same partitions.
func fencingRow() row {
	return row{title: "Publishing and fencing", panels: panels(
		fencingRejections().Span(6),
		outboundBatches().Span(6),
		outboundBatchSize().Span(6),
		outboundBatchTime().Span(6),
	)}
}

func fencingRejections() *timeseries.PanelBuilder {
	return timeseriesPanel("Fencing: claims and refused batches / s",
		"Claim markers written (a start, a takeover, a hand-over) and output batches of a former owner that FR_OUT refused after a newer owner claimed the partition, per instance. A few refusals around a hand-over are expected; a steady rate means two processes act as owner.",
		unitOps,
		query{`sum by (instance) (rate(flashreturn_fencing_rejections_total{instance=~"$instance"}[$__rate_interval]))`, "{{instance}} refused"},
		query{`sum by (instance) (rate(flashreturn_fencing_claims_total{instance=~"$instance"}[$__rate_interval]))`, "{{instance}} claims"},
	).Min(0)
}

func outboundBatches() *timeseries.PanelBuilder {
	return timeseriesPanel("Atomic batches / s",
		"Atomic batches stored in FR_OUT, rounds sent again after a failure, and outputs a replay made again that FR_OUT already held (not published).",
		unitOps,
		query{`sum(rate(flashreturn_outbound_batches_total{instance=~"$instance"}[$__rate_interval]))`, "batches"},
		query{`sum(rate(flashreturn_outbound_retries_total{instance=~"$instance"}[$__rate_interval]))`, "retries"},
		query{`sum(rate(flashreturn_outputs_suppressed_total{instance=~"$instance"}[$__rate_interval]))`, "suppressed outputs"},
	).Min(0)
}

func outboundBatchSize() *timeseries.PanelBuilder {
	return timeseriesPanel("Atomic batch size",
		"Messages per atomic batch (markers included): the publishing side's load signal, 2 when idle, up to 1000 under load.",
		unitCount,
		quantiles("flashreturn_outbound_batch_messages", "5m", p50, p99)...,
	).Min(0)
}

func outboundBatchTime() *timeseries.PanelBuilder {
	return timeseriesPanel("Atomic batch: send to commit answer",
		"From the first message of an atomic batch sent to the server's answer to its commit: on an R1 file stream the server stages the batch in a store of its own and fsyncs it, a floor of a few ms.",
		unitSeconds,
		quantiles("flashreturn_outbound_batch_seconds", "5m", p50, p99)...,
	).Min(0)
}
