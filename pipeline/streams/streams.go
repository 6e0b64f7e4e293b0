package streams

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/wire"
)

// Layout is how inbound events are stored.
type Layout string

// Inbound storage layouts.
const (
	// LayoutStreams stores each partition in its own stream FR_IN_<p>
	// (subjects fr.p.<p>.>), fed by a server-level subject mapping
	// fr.in.*.* -> fr.p.{{partition(P,2)}}.*.*. A partition's consumer reads
	// only its own messages, so the server never scans past the others'.
	// Needs the mapping on the server: the embedded server installs it;
	// an external server needs it in its account config (see README).
	LayoutStreams Layout = "streams"
	// LayoutShared stores every partition in one stream FR_IN with a stream
	// subject transform; each partition has a filtered consumer. Works on
	// any server with no configuration, at the cost of the server scanning
	// other partitions' messages for every filtered consumer.
	LayoutShared Layout = "shared"
)

// InStream is the stream that stores partition p in a layout.
func InStream(l Layout, p int) string {
	if l == LayoutShared {
		return wire.StreamIn
	}
	return wire.PartitionStream(p)
}

// StreamOptions are the retention settings of the streams flashreturnd creates.
type StreamOptions struct {
	Layout     Layout
	Partitions int
	// InMaxAge bounds how long inbound events are kept (the replay horizon).
	InMaxAge time.Duration
	// OutMaxAge bounds how long outputs and dead letters are kept.
	OutMaxAge time.Duration
	Replicas  int
	// OutDuplicates is FR_OUT's duplicate window; 0 is the contract's
	// minimum (wire.MinDuplicateWindow). Tests shorten it to show that
	// nothing relies on it (the commit markers of pipeline/outbound do
	// the work).
	OutDuplicates time.Duration
}

// MarkerSubjects is the filter of the commit and claim markers
// (pipeline/outbound) that FR_OUT stores beside the contract's outputs.
const MarkerSubjects = "fr.commit.*"

// EnsureStreams creates or updates every stream of the contract and the
// inbound layout. It refuses to change the partition count of existing
// inbound streams: P is fixed for the life of the streams.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.OutDuplicates == 0 {
		o.OutDuplicates = wire.MinDuplicateWindow
	}
	// The duplicate window of FR_IN, FR_OUT and FR_DLQ is exactly the
	// contract's minimum: a restart republishes the stored outbox and only
	// this window drops the copies; longer would only cost the server
	// memory for IDs no restart republishes. FR_MERCHANT keeps the
	// contract's history per merchant: replay and a restart read the
	// profile in force at each request from it.
	cfgs := []jetstream.StreamConfig{
		// FR_OUT also holds each partition's commit markers and takes
		// atomic batches (pipeline/outbound).
		{Name: wire.StreamOut, Subjects: []string{wire.OutSubjects, MarkerSubjects}, Duplicates: o.OutDuplicates, MaxAge: o.OutMaxAge,
			Storage: jetstream.FileStorage, Replicas: o.Replicas, AllowAtomicPublish: true},
		{Name: wire.StreamDLQ, Subjects: []string{wire.DLQSubjects}, Duplicates: wire.MinDuplicateWindow, MaxAge: o.OutMaxAge, Storage: jetstream.FileStorage, Replicas: o.Replicas},
		// History per merchant: a decision reads the profile in force when
		// its request was stored, after a restart, a takeover or in a
		// replay too (domain.md, Missing data). An existing stream that
		// kept one per merchant is updated on start.
		{Name: wire.StreamMerchant, Subjects: []string{wire.MerchantSubjects}, MaxMsgsPerSubject: wire.MerchantHistory, Storage: jetstream.FileStorage, Replicas: o.Replicas},
	}
	switch o.Layout {
	case LayoutShared:
		if err := checkSharedPartitions(ctx, js, o.Partitions); err != nil {
			return err
		}
		cfgs = append(cfgs, jetstream.StreamConfig{
			Name: wire.StreamIn, Subjects: []string{wire.InWildcard}, Duplicates: wire.MinDuplicateWindow, MaxAge: o.InMaxAge,
			Storage: jetstream.FileStorage, Replicas: o.Replicas, MaxMsgSize: wire.MaxEventBytes,
			SubjectTransform: partitionTransform(o.Partitions),
		})
	case LayoutStreams:
		if _, err := js.Stream(ctx, InStream(o.Layout, o.Partitions)); err == nil {
			return Permanent(fmt.Errorf("streams: %s exists: the inbound streams were created with more than %d partitions", InStream(o.Layout, o.Partitions), o.Partitions))
		}
		for p := 0; p < o.Partitions; p++ {
			cfgs = append(cfgs, jetstream.StreamConfig{
				Name: InStream(o.Layout, p), Subjects: []string{wire.PartitionFilter(p)}, Duplicates: wire.MinDuplicateWindow, MaxAge: o.InMaxAge,
				Storage: jetstream.FileStorage, Replicas: o.Replicas, MaxMsgSize: wire.MaxEventBytes,
			})
		}
	default:
		return Permanent(fmt.Errorf("streams: unknown layout %q", o.Layout))
	}
	for _, c := range cfgs {
		if err := ensureStream(ctx, js, c); err != nil {
			if c.AllowAtomicPublish {
				return fmt.Errorf("streams: create or update %s (with allow_atomic, for atomic batch publish): %w; "+
					"give the daemon's user the right to update the stream, or set allow_atomic and add the subject %s to it yourself (NATS 2.12 or newer)",
					c.Name, err, MarkerSubjects)
			}
			return fmt.Errorf("streams: create or update %s: %w", c.Name, err)
		}
	}
	return checkAtomic(ctx, js)
}

