// Package httpapi is flashreturnd's HTTP endpoint: /metrics, /healthz,
// /readyz, the read-only query API (/v1/users/<user_id> and its
// requests), /v1/policy, /v1/shadow, /v1/cluster and the operator's
// status page (/ and its JSON, /api/status) with its embedded assets.
//
// It reads a daemon only through the Backend interface (which
// *pipeline.Daemon implements) and does not import pipeline: the daemon
// binds the listener (its bound address goes into the cluster member
// record) and cmd/flashreturnd passes New as the handler to serve there.
// Because of that direction, the answer shapes of the API (Status and
// its parts, the user and request views) are defined here and the daemon
// fills them: the JSON a client reads changes in this package only.
//
// # Invariants
//
//   - Read-only: no handler changes state or publishes anything.
//   - The query API reads committed state, so it may lag the stream by
//     one batch; in cluster mode it answers only from the partition
//     owner's state (pipeline/cluster routes it).
//   - Times are shown in the shoppers' zone, as the outputs carry them.
//   - It renders, it does not decide: a request's stage, refund, pickup,
//     close, effects and next deadline and a shopper's open requests,
//     exposure and trust come from internal/core's query functions
//     (core/query.go), the same rules decisions read. Re-deriving one
//     here would let the API and the decisions disagree after a rule
//     changes in core; http_test.go pins the JSON they produce.
//
// # Callers
//
// cmd/flashreturnd (New as pipeline.Config.HTTP) and the tests of
// pipeline and deploy, which serve the same handler.
package httpapi
