package merchants

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/apply"
	"github.com/flashreturn/flashreturn/pipeline/streams"
)

// View is every process's read-only copy of the merchant profiles
// (a global table), kept current by a watcher on FR_MERCHANT. Lookups are
// safe from any goroutine. Profiles are immutable once stored: an update
// adds a version.
//
// Decisions read the view as of their event's ingest time (LookupAt with
// the FR_IN timestamp), not as it happens to be when the worker runs, and
// a worker waits (WaitThrough) until the view has read every profile
// stored before that time. Two daemons, or a daemon and its successor
// after a takeover, therefore decide the same request with the same
// profile, however far behind either view was: a decision does not
// depend on processing time. Limits: FR_MERCHANT keeps the last
// 10 profiles per merchant (pipeline/streams), so a daemon that starts
// after more updates than that lacks the oldest versions (a request older
// than all it has finds no profile), and the view keeps
// maxVersions per merchant; NATS nodes' clocks are
// assumed to agree (stream timestamps come from each stream's leader).
type View struct {
	mu       sync.RWMutex
	byID     map[string][]apply.MerchantVersion // oldest first
	caughtUp atomic.Bool
	lastSeq  atomic.Uint64
	log      *slog.Logger
	updates  *metrics.Counter
	waits    *metrics.Counter
	// waited times the WaitThrough calls that had to wait, whole.
	waited     *metrics.PrometheusHistogram
	count      atomic.Int64
	DeadLetter func(ctx context.Context, reason, msg, subject string, seq uint64, data []byte)

	// through: every profile stored at or before this time (Unix ns) has
	// been read. Raised by the refresher for WaitThrough's callers.
	through atomic.Int64
	wmu     sync.Mutex
	want    int64         // the latest time a waiter needs
	done    chan struct{} // closed when a refresh ends; replaced
	kick    chan struct{}
	moved   chan struct{} // closed when lastSeq moves; replaced (under wmu)
}

// maxVersions bounds the versions kept per merchant: exactly
// what FR_MERCHANT keeps (wire.MerchantHistory). More would let a
// long-running daemon decide a backlog request with a profile a restart,
// a takeover or a replay no longer has (they would say merchant_unknown):
// the same input must give the same decision whoever decides it. It also
// keeps a merchant updating in a loop from growing the view.
const maxVersions = wire.MerchantHistory

// New makes an empty view; Run fills it. Its metrics show the
// view's size and how often workers had to wait for it (a view that lags
// the stream costs decision latency, never correctness).
func New(log *slog.Logger, set *metrics.Set) *View {
	v := &View{byID: make(map[string][]apply.MerchantVersion), log: log,
		done: make(chan struct{}), kick: make(chan struct{}, 1), moved: make(chan struct{})}
	v.updates = set.NewCounter(`flashreturn_merchant_updates_total`)
	v.waits = set.NewCounter(`flashreturn_merchant_view_waits_total`)
	// 50 µs to ~26 s, as the pipeline's stage histograms.
	v.waited = set.NewPrometheusHistogramExt(`flashreturn_merchant_view_wait_seconds`, metrics.ExponentialBuckets(50e-6, 2, 20))
	set.NewGauge(`flashreturn_merchants`, func() float64 { return float64(v.count.Load()) })
	return v
}

// Lookup returns the latest profile of a merchant, or nil when unknown.
func (v *View) Lookup(id string) *core.Merchant {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if vs := v.byID[id]; len(vs) > 0 {
		return vs[len(vs)-1].M
	}
	return nil
}

// LookupAt returns the profile of a merchant as it was at time at (Unix
// ns): the latest version stored at or before it, or nil.
func (v *View) LookupAt(id string, at int64) *core.Merchant {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return apply.VersionAt(v.byID[id], at)
}

// CaughtUp reports whether the view has read every profile that was stored
// when the watcher started.
func (v *View) CaughtUp() bool { return v.caughtUp.Load() }

// put adds a version. Versions arrive in stream order, so appending
// keeps each merchant's list oldest first, as VersionAt needs; the oldest
// is dropped once the list is full.
func (v *View) put(m *core.Merchant, at int64) {
	v.mu.Lock()
	vs := v.byID[m.ID]
	if len(vs) == 0 {
		v.count.Add(1)
	}
	if len(vs) == maxVersions {
		vs = append(vs[:0], vs[1:]...)
	}
	v.byID[m.ID] = append(vs, apply.MerchantVersion{At: at, M: m})
	v.mu.Unlock()
	v.updates.Inc()
}

