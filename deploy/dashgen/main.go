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
