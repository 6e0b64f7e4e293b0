// Package apply is the deterministic application of inbound events to a
// partition's state, shared by the live partition worker (pipeline) and
// replay (pipeline/replay): the event-time clock and its timers
// (Stepper), the future-time rule (FutureTime), the merchant profile in
// force at an event's ingest time (VersionAt), the decision trace record
// stored beside the state (TraceRecord), and the live shadow policy
// (Shadow), which the Stepper runs on a copy of the state.
//
// Why a package of its own: replay's promise is that it decides what the
// daemon decided for the same stored events. That holds only while both
// step events through the same code. With this code inside pipeline,
// replay would have to import the whole partition runtime (its NATS
// connections, Badger, the cluster) to reach it, and every change to the
// runtime would be a change to replay's dependencies; here, what must
// stay identical between the two lives in one place that imports only the
// core (and state/record's pure encoded-size bound, which bounds the
// timers one event fires).
//
// # Invariants
//
//   - Same events, same stored times, same policy and merchants: same
//     effects in the same order. Nothing here reads the wall clock or a
//     goroutine's timing (EncodeTrace's decided_at is the one wall-clock
//     value, and it is not an output).
//   - Timers fire from the partition's event time (the largest at seen,
//     clock events included) before the event that moved it is applied,
//     in (deadline, user) order, at most FireMaxUsers shoppers and about
//     FireMaxBytes of their state per event; the rest stay due for the
//     next events that move the clock. The bounds are constants, so a
//     replay fires each timer at the same event.
//   - An event dated more than MaxFuture after its stream stored it is a
//     dead letter, judged against the stored time, never the local clock.
//   - The shadow policy never changes the live state: it decides on a
//     clone and only its counts are kept.
//
// # Callers
//
// pipeline (the worker's Stepper, the merchant view's versions, the
// daemon's Shadow and trace records), pipeline/replay (Stepper,
// FutureTime, VersionAt) and pipeline/httpapi (TraceRecord, PolicyRef,
// ShadowSummary in its answers).
package apply
