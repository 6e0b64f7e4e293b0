// Package deploy holds what operators deploy beside flashreturnd: the
// Grafana dashboard (grafana/flashreturn.json), the Prometheus alert rules
// with their unit tests (prometheus/alerts.yml, prometheus/alerts_test.yml)
// and an example Prometheus configuration (prometheus/prometheus.yml).
// README.md explains every panel and is the alerts' runbook.
//
// The package has no code; its test starts a real flashreturnd in-process,
// drives traffic into it, has a real Prometheus (the Debian package) scrape
// it, and evaluates every PromQL expression of the dashboard and the rules
// through Prometheus' HTTP API. install-tools.sh installs Prometheus and
// Chromium (for the status page test in pipeline/) on Debian.
package deploy
