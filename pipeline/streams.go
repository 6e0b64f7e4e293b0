package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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

// Stream names of the contract.
const (
	StreamIn       = "FR_IN"
	StreamOut      = "FR_OUT"
	StreamDLQ      = "FR_DLQ"
	StreamMerchant = "FR_MERCHANT"
)

const (
	inboundWildcard = "fr.in.*.*"
	dupWindow       = 2 * time.Minute
)

func partitionedDest(p int) string {
	return "fr.p.{{partition(" + strconv.Itoa(p) + ",2)}}.{{wildcard(1)}}.{{wildcard(2)}}"
}

// PartitionFilter is the subject filter of partition p's consumer.
func PartitionFilter(p int) string { return "fr.p." + strconv.Itoa(p) + ".>" }

// InStream is the stream that stores partition p in a layout.
func InStream(l Layout, p int) string {
	if l == LayoutShared {
		return StreamIn
	}
	return fmt.Sprintf("%s_%d", StreamIn, p)
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
}

// EnsureStreams creates or updates every stream of the contract and the
// inbound layout. It refuses to change the partition count of existing
// inbound streams: P is fixed for the life of the streams.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	cfgs := []jetstream.StreamConfig{
		{Name: StreamOut, Subjects: []string{"fr.out.>"}, Duplicates: dupWindow, MaxAge: o.OutMaxAge, Storage: jetstream.FileStorage, Replicas: o.Replicas},
		{Name: StreamDLQ, Subjects: []string{"fr.dlq.>"}, Duplicates: dupWindow, MaxAge: o.OutMaxAge, Storage: jetstream.FileStorage, Replicas: o.Replicas},
		{Name: StreamMerchant, Subjects: []string{"fr.merchant.>"}, MaxMsgsPerSubject: 1, Storage: jetstream.FileStorage, Replicas: o.Replicas},
	}
	switch o.Layout {
	case LayoutShared:
		if err := checkSharedPartitions(ctx, js, o.Partitions); err != nil {
			return err
		}
		cfgs = append(cfgs, jetstream.StreamConfig{
			Name: StreamIn, Subjects: []string{inboundWildcard}, Duplicates: dupWindow, MaxAge: o.InMaxAge,
			Storage: jetstream.FileStorage, Replicas: o.Replicas,
			SubjectTransform: &jetstream.SubjectTransformConfig{Source: inboundWildcard, Destination: partitionedDest(o.Partitions)},
		})
	case LayoutStreams:
		if _, err := js.Stream(ctx, InStream(o.Layout, o.Partitions)); err == nil {
			return fmt.Errorf("streams: %s exists: the inbound streams were created with more than %d partitions", InStream(o.Layout, o.Partitions), o.Partitions)
		}
		for p := 0; p < o.Partitions; p++ {
			cfgs = append(cfgs, jetstream.StreamConfig{
				Name: InStream(o.Layout, p), Subjects: []string{PartitionFilter(p)}, Duplicates: dupWindow, MaxAge: o.InMaxAge,
				Storage: jetstream.FileStorage, Replicas: o.Replicas,
			})
		}
	default:
		return fmt.Errorf("streams: unknown layout %q", o.Layout)
	}
	for _, c := range cfgs {
		if _, err := js.CreateOrUpdateStream(ctx, c); err != nil {
			return fmt.Errorf("streams: create or update %s: %w", c.Name, err)
		}
	}
	return nil
}

func checkSharedPartitions(ctx context.Context, js jetstream.JetStream, p int) error {
	s, err := js.Stream(ctx, StreamIn)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("streams: look up %s: %w", StreamIn, err)
	}
	tr := s.CachedInfo().Config.SubjectTransform
	if tr != nil && tr.Destination != partitionedDest(p) {
		return fmt.Errorf("streams: %s partitions by %q, not %d partitions: P is fixed for the life of the streams", StreamIn, tr.Destination, p)
	}
	return nil
}
