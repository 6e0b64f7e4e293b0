package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Durability says what an acknowledged event or output survives: the
// replicas and storage of the streams that hold them, and when the
// server writes them to disk. The daemon logs it at start, serves it on
// /v1/cluster and exposes it as metrics, so that nobody has to guess
// (README, "Durability").
type Durability struct {
	// Streams are FR_IN (or the first FR_IN_<p>) and FR_OUT.
	Streams []StreamDurability `json:"streams"`
	// Fsync is when the server flushes stored messages to disk: "always"
	// (before acknowledging), "every <interval>", or, for an external
	// server, "server's sync_interval" (its setting is not visible to a
	// client).
	Fsync string `json:"fsync"`
	// SyncIntervalSeconds is the same as a number: 0 always, -1 unknown
	// (external server).
	SyncIntervalSeconds float64 `json:"sync_interval_seconds"`
	// ServerVersion is the NATS server's version.
	ServerVersion string `json:"server_version"`
}

// StreamDurability is one stream's replication and storage.
type StreamDurability struct {
	Stream   string `json:"stream"`
	Replicas int    `json:"replicas"`
	Storage  string `json:"storage"`
}

// serverDefaultSync is nats-server's default sync_interval.
const serverDefaultSync = 2 * time.Minute

// FsyncMode describes the embedded server's fsync setting (always, or
// an interval, 0 for the server's default) as Durability reports it.
func FsyncMode(embedded, always bool, interval time.Duration) (string, float64) {
	switch {
	case !embedded:
		return "server's sync_interval (not visible to clients; nats-server defaults to every 2m0s)", -1
	case always:
		return "always", 0
	case interval > 0:
		return "every " + interval.String(), interval.Seconds()
	default:
		return "every " + serverDefaultSync.String() + " (server default)", serverDefaultSync.Seconds()
	}
}

// ReadDurability reads the replicas and storage of streams.
func ReadDurability(ctx context.Context, js jetstream.JetStream, version, fsync string, syncSeconds float64, streams ...string) (Durability, error) {
	d := Durability{Fsync: fsync, SyncIntervalSeconds: syncSeconds, ServerVersion: version}
	for _, name := range streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return d, fmt.Errorf("streams: look up %s: %w", name, err)
		}
		cfg := s.CachedInfo().Config
		d.Streams = append(d.Streams, StreamDurability{Stream: name, Replicas: max(cfg.Replicas, 1), Storage: cfg.Storage.String()})
	}
	return d, nil
}