// WaitThrough blocks until the view has read every profile stored in
// FR_MERCHANT at or before at (Unix ns), or ctx ends. One refresher
// serves every waiting worker: a stream info request, then the watcher
// reaching the stream's last sequence.
func (v *View) WaitThrough(ctx context.Context, at int64) error {
	if v.through.Load() >= at {
		return nil
	}
	defer v.waited.UpdateDuration(time.Now())
	for v.through.Load() < at {
		v.wmu.Lock()
		v.want = max(v.want, at)
		done := v.done
		v.wmu.Unlock()
		select {
		case v.kick <- struct{}{}:
		default:
		}
		v.waits.Inc()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("merchant view: %w", ctx.Err())
		}
	}
	return nil
}

// refresh serves WaitThrough until ctx ends.
func (v *View) refresh(ctx context.Context, js jetstream.JetStream) {
	for {
		select {
		case <-v.kick:
		case <-ctx.Done():
			return
		}
		v.wmu.Lock()
		want := v.want
		v.wmu.Unlock()
		// Everything stored before the info request is at or below its
		// LastSeq; the events being waited for were stored (at want)
		// before their worker asked.
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := js.Stream(ictx, wire.StreamMerchant)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Try again shortly: the waiters are still waiting, and the
			// kick keeps the request alive even if no new waiter comes.
			v.log.Warn("merchant view: stream info", "err", err)
			select {
			case v.kick <- struct{}{}:
			default:
			}
			if !streams.Sleep(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		// Wait for the watcher to reach that sequence. moved is read under
		// wmu and lastSeq re-checked after, so a move between the check
		// and the wait cannot be missed.
		last := s.CachedInfo().State.LastSeq
		for v.lastSeq.Load() < last {
			v.wmu.Lock()
			moved := v.moved
			v.wmu.Unlock()
			if v.lastSeq.Load() >= last {
				break
			}
			select {
			case <-moved:
			case <-ctx.Done():
				return
			}
		}
		if want > v.through.Load() {
			v.through.Store(want)
		}
		// Wake every waiter of this round at once; each re-checks through
		// and, if it needs a later time, asks for another round.
		v.wmu.Lock()
		close(v.done)
		v.done = make(chan struct{})
		v.wmu.Unlock()
	}
}

// setLastSeq records the last FR_MERCHANT sequence read and wakes the
// refresher.
func (v *View) setLastSeq(seq uint64) {
	v.wmu.Lock()
	v.lastSeq.Store(seq)
	close(v.moved)
	v.moved = make(chan struct{})
	v.wmu.Unlock()
}

// Run watches FR_MERCHANT from the beginning with an ordered consumer until
// ctx is done. Malformed profiles are dead-lettered.
func (v *View) Run(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, wire.StreamMerchant)
	if err != nil {
		return fmt.Errorf("merchant view: %w", err)
	}
	target := s.CachedInfo().State.LastSeq
	if target == 0 {
		v.caughtUp.Store(true)
	}
	// The refresher and the iterator's stopper are run's: they end with
	// ctx (rctx, cancelled on every return path), and run waits for them,
	// so the view leaves no goroutine behind when the daemon stops.
	rctx, stop := context.WithCancel(ctx)
	var owned sync.WaitGroup
	defer owned.Wait()
	defer stop()
	owned.Go(func() { v.refresh(rctx, js) })
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("merchant view: ordered consumer: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("merchant view: messages: %w", err)
	}
	owned.Go(func() {
		<-rctx.Done()
		it.Stop()
	})
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return nil
			}
			v.log.Warn("merchant view: next", "err", err)
			continue
		}
		meta, err := msg.Metadata()
		if err != nil {
			v.log.Warn("merchant view: metadata", "err", err)
			continue
		}
		seq := meta.Sequence.Stream
		// Not wire.MerchantOf: a malformed token (empty, or with dots)
		// must still reach DecodeMerchant, so that its dead letter quotes
		// the token the publisher used (MerchantOf would report none).
		token := strings.TrimPrefix(msg.Subject(), wire.MerchantPrefix)
		m, derr := wire.DecodeMerchant(token, msg.Data(), seq)
		if derr != nil {
			reason, text := wire.DecodeReason(derr)
			v.DeadLetter(ctx, reason, text, msg.Subject(), seq, msg.Data())
		} else {
			v.put(m, meta.Timestamp.UnixNano())
		}
		v.setLastSeq(seq)
		if seq >= target {
			v.caughtUp.Store(true)
		}
	}
}
