package replay

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/apply"
	"github.com/flashreturn/flashreturn/pipeline/defaults"
	"github.com/flashreturn/flashreturn/pipeline/streams"
)

// Options configures Run. Zero values mean the documented defaults.
type Options struct {
	// Policies to compare; the first is the baseline (normally the live
	// policy). At least one. Each gets its own state: policies diverge as
	// soon as one approves what another rejects, and a shared state would
	// let one policy's refunds change another's exposure checks.
	Policies []*core.Policy
	// Loc is the shoppers' zone. Default Asia/Shanghai.
	Loc *time.Location
	// Layout and Partitions of the inbound streams (as the daemon was run).
	Layout     streams.Layout
	Partitions int
	// From and To bound the replay by stream ingest time (zero: the whole
	// stream). FromSeq/ToSeq bound it by stream sequence instead (per
	// stream: with LayoutStreams each partition has its own sequence).
	From, To       time.Time
	FromSeq, ToSeq uint64
	// Record keeps every effect's encoded bytes by message ID (with
	// decided_at set to RecordTime), for determinism checks.
	Record     bool
	RecordTime time.Time
	// MaxChanged bounds the list of requests whose outcome changes
	// (default 1000; every change is counted).
	MaxChanged int
	// MaxFuture is the daemon's --max-future: an event whose at is later
	// than the time its stream stored it by more than this is a dead
	// letter (future_time), as in the daemon. Default 5 minutes; negative
	// turns the check off.
	MaxFuture time.Duration
	Logger    *slog.Logger
}

// PolicyStats is what one policy did over the replayed events.
type PolicyStats struct {
	Name           string         `json:"name"`
	Version        string         `json:"version"`
	Requests       int            `json:"requests"`
	Approved       int            `json:"approved"`
	Review         int            `json:"review"`
	Rejected       int            `json:"rejected"`
	ApprovalRate   float64        `json:"approval_rate"`
	RefundFen      int64          `json:"refund_fen"`
	AdvancedFen    int64          `json:"advanced_fen"`
	ClawbackFen    int64          `json:"clawback_fen"`
	Compensations  int            `json:"compensations"`
	OutstandingFen int64          `json:"outstanding_fen_at_end"`
	PromisedFen    int64          `json:"promised_fen_at_end"`
	MaxUserExposed int64          `json:"max_user_outstanding_fen"`
	Reasons        map[string]int `json:"reasons"`
	// After review. ToPeople is the requests sent to review that only a
	// person can approve (a safety rule failed, or the merchant is
	// unknown); the other reviews are approved by the review deadline
	// when nobody answers. Resolutions counts resolutions by
	// "<outcome>/<by>" (approved/merchant, approved/timeout,
	// rejected/platform, closed/timeout...), as they happened in the
	// replayed stream with this policy's decisions: the answers people
	// gave to requests this policy also sent to review, and the deadlines.
	ToPeople           int            `json:"to_people"`
	DeadlineApprovable int            `json:"deadline_approvable"`
	ApprovedByDeadline int            `json:"approved_by_deadline"`
	ClosedNotReturned  int            `json:"closed_not_returned"`
	NotReturnedFen     int64          `json:"not_returned_clawback_fen"`
	Resolutions        map[string]int `json:"resolutions"`
	// Effects holds encoded effects by message ID when Record is set.
	Effects map[string][]byte `json:"-"`
}

// ChangedRequest is a request whose decision differs between the baseline
// and another policy.
type ChangedRequest struct {
	UserID    string   `json:"user_id"`
	RequestID string   `json:"request_id"`
	Decisions []string `json:"decisions"`
	Reasons   []string `json:"reasons"`
}

// Result is the side-by-side report of a replay.
//
// Events counts every stored event read, DeadLetters those the daemon
// would have dead-lettered (counted once, not per policy); Seconds and
// EventsPerSec measure this run's wall time, for a sense of how long a
// longer window would take, not a benchmark.
type Result struct {
	Events        int              `json:"events"`
	DeadLetters   int              `json:"dead_letters"`
	Seconds       float64          `json:"seconds"`
	EventsPerSec  float64          `json:"events_per_second"`
	Policies      []*PolicyStats   `json:"policies"`
	ChangedCount  int              `json:"changed_count"`
	Changed       []ChangedRequest `json:"changed"`
	MerchantsUsed int              `json:"merchants"`
}

