// Command flashreturnd is the flashreturn daemon: with no flags it runs a
// complete system on one machine (an embedded NATS server with JetStream,
// one worker per partition with Badger state, the HTTP endpoint). See
// README.md and `flashreturnd --help`.
//
// Its one job is wiring: it turns flags and FLASHRETURN_* environment
// variables into a pipeline.Config, hands the daemon its HTTP handler
// (pipeline/httpapi, built over what the daemon exposes), maps signals
// to the daemon's life (SIGINT and SIGTERM drain, SIGHUP reloads the
// policy file) and maps the outcome to an exit code. The subcommands
// `policy show|check` and `replay` are thin shells over
// internal/policyfile and pipeline/replay. No decision, no state and no
// stream layout is defined here: a rule that lived in this package would
// not hold for the tests and tools that build a pipeline.Daemon directly.
//
// # Invariants
//
//   - Every default comes from pipeline/defaults, so a flag left unset
//     means what the same Config field left zero means, and `replay` with
//     no flags reads the streams as a daemon with no flags wrote them
//     (TestFlagDefaultsAreConfigDefaults holds the two together).
//   - The command line wins over the environment, which wins over the
//     default: the environment is applied first, then the flags parsed
//     over it. A malformed environment value is an error, never ignored,
//     since a silently ignored FLASHRETURN_PARTITIONS would repartition
//     nothing but decide with the wrong P.
//   - Exit codes: 0 after a clean drain (or --help), 1 when the daemon
//     stopped on an error (a permanent setup error, a lost store), 2 for
//     a usage or configuration error found before anything started. An
//     orchestrator restarts on 1 and should not on 2.
//   - The NATS URL is never printed with its credentials (pipeline
//     redacts it in every log line and error it writes).
//   - Every goroutine started here has an owner that waits for it before
//     run returns (the SIGHUP forwarder ends before the process exits).
//
// # Callers
//
// Operators and their process managers (systemd, Kubernetes; see
// deploy/), the crash and cluster tests of this package, which re-run the
// test binary as the daemon (TestMain with FLASHRETURND_CHILD), and
// bench/, which starts the built binary.
package main
