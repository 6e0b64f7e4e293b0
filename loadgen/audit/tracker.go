package audit

import (
	"encoding/base64"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/flashreturn/flashreturn/loadgen/contract"
	"github.com/flashreturn/flashreturn/loadgen/world"
)

// Latencies are recorded in microseconds, from 1 µs to 10 minutes, with
// three significant digits.
const (
	// Ten minutes is longer than any drain, so only a decision that never
	// really came could pass it; decisions beyond it are clamped to it,
	// not dropped, so a stalled target still shows as max. Three
	// significant digits bound the error at 0.1%, finer than any p99.9
	// threshold is stated, in a fixed-size histogram.
	histMinUS = 1
	histMaxUS = 600_000_000
	histSig   = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMinUS, histMaxUS, histSig) }

// reqRec is what the run knows about one request: when it was due, what
// the world planned for it and what came back for it.
type reqRec struct {
	// sched is the scheduled send, not the actual one: a send delayed by
	// a full in-flight window or a reconnect is charged to the target
	// (coordinated omission corrected). Measured from the actual send,
	// the latency would hide exactly the stalls a load test is for.
	sched     time.Duration // send offset the latency is measured from
	sent      bool
	failed    bool // never accepted by the server
	decisions int32
	decision  string
	reasons   []string
	policy    string // the decision's policy name
	policyKey string // the decision's policy name and version (interned)
	rule      string
	refunds   int32
	// The largest is enough: refund_not_over_paid only asks whether one
	// refund passed the paid amount, and a second refund fails
	// refund_at_most_once on its own.
	refundFen int64 // largest refund amount seen
	latency   time.Duration
	// what the world planned (copied when the request is sent, so that
	// the output consumers never read the generator while it grows)
	aged, unreturned, goods bool
	// outs are the outputs about the request other than its decision, in
	// arrival order.
	outs []outRec
	// dueCounted says the request is counted in tracker.due.
	dueCounted bool
}

// outRec is one output about a request, as the audit needs it.
type outRec struct {
	kind    string // contract.OutRefund, ...
	amount  int64
	trigger string
	advance bool
	replace bool
	outcome string
	by      string
	penalty int64
	reasons []string
	policy  string // name and version, interned; "" if either is missing
}

// badRec is one event that must be dead-lettered, matched to its dead
// letter by exact payload: a malformed event may have no event_id a
// parser could read, while the dead letter always carries the
// original bytes (payload_b64).
type badRec struct {
	sent    bool
	failed  bool
	seen    int
	reason  string // the reason the DLQ gave
	subject string // the subject the dead letter names
}

// Tracker collects what was sent and what came back. Its methods are safe
// for concurrent use: the publisher, the output consumers and the sampler
// share it.
type Tracker struct {
	// One mutex over everything, so that Snapshot reads counters that
	// agree with each other (see Counts); every critical section is a few
	// map and slice updates, and parsing happens before the lock is taken.
	mu   sync.Mutex
	gen  *world.Generator // for id parsing only (immutable parts)
	base time.Time

	reqs       []reqRec
	sentReqs   int64
	failedReqs int64
	failedBads int64
	decided    int64 // requests with at least one decision
	decisions  map[string]int64
	reasons    map[string]int64
	outputs    map[string]int64 // by kind
	outTotal   int64
	foreignOut int64
	lastOutput time.Time
	policies   map[string]int64
	// due counts the requests whose resolution the run must still wait
	// for: an aged request in review that its deadline resolves, an
	// unreturned approved one that its return deadline closes.
	due        int64
	invalidOut []string // outputs about a well-formed bad event (examples)
	invalidN   int64
	interned   map[string]string
	dlqReasons map[string]int64

	bads       map[string]int32 // payload -> Bads index
	badRecs    []badRec
	badSent    int64
	badSeen    int64 // distinct malformed events seen in the DLQ
	dlqTotal   int64
	validDLQ   []string // own valid events that were dead-lettered (examples)
	validDLQN  int64
	foreignDLQ int64

	hist *hdrhistogram.Histogram // whole run
	win  *hdrhistogram.Histogram // current second
	step *hdrhistogram.Histogram // current step
}