// Run reads the stored inbound events (FR_IN) partition by partition,
// in stream order, and applies each policy to a fresh in-memory state with
// the same stepper the daemon uses (clock, timers, apply), dead-lettering
// what the daemon would (malformed, future_time, unknown order or
// request). It publishes nothing. Review answers in the stream apply to
// whatever each policy sent to review, and deadlines fire at the same
// points of the stream as in the daemon, so each policy's report counts
// how many requests it would have sent to people and how many the
// deadlines would have approved or closed. Merchant profiles are read as
// of each event's ingest time from FR_MERCHANT's history (the last
// 10 per merchant). A replay that starts mid-stream starts
// from empty state, so its decisions can differ from the live ones for
// shoppers with earlier history.
func Run(ctx context.Context, js jetstream.JetStream, o Options) (*Result, error) {
	if len(o.Policies) == 0 {
		return nil, errors.New("replay: no policy")
	}
	if o.Loc == nil {
		loc, err := defaults.Location()
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		o.Loc = loc
	}
	if o.Layout == "" {
		o.Layout = streams.LayoutStreams
	}
	if o.Partitions == 0 {
		o.Partitions = defaults.Partitions
	}
	if o.MaxChanged == 0 {
		o.MaxChanged = defaults.MaxChanged
	}
	if o.MaxFuture == 0 {
		o.MaxFuture = defaults.MaxFuture
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	// Merchants first, whole: FR_MERCHANT is small (a few versions per
	// merchant) and every partition needs all of it, whereas FR_IN is read
	// once, partition by partition, and never held in memory.
	merchants, err := loadMerchants(ctx, js)
	if err != nil {
		return nil, err
	}
	// Profiles as of each event's ingest time, as the daemon reads them.
	var asOf int64
	lookup := func(id string) *core.Merchant { return apply.VersionAt(merchants[id], asOf) }
	res := &Result{MerchantsUsed: len(merchants)}
	engines := make([]*replayEngine, len(o.Policies))
	for i, p := range o.Policies {
		st := &PolicyStats{Name: p.Name, Version: p.Version, Reasons: map[string]int{}, Resolutions: map[string]int{}}
		if o.Record {
			st.Effects = map[string][]byte{}
		}
		res.Policies = append(res.Policies, st)
		engines[i] = &replayEngine{env: core.Env{Policy: p, Loc: o.Loc, Merchant: lookup}, stats: st, rec: o.Record, recTime: o.RecordTime,
			verdicts: map[string]core.CodeSet{}, verdictOf: map[string]core.Verdict{}}
	}
	start := time.Now()
	// One decoded event is shared by every engine: Step does not keep it
	// past the call, and decoding once per event instead of once per
	// policy halves a two-policy replay's codec time.
	var ev core.Event
	// Partitions are independent (a shopper's events all land in one), so
	// each starts from empty state; that bounds memory to one partition's
	// shoppers per policy, whatever the stream's length.
	for p := 0; p < o.Partitions; p++ {
		for _, e := range engines {
			e.reset(o.Logger)
		}
		err := readPartition(ctx, js, o, p, func(subject string, data []byte, stored time.Time) {
			res.Events++
			asOf = stored.UnixNano()
			// What the daemon would dead-letter before applying anything
			// (a bad subject, a malformed payload, an event from the
			// future) is counted once and stepped by no policy.
			_, kind, user, ok := wire.ParseSubject(subject)
			ev = core.Event{}
			if !ok || wire.Decode(kind, user, data, &ev) != nil || apply.FutureTime(&ev, asOf, o.MaxFuture) != "" {
				res.DeadLetters++
				return
			}
			for i, e := range engines {
				e.faults = 0
				if err := e.s.Step(&ev, &e.env); err != nil || (i == 0 && e.faults > 0) {
					// An unknown order or request is one for every
					// policy (every request is kept, whatever its
					// verdict): the baseline counts it.
					res.DeadLetters++
				}
			}
		})
		if err != nil {
			return nil, err
		}
		for _, e := range engines {
			e.finishPartition()
		}
	}
	res.Seconds = time.Since(start).Seconds()
	if res.Seconds > 0 {
		res.EventsPerSec = float64(res.Events) / res.Seconds
	}
	for _, st := range res.Policies {
		if st.Requests > 0 {
			st.ApprovalRate = float64(st.Approved) / float64(st.Requests)
		}
	}
	compareEngines(engines, res, o.MaxChanged)
	return res, nil
}

// compareEngines lists the requests whose verdict or reasons differ
// between the baseline (engines[0]) and any other policy, in key order so
// that two runs over the same stream print the same list. Only requests
// the baseline decided are compared: a request is decided by every policy
// or by none (the same events reach all of them).
func compareEngines(engines []*replayEngine, res *Result, max int) {
	base := engines[0]
	keys := make([]string, 0, len(base.verdictOf))
	for k := range base.verdictOf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		changed := false
		for _, e := range engines[1:] {
			if e.verdictOf[k] != base.verdictOf[k] || e.verdicts[k] != base.verdicts[k] {
				changed = true
			}
		}
		if !changed {
			continue
		}
		res.ChangedCount++
		if len(res.Changed) >= max {
			continue
		}
		user, req, _ := strings.Cut(k, "/")
		c := ChangedRequest{UserID: user, RequestID: req}
		for _, e := range engines {
			c.Decisions = append(c.Decisions, e.verdictOf[k].String())
			c.Reasons = append(c.Reasons, strings.Join(e.verdicts[k].AppendStrings(nil), ","))
		}
		res.Changed = append(res.Changed, c)
	}
}

