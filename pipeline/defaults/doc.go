// Package defaults holds the settings that the daemon (pipeline.Config),
// its command-line flags (cmd/flashreturnd) and replay (pipeline/replay)
// must agree on: the partition count, the shoppers' time zone, the cache
// budget, the future-time bound and the like.
//
// # Invariants
//
//   - One value per setting, here and nowhere else: a flag's default, a
//     Config's zero-value default and replay's default all read the same
//     constant, so a replay run with no flags decides as a daemon run
//     with no flags did.
//   - The package is a leaf: constants and one loader, no state, no IO
//     but the time zone database.
//
// # Callers
//
// pipeline (Config.WithDefaults), pipeline/replay (Options), pipeline/cluster
// (cluster options) and cmd/flashreturnd (flag defaults).
package defaults
