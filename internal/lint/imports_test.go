package lint

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// importRule is what one package's non-test files may import besides the
// standard library.
type importRule struct {
	// Internal lists module packages, relative to the module root.
	Internal []string
	// Modules lists third-party module paths; a package path inside one
	// ("github.com/nats-io/nats.go/jetstream") is allowed by its module.
	Modules []string
	// DenyStd lists standard-library packages the package may not import
	// even though they are standard.
	DenyStd []string
}

// Third-party modules, named once so that the table reads as layers.
const (
	modSonic    = "github.com/bytedance/sonic"
	modBadger   = "github.com/dgraph-io/badger/v4"
	modMetrics  = "github.com/VictoriaMetrics/metrics"
	modNATS     = "github.com/nats-io/nats.go"
	modServer   = "github.com/nats-io/nats-server/v2"
	modYAML     = "gopkg.in/yaml.v3"
	modHdr      = "github.com/HdrHistogram/hdrhistogram-go"
	modGrafana  = "github.com/grafana/grafana-foundation-sdk/go"
	modXSys     = "golang.org/x/sys"
	pkgCore     = "internal/core"
	pkgOwner    = "internal/ownership"
	pkgWire     = "internal/wire"
	pkgPolicy   = "internal/policyfile"
	pkgState    = "state"
	pkgPipeline = "pipeline"
	pkgLoadgen  = "loadgen"
	pkgGrafana  = "deploy/grafana"
)

// pureDeny is the standard library a pure package may not reach for: the
// file system, the network, processes, randomness. internal/core and
// internal/ownership check the full list, clock calls and goroutines in
// TestPurity (purity_test.go); this is the module-wide net under them.
var pureDeny = []string{"os", "os/exec", "os/signal", "io/fs", "net", "net/http", "syscall", "math/rand", "math/rand/v2", "crypto/rand", "log", "log/slog"}

