package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/loadgen/audit"
	"github.com/flashreturn/flashreturn/loadgen/contract"
	"github.com/flashreturn/flashreturn/loadgen/faults"
	"github.com/flashreturn/flashreturn/loadgen/world"
)

// Stream names of the contract that loadgen reads or needs.
const (
	streamOut      = contract.StreamOut
	streamDLQ      = contract.StreamDLQ
	streamMerchant = contract.StreamMerchant
)

// Run executes one load run against the target at cfg.NATSURL and returns
// its report. With cfg.Spawn (and cfg.SpawnNATS) it first starts the target
// as its child and waits until it is ready. The run publishes the world's
// merchant profiles (awaiting their acks), starts ordered consumers on
// FR_OUT and FR_DLQ at the streams' current ends, sends the events open
// loop while carrying out cfg.Faults on schedule, waits for the outputs to
// drain (cfg.DrainTimeout), audits what came back, stops the children
// (unless cfg.KeepSpawned) and evaluates cfg.Thresholds. A run whose audit
// fails or that breaks a threshold still returns its report (Passed,
// ThresholdsPassed false) and a nil error; the error is for runs that
// could not be carried out (no server, no streams, a child that would not
// start, ctx cancelled).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	gen, err := world.NewGenerator(cfg.World)
	if err != nil {
		return nil, err
	}
	kids, err := faults.SpawnAll(ctx, faults.SpawnConfig{NATSURL: cfg.NATSURL, Spawn: cfg.Spawn, SpawnNATS: cfg.SpawnNATS,
		SpawnReady: cfg.SpawnReady, LogDir: cfg.SpawnLogDir, RunID: cfg.World.RunID, Keep: cfg.KeepSpawned,
		ReadyTimeout: cfg.ReadyTimeout})
	if err != nil {
		return nil, err
	}
	defer kids.Stop() // a no-op once stopped
	// No reconnect buffer: a publish during an outage fails at once and is
	// retried in order by the publisher, instead of being flushed after
	// the reconnect ahead of earlier events whose acks were lost.
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("flashreturn-loadgen"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.ReconnectJitter(50*time.Millisecond, 50*time.Millisecond),
		nats.ReconnectBufSize(-1))
	if err != nil {
		return nil, fmt.Errorf("loadgen: connect %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("loadgen: jetstream: %w", err)
	}
	if err := waitStreams(ctx, js, cfg.ReadyTimeout, streamOut, streamDLQ, streamMerchant); err != nil {
		return nil, err
	}

	r := &runner{cfg: cfg, gen: gen, nc: nc, js: js, kids: kids, visible: hdrhistogram.New(1, 600_000_000, 3)}
	r.inbound.Store(-1)
	if cfg.Mode == ModeThroughput {
		r.pregenerate()
	}
	if err := r.publishMerchants(ctx); err != nil {
		return nil, err
	}
	rep, err := r.run(ctx)
	if err != nil {
		return nil, err
	}
	nc.Close()
	kids.Stop()
	rep.Processes = kids.Report(r.base)
	rep.ApplyThresholds(cfg.Thresholds)
	return rep, nil
}

// preEvent is one event of a throughput run, encoded before the first
// send so that the send loop does no JSON work: the run then measures the
// target, not loadgen's encoder. req and bad index the world's slices (-1
// for none), as Event's do.
type preEvent struct {
	subject, id string
	payload     []byte
	req, bad    int32
}

// runner is one run's state, shared by the sender (its own goroutine),
// the publisher's settler, the inbound poller, the sampler and the
// faults. Fields set before the goroutines start are read without a
// lock; the rest are atomics or guarded by seriesMu.
type runner struct {
	cfg  Config
	gen  *world.Generator
	nc   *nats.Conn
	js   jetstream.JetStream
	tr   *audit.Tracker
	pub  *publisher
	base time.Time

	kids      faults.Children
	faults    *faults.Runner      // nil without faults
	decisions *faults.DecisionLog // nil without faults

	pre       []preEvent // throughput mode
	stop      atomic.Bool
	inbound   atomic.Int64 // inbound backlog, -1 unknown
	inboundAt atomic.Int64 // ns after base when the poll that measured it began
	sendEnd   atomic.Int64 // ns after base when sending ended, 0 while sending
	series    []Sample
	steps     []StepResult
	maxRate   float64
	seriesMu  sync.Mutex
	// visible is, per decision, FR_OUT's stored timestamp to its delivery
	// to loadgen's consumer (µs): the "ack → visible to a consumer" stage
	// that the target cannot measure itself. Written by the FR_OUT
	// consumer's goroutine only, read after it stopped.
	visible *hdrhistogram.Histogram
}

