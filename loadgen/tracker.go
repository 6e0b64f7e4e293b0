package loadgen

import (
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 10 minutes, with
// three significant digits.
const (
	histMinUS = 1
	histMaxUS = 600_000_000
	histSig   = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMinUS, histMaxUS, histSig) }

// reqRec is what the run knows about one request: when it was due and what
// came back for it.
type reqRec struct {
	sched     time.Duration // send offset the latency is measured from
	sent      bool
	failed    bool // never accepted by the server
	decisions int32
	decision  string
	reasons   []string
	policy    string
	rule      string
	refunds   int32
	refundFen int64 // largest refund amount seen
	latency   time.Duration
}

type badRec struct {
	sent   bool
	failed bool
	seen   int
	reason string // the reason the DLQ gave
}

// tracker collects what was sent and what came back. Its methods are safe
// for concurrent use: the publisher, the output consumers and the sampler
// share it.
type tracker struct {
	mu   sync.Mutex
	gen  *Generator // for id parsing only (immutable parts)
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

func newTracker(g *Generator, base time.Time) *tracker {
	return &tracker{gen: g, base: base, decisions: map[string]int64{}, reasons: map[string]int64{}, outputs: map[string]int64{},
		policies: map[string]int64{}, bads: map[string]int32{}, hist: newHist(), win: newHist(), step: newHist()}
}

func (t *tracker) grow(i int32) {
	for int(i) >= len(t.reqs) {
		t.reqs = append(t.reqs, reqRec{})
	}
}

// requestSent records that request i is being published; its latency will
// be measured from offset sched after the run's base time.
func (t *tracker) requestSent(i int32, sched time.Duration) {
	t.mu.Lock()
	t.grow(i)
	t.reqs[i].sched, t.reqs[i].sent = sched, true
	t.sentReqs++
	t.mu.Unlock()
}

// requestFailed records that request i was never accepted by the server.
func (t *tracker) requestFailed(i int32) {
	t.mu.Lock()
	t.grow(i)
	if !t.reqs[i].failed {
		t.reqs[i].failed = true
		t.failedReqs++
	}
	t.mu.Unlock()
}

// badSentRec records malformed event i with its exact payload.
func (t *tracker) badSentRec(i int32, payload []byte) {
	t.mu.Lock()
	for int(i) >= len(t.badRecs) {
		t.badRecs = append(t.badRecs, badRec{})
	}
	t.badRecs[i].sent = true
	t.bads[string(payload)] = i
	t.badSent++
	t.mu.Unlock()
}

func (t *tracker) badFailed(i int32) {
	t.mu.Lock()
	if int(i) < len(t.badRecs) && !t.badRecs[i].failed {
		t.badRecs[i].failed = true
		t.failedBads++
	}
	t.mu.Unlock()
}

// output handles one message of FR_OUT that arrived at now.
func (t *tracker) output(subject string, data []byte, now time.Time) {
	kind := outputKind(subject)
	var d outDecision
	var r outRefund
	var derr, rerr error
	switch kind {
	case "decision":
		derr = api.Unmarshal(data, &d)
	case "refund":
		rerr = api.Unmarshal(data, &r)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.outputs[kind]++
	t.outTotal++
	t.lastOutput = now
	switch kind {
	case "decision":
		i, ok := t.gen.requestIndex(d.RequestID)
		if derr != nil || !ok || int(i) >= len(t.reqs) || !t.reqs[i].sent {
			t.foreignOut++
			return
		}
		rec := &t.reqs[i]
		rec.decisions++
		t.decisions[d.Decision]++
		if rec.decisions > 1 {
			return
		}
		t.decided++
		rec.decision, rec.reasons, rec.policy, rec.rule = d.Decision, d.Reasons, d.Policy.Name, d.MerchantRule
		for _, c := range d.Reasons {
			t.reasons[c]++
		}
		t.policies[d.Policy.Name]++
		lat := max(now.Sub(t.base)-rec.sched, 0)
		rec.latency = lat
		us := min(max(lat.Microseconds(), histMinUS), histMaxUS)
		_ = t.hist.RecordValue(us)
		_ = t.win.RecordValue(us)
		_ = t.step.RecordValue(us)
	case "refund":
		i, ok := t.gen.requestIndex(r.RequestID)
		if rerr != nil || !ok {
			t.foreignOut++
			return
		}
		t.grow(i)
		rec := &t.reqs[i]
		rec.refunds++
		rec.refundFen = max(rec.refundFen, r.AmountFen)
	}
}

// outputKind is the <kind> token of fr.out.<kind>.<user>.
func outputKind(subject string) string {
	s := strings.TrimPrefix(subject, "fr.out.")
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i]
	}
	return s
}

// deadLetter handles one message of FR_DLQ.
func (t *tracker) deadLetter(data []byte) {
	var d outDLQ
	err := api.Unmarshal(data, &d)
	var payload []byte
	if err == nil {
		payload, err = base64.StdEncoding.DecodeString(d.PayloadB64)
	}
	var id eventIDOnly
	if err == nil {
		_ = api.Unmarshal(payload, &id)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dlqTotal++
	if err != nil {
		t.foreignDLQ++
		return
	}
	if i, ok := t.bads[string(payload)]; ok {
		b := &t.badRecs[i]
		if b.seen == 0 {
			t.badSeen++
			b.reason = d.Reason
		}
		b.seen++
		return
	}
	if t.gen.isOwnEventID(id.EventID) {
		t.validDLQN++
		if len(t.validDLQ) < 5 {
			t.validDLQ = append(t.validDLQ, id.EventID+" ("+d.Reason+")")
		}
		return
	}
	t.foreignDLQ++
}

// counts is a consistent snapshot of the tracker's counters.
type counts struct {
	sentReqs, decided, outTotal, dlqTotal, badSent, badSeen int64
	failedReqs, failedBads                                  int64
	lastOutput                                              time.Time
}

func (t *tracker) snapshot() counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return counts{sentReqs: t.sentReqs, decided: t.decided, outTotal: t.outTotal, dlqTotal: t.dlqTotal, badSent: t.badSent,
		badSeen: t.badSeen, lastOutput: t.lastOutput, failedReqs: t.failedReqs, failedBads: t.failedBads}
}

// window returns the latency percentiles of the decisions since the last
// call, and resets the window.
func (t *tracker) window() (p50, p99, maxv time.Duration, n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p50, p99, maxv, n = pct(t.win, 50), pct(t.win, 99), time.Duration(t.win.Max())*time.Microsecond, t.win.TotalCount()
	t.win.Reset()
	return
}

// stepWindow returns the p99 of the decisions since the last call, and
// resets the step window.
func (t *tracker) stepWindow() (p99 time.Duration, n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p99, n = pct(t.step, 99), t.step.TotalCount()
	t.step.Reset()
	return
}

// p99SoFar is the p99 over the whole run so far.
func (t *tracker) p99SoFar() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return pct(t.hist, 99)
}

func pct(h *hdrhistogram.Histogram, q float64) time.Duration {
	return time.Duration(h.ValueAtQuantile(q)) * time.Microsecond
}

// counted records that total outputs have been stored, as counted from
// the output stream's sequence rather than read.
func (t *tracker) counted(total int64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if total > t.outTotal {
		t.outputs["counted"] = total
		t.outTotal, t.lastOutput = total, now
	}
}
