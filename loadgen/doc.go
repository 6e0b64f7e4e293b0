// Package loadgen is flashreturn's load generator and auditor: an outside
// client written against shared/contract.md (it imports nothing of the
// daemon) that answers "how many return requests per second can this
// deployment take before shoppers wait, and does anything go wrong at that
// rate?".
//
// # World
//
// [world.NewGenerator] builds a seeded marketplace: shoppers (stars mostly 3-5,
// a 1-2 tail, Zipf-skewed activity so some are hot), merchants (most with
// one return address equal to their ship address, some mismatched or with
// none, some with their own auto-approval rules) and an endless sequence
// of events: credit.updated when a shopper first appears, then per order
// order.paid, order.Shipped, order.delivered and, for about 6% of orders,
// return.requested (reason and kind mix, pickups, partial and excessive
// amounts, stale and early requests, cancellations) followed by
// logistics.tracking / pickup.done and inspection.result (a few bad).
// A configurable share of events is malformed (bad JSON, missing field,
// bad value, unknown type, subject mismatch) and must be dead-lettered.
// The same seed and run id give the same sequence. Delays inside an
// order's life are counted in events, not seconds, so the sequence does
// not depend on the rate it is sent at.
//
// The after-sales lifecycle (shared/domain.md: Money safety, After
// review, Input that cannot stand) adds, each sized by a
// [WorldOptions] fraction (0: the documented default, negative: off;
// [WorldOptions.Classic] turns them all off and gives, byte for byte,
// the sequence of before):
//
//   - review answers: a share of requests, whatever their decision, get
//     review.approved or review.rejected from the merchant or a platform
//     reviewer (some with a note), some a second answer; an answer to a
//     request not in review must change nothing;
//   - aged requests: the order and the request dated 3 days and 1 to 5
//     hours back, so that the 72-hour review deadline has passed when
//     the request arrives and a request in review is resolved by timeout
//     at the partition's next clock advance; their answers are late;
//   - unreturned goods: a return or exchange dated 7 days and 1 to 5
//     hours back with no tracking, pickup.done nor inspection, so that an
//     approved one is closed by its return deadline (and its advance, if
//     any, clawed back as not_returned);
//   - second requests on an order once its first is over: for the whole
//     paid amount (past the per-order ceiling once the first was
//     refunded) or split 60/40 (fits);
//   - splurges: a good shopper's three orders of 170000 to 250000 fen,
//     all three returns asked for before any goods go back, so that
//     promised advances reach the 500000-fen exposure cap;
//   - events that cannot stand, on a real shopper's subject: order.Shipped
//     or order.delivered for an order the shopper does not have,
//     follow-ups and answers for a request the shopper does not have (ids
//     of a "q" namespace), an event dated an hour ahead, a request with
//     amount_fen 0; each is followed by a new order of the same shopper
//     whose request must be decided.
//
// Dates: an event's `at` is its send time plus its shift. Only aged and
// unreturned requests and their orders are shifted (back, together, so
// that the 7-day window from the sign-off still holds), stale orders (10
// days back) and the future_time events (an hour ahead); every valid
// event is dated at or before its send, within the daemon's --max-future.
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
// corrected, as wrk2 does), recorded in an HdrHistogram; a send that is
// late because the sender was blocked (in-flight bound reached, target
// unreachable) is still measured from its schedule. Outputs are read
// with ordered consumers on FR_OUT and FR_DLQ that start at the streams'
// ends before the first publish, so none is missed or doubled.
//
// A publish that fails (connection lost, no responders, ack timed out) is
// re-sent with the same Nats-Msg-Id, as a real publisher would, as soon
// as the connection is back or after a backoff (50 ms doubling to 1 s),
// for at most Config.RetryFor (60 s; never beyond the streams' 2-minute
// duplicate window); only then is it given up, counted as failed and
// failed by the audit. The connection buffers nothing while it
// reconnects, and after a reconnect or a failed ack the sender settles
// everything in flight and re-sends the failures oldest first before it
// sends anything newer, so a shopper's events are stored in the order
// they were sent.
//
// # Audit
//
// After the outputs drain (or the drain deadline passes; the drain also
// waits for the resolutions that a deadline passed before the run makes
// due), the run checks:
//
//   - every request got exactly one decision; no request got two
//     refunds, a refund over the paid amount, or a refund without an
//     approval (at once, or by a resolution);
//   - every malformed event, and every well-formed one that cannot stand,
//     reached FR_DLQ with the contract's reason, its dead letter naming
//     the subject it was published to; no valid one did; nothing else
//     came out of an event that cannot stand, and its shopper's next
//     request was decided;
//   - the decisions the world implies for simple cases (a shopper under
//     the preset's minimum stars is not approved unless a merchant rule
//     admits the stars; amount over paid and unknown orders are
//     rejected; stale or undelivered requests are not approved);
//   - resolutions: a request in review ends in exactly one resolution,
//     its first answer's (by merchant or platform) or by timeout once its
//     review deadline passed (fast-track failures only: a safety failure
//     waits for a person, and merchant_unknown is left alone); none
//     without reason (approved at once, rejected, answered after a
//     cancellation, within its deadline); a close only by timeout, only
//     for an approved return or exchange past its return deadline, and
//     every such unreturned request closed; a close of an advanced
//     request sends its not_returned clawback (of the advanced amount)
//     and trust feedback (penalty 50); a reviewed approval advances
//     nothing;
//   - every output about a request names the policy (name and version)
//     of its request's decision;
//   - money: per order, refunds minus clawbacks of refunded money never
//     above paid_fen; a later request of an order past that ceiling is
//     rejected amount_exceeds_paid, one that fits (once the earlier ones
//     are over) is not; at every approval at once, the shopper's
//     advanced and promised money not yet got back plus the request's
//     amount is at most 500000 fen.
//
// The lifecycle checks place each output in its shopper's input order
// (events of one user are processed in the order they were stored,
// which is the order loadgen sent them, but for a rare re-sent publish):
// a decision and an approval's effects at the request, a person's
// resolution at the first answer, a timeout right after the request, a
// refund at its trigger's input. Exposure counts, from the approval, a
// refund seen with advance: true or a pickup with replace: true, or,
// when no refund came, the preset's promise (tmall's return_refund,
// douyin's after shipment), until the inspection, a cancellation before
// any refund or the close. Where a position is uncertain the check takes
// the kinder one: it never fails a correct daemon for it, and may miss a
// violation in that rare order. Checks that need a preset's numbers
// (72 h, 7 days, 500000 fen, penalty 50) are skipped or loosened under
// another policy. A failed check sets [Report.Passed] false and lists up
// to five offending ids; [Report.Lifecycle] counts answers,
// resolutions by outcome and by whom, closes, not_returned clawbacks and
// dead letters by reason.
//
// # Throughput mode
//
// With Mode [ModeThroughput], Run pre-generates Config.Events valid events
// (dated at Config.Rate, or 1M/s when unlimited, so that none is dated
// ahead of its send), sends them at Config.Rate (or as fast as the
// in-flight bound allows) and
// reports the sustained processing rate: events / (last completing output
// − first send). The target is done when every event has its output
// ([ExpectOutputs], the no-op relay of bench/relay) or every request has
// its decision and the inbound consumers have nothing pending
// ([ExpectDecisions], flashreturnd). bench/run.sh measures both this way.
//
// # Against the relay
//
// A scenario run with [ExpectOutputs] drives the no-op relay with the
// same shape and event mix as the daemon's run and times each request's
// echo (read from fr.out.relay.return.>, not one echo per event) as its
// answer. Its latency is what JetStream, the stream layout and loadgen
// itself cost at that offered load with no decision work: the baseline
// the daemon's latency is compared with in the same bench/run.sh run.
// Decisions and dead letters are not audited (the relay makes neither).
//
// # Faults
//
// With Config.Spawn, Run starts the target (a flashreturnd command line,
// whose data directory lives on across restarts) as its child, its
// output going to a log file the report names, and sends nothing before
// the target answers its /readyz (or, for other programs, its NATS port
// accepts); Config.SpawnNATS also runs a separate nats-server, started
// first. Both are stopped at the end (SIGTERM, SIGKILL after 15 s) unless
// Config.KeepSpawned. Config.Faults is a schedule ([faults.ParseFaults]) such as
// kill9@15s,start@17s,sigterm@30s,start@31s,nats:kill9@40s,nats:start@42s:
// kill9, sigterm, sigstop, sigcont and start, on the daemon by default or
// on "nats:". loadgen carries them out itself on what it spawned and runs
// Config.FaultCmd for any other target (a cluster member, a container),
// which gets the action and target as arguments and in FLASHRETURN_FAULT
// and FLASHRETURN_FAULT_TARGET. A schedule is checked before the run:
// actions in an order that makes sense, the spawned processes running at
// the end (a run cannot drain without them), every fault within the
// shape. The open-loop schedule keeps running through a fault; the
// publishes it breaks are re-sent as above, and the audit at the end is
// the same one: nothing lost, nothing doubled.
//
// Each fault is logged as it happens (Config.FaultLog), listed in the
// report ([faults.FaultResult]: when, the pid, how long a restarted process took
// to be ready) and marked on the HTML report's time charts. Its decision
// gap is the longest time without a decision from the fault until the
// next disruptive fault: over all decisions (for one daemon, the outage
// its clients saw) and per partition, decisions being mapped to
// partitions as the daemon maps users (FNV-1a 32 of the user id modulo
// Config.Partitions).
//
// # Thresholds
//
// Config.Thresholds ([ParseThreshold]) are rules such as p99<10ms,
// p99.9<50ms, max<1s, drain<2s, backlog_clear<5s, gap<5s, decided>99.9%,
// decided>800/s, dlq<10 or dlq_unexpected==0, evaluated on the report
// ([Report.ApplyThresholds]); the text, JSON and HTML reports list each
// with its measured value. A broken threshold does not fail the audit:
// [Report.Passed] is the audit's verdict, [Report.ThresholdsPassed] the
// thresholds'.
//
// # Exit codes
//
// cmd/loadgen exits 0 when the audit passed and every threshold was met,
// 1 when an audit check failed (whatever the thresholds), 2 on bad flags
// (a bad schedule or threshold included), 3 when the run could not be
// carried out (no server, no streams, a spawned target that would not
// start, interrupted), and 4 when the audit passed but a threshold was
// broken.
//
// # Packages
//
// Each package has one job, and imports point down only:
//
//   - loadgen (this package): the run loop: [Config] and its defaults,
//     the traffic shapes, the open-loop sender and its publisher with
//     same-Msg-Id retries, the per-second samples and step judgement,
//     and the [Report] with its text, JSON and HTML forms and the
//     thresholds. It imports every package below.
//   - loadgen/audit: the tracker of what came back and the end-to-end
//     audit run on it once the outputs drained.
//   - loadgen/faults: the fault schedule, the spawned processes and
//     their signals, and the decision gaps. It imports nothing of
//     loadgen, so it can be tested without a world or a server.
//   - loadgen/world: the seeded world and the encoding of its events.
//   - loadgen/contract: the contract's JSON shapes and strings, and the
//     codec; the bottom of the graph.
//
// The cut follows what changes together: a contract change touches
// contract (and the audit's expectations), a new kind of traffic touches
// world, a new check touches audit, a new disruption touches faults, and
// none of them touches the run loop.
//
// Callers: cmd/loadgen (flags to [Config]), bench/run.sh, bench/relay's
// test, and tests that call [Run] in-process against an embedded
// server.
package loadgen
