package lint

import (
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os"
	"strings"
	"testing"
)

// Limits of the style guide (common brief, issue 17). The reasons: a file
// over 800 lines or a package over 3,000 is more than a reviewer holds in
// mind at once (the anchors measured in shared/style.md stay near these);
// a 1 MB file is data or a binary, which belongs in a release or LFS, not
// in every clone.
const (
	maxTrackedBytes  = 1 << 20
	maxFileLines     = 800
	maxPackageLines  = 3000
	minCommentShare  = 0.25
	scriptMagic      = "#!"
	modeExecutable   = "100755"
	modeSymlink      = "120000"
	modeSubmodule    = "160000"
	modeExecutableFS = 0o111
)

// TestTrackedFiles: no tracked file over 1 MB, and no executable that is
// not a script. The index mode is what a clone gets, so it is the one
// checked; the work tree's bit is checked too, because a file made
// executable but not yet staged would otherwise pass until it is
// committed.
func TestTrackedFiles(t *testing.T) {
	m := loadModule(t)
	var bad []string
	for _, f := range m.Files {
		if f.Mode == modeSymlink || f.Mode == modeSubmodule {
			continue
		}
		fi, err := os.Stat(m.abs(f.Path))
		if err != nil {
			continue // deleted in the work tree; git status shows it
		}
		if fi.Size() > maxTrackedBytes {
			bad = append(bad, fmt.Sprintf("%s: %d bytes, over the %d-byte limit for a tracked file", f.Path, fi.Size(), maxTrackedBytes))
		}
		if f.Mode != modeExecutable && fi.Mode()&modeExecutableFS == 0 {
			continue
		}
		head, err := readHead(m.abs(f.Path), len(scriptMagic))
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", f.Path, err))
			continue
		}
		if string(head) != scriptMagic {
			bad = append(bad, fmt.Sprintf("%s: executable (mode %s, %v in the work tree) but not a script starting with %q", f.Path, f.Mode, fi.Mode().Perm(), scriptMagic))
		}
	}
	report(t, "tracked-file", bad)
}

// readHead returns the first n bytes of a file (fewer if it is shorter).
func readHead(name string, n int) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(f, b)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return b[:k], err
}

// packageStats is what the size and comment checks measure of one
// package's non-test files.
type packageStats struct {
	lines, nonBlank, comment int
	bigFiles                 []string
}

func measure(t *testing.T, m *module, pkg *goPackage) packageStats {
	t.Helper()
	var s packageStats
	for _, f := range pkg.Files {
		data, err := os.ReadFile(m.abs(f))
		if err != nil {
			t.Fatal(err)
		}
		l, nb, c := countLines(data)
		s.lines += l
		s.nonBlank += nb
		s.comment += c
		if l > maxFileLines {
			s.bigFiles = append(s.bigFiles, fmt.Sprintf("%s: %d lines, over %d for a non-test .go file", f, l, maxFileLines))
		}
	}
	return s
}

// TestSizes: no non-test .go file over 800 lines, no package over 3,000
// lines of non-test .go (wc -l).
func TestSizes(t *testing.T) {
	m := loadModule(t)
	var bad []string
	for _, d := range m.sortedDirs() {
		s := measure(t, m, m.Packages[d])
		bad = append(bad, s.bigFiles...)
		if s.lines > maxPackageLines {
			bad = append(bad, fmt.Sprintf("%s: package has %d lines of non-test .go, over %d", d, s.lines, maxPackageLines))
		}
	}
	report(t, "size", bad)
}

// TestCommentShare: per package, comment lines over non-blank lines of its
// non-test .go files is at least 0.25. The share is the style guide's
// measure of whether a file says why it is the way it is; the tests
// check what, only comments can carry the why.
func TestCommentShare(t *testing.T) {
	m := loadModule(t)
	var bad []string
	for _, d := range m.sortedDirs() {
		pkg := m.Packages[d]
		if len(pkg.Files) == 0 {
			continue // tests only: nothing to explain to a caller
		}
		s := measure(t, m, pkg)
		if s.nonBlank == 0 {
			continue
		}
		share := float64(s.comment) / float64(s.nonBlank)
		if share < minCommentShare {
			// How many comment lines would lift it: (c+x)/(n+x) >= min.
			need := (minCommentShare*float64(s.nonBlank) - float64(s.comment)) / (1 - minCommentShare)
			bad = append(bad, fmt.Sprintf("%s: comment share %.3f (%d of %d non-blank lines), under %.2f: about %d more comment lines", d, share, s.comment, s.nonBlank, minCommentShare, int(need)+1))
		}
	}
	report(t, "comment-share", bad)
}

// TestPackageDocs: every package has a package doc comment, and for a
// library it is in the go doc form "Package <name> ...". Packages with
// only test files are held to it too when they are a package of their own
// (deploy's tests, for example, are read as documentation of the deploy
// directory).
func TestPackageDocs(t *testing.T) {
	m := loadModule(t)
	var bad []string
	for _, d := range m.sortedDirs() {
		pkg := m.Packages[d]
		files := pkg.Files
		if len(files) == 0 {
			files = pkg.Tests
		}
		var name string
		var doc *string
		fset := token.NewFileSet()
		for _, f := range files {
			af, err := parser.ParseFile(fset, m.abs(f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", f, err))
				continue
			}
			if strings.HasSuffix(af.Name.Name, "_test") {
				continue
			}
			name = af.Name.Name
			if af.Doc != nil {
				txt := af.Doc.Text()
				doc = &txt
				break
			}
		}
		switch {
		case name == "":
			// only external test files: no package to document
		case doc == nil:
			bad = append(bad, fmt.Sprintf("%s: package %s has no package doc comment (add a doc.go: its one job, its invariants, its callers)", d, name))
		case name != "main" && !strings.HasPrefix(*doc, "Package "+name+" "):
			bad = append(bad, fmt.Sprintf("%s: package doc starts %q; go doc expects \"Package %s ...\"", d, firstLine(*doc), name))
		}
	}
	report(t, "package-doc", bad)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// TestLimitsSeeViolations makes sure the checks above can fail: each
// measure is run on a small synthetic input with a known answer.
func TestLimitsSeeViolations(t *testing.T) {
	src := []byte("package x\n\n// why\n\t// because\nfunc f() {} // trailing does not count\n   \n")
	lines, nb, c := countLines(src)
	if lines != 6 || nb != 4 || c != 2 {
		t.Errorf("countLines = %d %d %d, want 6 4 2", lines, nb, c)
	}
	if !buildable("a/b.go") || buildable("a/testdata/b.go") || buildable("_x/b.go") || buildable("a/.b.go") {
		t.Error("buildable disagrees with the go tool's rules")
	}
}