// waitStreams waits until each named stream exists, polling every 100 ms
// up to timeout: a target started with loadgen (by hand or --spawn)
// creates its streams a moment after it accepts connections, and a run
// that started reading before that would miss nothing but fail at once.
func waitStreams(ctx context.Context, js jetstream.JetStream, timeout time.Duration, names ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, n := range names {
		for {
			_, err := js.Stream(ctx, n)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("loadgen: stream %s not found within %v (is the target running?): %w", n, timeout, err)
			}
			if sleepCtx(ctx, 100*time.Millisecond) != nil {
				return fmt.Errorf("loadgen: stream %s not found within %v (is the target running?): %w", n, timeout, err)
			}
		}
	}
	return nil
}

// publishMerchants sends every merchant profile and waits for all acks:
// the contract wants profiles before the orders that need them.
func (r *runner) publishMerchants(ctx context.Context) error {
	now := time.Now()
	futs := make([]jetstream.PubAckFuture, 0, len(r.gen.Merchants))
	for i := range r.gen.Merchants {
		subj, id, payload, err := r.gen.MerchantEvent(int32(i), now)
		if err != nil {
			return err
		}
		msg := &nats.Msg{Subject: subj, Data: payload, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}
		for {
			f, err := r.js.PublishMsgAsync(msg, jetstream.WithStallWait(time.Second))
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				continue
			}
			if err != nil {
				return fmt.Errorf("loadgen: publish merchant %s: %w", subj, err)
			}
			futs = append(futs, f)
			break
		}
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err2 := r.js.PublishMsg(actx, f.Msg())
			cancel()
			if err2 != nil {
				return fmt.Errorf("loadgen: publish merchant %s: %w (retry: %v)", f.Msg().Subject, err, err2)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// pregenerate builds the events of a throughput run, with event times laid
// out at the offered rate (1M/s when unlimited, faster than any send, so
// that no event is dated ahead of its send: the daemon dead-letters an
// event dated past --max-future).
func (r *runner) pregenerate() {
	r.gen.ValidOnly()
	rate := r.cfg.Rate
	if rate == 0 {
		rate = 1_000_000
	}
	start := time.Now()
	r.pre = make([]preEvent, r.cfg.Events)
	for n := range r.pre {
		e := r.gen.Next()
		at := start.Add(time.Duration(float64(n) / rate * float64(time.Second)))
		payload, err := r.gen.Encode(e, at)
		if err != nil {
			panic(err) // the generator only plans types Encode knows
		}
		r.pre[n] = preEvent{subject: e.Subject, id: e.ID, payload: payload, req: e.Request, bad: -1}
		if e.Type != contract.TypeReturnRequested {
			r.pre[n].req = -1
		}
	}
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	outStart, err := streamEnd(ctx, r.js, streamOut)
	if err != nil {
		return nil, err
	}
	dlqStart, err := streamEnd(ctx, r.js, streamDLQ)
	if err != nil {
		return nil, err
	}
	// The base is fixed before the consumers start so that every arrival
	// time is after it; the first send is scheduled at base.
	r.base = time.Now()
	r.tr = audit.NewTracker(r.gen, r.base)
	// Counting the relay's outputs by stream sequence instead of reading
	// them keeps loadgen from costing the server one delivery per event,
	// which flashreturnd (an output per request, not per event) would not
	// pay: the two are measured alike.
	countOnly := r.cfg.Mode == ModeThroughput && r.cfg.Expect == ExpectOutputs
	var stopOut func()
	if countOnly {
		cctx, ccancel := context.WithCancel(ctx)
		cdone := make(chan struct{})
		go func() { defer close(cdone); r.countOutputs(cctx, outStart) }()
		stopOut = func() { ccancel(); <-cdone }
	} else {
		handle := r.tr.Output
		if len(r.cfg.Faults) > 0 {
			r.decisions = faults.NewDecisionLog(r.base, r.cfg.Partitions)
			handle = func(subject string, data []byte, at time.Time) {
				r.tr.Output(subject, data, at)
				r.decisions.Output(subject, at)
			}
		}
		// Filtered on the contract's output subjects, as every downstream
		// consumer should be: FR_OUT also stores the daemon's commit
		// markers (fr.commit.<p>), which are not outputs. Against the
		// relay, only the echoes of fr.in.return.*: reading one echo per
		// event would cost the server deliveries the daemon's run (an
		// output per request, not per event) does not pay.
		filter := contract.OutPrefix + ">"
		if r.cfg.Expect == ExpectOutputs {
			filter = contract.RelayReturnFilter
		}
		if stopOut, err = r.consume(ctx, streamOut, filter, outStart, handle); err != nil {
			return nil, err
		}
	}
	stopDLQ, err := r.consume(ctx, streamDLQ, "", dlqStart, func(_ string, data []byte, _ time.Time) { r.tr.DeadLetter(data) })
	if err != nil {
		stopOut()
		return nil, err
	}
	r.pub = newPublisher(r.nc, r.js, r.tr, r.cfg)

	bgCtx, bgCancel := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Add(3)
	go func() { defer bg.Done(); r.pub.settle(bgCtx) }()
	go func() { defer bg.Done(); r.pollInbound(bgCtx) }()
	samplerDone := make(chan struct{})
	go func() { defer bg.Done(); r.sample(bgCtx, samplerDone) }()
	faultCtx, faultCancel := context.WithCancel(ctx)
	faultsDone := make(chan struct{})
	if len(r.cfg.Faults) > 0 {
		r.faults = faults.NewRunner(r.cfg.Faults, r.kids, r.cfg.FaultCmd, r.base, r.cfg.FaultLog, r.cfg.ReadyTimeout)
		go func() { defer close(faultsDone); r.faults.Run(faultCtx) }()
	} else {
		close(faultsDone)
	}

	var sendErr error
	if r.cfg.Mode == ModeThroughput {
		sendErr = r.sendThroughput(ctx)
	} else {
		sendErr = r.sendScenario(ctx)
	}
	sendEnd := time.Since(r.base)
	r.sendEnd.Store(int64(sendEnd))
	if err := r.pub.finish(ctx); err != nil && sendErr == nil {
		sendErr = err
	}
	completedAt, drained := r.drain(ctx, sendEnd)
	drainEnd := time.Since(r.base)
	r.waitQuiet(ctx, r.base.Add(sendEnd).Add(r.cfg.DrainTimeout))
	stopOut()
	stopDLQ()
	listenEnd := time.Since(r.base)
	faultCancel()
	<-faultsDone
	close(samplerDone)
	bgCancel()
	bg.Wait()
	if sendErr != nil {
		return nil, sendErr
	}
	rep := r.report(sendEnd, drainEnd, completedAt, drained)
	r.reportFaults(rep, listenEnd)
	return rep, nil
}

// reportFaults adds the fault schedule, the faults as carried out and the
// decision gaps they caused; listenEnd is when the run stopped reading
// outputs.
func (r *runner) reportFaults(rep *Report, listenEnd time.Duration) {
	rep.Params.Partitions = r.cfg.Partitions
	rep.Params.RetryForSec = r.cfg.RetryFor.Seconds()
	rep.Params.Spawn, rep.Params.SpawnNATS, rep.Params.FaultCmd = r.cfg.Spawn, r.cfg.SpawnNATS, r.cfg.FaultCmd
	if r.faults == nil {
		return
	}
	parts := make([]string, len(r.cfg.Faults))
	for i, f := range r.cfg.Faults {
		parts[i] = f.String()
	}
	rep.Params.Faults = strings.Join(parts, ",")
	rep.Faults = r.faults.Report()
	if r.decisions == nil { // outputs counted, not read (the relay): no decisions
		r.decisions = faults.NewDecisionLog(r.base, r.cfg.Partitions)
	}
	faults.SetGaps(rep.Faults, r.decisions.Sorted(), listenEnd)
}

// streamEnd is the sequence the next message of stream name will get:
// the consumers start there, so outputs of an earlier run against the
// same daemon are never counted, and none of this run's is missed.
func streamEnd(ctx context.Context, js jetstream.JetStream, name string) (uint64, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("loadgen: stream %s: %w", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("loadgen: stream %s info: %w", name, err)
	}
	return info.State.LastSeq + 1, nil
}

// consume reads a stream from sequence start with an ordered consumer (so
// no message is missed or doubled) and calls handle for each message with
// its arrival time; filter, when set, keeps only matching subjects. The
// returned stop waits until the handler is done.
func (r *runner) consume(ctx context.Context, stream, filter string, start uint64, handle func(subject string, data []byte, at time.Time)) (func(), error) {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start}
	if filter != "" {
		cfg.FilterSubjects = []string{filter}
	}
	c, err := r.js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("loadgen: ordered consumer on %s: %w", stream, err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		now := time.Now()
		if stream == streamOut && strings.HasPrefix(m.Subject(), contract.OutPrefix+"decision.") {
			if meta, err := m.Metadata(); err == nil {
				// Same host, same clock as the server's stamp (a remote
				// server's clock skew would show here).
				_ = r.visible.RecordValue(max(now.Sub(meta.Timestamp).Microseconds(), 1))
			}
		}
		handle(m.Subject(), m.Data(), now)
	}, jetstream.PullMaxMessages(2048))
	if err != nil {
		return nil, fmt.Errorf("loadgen: consume %s: %w", stream, err)
	}
	return func() {
		cc.Stop()
		select {
		case <-cc.Closed():
		case <-time.After(5 * time.Second):
		}
	}, nil
}

