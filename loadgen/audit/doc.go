// Package audit is loadgen's referee: the [Tracker] records what a run
// sent and what came back on FR_OUT and FR_DLQ while the run goes on,
// and [Run] checks it against the contract and the world once the
// outputs have drained. The loadgen package documentation lists the
// checks; [LifecycleOf] counts what the after-sales lifecycle did.
//
// Invariants:
//
//   - The Tracker is safe for concurrent use (the sender, the publisher,
//     two ordered consumers and the sampler share it) and never reads the
//     world's growing slices from the consumers' goroutines: what a
//     check needs about a request is copied when the request is sent.
//   - A check never fails a correct target. Where the order of two
//     events is uncertain (a timer, a re-sent publish) the checks take
//     the kinder reading and may miss a violation in that rare order;
//     checks that need a preset's numbers (72 h, 7 days, 500000 fen,
//     penalty 50) are skipped or loosened under another policy and say
//     so in [Check.Skipped].
//   - Run and LifecycleOf must be called after the drain: run early,
//     they fail a correct target for outputs still on their way.
//   - A failed check lists at most five example ids, so a report of a
//     broken run stays readable and bounded.
//
// Callers: loadgen (the run loop feeds the Tracker and calls Run and
// LifecycleOf for the report), cmd/loadgen through loadgen's Report. It
// imports loadgen/world and loadgen/contract, nothing above them.
package audit
