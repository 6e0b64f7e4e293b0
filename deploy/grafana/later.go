package grafana

// Rows ready to switch on (list them in rows()) once their metrics are
// exposed by every flashreturnd, including the single in-process daemon
// that deploy/'s Prometheus test scrapes: that test fails on a panel whose
// series are absent ("returned no data"), and a histogram with no
// observations in the window gives NaN quantiles, which it fails too.
//
// The metric names below are ASSUMED from the issues that add them; check
// each against pipeline/ when the work lands and fix the name here, then
// switch the row on, run `make dashboards` and `go test ./deploy/...`.
// TestLaterRows keeps these builders compiling and valid against the SDK's
// schema in the meantime.

import (
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// clusterRow: membership and ownership in cluster mode. Its metrics exist
// today (pipeline/cluster) but only when flashreturnd runs with
// --cluster; switching it on needs the Prometheus test to scrape a
// cluster member, or to accept absent series for this row.
func clusterRow() row {
	return row{title: "Cluster", panels: panels(
		clusterOwnership().Span(8),
		clusterChanges().Span(8),
		clusterSnapshots().Span(8),
	)}
}

func clusterOwnership() *timeseries.PanelBuilder {
	return timeseriesPanel("Members and owned partitions",
		"Partitions each member owns, members each sees, and whether its lease is valid (1). Every partition should be owned by exactly one member.",
		unitCount,
		query{`sum by (instance) (flashreturn_cluster_owned_partitions{instance=~"$instance"})`, "{{instance}} owned"},
		query{`max by (instance) (flashreturn_cluster_members{instance=~"$instance"})`, "{{instance}} members seen"},
		query{`min by (instance) (flashreturn_cluster_lease_valid{instance=~"$instance"})`, "{{instance}} lease valid"},
	).Min(0)
}

func clusterChanges() *timeseries.PanelBuilder {
	return timeseriesPanel("Claims, releases and self-fencing / s",
		"Partitions claimed and released, and partitions a member stopped writing because its lease lapsed (self-fencing).",
		unitOps,
		query{`sum(rate(flashreturn_cluster_claims_total{instance=~"$instance"}[$__rate_interval]))`, "claims"},
		query{`sum(rate(flashreturn_cluster_releases_total{instance=~"$instance"}[$__rate_interval]))`, "releases"},
		query{`sum(rate(flashreturn_cluster_fenced_total{instance=~"$instance"}[$__rate_interval]))`, "self-fenced"},
	).Min(0)
}

func clusterSnapshots() *timeseries.PanelBuilder {
	return timeseriesPanel("Snapshot and restore p99",
		"Time to write a partition's snapshot and to restore one on takeover or hand-over.",
		unitSeconds,
		query{quantiles("flashreturn_cluster_snapshot_duration_seconds", "5m", p99)[0].expr, "snapshot p99"},
		query{quantiles("flashreturn_cluster_restore_duration_seconds", "5m", p99)[0].expr, "restore p99"},
	).Min(0)
}