// NewTracker returns an empty Tracker for the world g. base is the
// run's start, the origin of every scheduled send offset and so of
// every latency; it must be the same instant the sender schedules from.
func NewTracker(g *world.Generator, base time.Time) *Tracker {
	return &Tracker{gen: g, base: base, decisions: map[string]int64{}, reasons: map[string]int64{}, outputs: map[string]int64{},
		policies: map[string]int64{}, bads: map[string]int32{}, interned: map[string]string{}, dlqReasons: map[string]int64{},
		hist: newHist(), win: newHist(), step: newHist()}
}

// grow extends reqs to cover index i. The world numbers requests in
// the order it emits them, which is the order they are sent, so this
// normally appends one; it loops because an output's id is only parsed
// (RequestIndex) and may name an index not recorded yet.
func (t *Tracker) grow(i int32) {
	for int(i) >= len(t.reqs) {
		t.reqs = append(t.reqs, reqRec{})
	}
}

// RequestSent records that request i is being published; its latency will
// be measured from offset sched after the run's base time. It must be
// called by the goroutine that drives the generator (it reads the
// request's plan).
// It is called before the publish, never after: a fast target can
// decide before the publish call returns, and a decision for a request
// not yet marked sent would be counted as foreign.
func (t *Tracker) RequestSent(i int32, sched time.Duration) {
	var aged, unreturned, goods bool
	if int(i) < len(t.gen.Requests) {
		r := &t.gen.Requests[i]
		aged, unreturned, goods = r.Aged, r.Unreturned, r.Kind != "refund_only"
	}
	t.mu.Lock()
	t.grow(i)
	rec := &t.reqs[i]
	rec.sched, rec.sent = sched, true
	rec.aged, rec.unreturned, rec.goods = aged, unreturned, goods
	t.sentReqs++
	t.updateDue(rec)
	t.mu.Unlock()
}

// requestFailed records that request i was never accepted by the server.
func (t *Tracker) RequestFailed(i int32) {
	t.mu.Lock()
	t.grow(i)
	if !t.reqs[i].failed {
		t.reqs[i].failed = true
		t.failedReqs++
	}
	t.mu.Unlock()
}

// BadSent records malformed event i with its exact payload.
func (t *Tracker) BadSent(i int32, payload []byte) {
	t.mu.Lock()
	for int(i) >= len(t.badRecs) {
		t.badRecs = append(t.badRecs, badRec{})
	}
	t.badRecs[i].sent = true
	t.bads[string(payload)] = i
	t.badSent++
	t.mu.Unlock()
}

// BadFailed records that malformed event i was never accepted by the
// server: it cannot reach FR_DLQ, so the audit and the drain leave it
// out rather than wait for it or fail the target for it.
func (t *Tracker) BadFailed(i int32) {
	t.mu.Lock()
	if int(i) < len(t.badRecs) && !t.badRecs[i].failed {
		t.badRecs[i].failed = true
		t.failedBads++
	}
	t.mu.Unlock()
}