// sendScenario sends the generator's events on the shape's schedule.
func (r *runner) sendScenario(ctx context.Context) error {
	sch := schedule{shape: r.cfg.Shape}
	for !r.stop.Load() {
		off, ok := sch.next()
		if !ok {
			return nil
		}
		if _, err := r.waitUntil(ctx, off); err != nil {
			return err
		}
		e := r.gen.Next()
		payload, err := r.gen.Encode(e, r.base.Add(off))
		if err != nil {
			return err
		}
		req := int32(-1)
		if e.Type == contract.TypeReturnRequested {
			req = e.Request
			r.tr.RequestSent(req, off)
		}
		if e.Bad >= 0 {
			r.tr.BadSent(e.Bad, payload)
		}
		if err := r.pub.publish(ctx, e.Subject, e.ID, payload, req, e.Bad); err != nil {
			return err
		}
	}
	return nil
}

// sendThroughput sends the pre-generated events at cfg.Rate, or as fast as
// the in-flight bound allows.
func (r *runner) sendThroughput(ctx context.Context) error {
	for n := range r.pre {
		if r.stop.Load() {
			return nil
		}
		off := time.Duration(0)
		var sendOff time.Duration
		if r.cfg.Rate > 0 {
			off = time.Duration(float64(n) / r.cfg.Rate * float64(time.Second))
			var err error
			if sendOff, err = r.waitUntil(ctx, off); err != nil {
				return err
			}
		} else {
			sendOff = time.Since(r.base)
		}
		e := &r.pre[n]
		if e.req >= 0 {
			from := off // the schedule, so a stalled send is charged to the target
			if r.cfg.Rate == 0 {
				from = sendOff // no schedule: the actual send
			}
			r.tr.RequestSent(e.req, from)
		}
		if err := r.pub.publish(ctx, e.subject, e.id, e.payload, e.req, e.bad); err != nil {
			return err
		}
		e.payload = nil // let the GC have it once sent
	}
	return nil
}

