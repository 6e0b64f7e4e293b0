package pipeline

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestImportsPointDown holds the pipeline packages to the cut their docs
// describe: each subpackage imports only the module packages listed here
// (below it), none imports pipeline, and internal/testkit imports no
// module package at all (or the tests of the packages it serves could
// not use it). A new import across the cut fails here first, where the
// reason for the cut is one file away.
func TestImportsPointDown(t *testing.T) {
	const mod = "github.com/flashreturn/flashreturn/"
	allowed := map[string][]string{
		"defaults":            {},
		"streams":             {"pipeline/defaults"},
		"apply":               {"internal/core", "internal/wire"},
		"cluster":             {"internal/ownership", "internal/wire", "pipeline/defaults", "pipeline/streams", "state"},
		"httpapi":             {"internal/core", "internal/wire", "pipeline/apply", "pipeline/cluster", "state"},
		"replay":              {"internal/core", "internal/wire", "pipeline/apply", "pipeline/defaults", "pipeline/streams"},
		"../internal/testkit": {},
	}
	for dir, ok := range allowed {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range ast.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				rel, inModule := strings.CutPrefix(path, mod)
				if inModule && !slices.Contains(ok, rel) {
					t.Errorf("%s imports %s, outside what its place in the cut allows %v", f, path, ok)
				}
			}
		}
	}
}
