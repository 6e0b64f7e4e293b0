// Package recordtest holds what the tests of state and state/record share:
// deterministic users (a typical shopper, and users with every field set
// for the golden files), the presets as shared pointers (and fresh copies,
// Preset, for resolving by version, not address), and the frozen
// version-1 encoder that writes the records the migration tests read.
//
// It is imported by tests only; nothing in the daemon links it. It
// imports core and nothing of state, so that record's own (internal)
// tests can import it without a cycle.
//
// # Invariants
//
//   - The fixtures are deterministic: the same call gives the same user,
//     so the golden files (state/record/testdata/user_v1.golden,
//     user_v2.golden) pin their encodings byte for byte.
//   - FullUserV1 sets every field version 1 knew, FullUser every field
//     of the current version, to non-zero values (edge values included),
//     so a codec that drops or swaps a field changes the golden bytes.
//   - AppendUserV1 never changes: version 1 is what release ea8a0fb
//     wrote, and the decoder must keep reading exactly that.
//
// # Callers
//
// state/record's codec tests (round trips, golden files, fuzz seeds,
// benchmarks) and state's store, policy, migration, crash and footprint
// tests.
package recordtest