// waitUntil sleeps until offset off after base and returns the actual
// offset. Sends less than 100 µs early are let go at once (sleeping that
// short costs more than it is worth). A late send is recorded as lag; its
// latency is still measured from off, the schedule, so time the sender
// spent blocked (a stalled or unreachable target) is charged to the
// target, as the open-loop model wants.
func (r *runner) waitUntil(ctx context.Context, off time.Duration) (time.Duration, error) {
	now := time.Since(r.base)
	// Below 100 µs a sleep would oversleep by more than it waits;
	// sending a little early is harmless, since latency is measured
	// from the schedule, not from the send.
	if d := off - now; d > 100*time.Microsecond {
		if err := sleepCtx(ctx, d); err != nil {
			return 0, err
		}
		now = time.Since(r.base)
	}
	// A late send is recorded, not caught up by skipping: every
	// scheduled event is sent, and its latency still counts from its
	// schedule (coordinated omission corrected).
	r.pub.noteLag(now - off)
	return now, nil
}

// outstanding says what is still expected: requests without a decision,
// malformed events not yet dead-lettered, outputs not yet seen (relay).
func (r *runner) complete() bool {
	c := r.tr.Snapshot()
	if r.cfg.Expect == ExpectOutputs && r.cfg.Mode == ModeScenario {
		// Each request's echo, timed; the relay dead-letters nothing.
		return c.Decided >= c.SentReqs-c.FailedReqs
	}
	// Failed publishes are subtracted: the target never had those
	// events, and waiting for them would hold every faulted run to
	// its drain deadline.
	if c.BadSeen < c.BadSent-c.FailedBads {
		return false
	}
	if r.cfg.Expect == ExpectOutputs {
		// The relay answers each stored event once, so acked events are
		// the outputs to expect; acks, not sends, because a failed send
		// produces nothing.
		return c.OutTotal >= r.pub.acked.Load()
	}
	// Due: resolutions that a deadline already passed before the send
	// makes certain; ending the drain before them would let the
	// lifecycle checks fail a correct daemon.
	if c.Decided < c.SentReqs-c.FailedReqs || c.Due > 0 {
		return false
	}
	// An empty inbound backlog counts only if it was measured after the
	// last send.
	if r.inbound.Load() < 0 {
		return true
	}
	return r.inbound.Load() == 0 && r.inboundAt.Load() > r.sendEnd.Load()
}

