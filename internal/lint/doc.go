// Package lint holds the module-wide checks that keep the repository
// readable by a newcomer; it has no code besides this comment, only tests
// (go test ./internal/lint/, also run by `make lint`).
//
// Its one job is to fail when the tree drifts from the rules of
// ../shared/style.md and issue 17, and to print every violation at once
// (not the first), so that one run is a complete to-do list:
//
//   - files: no git-tracked file over 1 MB, and no tracked file with the
//     executable bit that is not a script starting with "#!" (a compiled
//     binary once sat at the root for months);
//   - imports: every package's non-test imports are in the allowed table
//     of imports_test.go, and the imports point down: nothing imports
//     cmd/, internal/* never imports pipeline, loadgen never imports
//     pipeline or state, only deploy/dashgen imports deploy/grafana;
//   - sizes: no non-test .go file over 800 lines, no package over 3,000
//     lines of non-test .go;
//   - comments: each package's comment share (lines whose first
//     non-blank characters are // over all non-blank lines of its non-test
//     .go files) is at least 0.25;
//   - docs: every package has a package doc comment.
//
// Invariants of the checks themselves: they read only files that git
// tracks (git ls-files from the module root, found by walking up to
// go.mod), so build output, editor files and data directories in a
// developer's tree never fail them, and a file that is not committed
// cannot pass them by accident either; they skip, saying why, only when
// there is no git work tree (a module zip), never on a violation.
//
// The purity of internal/core and internal/ownership (no clock reads, no
// goroutines, nothing IO-shaped reached transitively) is checked in those
// packages' own lint_test.go; the table here only keeps them on the
// standard library.
//
// Callers: none; `make lint` and `go test` run it.
package lint
