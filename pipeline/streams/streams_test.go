package streams

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/wire"
)

// TestEnsureStreamsIdempotent: after EnsureStreams every stream already
// has the settings asked for (as the server normalises them), so a
// restart only reads stream info and proposes nothing; a changed setting
// is still applied.
func TestEnsureStreamsIdempotent(t *testing.T) {
	for _, layout := range []Layout{LayoutShared, LayoutStreams} {
		srv, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), Layout: layout, Partitions: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		o := StreamOptions{Layout: layout, Partitions: 4, InMaxAge: time.Hour, OutMaxAge: 2 * time.Hour}
		if err := EnsureStreams(ctx, js, o); err != nil {
			t.Fatal(err)
		}
		want := []jetstream.StreamConfig{
			{Name: wire.StreamOut, Subjects: []string{"fr.out.>"}, Duplicates: wire.MinDuplicateWindow, MaxAge: o.OutMaxAge, Storage: jetstream.FileStorage, Replicas: 1},
			{Name: wire.StreamMerchant, Subjects: []string{"fr.merchant.>"}, MaxMsgsPerSubject: wire.MerchantHistory, Storage: jetstream.FileStorage, Replicas: 1},
		}
		if layout == LayoutShared {
			want = append(want, jetstream.StreamConfig{Name: wire.StreamIn, Subjects: []string{wire.InWildcard}, Duplicates: wire.MinDuplicateWindow, MaxAge: o.InMaxAge,
				Storage: jetstream.FileStorage, Replicas: 1,
				SubjectTransform: partitionTransform(4)})
		} else {
			want = append(want, jetstream.StreamConfig{Name: InStream(layout, 3), Subjects: []string{wire.PartitionFilter(3)}, Duplicates: wire.MinDuplicateWindow, MaxAge: o.InMaxAge, Storage: jetstream.FileStorage, Replicas: 1})
		}
		for _, c := range want {
			s, err := js.Stream(ctx, c.Name)
			if err != nil {
				t.Fatal(err)
			}
			if !streamConfigured(s.CachedInfo().Config, c) {
				t.Errorf("%s %s: created stream does not match its config: have %+v", layout, c.Name, s.CachedInfo().Config)
			}
		}
		// A changed retention is applied on the next start.
		o.OutMaxAge = 3 * time.Hour
		if err := EnsureStreams(ctx, js, o); err != nil {
			t.Fatal(err)
		}
		s, err := js.Stream(ctx, wire.StreamOut)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.MaxAge; got != 3*time.Hour {
			t.Errorf("%s: FR_OUT MaxAge %s after the update, want 3h", layout, got)
		}
	}
}

// TestRetryable: which setup errors the daemon waits out.
func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{&jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeJetStreamNotEnabled}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: errCodeNoSuitablePeers}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamNameInUse}, false},
		{Permanent(errors.New("P changed")), false},
	} {
		if got := Retryable(fmt.Errorf("wrapped: %w", c.err)); got != c.want {
			t.Errorf("Retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