// allowedImports is the import graph the module keeps, derived from the
// tree of issue 17 (go list -f '{{.Imports}}' ./...) and then narrowed to
// the rule that imports point down:
//
//	internal/core, internal/ownership      pure model, stdlib only
//	internal/wire, internal/policyfile     the contract and the policy file, on core
//	state                                  Badger, on core and the policy codec
//	pipeline                               the IO shell, on everything above
//	cmd/*, bench/*, deploy/*               binaries and tooling, on top
//	loadgen                                a client: speaks the contract, never the daemon's insides
//
// A package that is not in the table fails the test with what it imports,
// so that a new package is placed in a layer on purpose, by editing this
// table, rather than by whatever it happened to import first.
var allowedImports = map[string]importRule{
	pkgCore:  {DenyStd: pureDeny},
	pkgOwner: {DenyStd: pureDeny},
	// wire does no IO and reads no clock (its doc): the decoder is sonic.
	pkgWire: {Internal: []string{pkgCore}, Modules: []string{modSonic},
		DenyStd: []string{"os", "os/exec", "net", "net/http", "syscall", "math/rand", "math/rand/v2", "log", "log/slog"}},
	// policyfile reads a file (Load) and YAML; it is below state, which
	// stores policies in its own codec.
	pkgPolicy: {Internal: []string{pkgCore}, Modules: []string{modYAML}},
	// script is the datadriven runner of the pure packages' tests.
	"internal/script": {},
	// lint has doc.go only; its tests read the tree with the stdlib.
	"internal/lint": {},
	pkgState:        {Internal: []string{pkgCore, pkgPolicy, "state/record"}, Modules: []string{modBadger, modMetrics}},
	// record is the stored byte formats: below state, no Badger (it
	// encodes; state stores). recordtest holds fixtures for tests only.
	"state/record":            {Internal: []string{pkgCore, pkgPolicy}},
	"state/record/recordtest": {Internal: []string{pkgCore, "state/record"}},
	pkgPipeline: {Internal: []string{pkgCore, pkgOwner, pkgWire, pkgPolicy, pkgState,
		"pipeline/apply", "pipeline/cluster", "pipeline/defaults", "pipeline/httpapi", "pipeline/merchants", "pipeline/opsmetrics", "pipeline/outbound",
		"pipeline/stages", "pipeline/streams", "state/record"},
		Modules: []string{modNATS, modServer, modMetrics, modSonic}},
	// pipeline's own layers (see pipeline/doc.go's map): defaults at the
	// bottom, then streams; apply is the deterministic step shared by the
	// workers and replay; cluster and httpapi get the runtime through
	// hooks and an interface, so that none of them imports pipeline.
	"pipeline/defaults": {},
	"pipeline/streams":  {Internal: []string{pkgWire, "pipeline/defaults"}, Modules: []string{modNATS, modServer}},
	// apply reads state/record's encoded-size bound (pure) to bound the
	// timers one event fires.
	"pipeline/apply": {Internal: []string{pkgCore, pkgWire, "state/record"}, Modules: []string{modMetrics, modSonic}},
	"pipeline/cluster": {Internal: []string{pkgOwner, pkgWire, "pipeline/defaults", "pipeline/streams", pkgState},
		Modules: []string{modNATS, modMetrics, modSonic}},
	"pipeline/httpapi": {Internal: []string{pkgCore, pkgWire, "pipeline/apply", "pipeline/cluster", "pipeline/streams", pkgState},
		Modules: []string{modMetrics, modSonic}},
	"pipeline/replay": {Internal: []string{pkgCore, pkgWire, "pipeline/apply", "pipeline/defaults", "pipeline/streams"},
		Modules: []string{modNATS}},
	// merchants is the merchant view: FR_MERCHANT in, profiles out.
	"pipeline/merchants": {Internal: []string{pkgCore, pkgWire, "pipeline/apply", "pipeline/streams"}, Modules: []string{modNATS, modMetrics}},
	// outbound is the publishing protocol (atomic batches, markers): it
	// sees outputs as stored records, never the core or the state store.
	"pipeline/outbound": {Internal: []string{"pipeline/streams", "state/record"}, Modules: []string{modNATS, modMetrics}},
	// stages is the stage histograms only: metrics, no NATS, no state.
	"pipeline/stages": {Modules: []string{modMetrics}},
	// opsmetrics is the operator's numbers the status page reads back.
	"pipeline/opsmetrics": {Internal: []string{pkgCore, pkgWire, "pipeline/httpapi", "pipeline/stages"}, Modules: []string{modMetrics}},
	// testkit is used by the tests of every layer, so it imports no
	// module package: a test of state must not link the daemon.
	"internal/testkit": {Modules: []string{modNATS, modServer}},
	// loadgen is a publisher and reader of the contract: core's types and
	// wire's encoders are the contract in code; pipeline and state are the
	// daemon it measures from outside.
	pkgLoadgen: {Internal: []string{"loadgen/audit", "loadgen/contract", "loadgen/faults", "loadgen/world"},
		Modules: []string{modNATS, modHdr, modSonic}},
	// loadgen's own layers, pointing down: contract <- world <- audit <-
	// loadgen; faults (processes and signals) stands beside them. None
	// imports internal/*: loadgen is an outside client with its own copy
	// of the contract (loadgen/contract, held equal to internal/wire by
	// its test), so it never takes the daemon's word for it.
	"loadgen/contract": {Modules: []string{modSonic}},
	"loadgen/world":    {Internal: []string{"loadgen/contract"}},
	"loadgen/audit":    {Internal: []string{"loadgen/contract", "loadgen/world"}, Modules: []string{modHdr}},
	"loadgen/faults":   {Internal: []string{"loadgen/contract"}, Modules: []string{modXSys}},
	"cmd/flashreturnd": {Internal: []string{pkgCore, pkgWire, pkgPolicy, pkgState, pkgPipeline,
		"pipeline/cluster", "pipeline/defaults", "pipeline/httpapi", "pipeline/replay", "pipeline/streams"},
		Modules: []string{modNATS, modServer, modMetrics, modSonic}},
	"cmd/loadgen": {Internal: []string{pkgLoadgen, "loadgen/faults"}, Modules: []string{modXSys, modNATS}},
	// The relay is the ceiling the daemon is compared with: it may share
	// the contract's names, not the daemon's code.
	"bench/relay":    {Internal: []string{pkgCore, pkgWire}, Modules: []string{modNATS, modServer}},
	pkgGrafana:       {Modules: []string{modGrafana}},
	"deploy/dashgen": {Internal: []string{pkgGrafana}},
	// deploy has tests only (Prometheus and Grafana against a live daemon).
	"deploy": {},
}

