// Package script runs datadriven test scripts, in the format of
// cockroachdb/datadriven and etcd raft's interaction tests, for the pure
// packages' tests (internal/core, internal/ownership). Each file is a
// list of blocks separated by blank lines, with # comments between them:
//
//	command arg=value ...
//	input lines
//	----
//	expected output
//
// A test hands [Run] a glob and a function that executes one case and
// returns its output; Run compares it with the expected output and, with
// `go test -rewrite`, writes the actual outputs back into the files
// (review the diff). The datadriven module is not among the project's
// dependencies; this runner is the hundred lines of it the tests use.
//
// Invariants: rewriting changes only what follows each ----, so comments
// and commands survive; a case's position (file:line) is in every
// failure; a glob that matches no file fails the test rather than
// passing it vacuously.
package script

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rewrite is registered here, once, for every test binary that imports
// the package: `go test ./internal/core/ -run TestScripts -rewrite`.
var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata scripts")

// Case is one block of a script.
type Case struct {
	// Pos is file:line of the command, for failure messages.
	Pos string
	// Cmd is the command's first word; Args the rest of its line.
	Cmd  string
	Args []string
	// Input holds the lines between the command and ----.
	Input []string
	// Output is the expected output: the lines after ----, each ending
	// in a newline, or "" when there are none.
	Output string
}

// Parse splits a script file into cases.
func Parse(t *testing.T, path string) []Case {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var cases []Case
	for i := 0; i < len(lines); {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			i++
			continue
		}
		c := Case{Pos: fmt.Sprintf("%s:%d", path, i+1)}
		f := strings.Fields(l)
		c.Cmd, c.Args = f[0], f[1:]
		i++
		for ; i < len(lines) && lines[i] != "----"; i++ {
			c.Input = append(c.Input, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("%s: no ---- separator", c.Pos)
		}
		i++
		// The expected output ends at the first blank line, so an
		// output cannot hold one: the format's one restriction, as in
		// datadriven without its "----\n----" double separator.
		var out []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			out = append(out, lines[i])
		}
		if len(out) > 0 {
			c.Output = strings.Join(out, "\n") + "\n"
		}
		cases = append(cases, c)
	}
	return cases
}

// rewriteFile replaces what follows each ---- with the actual output,
// keeping everything else (comments, commands) as it is.
func rewriteFile(t *testing.T, path string, actual []string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var b strings.Builder
	k := 0
	for i := 0; i < len(lines); i++ {
		b.WriteString(lines[i])
		if i < len(lines)-1 {
			b.WriteByte('\n')
		}
		if lines[i] == "----" {
			for i+1 < len(lines) && lines[i+1] != "" {
				i++ // skip the old output
			}
			b.WriteString(actual[k])
			k++
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Run runs every script matching glob as a subtest named after the file.
// For each file it calls start once (a fresh world per script) and the
// function start returns once per case, in order.
func Run(t *testing.T, glob string, start func(t *testing.T) func(t *testing.T, c Case) string) {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts match %s: %v", glob, err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			cases := Parse(t, path)
			run := start(t)
			var actual []string
			for _, c := range cases {
				got := run(t, c)
				actual = append(actual, got)
				if !*rewrite && got != c.Output {
					t.Errorf("%s: %s %s\n--- want\n%s--- got\n%s", c.Pos, c.Cmd, strings.Join(c.Args, " "), c.Output, got)
				}
			}
			if *rewrite {
				rewriteFile(t, path, actual)
			}
		})
	}
}