// checkAtomic refuses a FR_OUT that does not take atomic batches: a
// server before 2.12 accepts the stream update but ignores allow_atomic.
func checkAtomic(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, wire.StreamOut)
	if err != nil {
		return fmt.Errorf("streams: look up %s: %w", wire.StreamOut, err)
	}
	if !s.CachedInfo().Config.AllowAtomicPublish {
		return Permanent(fmt.Errorf("streams: %s does not allow atomic batch publish after the update: the NATS server ignores allow_atomic; flashreturnd needs NATS server 2.12 or newer", wire.StreamOut))
	}
	return nil
}

// ensureStream creates stream c, or updates it when its settings differ.
// A stream that exists as configured is left alone (an info request, no
// meta-layer proposal). Each request is bounded by SetupCallTimeout and a
// timed-out one is retried a few times: on a cluster, two daemons that
// create the same stream at once race in the meta layer and the loser
// gets no answer at all (nats-io/nats.go#949, nats-io/nats-server#3677);
// its retry finds the stream made.
func ensureStream(ctx context.Context, js jetstream.JetStream, c jetstream.StreamConfig) error {
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, SetupCallTimeout)
		s, err := js.Stream(cctx, c.Name)
		switch {
		case err == nil && streamConfigured(s.CachedInfo().Config, c):
		case err == nil || errors.Is(err, jetstream.ErrStreamNotFound):
			_, err = js.CreateOrUpdateStream(cctx, c)
		}
		cancel()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || attempt == 3 {
			return err
		}
	}
}

// streamConfigured reports whether an existing stream has every setting
// flashreturnd asks for.
func streamConfigured(have, want jetstream.StreamConfig) bool {
	perSubject := want.MaxMsgsPerSubject
	if perSubject == 0 {
		perSubject = -1 // the server's "unlimited"
	}
	same := slices.Equal(have.Subjects, want.Subjects) && have.Replicas == max(want.Replicas, 1) &&
		have.MaxAge == want.MaxAge && have.MaxMsgsPerSubject == perSubject && have.Storage == want.Storage &&
		have.AllowAtomicPublish == want.AllowAtomicPublish && (want.MaxMsgSize == 0 || have.MaxMsgSize == want.MaxMsgSize) &&
		(want.Duplicates == 0 || have.Duplicates == want.Duplicates)
	if want.SubjectTransform == nil || !same {
		return same
	}
	return have.SubjectTransform != nil && *have.SubjectTransform == *want.SubjectTransform
}