// isStd reports whether an import path is the standard library's: its
// first element has no dot (the go tool's own rule).
func isStd(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".")
}

// inModule reports whether import path p is module mod or inside it.
func inModule(p, mod string) bool { return p == mod || strings.HasPrefix(p, mod+"/") }

// checkImport returns why package dir (a module-relative directory) may
// not import p, or "" when it may. Rules that hold for test files too are
// applied when test is true; the table applies to non-test files only,
// because tests legitimately reach up (loadgen's tests start a daemon).
func checkImport(modPath, dir, p string, test bool) string {
	internal, isInternal := strings.CutPrefix(p, modPath+"/")
	if p == modPath {
		internal, isInternal = ".", true
	}
	// Rules that point down, for every file.
	if isInternal {
		switch {
		case internal == "cmd" || strings.HasPrefix(internal, "cmd/"):
			return "nothing imports a command (cmd/)"
		case strings.HasPrefix(internal, "bench/"):
			return "nothing imports the benchmarks (bench/)"
		}
	}
	if test {
		return ""
	}
	if isInternal {
		switch {
		case strings.HasPrefix(dir, "internal/") && !strings.HasPrefix(internal, "internal/"):
			return "internal/* imports only internal/* (it sits below the IO shell)"
		case (dir == pkgLoadgen || strings.HasPrefix(dir, pkgLoadgen+"/")) && (internal == pkgPipeline || internal == pkgState ||
			strings.HasPrefix(internal, pkgPipeline+"/") || strings.HasPrefix(internal, pkgState+"/")):
			return "loadgen measures the daemon from outside: never pipeline or state"
		case strings.HasPrefix(internal, "deploy/") && dir != "deploy/dashgen":
			return "only deploy/dashgen imports deploy/*"
		}
	}
	rule, ok := allowedImports[dir]
	if !ok {
		return "package " + dir + " has no entry in allowedImports: place it in a layer"
	}
	switch {
	case isInternal:
		if !slices.Contains(rule.Internal, internal) {
			return fmt.Sprintf("not in its allowed module packages %q", rule.Internal)
		}
	case isStd(p):
		if slices.Contains(rule.DenyStd, p) {
			return "a standard package this package must not use (IO, randomness or logging)"
		}
	default:
		if !slices.ContainsFunc(rule.Modules, func(mod string) bool { return inModule(p, mod) }) {
			return fmt.Sprintf("not in its allowed third-party modules %q", rule.Modules)
		}
	}
	return ""
}