// Output handles one message of FR_OUT that arrived at now.
func (t *Tracker) Output(subject string, data []byte, now time.Time) {
	kind := outputKind(subject)
	var o contract.Output
	// Parsed before the lock: decoding is the costly part, and the two
	// output consumers should not serialise on it.
	err := contract.Unmarshal(data, &o)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.outputs[kind]++
	t.outTotal++
	t.lastOutput = now
	if err != nil {
		t.foreignOut++
		return
	}
	if kind == contract.OutRelay {
		// The relay's echo of the request is its "answer": timed like a
		// decision, so a scenario run against the relay measures what
		// the transport alone costs. Other echoes are only counted.
		if i, ok := t.gen.RequestIndex(o.RequestID); ok && o.Type == contract.TypeReturnRequested {
			if rec := t.answered(i); rec != nil && rec.decisions == 1 {
				t.decided++
				t.timeAnswer(rec, now)
			}
		}
		return
	}
	// An output about an id of the "q" namespace (a request the shopper
	// does not have) means an event that cannot stand changed state
	// (domain.md, Input that cannot stand); no_output_for_invalid fails
	// on it.
	if t.gen.IsInvalidID(o.RequestID) {
		t.invalidN++
		if len(t.invalidOut) < 5 {
			t.invalidOut = append(t.invalidOut, kind+" for "+o.RequestID)
		}
		return
	}
	// Outputs of other runs or publishers on a shared server are counted
	// as foreign, not failed: sharing a server is allowed, and their
	// outputs say nothing about this run.
	i, ok := t.gen.RequestIndex(o.RequestID)
	if !ok {
		t.foreignOut++
		return
	}
	if kind == contract.OutDecision {
		t.decision(i, &o, now)
		return
	}
	t.grow(i)
	rec := &t.reqs[i]
	out := outRec{kind: kind, amount: o.AmountFen, trigger: o.Trigger, advance: o.Advance, replace: o.Replace, outcome: o.Outcome,
		by: o.By, penalty: o.Penalty, policy: t.policyKey(o.Policy)}
	if kind == contract.OutResolution {
		out.reasons = o.Reasons
	}
	rec.outs = append(rec.outs, out)
	if kind == contract.OutRefund {
		rec.refunds++
		rec.refundFen = max(rec.refundFen, o.AmountFen)
	}
	t.updateDue(rec)
}

// decision records a decision for request i. Called with t.mu held.
func (t *Tracker) decision(i int32, d *contract.Output, now time.Time) {
	rec := t.answered(i)
	if rec == nil {
		return
	}
	t.decisions[d.Decision]++
	// Only the first decision is recorded and timed: a second one is
	// counted for decision_exactly_once, but must not move the latency
	// figures or overwrite the decision the lifecycle checks judge.
	if rec.decisions > 1 {
		return
	}
	t.decided++
	rec.decision, rec.reasons, rec.policy, rec.rule = d.Decision, d.Reasons, d.Policy.Name, d.MerchantRule
	rec.policyKey = t.policyKey(d.Policy)
	for _, c := range d.Reasons {
		t.reasons[c]++
	}
	t.policies[d.Policy.Name]++
	t.timeAnswer(rec, now)
	t.updateDue(rec)
}

// answered counts an answer (a decision, or the relay's echo) to request
// i and returns its record, or nil, counting the output as foreign, if
// the request was not sent by this run. Called with t.mu held.
func (t *Tracker) answered(i int32) *reqRec {
	if int(i) >= len(t.reqs) || !t.reqs[i].sent {
		t.foreignOut++
		return nil
	}
	rec := &t.reqs[i]
	rec.decisions++
	return rec
}

// timeAnswer records the first answer's latency, from the request's
// scheduled send to now. Called with t.mu held.
func (t *Tracker) timeAnswer(rec *reqRec, now time.Time) {
	// Clamped into the histogram's range so RecordValue cannot fail
	// (its error is ignored for that reason); negative only if the
	// sender ran ahead of its schedule, which is not latency.
	lat := max(now.Sub(t.base)-rec.sched, 0)
	rec.latency = lat
	us := min(max(lat.Microseconds(), histMinUS), histMaxUS)
	_ = t.hist.RecordValue(us)
	_ = t.win.RecordValue(us)
	_ = t.step.RecordValue(us)
}

// policyKey is an output's policy as one interned string, "" when its name
// or version is missing. Called with t.mu held.
// Interned because a long run holds millions of outRecs that name a
// handful of policies; one shared string each keeps memory flat.
func (t *Tracker) policyKey(p contract.Policy) string {
	if p.Name == "" || p.Version == "" {
		return ""
	}
	k := p.Name + " " + p.Version
	if s, ok := t.interned[k]; ok {
		return s
	}
	t.interned[k] = k
	return k
}

