package pipeline

import (
	"context"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/apply"
	"github.com/flashreturn/flashreturn/pipeline/cluster"
	"github.com/flashreturn/flashreturn/pipeline/streams"
	"github.com/flashreturn/flashreturn/state"
)

// What the daemon exposes to the HTTP API (pipeline/httpapi.Backend) and
// the hooks it hands the cluster. The HTTP API and the cluster see the
// partition runtime only through these methods, so the runtime can change
// its workers without touching either.

// WriteMetrics writes the daemon's metrics in Prometheus' text format,
// registering the policy info gauges first (a policy swapped by a reload
// shows up at the next scrape).
func (d *Daemon) WriteMetrics(w io.Writer) {
	d.observePolicies()
	d.cfg.Metrics.WritePrometheus(w)
}

// Shadow is the shadow policy's comparison, nil when none runs.
func (d *Daemon) Shadow() *apply.Shadow { return d.shadow }

// Partitions is P.
func (d *Daemon) Partitions() int { return d.cfg.Partitions }

// Location is the shoppers' zone.
func (d *Daemon) Location() *time.Location { return d.cfg.Loc }

// State is the daemon's store, nil until Run has opened it. The HTTP
// listener starts after the store is open, so its handlers always see it.
func (d *Daemon) State() *state.Store { return d.store }

// Cluster is the daemon's cluster machinery, nil outside cluster mode.
func (d *Daemon) Cluster() *cluster.Cluster { return d.cluster }

// PartitionReady returns a function reporting a partition's readiness,
// or nil before Run has made the workers (d.workers is written before
// started closes: reading it earlier would race).
func (d *Daemon) PartitionReady() func(p int) bool {
	select {
	case <-d.started:
		return func(p int) bool { return d.workers[p].ready.Load() }
	default:
		return nil
	}
}

// AdvertisedHTTP is the base URL this daemon puts in its member record:
// Config.AdvertiseHTTP, else derived from the bound listener (see
// cluster.DefaultAdvertiseHTTP), else "".
func (d *Daemon) AdvertisedHTTP() string {
	if d.cfg.AdvertiseHTTP != "" {
		return d.cfg.AdvertiseHTTP
	}
	return cluster.DefaultAdvertiseHTTP(d.HTTPAddr())
}

// runPartition is the cluster's RunPartition hook: it runs partition p's
// worker under the claim's fence and epoch, then puts the partition's
// state down so that the cluster can snapshot it.
func (d *Daemon) runPartition(ctx context.Context, p int, fence func() error, epoch string) error {
	w := d.workers[p]
	w.fence, w.epoch = fence, epoch
	var err error
	labelled(ctx, func(ctx context.Context) { err = w.run(ctx) }, partitionLabels(p)...)
	w.ready.Store(false)
	if pt := w.pt; pt != nil {
		if err == nil && w.outboxLen.Load() == 0 && len(pt.Outbox()) > 0 && fence() == nil {
			// A clean stop: everything committed was published. Clear
			// the stored outbox, so that whoever resumes from this
			// state (the release snapshot, or this copy later) does
			// not republish a batch that may by then be older than
			// FR_OUT's duplicate window.
			if cerr := pt.Commit(pt.Cursor(), pt.Clock(), nil); cerr != nil {
				d.log.Warn("clear published outbox", "partition", p, "err", cerr)
			}
		}
		pt.Release()
		w.pt = nil
	}
	w.outboxLen.Store(0) // what a fenced worker left is in the local outbox only
	return err
}

// RedactURL returns a NATS URL (or a comma-separated list of them) fit
// for logs and errors: the user info (user:password@ or token@) is
// replaced by "redacted". A server URL carries credentials when an
// operator puts them there (nats://user:pass@host:4222); logging it would
// leak them to whoever reads the logs. A string that does not parse is
// reduced to its part after the last '@'.
func RedactURL(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			if j := strings.LastIndex(p, "@"); j >= 0 {
				parts[i] = "redacted@" + p[j+1:]
			}
			continue
		}
		u.User = url.User("redacted")
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// readDurability reads what FR_IN and FR_OUT survive (replicas, storage,
// the server's fsync), keeps it for /v1/cluster and exposes it as
// metrics. A stream it cannot read is reported with 0 replicas (and
// logged); the daemon runs on.
func (d *Daemon) readDurability(ctx context.Context) *streams.Durability {
	fsync, syncSeconds := streams.FsyncMode(d.srv != nil, d.cfg.JetStreamSyncAlways, d.cfg.JetStreamSync)
	names := []string{streams.InStream(d.cfg.Layout, 0), wire.StreamOut}
	rctx, cancel := context.WithTimeout(ctx, streams.SetupCallTimeout)
	dur, err := streams.ReadDurability(rctx, d.js, d.nc.ConnectedServerVersion(), fsync, syncSeconds, names...)
	cancel()
	if err != nil {
		d.log.Warn("read the streams' durability", "err", err)
	}
	for len(dur.Streams) < len(names) {
		dur.Streams = append(dur.Streams, streams.StreamDurability{Stream: names[len(dur.Streams)]})
	}
	d.durability.Store(&dur)
	for _, s := range dur.Streams {
		d.m.Set.NewGauge(`flashreturn_stream_replicas{stream="`+s.Stream+`"}`, func() float64 { return float64(s.Replicas) })
	}
	d.m.Set.NewGauge(`flashreturn_jetstream_sync_interval_seconds`, func() float64 { return syncSeconds })
	return &dur
}

// Durability is what FR_IN and FR_OUT survive (nil before the streams
// are set up).
func (d *Daemon) Durability() *streams.Durability { return d.durability.Load() }
