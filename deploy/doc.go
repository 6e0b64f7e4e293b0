// Package deploy holds what operators deploy beside flashreturnd: the
// Grafana dashboard (grafana/flashreturn.json), the Prometheus alert rules
// with their unit tests (prometheus/alerts.yml, prometheus/alerts_test.yml)
// and an example Prometheus configuration (prometheus/prometheus.yml).
// README.md explains every panel and is the alerts' runbook.
//
// The dashboard is generated: package deploy/grafana builds it in Go with
// Grafana's Foundation SDK, and command deploy/dashgen writes it (`make
// dashboards`, or go generate ./deploy/...). Its tests fail when the
// committed JSON is not what the generator writes or does not decode into
// the SDK's schema types.
//
// This package has only tests: they start a real flashreturnd in-process,
// drive traffic into it, have a real Prometheus (the Debian package) scrape
// it, and evaluate every PromQL expression of the dashboard and the rules
// through Prometheus' HTTP API. install-tools.sh installs Prometheus and
// Chromium (for the status page test in pipeline/) on Debian.
package deploy
