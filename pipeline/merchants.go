package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
)

// MerchantView is every process's read-only copy of the merchant profiles
// (a global table), kept current by a watcher on FR_MERCHANT. Lookups are
// safe from any goroutine. Profiles are immutable once stored: an update
// replaces the pointer.
type MerchantView struct {
	mu         sync.RWMutex
	byID       map[string]*core.Merchant
	caughtUp   atomic.Bool
	lastSeq    atomic.Uint64
	log        *slog.Logger
	updates    *metrics.Counter
	count      atomic.Int64
	deadLetter func(ctx context.Context, reason, msg, subject string, seq uint64, data []byte)
}

func newMerchantView(log *slog.Logger, set *metrics.Set) *MerchantView {
	v := &MerchantView{byID: make(map[string]*core.Merchant), log: log}
	v.updates = set.NewCounter(`flashreturn_merchant_updates_total`)
	set.NewGauge(`flashreturn_merchants`, func() float64 { return float64(v.count.Load()) })
	return v
}

// Lookup returns the latest profile of a merchant, or nil when unknown.
func (v *MerchantView) Lookup(id string) *core.Merchant {
	v.mu.RLock()
	m := v.byID[id]
	v.mu.RUnlock()
	return m
}

// CaughtUp reports whether the view has read every profile that was stored
// when the watcher started.
func (v *MerchantView) CaughtUp() bool { return v.caughtUp.Load() }

func (v *MerchantView) put(m *core.Merchant) {
	v.mu.Lock()
	if _, ok := v.byID[m.ID]; !ok {
		v.count.Add(1)
	}
	v.byID[m.ID] = m
	v.mu.Unlock()
	v.updates.Inc()
}

// run watches FR_MERCHANT from the beginning with an ordered consumer until
// ctx is done. Malformed profiles are dead-lettered.
func (v *MerchantView) run(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, StreamMerchant)
	if err != nil {
		return fmt.Errorf("merchant view: %w", err)
	}
	target := s.CachedInfo().State.LastSeq
	if target == 0 {
		v.caughtUp.Store(true)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("merchant view: ordered consumer: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("merchant view: messages: %w", err)
	}
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
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
		token := strings.TrimPrefix(msg.Subject(), "fr.merchant.")
		m, derr := wire.DecodeMerchant(token, msg.Data(), seq)
		if derr != nil {
			reason, text := dlqReason(derr)
			v.deadLetter(ctx, reason, text, msg.Subject(), seq, msg.Data())
		} else {
			v.put(m)
		}
		v.lastSeq.Store(seq)
		if seq >= target {
			v.caughtUp.Store(true)
		}
	}
}

// dlqReason classifies a decode error into a contract DLQ reason and text.
func dlqReason(err error) (string, string) {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Reason, we.Error()
	}
	return wire.ReasonPoison, err.Error()
}
