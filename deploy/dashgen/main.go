// Command dashgen writes flashreturn's Grafana dashboard, built in Go by
// package deploy/grafana, as the JSON that Grafana imports.
//
// Usage:
//
//	dashgen [-o file]
//
// With no -o, or -o -, it writes to standard output. `make dashboards`
// (go generate ./deploy/...) runs it to refresh
// deploy/grafana/flashreturn.json.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/flashreturn/flashreturn/deploy/grafana"
)

// main writes the dashboard. It takes no arguments besides -o so that
// `go generate` and a person run the same command with the same result.
func main() {
	out := flag.String("o", "-", "file to write the dashboard JSON to (- for standard output)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: dashgen [-o file]")
		os.Exit(2)
	}
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "dashgen:", err)
		os.Exit(1)
	}
}

// run renders the dashboard and writes it. The file is written whole
// with os.WriteFile; the committed JSON is the reviewed artefact and
// TestCommittedDashboardIsGenerated (in deploy/grafana) compares it with a fresh
// render, so a half-written file fails there rather than in Grafana.
func run(out string) error {
	b, err := grafana.JSON()
	if err != nil {
		return err
	}
	if out == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
