package lint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// purityRule is what one pure package may not do. The business rules
// (internal/core) and the cluster ownership machine (internal/ownership)
// are pure so that their outputs depend only on their inputs: the same
// state, event, policy and time give the same effects and actions, in a
// replay, in a script test and in production. A clock read, a random
// draw or an IO call would make that false silently, so the rule is
// checked here rather than trusted to review.
type purityRule struct {
	// Why ends every error: what the package takes instead.
	Why string
	// ExtraImports and ExtraCalls add to the shared bans.
	ExtraImports []string
	ExtraCalls   []string
}

// pure lists the pure packages and their own additions to the bans.
var pure = map[string]purityRule{
	// Core also may not embed zone data or read the machine's zone: the
	// shoppers' zone is configuration (Env), so a machine in another zone
	// decides alike.
	pkgCore: {Why: "core takes time only from events and zones only from Env",
		ExtraImports: []string{"time/tzdata"},
		ExtraCalls:   []string{"time.LoadLocation", "time.LoadLocationFromTZData", "time.Local"}},
	// The ownership machine gets no context: cancellation is the IO
	// loop's business; the machine only answers.
	pkgOwner: {Why: "ownership takes the time as an input",
		ExtraImports: []string{"context"}},
}

// bannedImports may not be imported by a pure package's non-test files:
// IO, randomness, concurrency, process state, logging.
var bannedImports = []string{
	"bufio", "embed", "io", "io/fs", "io/ioutil",
	"os", "os/exec", "os/signal", "path/filepath",
	"net", "net/http", "syscall", "plugin",
	"math/rand", "math/rand/v2", "crypto/rand",
	"log", "log/slog", "runtime", "sync",
	"sync/atomic", "unsafe", "testing",
}

// bannedTransitive may not be reached even indirectly: stdlib fmt and
// crypto/sha256 link os, but the pure packages call none of it; nothing
// should link the network or a random source.
var bannedTransitive = []string{"net", "math/rand", "math/rand/v2", "crypto/rand", "os/exec"}

// bannedCalls read the clock or sleep: time is an input.
var bannedCalls = []string{
	"time.Now", "time.Since", "time.Until", "time.Sleep",
	"time.After", "time.AfterFunc", "time.Tick",
	"time.NewTimer", "time.NewTicker",
}

// TestPurity keeps each pure package pure: no banned import (directly, or
// the network, randomness or non-stdlib code transitively), no clock call
// and no goroutine in its non-test files.
func TestPurity(t *testing.T) {
	m := loadModule(t)
	for dir, rule := range pure {
		pkg := m.Packages[dir]
		if pkg == nil {
			t.Errorf("pure package %s not found", dir)
			continue
		}
		imports := append(append([]string{}, bannedImports...), rule.ExtraImports...)
		calls := append(append([]string{}, bannedCalls...), rule.ExtraCalls...)
		var violations []string
		fset := token.NewFileSet()
		for _, name := range pkg.Files {
			f, err := parser.ParseFile(fset, m.abs(name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if slices.Contains(imports, p) || !isStd(p) {
					violations = append(violations, fset.Position(imp.Pos()).String()+": imports "+p+": "+rule.Why+", and uses only the standard library without IO")
				}
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.GoStmt:
					violations = append(violations, fset.Position(n.Pos()).String()+": go statement: a pure package starts no goroutines")
				case *ast.SelectorExpr:
					if id, ok := n.X.(*ast.Ident); ok && slices.Contains(calls, id.Name+"."+n.Sel.Name) {
						violations = append(violations, fset.Position(n.Pos()).String()+": "+id.Name+"."+n.Sel.Name+": "+rule.Why)
					}
				}
				return true
			})
		}
		violations = append(violations, transitive(t, m, dir)...)
		report(t, dir+" purity", violations)
	}
}

// transitive lists what dir reaches that it must not: non-standard
// packages and the banned transitive ones.
func transitive(t *testing.T, m *module, dir string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Log("go command not found; transitive purity check skipped")
		return nil
	}
	cmd := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", "./"+dir)
	cmd.Dir = m.Root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	self := m.Path + "/" + dir
	var v []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, std, _ := strings.Cut(line, " ")
		if path == self {
			continue
		}
		if std != "true" {
			v = append(v, dir+" depends on non-standard package "+path)
		}
		for _, b := range bannedTransitive {
			if path == b || strings.HasPrefix(path, b+"/") {
				v = append(v, dir+" reaches "+path)
			}
		}
	}
	return v
}
