package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
		// FR_OUT as a release before the commit markers made it: the
		// update adds the marker subjects and allow_atomic.
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: wire.StreamOut, Subjects: []string{"fr.out.>"}, Duplicates: wire.MinDuplicateWindow, MaxAge: o.OutMaxAge}); err != nil {
			t.Fatal(err)
		}
		if err := EnsureStreams(ctx, js, o); err != nil {
			t.Fatal(err)
		}
		want := []jetstream.StreamConfig{
			{Name: wire.StreamOut, Subjects: []string{"fr.out.>", "fr.commit.*"}, Duplicates: wire.MinDuplicateWindow, MaxAge: o.OutMaxAge, Storage: jetstream.FileStorage, Replicas: 1, AllowAtomicPublish: true},
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

// TestCheckServerVersion: a server without atomic batches is refused,
// naming its version and the one needed.
func TestCheckServerVersion(t *testing.T) {
	for _, v := range []string{"2.12.0", "2.12.1", "2.15.2", "v2.13.0-beta.1", "3.0.0"} {
		if err := CheckServerVersion(v); err != nil {
			t.Errorf("%s refused: %v", v, err)
		}
	}
	for _, v := range []string{"2.11.9", "2.10.22", "1.9.9", "", "banana"} {
		err := CheckServerVersion(v)
		if err == nil || Retryable(err) || !strings.Contains(err.Error(), "2.12.0 or newer") || !strings.Contains(err.Error(), "server "+v+" ") {
			t.Errorf("%q: got %v, want a permanent error naming the version and 2.12.0", v, err)
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