// updateDue keeps rec's share of t.due: 1 while a deadline that passed
// before the request was sent has not produced its resolution yet.
// Called with t.mu held.
// The drain waits while Due > 0: without it a run would end before a
// timer-driven resolution that the run itself made due, and the
// lifecycle checks would then fail a correct daemon for it.
func (t *Tracker) updateDue(rec *reqRec) {
	due := resolutionDue(rec) && !resolutionSeen(rec)
	switch {
	case due && !rec.dueCounted:
		t.due++
	case !due && rec.dueCounted:
		t.due--
	}
	rec.dueCounted = due
}

// resolutionDue reports whether the request must get a resolution
// because a deadline had passed when it was sent: an aged request in
// review that failed fast-track rules only (the review deadline approves
// it, or rejects it when the per-order ceiling says so), or an
// unreturned one, approved at once, that must send goods back (the
// return deadline closes it). The world never cancels such requests.
func resolutionDue(rec *reqRec) bool {
	if rec.decisions == 0 {
		return false
	}
	switch rec.decision {
	case contract.DecisionReview:
		return rec.aged && !waitsForPerson(rec.reasons)
	case contract.DecisionApproved:
		return rec.unreturned && rec.goods
	}
	return false
}

// resolutionSeen reports whether the resolution resolutionDue asks for
// arrived.
func resolutionSeen(rec *reqRec) bool {
	for _, o := range rec.outs {
		if o.kind != contract.OutResolution {
			continue
		}
		if (rec.decision == contract.DecisionApproved) == (o.outcome == contract.ResolutionClosed) {
			return true
		}
	}
	return false
}

// failedSafety reports whether a safety rule failed.
func failedSafety(reasons []string) bool {
	for _, c := range reasons {
		switch c {
		case contract.ReasonExposureCap, contract.ReasonVelocityCap, contract.ReasonTrustFlagged:
			return true
		}
	}
	return false
}

// waitsForPerson reports whether a review with these reasons is never
// resolved by its deadline: a safety rule failed (exposure_cap,
// velocity_cap, trust_flagged), or merchant_unknown (no return address
// to approve with; the spec does not say, so the audit asks nothing).
func waitsForPerson(reasons []string) bool {
	return failedSafety(reasons) || slices.Contains(reasons, contract.ReasonMerchantUnknown)
}

// outputKind is the <kind> token of fr.out.<kind>.<user>.
// The kind comes from the subject, not the payload, so that an output
// whose payload does not parse is still counted under its kind.
func outputKind(subject string) string {
	s := strings.TrimPrefix(subject, contract.OutPrefix)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i]
	}
	return s
}

// DeadLetter handles one message of FR_DLQ.
func (t *Tracker) DeadLetter(data []byte) {
	var d contract.DeadLetter
	err := contract.Unmarshal(data, &d)
	var payload []byte
	if err == nil {
		// The original bytes identify a malformed event (see badRec),
		// and an own valid event by its event_id.
		payload, err = base64.StdEncoding.DecodeString(d.PayloadB64)
	}
	var id contract.EventIDOnly
	if err == nil {
		_ = contract.Unmarshal(payload, &id)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dlqTotal++
	if err != nil {
		t.foreignDLQ++
		return
	}
	t.dlqReasons[d.Reason]++
	if i, ok := t.bads[string(payload)]; ok {
		b := &t.badRecs[i]
		if b.seen == 0 {
			t.badSeen++
			b.reason, b.subject = d.Reason, d.Subject
		}
		b.seen++
		return
	}
	// A valid event of this run dead-lettered: valid_not_dead_lettered
	// fails on it.
	if t.gen.IsOwnEventID(id.EventID) {
		t.validDLQN++
		if len(t.validDLQ) < 5 {
			t.validDLQ = append(t.validDLQ, id.EventID+" ("+d.Reason+")")
		}
		return
	}
	t.foreignDLQ++
}

// Counts is a consistent snapshot of the tracker's counters: all taken
// under one lock, so that the drain's "everything came" test never mixes
// a decision count from before an output with a request count from
// after it.
type Counts struct {
	// SentReqs and Decided are the requests sent and those with at least
	// one decision; FailedReqs the sent ones the server never accepted
	// (they cannot be decided, so the drain does not wait for them).
	SentReqs, Decided, FailedReqs int64
	// OutTotal and DLQTotal are the messages read on FR_OUT (or counted,
	// for the relay) and FR_DLQ.
	OutTotal, DLQTotal int64
	// BadSent, BadSeen and FailedBads are the events that must be
	// dead-lettered: sent, seen on FR_DLQ, never accepted.
	BadSent, BadSeen, FailedBads int64
	// Due is the requests still waiting for a resolution that a deadline
	// passed before they were sent makes due.
	Due int64
	// LastOutput is the arrival time of the latest output, the end of a
	// throughput run's processing.
	LastOutput time.Time
}

// Snapshot returns the counters as they are now.
func (t *Tracker) Snapshot() Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Counts{SentReqs: t.sentReqs, Decided: t.decided, OutTotal: t.outTotal, DLQTotal: t.dlqTotal, BadSent: t.badSent,
		BadSeen: t.badSeen, LastOutput: t.lastOutput, FailedReqs: t.failedReqs, FailedBads: t.failedBads, Due: t.due}
}

