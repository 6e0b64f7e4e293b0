// Package loadgen is flashreturn's load generator and auditor: an outside
// client written against shared/contract.md (it imports nothing of the
// daemon) that answers "how many return requests per second can this
// deployment take before shoppers wait, and does anything go wrong at that
// rate?".
//
// # World
//
// [NewGenerator] builds a seeded marketplace: shoppers (stars mostly 3-5,
// a 1-2 tail, Zipf-skewed activity so some are hot), merchants (most with
// one return address equal to their ship address, some mismatched or with
// none, some with their own auto-approval rules) and an endless sequence
// of events: credit.updated when a shopper first appears, then per order
// order.paid, order.shipped, order.delivered and, for about 6% of orders,
// return.requested (reason and kind mix, pickups, partial and excessive
// amounts, stale and early requests, cancellations) followed by
// logistics.tracking / pickup.done and inspection.result (a few bad).
// A configurable share of events is malformed (bad JSON, missing field,
// bad value, unknown type, subject mismatch) and must be dead-lettered.
// The same seed and run id give the same sequence. Delays inside an
// order's life are counted in events, not seconds, so the sequence does
// not depend on the rate it is sent at.
//
// # Open loop
//
// [Run] sends events on a [Shape]'s schedule ([Steady], [Double11],
// [Step]) whatever the target does: asynchronous JetStream publishes
// with a bounded number in flight, Nats-Msg-Id = event_id, stalls and
// errors retried and counted. An event's `at` is the run's wall-clock
// start plus its scheduled offset (RFC 3339, +08:00), so event time and
// the daemon's clock agree. The latency of a decision is its arrival
// time minus the request's scheduled send time (coordinated omission
// corrected, as wrk2 does), recorded in an HdrHistogram. Outputs are read
// with ordered consumers on FR_OUT and FR_DLQ that start at the streams'
// ends before the first publish, so none is missed or doubled.
//
// # Audit
//
// After the outputs drain (or the drain deadline passes), the run checks:
// every request got exactly one decision; no request got two refunds, a
// refund over the paid amount, or a refund without an approval; every
// malformed event reached FR_DLQ with the contract's reason and no valid
// one did; and the decisions the world implies for simple cases (a
// shopper under the preset's minimum stars is not approved unless a
// merchant rule admits the stars; amount over paid and unknown orders are
// rejected; stale or undelivered requests are not approved). A failed
// check sets [Report.Passed] false.
//
// # Throughput mode
//
// With Mode [ModeThroughput], Run pre-generates Config.Events valid events,
// sends them at Config.Rate (or as fast as the in-flight bound allows) and
// reports the sustained processing rate: events / (last completing output
// − first send). The target is done when every event has its output
// ([ExpectOutputs], the no-op relay of bench/relay) or every request has
// its decision and the inbound consumers have nothing pending
// ([ExpectDecisions], flashreturnd). bench/run.sh measures both this way.
//
// Callers: cmd/loadgen (flags to [Config]), bench/run.sh, and tests that
// call [Run] in-process against an embedded server.
package loadgen
