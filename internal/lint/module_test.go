package lint

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// trackedFile is one entry of git's index.
type trackedFile struct {
	// Path is slash-separated and relative to the module root.
	Path string
	// Mode is git's octal mode: "100644", "100755", "120000" (symlink),
	// "160000" (submodule).
	Mode string
}

// goPackage is one directory of tracked .go files.
type goPackage struct {
	// Dir is slash-separated and relative to the module root ("." for the
	// root).
	Dir string
	// Files and Tests are the tracked non-test and _test.go files, with
	// their module-relative paths, sorted.
	Files, Tests []string
}

// module is what the checks read: the module's root, its path and the
// files git tracks under the root.
type module struct {
	Root, Path string
	Files      []trackedFile
	// Packages by Dir, only directories the go tool builds (not testdata,
	// not _ or . prefixed).
	Packages map[string]*goPackage
}

var (
	loadOnce sync.Once
	loaded   *module
	loadErr  error
	skipMsg  string
)

// loadModule reads the module once per test binary; every check shares it.
func loadModule(t *testing.T) *module {
	t.Helper()
	loadOnce.Do(func() { loaded, skipMsg, loadErr = readModule() })
	if skipMsg != "" {
		t.Skip(skipMsg)
	}
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

func readModule() (m *module, skip string, err error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
	m = &module{Root: dir, Packages: map[string]*goPackage{}}
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return nil, "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			m.Path = strings.Trim(strings.TrimSpace(p), `"`)
			break
		}
	}
	if m.Path == "" {
		return nil, "", errors.New("go.mod names no module")
	}

	git, err := exec.LookPath("git")
	if err != nil {
		return nil, "git not found: the checks read only git-tracked files", nil
	}
	cmd := exec.Command(git, "ls-files", "-s", "-z", "--full-name", "--", ".")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "not a git repository") {
			return nil, "not a git work tree (" + dir + "): the checks read only git-tracked files", nil
		}
		return nil, "", errors.New("git ls-files: " + err.Error() + ": " + stderr.String())
	}
	// --full-name gives paths from the repository root; the module root
	// may sit below it.
	prefix, err := exec.Command(git, "-C", dir, "rev-parse", "--show-prefix").Output()
	if err != nil {
		return nil, "", errors.New("git rev-parse --show-prefix: " + err.Error())
	}
	pfx := strings.TrimSpace(string(prefix))
	for rec := range bytes.SplitSeq(out, []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		// "<mode> <object> <stage>\t<path>"
		meta, p, ok := strings.Cut(string(rec), "\t")
		if !ok {
			return nil, "", errors.New("git ls-files: unexpected record " + string(rec))
		}
		p = strings.TrimPrefix(p, pfx)
		mode, _, _ := strings.Cut(meta, " ")
		m.Files = append(m.Files, trackedFile{Path: p, Mode: mode})
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	m.Files = slices.CompactFunc(m.Files, func(a, b trackedFile) bool { return a.Path == b.Path })

	for _, f := range m.Files {
		if !strings.HasSuffix(f.Path, ".go") || !buildable(f.Path) || f.Mode == "120000" {
			continue
		}
		if _, err := os.Stat(m.abs(f.Path)); err != nil {
			continue // deleted in the work tree, not yet committed
		}
		d := path.Dir(f.Path)
		pkg := m.Packages[d]
		if pkg == nil {
			pkg = &goPackage{Dir: d}
			m.Packages[d] = pkg
		}
		if strings.HasSuffix(f.Path, "_test.go") {
			pkg.Tests = append(pkg.Tests, f.Path)
		} else {
			pkg.Files = append(pkg.Files, f.Path)
		}
	}
	return m, "", nil
}

// buildable reports whether the go tool looks at a file at path p: not
// under testdata, and no path element starting with "_" or ".".
func buildable(p string) bool {
	for _, e := range strings.Split(path.Dir(p), "/") {
		if e == "testdata" || (e != "." && (strings.HasPrefix(e, "_") || strings.HasPrefix(e, "."))) {
			return false
		}
	}
	base := path.Base(p)
	return !strings.HasPrefix(base, "_") && !strings.HasPrefix(base, ".")
}

// abs returns the file system path of a module-relative path.
func (m *module) abs(p string) string { return filepath.Join(m.Root, filepath.FromSlash(p)) }

// sortedDirs returns the package directories in order, so that reports
// are stable from run to run.
func (m *module) sortedDirs() []string {
	var dirs []string
	for d := range m.Packages {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	return dirs
}

// report prints every violation, sorted, then fails the test once with
// their count: a check that stopped at the first would make fixing the
// tree a loop of one-line discoveries.
func report(t *testing.T, what string, violations []string) {
	t.Helper()
	if len(violations) == 0 {
		return
	}
	sort.Strings(violations)
	for _, v := range violations {
		t.Log(v)
	}
	t.Errorf("%d %s violation(s), listed above", len(violations), what)
}

// countLines counts a file's lines (wc -l, which counts newlines) and
// its non-blank and comment lines by the style guide's formula.
func countLines(data []byte) (lines, nonBlank, comment int) {
	lines = bytes.Count(data, []byte{'\n'})
	for line := range bytes.Lines(data) {
		s := bytes.TrimLeft(line, " \t")
		s = bytes.TrimRight(s, "\r\n")
		if len(s) == 0 {
			continue
		}
		nonBlank++
		if bytes.HasPrefix(s, []byte("//")) {
			comment++
		}
	}
	return lines, nonBlank, comment
}