// replayEngine is one policy's replay: an in-memory partition and a stepper.
// verdicts and verdictOf are keyed "user/request" over the whole replay
// (not per partition), because compareEngines runs once at the end; a
// request ID is only unique per shopper, hence the user in the key.
type replayEngine struct {
	env       core.Env
	s         apply.Stepper
	mem       *memStore
	stats     *PolicyStats
	rec       bool
	recTime   time.Time
	buf       []byte
	verdicts  map[string]core.CodeSet
	verdictOf map[string]core.Verdict
	faults    int // dead letters the core reported for the event being stepped
}

// reset starts a partition: fresh state, and a Stepper whose clock is
// zero, as a daemon's first run on an empty partition has it.
func (e *replayEngine) reset(log *slog.Logger) {
	e.mem = newMemStore()
	e.s = apply.Stepper{St: e.mem, Log: log, Emit: e.emit}
}

// finishPartition folds the partition's end state into the report: the
// money still advanced or promised when the replayed stream ends, which
// is what a policy's exposure would have been at that point.
func (e *replayEngine) finishPartition() {
	for _, u := range e.mem.users {
		e.stats.OutstandingFen += u.OutstandingFen
		e.stats.PromisedFen += u.PromisedFen
		e.stats.MaxUserExposed = max(e.stats.MaxUserExposed, u.OutstandingFen)
	}
}

// emit counts one effect into the policy's report. It is the Stepper's
// Emit: it sees effects in the order the daemon would publish them, so a
// recorded effect (Record) is byte for byte what the daemon published,
// decided_at aside (RecordTime stands in for the batch's wall clock).
func (e *replayEngine) emit(ef *core.Effect, env *core.Env) {
	st := e.stats
	switch ef.Kind {
	case core.EffectDeadLetter:
		e.faults++
		return
	case core.EffectDecision:
		st.Requests++
		switch ef.Verdict {
		case core.VerdictApproved:
			st.Approved++
		case core.VerdictReview:
			st.Review++
			if core.DeadlineApproves(ef.Reasons) {
				st.DeadlineApprovable++
			} else {
				st.ToPeople++
			}
		case core.VerdictRejected:
			st.Rejected++
		}
		for c := core.Code(0); c < core.NumCodes; c++ {
			if ef.Reasons.Has(c) {
				st.Reasons[c.String()]++
			}
		}
		k := ef.UserID + "/" + ef.RequestID
		e.verdicts[k] = ef.Reasons
		e.verdictOf[k] = ef.Verdict
	case core.EffectRefund:
		st.RefundFen += ef.AmountFen
		if ef.Advance {
			st.AdvancedFen += ef.AmountFen
		}
	case core.EffectClawback:
		st.ClawbackFen += ef.AmountFen
		if ef.Outcome == core.OutcomeNotReturned {
			st.NotReturnedFen += ef.AmountFen
		}
	case core.EffectCompensation:
		st.Compensations++
	case core.EffectResolution:
		st.Resolutions[ef.Resolution.String()+"/"+ef.By.String()]++
		switch {
		case ef.Resolution == core.ResolutionApproved && ef.By == core.ActorTimeout:
			st.ApprovedByDeadline++
		case ef.Resolution == core.ResolutionClosed:
			st.ClosedNotReturned++
		}
	}
	if e.rec {
		e.buf = wire.AppendEffect(e.buf[:0], ef, env.Loc, e.recTime)
		st.Effects[ef.MsgID()] = append([]byte(nil), e.buf...)
	}
}