// drain waits, until the drain deadline, for everything expected to arrive.
// It returns the arrival time of the last output and whether it all came.
func (r *runner) drain(ctx context.Context, sendEnd time.Duration) (time.Time, bool) {
	deadline := r.base.Add(sendEnd).Add(r.cfg.DrainTimeout)
	// 20 ms keeps the measured drain time within a tick of the truth
	// while costing nothing next to the consumers' own work.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if r.complete() {
			return r.tr.Snapshot().LastOutput, true
		}
		if time.Now().After(deadline) {
			return r.tr.Snapshot().LastOutput, false
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return r.tr.Snapshot().LastOutput, false
		}
	}
}

// waitQuiet keeps listening until no output has arrived for QuietPeriod,
// so that late duplicates and trailing effects are seen by the audit.
func (r *runner) waitQuiet(ctx context.Context, deadline time.Time) {
	if q := time.Now().Add(r.cfg.QuietPeriod); deadline.Before(q) {
		deadline = q
	}
	for {
		// Quiet is counted from the last output, not from the drain's
		// end: a duplicate decision emitted late (a redelivery after a
		// restart) must still be seen for decision_exactly_once.
		quietFrom := r.base.Add(time.Duration(r.sendEnd.Load()))
		if last := r.tr.Snapshot().LastOutput; last.After(quietFrom) {
			quietFrom = last
		}
		quietUntil := quietFrom.Add(r.cfg.QuietPeriod)
		now := time.Now()
		if !now.Before(quietUntil) || now.After(deadline) {
			return
		}
		if sleepCtx(ctx, min(quietUntil.Sub(now), deadline.Sub(now))+time.Millisecond) != nil {
			return
		}
	}
}

// pollInbound keeps r.inbound at the sum of pending and unacknowledged
// messages of the consumers on the target's inbound streams (-1 when it
// has none that loadgen can see).
func (r *runner) pollInbound(ctx context.Context) {
	var streams []jetstream.Stream
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if len(streams) == 0 {
			streams = inboundStreams(ctx, r.js, r.cfg.InboundPrefix)
		}
		started := int64(time.Since(r.base))
		total, ok := int64(0), len(streams) > 0
		for _, s := range streams {
			l := s.ListConsumers(ctx)
			n := 0
			for ci := range l.Info() {
				// Pending and ack-pending both: a message delivered but not
				// yet acknowledged is not processed either.
				total += int64(ci.NumPending) + int64(ci.NumAckPending)
				n++
			}
			if l.Err() != nil || n == 0 {
				ok = false
			}
		}
		if ok {
			r.inboundAt.Store(started)
			r.inbound.Store(total)
		} else {
			r.inbound.Store(-1)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// inboundStreams lists the streams whose names start with prefix (the
// target's inbound streams, one per partition group). A stream that
// vanishes between the listing and the lookup is skipped; the poller
// lists again on its next tick while it has none.
func inboundStreams(ctx context.Context, js jetstream.JetStream, prefix string) []jetstream.Stream {
	var out []jetstream.Stream
	l := js.StreamNames(ctx)
	var names []string
	for n := range l.Name() {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	for _, n := range names {
		if s, err := js.Stream(ctx, n); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// countOutputs follows FR_OUT's last sequence every 20 ms and records the
// number of outputs stored since start.
func (r *runner) countOutputs(ctx context.Context, start uint64) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	s, err := r.js.Stream(ctx, streamOut)
	for err == nil {
		if info, ierr := s.Info(ctx); ierr == nil && info.State.LastSeq+1 >= start {
			r.tr.Counted(int64(info.State.LastSeq+1-start), time.Now())
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