// Totals are the tracker's final tallies for the report, copied so that
// the report owns them.
type Totals struct {
	// Requests and Decided are as in [Counts].
	Requests, Decided int64
	// Decisions counts decisions by value (a second decision of a request
	// included), Reasons the first decisions' reason codes, Policies
	// their policy names and Outputs the outputs by kind.
	Decisions, Reasons, Policies, Outputs map[string]int64
	// OutputsTotal, DeadLetters and MalformedSent are the OutTotal,
	// DLQTotal and BadSent of [Counts].
	OutputsTotal, DeadLetters, MalformedSent int64
	// Latency is a copy of the whole run's request-to-decision
	// histogram, in microseconds.
	Latency *hdrhistogram.Histogram
}

// Totals returns the final tallies; call it once the outputs are no
// longer read, or it is only a snapshot.
func (t *Tracker) Totals() Totals {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Totals{Requests: t.sentReqs, Decided: t.decided, Decisions: maps.Clone(t.decisions), Reasons: maps.Clone(t.reasons),
		Policies: maps.Clone(t.policies), Outputs: maps.Clone(t.outputs), OutputsTotal: t.outTotal, DeadLetters: t.dlqTotal,
		MalformedSent: t.badSent, Latency: hdrhistogram.Import(t.hist.Export())}
}

// Window returns the latency percentiles of the decisions since the last
// call, and resets the window.
func (t *Tracker) Window() (p50, p99, maxv time.Duration, n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p50, p99, maxv, n = pct(t.win, 50), pct(t.win, 99), time.Duration(t.win.Max())*time.Microsecond, t.win.TotalCount()
	t.win.Reset()
	return
}

// StepWindow returns the p99 of the decisions since the last call, and
// resets the step window.
func (t *Tracker) StepWindow() (p99 time.Duration, n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p99, n = pct(t.step, 99), t.step.TotalCount()
	t.step.Reset()
	return
}

// P99SoFar is the p99 over the whole run so far.
func (t *Tracker) P99SoFar() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return pct(t.hist, 99)
}

func pct(h *hdrhistogram.Histogram, q float64) time.Duration {
	return time.Duration(h.ValueAtQuantile(q)) * time.Microsecond
}

// Counted records that total outputs have been stored, as counted from
// the output stream's sequence rather than read.
// Used in throughput mode against the relay, whose outputs are not
// read: the relay emits one output per event, and delivering each to
// loadgen would cost the server work that flashreturnd (one output per
// request) is not charged, so the two would not be measured alike. The
// count only rises, so a stream info read late never moves the end of
// processing back.
func (t *Tracker) Counted(total int64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if total > t.outTotal {
		t.outputs["counted"] = total
		t.outTotal, t.lastOutput = total, now
	}
}