// SetupCallTimeout bounds one JetStream API call of the daemon's setup
// (stream and bucket creation). A request the meta layer drops gets no
// answer at all, so without a bound a racing daemon would wait forever;
// 5 s is several meta-layer round trips on a loaded 3-node cluster.
const SetupCallTimeout = 5 * time.Second

// permanentError marks a setup error that retrying cannot mend (a
// configuration that contradicts the existing streams or buckets).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as a setup error that retrying cannot mend:
// [Retryable] reports false for it (and for anything wrapping it), so the
// daemon's setup loop gives up at once instead of retrying for its whole
// SetupTimeout.
func Permanent(err error) error { return &permanentError{err} }

// errCodeNoSuitablePeers is JetStream's "no suitable peers for
// placement" (10005): a replicated stream asked for while a node of a
// forming or recovering cluster is not yet known to be online.
const errCodeNoSuitablePeers jetstream.ErrorCode = 10005

// Retryable reports whether a setup error may pass on its own: anything
// but a permanent error or a request the server rejects as invalid (an
// API error with code 400, such as a stream config it cannot accept),
// except a placement that fails only because a peer is offline.
func Retryable(err error) bool {
	var pe *permanentError
	if errors.As(err, &pe) {
		return false
	}
	var ae *jetstream.APIError
	if errors.As(err, &ae) && ae.Code == 400 && ae.ErrorCode != errCodeNoSuitablePeers {
		return false
	}
	return true
}

func checkSharedPartitions(ctx context.Context, js jetstream.JetStream, p int) error {
	s, err := js.Stream(ctx, wire.StreamIn)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("streams: look up %s: %w", wire.StreamIn, err)
	}
	tr := s.CachedInfo().Config.SubjectTransform
	if tr != nil && tr.Destination != partitionTransform(p).Destination {
		return Permanent(fmt.Errorf("streams: %s partitions by %q, not %d partitions: P is fixed for the life of the streams", wire.StreamIn, tr.Destination, p))
	}
	return nil
}

// partitionTransform is the partition() subject transform for p
// partitions (wire.PartitionMapping): the shared stream's transform and
// the check that refuses a changed P compare the same value, so that a
// daemon restarted with another P cannot silently re-partition.
func partitionTransform(p int) *jetstream.SubjectTransformConfig {
	src, dest := wire.PartitionMapping(p)
	return &jetstream.SubjectTransformConfig{Source: src, Destination: dest}
}

// MinServerVersion is the oldest NATS server flashreturnd runs on: atomic
// batch publish and expected-last-subject-sequence checks on another
// subject came with 2.12.
const MinServerVersion = "2.12.0"

// CheckServerVersion refuses a server older than MinServerVersion, naming
// its version and what to do. version is what the server reported
// (nats.Conn.ConnectedServerVersion).
func CheckServerVersion(version string) error {
	if !versionAtLeast(version, MinServerVersion) {
		return Permanent(fmt.Errorf("streams: NATS server %s is too old: flashreturnd needs %s or newer (atomic batch publish for its commit markers); upgrade the server", version, MinServerVersion))
	}
	return nil
}

// versionAtLeast compares dotted versions (a leading v and a suffix such
// as -beta are ignored); an unparsable version is too old.
func versionAtLeast(have, want string) bool {
	parse := func(v string) ([3]int, bool) {
		var out [3]int
		v = strings.TrimPrefix(v, "v")
		if i := strings.IndexAny(v, "-+"); i >= 0 {
			v = v[:i]
		}
		parts := strings.Split(v, ".")
		if len(parts) != 3 {
			return out, false
		}
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 {
				return out, false
			}
			out[i] = n
		}
		return out, true
	}
	h, ok1 := parse(have)
	w, ok2 := parse(want)
	if !ok1 || !ok2 {
		return false
	}
	for i := range h {
		if h[i] != w[i] {
			return h[i] > w[i]
		}
	}
	return true
}