// TestImports checks every tracked .go file's imports against the rules
// above and lists every violation; it also lists table entries for
// packages that no longer exist, so the table does not rot.
func TestImports(t *testing.T) {
	m := loadModule(t)
	var bad []string
	fset := token.NewFileSet()
	for _, d := range m.sortedDirs() {
		pkg := m.Packages[d]
		if _, ok := allowedImports[d]; !ok && len(pkg.Files) > 0 {
			// Say once what the package imports, then each import below.
			bad = append(bad, fmt.Sprintf("%s: no entry in allowedImports (imports %s)", d, strings.Join(moduleImports(t, m, fset, pkg), " ")))
		}
		for _, group := range []struct {
			files []string
			test  bool
		}{{pkg.Files, false}, {pkg.Tests, true}} {
			for _, f := range group.files {
				af, err := parser.ParseFile(fset, m.abs(f), nil, parser.ImportsOnly)
				if err != nil {
					bad = append(bad, fmt.Sprintf("%s: %v", f, err))
					continue
				}
				for _, imp := range af.Imports {
					p, _ := strconv.Unquote(imp.Path.Value)
					why := checkImport(m.Path, d, p, group.test)
					if why == "" || (strings.HasPrefix(why, "package ") && !group.test) {
						continue // unlisted packages are reported once above
					}
					bad = append(bad, fmt.Sprintf("%s:%d: imports %s: %s", f, fset.Position(imp.Pos()).Line, p, why))
				}
			}
		}
	}
	for d := range allowedImports {
		if _, ok := m.Packages[d]; !ok {
			bad = append(bad, fmt.Sprintf("allowedImports has %s, which is no package of the tree any more", d))
		}
	}
	report(t, "import", bad)
}

// moduleImports lists the non-stdlib imports of a package's non-test
// files, for the message about a package missing from the table.
func moduleImports(t *testing.T, m *module, fset *token.FileSet, pkg *goPackage) []string {
	t.Helper()
	var out []string
	for _, f := range pkg.Files {
		af, err := parser.ParseFile(fset, m.abs(f), nil, parser.ImportsOnly)
		if err != nil {
			continue // reported by the caller's own parse
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !isStd(p) && !slices.Contains(out, p) {
				out = append(out, strings.TrimPrefix(p, m.Path+"/"))
			}
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		return []string{"stdlib only"}
	}
	return out
}

// TestImportRulesSeeViolations runs checkImport on imports the rules must
// refuse and on some they must allow, so that a table edit that silently
// allows everything fails here.
func TestImportRulesSeeViolations(t *testing.T) {
	const mod = "example.com/m"
	for _, c := range []struct {
		dir, imp string
		test     bool
		refused  bool
	}{
		{pkgCore, "os", false, true},
		{pkgCore, "strings", false, false},
		{pkgCore, mod + "/internal/wire", false, true},
		{pkgCore, modSonic, false, true},
		{pkgWire, mod + "/internal/core", false, false},
		{pkgWire, modSonic + "/decoder", false, false},
		{pkgWire, mod + "/pipeline", false, true},
		{pkgState, modBadger + "/options", false, false},
		{pkgState, mod + "/pipeline", false, true},
		{pkgLoadgen, mod + "/pipeline", false, true},
		{pkgLoadgen, mod + "/pipeline", true, false},
		{pkgLoadgen, mod + "/state", false, true},
		{pkgPipeline, mod + "/cmd/flashreturnd", false, true},
		{pkgPipeline, mod + "/cmd/flashreturnd", true, true},
		{pkgPipeline, mod + "/loadgen", false, true},
		{"deploy/dashgen", mod + "/deploy/grafana", false, false},
		{pkgPipeline, mod + "/deploy/grafana", false, true},
		{"internal/newthing", "strings", false, true},
	} {
		why := checkImport(mod, c.dir, c.imp, c.test)
		if (why != "") != c.refused {
			t.Errorf("checkImport(%s imports %s, test=%v) = %q, want refused=%v", c.dir, c.imp, c.test, why, c.refused)
		}
	}
}

// Guard: the table's module constants must be modules of go.mod, or the
// rules allow an import nobody can build.
func TestImportTableModulesExist(t *testing.T) {
	m := loadModule(t)
	gomod, err := os.ReadFile(m.abs("go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for dir, r := range allowedImports {
		for _, mod := range r.Modules {
			if !strings.Contains(string(gomod), mod+" ") {
				bad = append(bad, fmt.Sprintf("allowedImports[%s] names module %s, which go.mod does not require", dir, mod))
			}
		}
	}
	report(t, "import-table", bad)
}