// readPartition delivers partition p's stored events in stream order,
// with an ordered consumer (ephemeral, flow-controlled, recreated by the
// client on a gap): a replay of a live deployment leaves nothing behind
// on the server. It stops at the bounds, or at the last message stored
// when the read began (NumPending reaching 0), so a stream that keeps
// growing does not keep a replay running.
func readPartition(ctx context.Context, js jetstream.JetStream, o Options, p int, f func(subject string, data []byte, stored time.Time)) error {
	s, err := js.Stream(ctx, streams.InStream(o.Layout, p))
	if err != nil {
		return fmt.Errorf("replay: partition %d: %w", p, err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{wire.PartitionFilter(p)}, DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case o.FromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, o.FromSeq
	case !o.From.IsZero():
		from := o.From
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &from
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("replay: partition %d: consumer: %w", p, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return fmt.Errorf("replay: partition %d: consumer info: %w", p, err)
	}
	if info.NumPending == 0 {
		return nil
	}
	for {
		// 1024 per fetch keeps round trips rare without holding more than
		// a few hundred KiB of events; 5 s is long enough for a loaded
		// server, short enough to report a stuck consumer.
		batch, err := c.Fetch(1024, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("replay: partition %d: fetch: %w", p, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("replay: partition %d: metadata: %w", p, err)
			}
			if (o.ToSeq > 0 && meta.Sequence.Stream > o.ToSeq) || (!o.To.IsZero() && meta.Timestamp.After(o.To)) {
				return nil
			}
			f(m.Subject(), m.Data(), meta.Timestamp)
			if meta.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("replay: partition %d: fetch: %w", p, err)
		}
		if n == 0 {
			return fmt.Errorf("replay: partition %d: no messages within 5s although some are pending", p)
		}
	}
}

// loadMerchants reads every profile in FR_MERCHANT with its stored time,
// oldest first per merchant (stream order), as the daemon's merchant view
// holds them. A malformed profile is skipped: the daemon dead-letters it
// and decides without it, which is what skipping reproduces.
func loadMerchants(ctx context.Context, js jetstream.JetStream) (map[string][]apply.MerchantVersion, error) {
	out := map[string][]apply.MerchantVersion{}
	s, err := js.Stream(ctx, wire.StreamMerchant)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replay: merchants: %w", err)
	}
	if s.CachedInfo().State.Msgs == 0 {
		return out, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("replay: merchants: %w", err)
	}
	for {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("replay: merchants: %w", err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("replay: merchants: %w", err)
		}
		// The raw token, as the live merchant view passes it (see
		// pipeline/merchants.go): replay must decode exactly what it did.
		token := strings.TrimPrefix(m.Subject(), wire.MerchantPrefix)
		if mc, err := wire.DecodeMerchant(token, m.Data(), meta.Sequence.Stream); err == nil {
			out[mc.ID] = append(out[mc.ID], apply.MerchantVersion{At: meta.Timestamp.UnixNano(), M: mc})
		}
		if meta.NumPending == 0 {
			return out, nil
		}
	}
}

// memStore is an in-memory apply.Store for replay. Timers are a heap with
// lazy deletion: re-arming a user pushes a new entry and leaves the old
// one in place, and Due skips entries whose deadline is no longer the
// user's. That keeps SetDeadline O(log n) without a heap index, at the
// cost of stale entries that live until they come due.
type memStore struct {
	users     map[string]*core.User
	deadlines map[string]int64
	h         timerHeap
	keep      []timerEntry // scratch for Due
}

// newMemStore is an empty partition.
func newMemStore() *memStore {
	return &memStore{users: map[string]*core.User{}, deadlines: map[string]int64{}}
}

// User returns id's state, creating it empty on first sight as the
// daemon's store does: a shopper's first event needs no setup.
func (m *memStore) User(id string) (*core.User, error) {
	u, ok := m.users[id]
	if !ok {
		u = &core.User{ID: id}
		m.users[id] = u
	}
	return u, nil
}

// MarkDirty is a no-op: the map holds the live users, nothing is written
// back anywhere.
func (m *memStore) MarkDirty(*core.User) {}

// SetDeadline arms (d > 0) or disarms (d == 0) id's timer. Re-arming at
// the same deadline pushes nothing, so a user touched by every event of
// a burst does not fill the heap with copies.
func (m *memStore) SetDeadline(id string, d int64) {
	if d == 0 {
		delete(m.deadlines, id)
		return
	}
	if m.deadlines[id] == d {
		return
	}
	m.deadlines[id] = d
	heap.Push(&m.h, timerEntry{d, id})
}

// Due appends at most max live timers with deadline < now, in (deadline,
// user) order, and keeps them armed (apply.Store's contract: the Stepper
// re-arms what it fires, and what it does not fire stays due).
func (m *memStore) Due(now int64, max int, dst []string) []string {
	keep := m.keep[:0]
	for m.h.Len() > 0 && m.h[0].d < now && len(keep) < max {
		t := heap.Pop(&m.h).(timerEntry)
		if m.deadlines[t.u] != t.d {
			continue // stale entry
		}
		if n := len(keep); n > 0 && keep[n-1] == t {
			continue // a second entry of the same live timer
		}
		keep = append(keep, t)
		dst = append(dst, t.u)
	}
	for _, t := range keep {
		heap.Push(&m.h, t)
	}
	m.keep = keep[:0]
	return dst
}

// timerEntry is one armed timer: deadline d of user u.
type timerEntry struct {
	d int64
	u string
}

// timerHeap orders timers by (deadline, user), the order the daemon's
// state fires them in (apply.Store's contract): ties must break alike, or
// two timers due at one clock event would emit in a different order.
type timerHeap []timerEntry

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	return h[i].d < h[j].d || h[i].d == h[j].d && h[i].u < h[j].u
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
