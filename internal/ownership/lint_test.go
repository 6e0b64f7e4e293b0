package ownership

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// bannedImports may not be imported by the package's (non-test) files:
// IO, randomness, concurrency, process state, logging. The machine's
// callers serialise it and do the IO; the moment it runs at is an input.
var bannedImports = map[string]bool{
	"bufio": true, "embed": true, "io": true, "io/fs": true, "io/ioutil": true,
	"os": true, "os/exec": true, "os/signal": true, "path/filepath": true,
	"net": true, "net/http": true, "syscall": true, "plugin": true,
	"math/rand": true, "math/rand/v2": true, "crypto/rand": true,
	"log": true, "log/slog": true, "runtime": true, "sync": true,
	"sync/atomic": true, "unsafe": true, "context": true, "testing": true,
}

// bannedTransitive may not be reached even indirectly (fmt links os, but
// the package calls none of it; nothing should link the network or a
// random source).
var bannedTransitive = []string{"net", "math/rand", "math/rand/v2", "crypto/rand", "os/exec"}

// bannedCalls read the clock or sleep: time is passed in.
var bannedCalls = map[string]bool{
	"time.Now": true, "time.Since": true, "time.Until": true, "time.Sleep": true,
	"time.After": true, "time.AfterFunc": true, "time.Tick": true,
	"time.NewTimer": true, "time.NewTicker": true,
}

// TestNoIOImports keeps the package pure: no banned import (directly, or
// the network, randomness or non-stdlib code transitively), no clock call
// and no goroutine in its non-test files.
func TestNoIOImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if bannedImports[p] || strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
				t.Errorf("%s imports %s: ownership does no IO and uses only the standard library", fset.Position(imp.Pos()), p)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: go statement: ownership starts no goroutines", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && bannedCalls[id.Name+"."+n.Sel.Name] {
					t.Errorf("%s: %s.%s: ownership takes the time as an input", fset.Position(n.Pos()), id.Name, n.Sel.Name)
				}
			}
			return true
		})
	}

	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found; transitive check skipped")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	self := ""
	if o, err := exec.Command(gobin, "list", ".").Output(); err == nil {
		self = strings.TrimSpace(string(o))
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, std, _ := strings.Cut(line, " ")
		if path == self {
			continue
		}
		if std != "true" {
			t.Errorf("ownership depends on non-standard package %s", path)
		}
		for _, b := range bannedTransitive {
			if path == b || strings.HasPrefix(path, b+"/") {
				t.Errorf("ownership reaches %s", path)
			}
		}
	}
}
