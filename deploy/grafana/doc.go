// Package grafana builds flashreturn's Grafana dashboard as code, with
// Grafana's Foundation SDK (github.com/grafana/grafana-foundation-sdk/go),
// whose types and builders are generated from Grafana's own schemas.
//
// [JSON] returns the dashboard; flashreturn.json in this directory is its
// committed output, which operators import into Grafana. Do not edit the
// JSON: change the Go code and regenerate it with
//
//	make dashboards            # or: go generate ./deploy/...
//
// The package's tests fail when the committed JSON differs from what
// [JSON] returns, when it does not decode strictly into the SDK's
// dashboard type, or when a query does not filter on the instance
// variable; deploy/'s tests evaluate every query against a real
// Prometheus scraping a running flashreturnd.
//
// # Layout
//
// The dashboard is a list of rows, one per concern (rows in rows.go):
// shoppers' answer, money, flow, partitions, batches, process, policy,
// stages, review. A
// row is a list of panels; each panel, or family of alike panels (latency
// percentiles of a histogram, for instance), is one small function that
// returns the SDK's typed builder. The helpers in panels.go fix what every
// panel shares: the Prometheus data source variable, the legend and
// tooltip, the units, and the refIds of the queries. Panels flow left to
// right and wrap at 24 columns; ids are assigned top to bottom.
//
// later.go holds rows whose metrics are not exposed yet (rejections by
// the broker's fencing) or only in cluster mode; they are built and
// validated by the tests but left out of the dashboard until their series
// exist.
//
// # Schema version
//
// The SDK's classic dashboard model is used (package dashboard, which the
// SDK marks deprecated in favour of its v2 schema): Grafana 12 imports v2
// dashboards only behind feature flags, while every Grafana from 10 on
// imports and provisions the classic one. The JSON claims schemaVersion
// 39 (Grafana 10.4) rather than the SDK's 42, so that each Grafana from
// 10.4 on migrates it forward to its own version; see schemaVersion.
package grafana
