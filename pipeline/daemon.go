package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/apply"
	"github.com/flashreturn/flashreturn/pipeline/cluster"
	"github.com/flashreturn/flashreturn/pipeline/defaults"
	"github.com/flashreturn/flashreturn/pipeline/merchants"
	"github.com/flashreturn/flashreturn/pipeline/opsmetrics"
	"github.com/flashreturn/flashreturn/pipeline/outbound"
	"github.com/flashreturn/flashreturn/pipeline/streams"
	"github.com/flashreturn/flashreturn/state"
)

// Config configures a Daemon. The zero value of each field means the
// default it documents; WithDefaults fills them in and Validate checks
// the result (New does both).
type Config struct {
	// DataDir holds Badger state (DataDir/state) and the embedded server's
	// store (DataDir/nats). Default "./data".
	DataDir string
	// NATSURL joins an existing server or cluster; empty embeds one.
	NATSURL string
	// NATSOptions are extra client options (credentials, TLS) for NATSURL.
	NATSOptions []nats.Option
	// NATSListen is the embedded server's client address. Default
	// 127.0.0.1:4222; "127.0.0.1:-1" picks a free port.
	NATSListen string
	// HTTPAddr serves metrics, health and the query API. Default
	// 127.0.0.1:8080; "off" disables it.
	HTTPAddr string
	// HTTP builds the handler served on HTTPAddr from the daemon
	// (cmd/flashreturnd passes httpapi.New). Required unless HTTPAddr is
	// "off": the daemon binds the listener itself (its bound address goes
	// into the cluster member record before any partition is claimed) but
	// knows nothing of the routes.
	HTTP func(d *Daemon) http.Handler
	// AdvertiseHTTP is, in cluster mode, the base URL (http:// or
	// https://, optionally with a path prefix) at which the other members
	// reach this daemon's HTTP endpoint: it goes into the member record,
	// and the others forward queries for this daemon's partitions there.
	// Empty: "http://" + the bound HTTP address when its host is concrete
	// (not 0.0.0.0 or ::), else none, and the others answer such queries
	// 503 (DefaultAdvertiseHTTP).
	AdvertiseHTTP string
	// Policy is the platform policy in force (required).
	Policy *core.Policy
	// Shadow, when set, decides every request a second time with this
	// policy on a copy of the state; only the live decision is published.
	Shadow *core.Policy
	// PolicyPath, when set, is the file Policy was loaded from: the daemon
	// reloads it when it changes (checked every PolicyReload, default 1s)
	// or on Reload, atomically between batches; a bad file is refused and
	// the old policy stays.
	PolicyPath   string
	PolicyReload time.Duration
	// LoadPolicy loads a policy file (required with PolicyPath).
	LoadPolicy func(path string) (*core.Policy, error)
	// Partitions is P, fixed for the life of the streams. Default 64.
	Partitions int
	// Loc is the shoppers' zone. Default Asia/Shanghai.
	Loc *time.Location
	// Cluster, when set, runs this daemon as one member of a cluster
	// sharing NATSURL (required): it owns only the partitions assigned to
	// it, and partitions move with their state when members join, leave
	// or die (pipeline/cluster, CLUSTER.md). Nil: this daemon owns every
	// partition.
	Cluster *cluster.Options
	// OutDuplicates is FR_OUT's duplicate window (0: the contract's 2
	// minutes). Exactly-once does not rest on it (pipeline/outbound);
	// tests set 1 s to show that.
	OutDuplicates time.Duration
	// Replicas of the streams (and cluster buckets) the daemon creates.
	// Default 1; 3 on a 3-node NATS cluster.
	Replicas int
	// Layout of inbound storage. Default LayoutStreams when embedded,
	// LayoutShared with NATSURL (it needs no server configuration).
	Layout streams.Layout
	// JetStreamSync is the embedded server's fsync interval (0: server
	// default, 2 min); JetStreamSyncAlways fsyncs every write.
	JetStreamSync       time.Duration
	JetStreamSyncAlways bool
	// StateSyncWrites makes every Badger commit fsync (see state docs).
	StateSyncWrites bool
	// StateCompression is how Badger compresses its tables (the zero
	// value is Snappy; see state.Compression).
	StateCompression state.Compression
	// CacheBytes is the state cache budget. Default 256 MiB.
	CacheBytes int64
	// Runners is how many goroutines apply, commit and publish the
	// partitions, each serving a group (partition p is runner p mod
	// Runners's). Default GOMAXPROCS.
	Runners int
	// BatchMax bounds a batch. Default 512.
	BatchMax int
	// MaxTxnBytes cuts a batch, and a runner's round, when its staged
	// state and outboxes grow past it. Default defaults.MaxTxnBytes (600 KiB: about
	// half of what Badger takes in one transaction with state's 8 MiB
	// memtables; a round past Badger's limit commits partition by
	// partition).
	MaxTxnBytes int
	// SetupTimeout bounds how long the daemon retries creating its
	// streams and buckets at start while NATS is not ready (a cluster
	// still electing leaders). Default 2 minutes.
	SetupTimeout time.Duration
	// MaxFuture is how far an event's at may be ahead of the time its
	// stream stored it; an event further ahead is dead-lettered as
	// future_time (one publisher with a wrong clock must not move a
	// partition's event time and fire its timers). Default 5 minutes;
	// negative turns the check off (synthetic data dated in the future).
	MaxFuture time.Duration
	// ClockInterval is how often the daemon publishes a clock event into
	// each partition. Default 1s; negative disables (tests drive time with
	// their own events).
	ClockInterval time.Duration
	// DrainTimeout bounds the drain on shutdown. Default 8s.
	DrainTimeout time.Duration
	// InMaxAge is how long inbound events are kept. Default 7 days.
	InMaxAge time.Duration
	// OutMaxAge is how long outputs and dead letters are kept. Default 7 days.
	OutMaxAge time.Duration
	// Logger defaults to a discarding logger.
	Logger *slog.Logger
	// Metrics defaults to a new set.
	Metrics *metrics.Set
}

// WithDefaults returns c with every zero field set to the default it
// documents (the values live in pipeline/defaults, shared with the flags
// and replay). It changes nothing the caller holds: the cluster options
// are copied before they are completed.
func (c Config) WithDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = defaults.DataDir
	}
	if c.NATSListen == "" {
		c.NATSListen = defaults.NATSListen
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = defaults.HTTPAddr
	}
	if c.Partitions == 0 {
		c.Partitions = defaults.Partitions
	}
	if c.Loc == nil {
		// A missing zone database is reported by Validate (Loc stays nil).
		c.Loc, _ = defaults.Location()
	}
	if c.Layout == "" {
		// An external server has no partition mapping unless its operator
		// installed one; the shared layout needs none.
		c.Layout = streams.LayoutStreams
		if c.NATSURL != "" {
			c.Layout = streams.LayoutShared
		}
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = defaults.CacheBytes
	}
	if c.BatchMax == 0 {
		c.BatchMax = defaults.BatchMax
	}
	if c.Runners <= 0 {
		c.Runners = runtime.GOMAXPROCS(0)
	}
	if c.MaxTxnBytes == 0 {
		c.MaxTxnBytes = defaults.MaxTxnBytes
	}
	if c.SetupTimeout == 0 {
		c.SetupTimeout = 2 * time.Minute
	}
	if c.ClockInterval == 0 {
		c.ClockInterval = defaults.ClockInterval
	}
	if c.MaxFuture == 0 {
		c.MaxFuture = defaults.MaxFuture
	}
	if c.PolicyReload == 0 {
		c.PolicyReload = time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 8 * time.Second
	}
	if c.InMaxAge == 0 {
		c.InMaxAge = defaults.InMaxAge
	}
	if c.OutMaxAge == 0 {
		c.OutMaxAge = defaults.OutMaxAge
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	if c.AdvertiseHTTP != "" {
		// The member record carries the base without a trailing slash, so
		// that forwarded paths join it with exactly one; an invalid value
		// is left as is for Validate to report.
		if base, err := cluster.ParseAdvertiseHTTP(c.AdvertiseHTTP); err == nil {
			c.AdvertiseHTTP = base
		}
	}
	if c.Cluster != nil {
		o := c.Cluster.WithDefaults()
		c.Cluster = &o
	}
	return c
}

// Validate checks the configuration (normally after WithDefaults, as New
// does) without changing it (a value receiver: it cannot). A field left
// at a zero value that has a default is reported as out of range, so
// calling Validate without WithDefaults fails loudly rather than running
// with zeros.
func (c Config) Validate() error {
	if c.Policy == nil {
		return errors.New("pipeline: config: Policy is required")
	}
	if c.Partitions < 1 || c.Partitions > defaults.MaxPartitions {
		return fmt.Errorf("pipeline: config: Partitions %d out of 1..%d", c.Partitions, defaults.MaxPartitions)
	}
	if c.Loc == nil {
		_, err := defaults.Location()
		return fmt.Errorf("pipeline: config: no time zone: %w", err)
	}
	if c.Layout != streams.LayoutStreams && c.Layout != streams.LayoutShared {
		return fmt.Errorf("pipeline: config: unknown Layout %q", c.Layout)
	}
	if c.PolicyPath != "" && c.LoadPolicy == nil {
		return errors.New("pipeline: config: PolicyPath needs LoadPolicy")
	}
	if c.HTTPAddr != "off" && c.HTTP == nil {
		return fmt.Errorf("pipeline: config: HTTPAddr %q needs HTTP (the handler to serve there, e.g. httpapi.New), or HTTPAddr \"off\"", c.HTTPAddr)
	}
	if c.AdvertiseHTTP != "" {
		if c.HTTPAddr == "off" {
			return fmt.Errorf("pipeline: config: AdvertiseHTTP %q with HTTPAddr off: nothing would answer there", c.AdvertiseHTTP)
		}
		if _, err := cluster.ParseAdvertiseHTTP(c.AdvertiseHTTP); err != nil {
			return fmt.Errorf("pipeline: config: AdvertiseHTTP %q: %w", c.AdvertiseHTTP, err)
		}
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("pipeline: config: Replicas %d out of 0..5", c.Replicas)
	}
	if c.Cluster != nil {
		if err := c.Cluster.Validate(); err != nil {
			return err
		}
		if c.NATSURL == "" {
			return errors.New("pipeline: config: cluster mode needs NATSURL (a NATS server or cluster shared by the members)")
		}
	}
	return nil
}

// Daemon is flashreturnd: the embedded (or joined) NATS, the streams, the
// merchant view, one worker per partition, the clock publisher and the
// HTTP endpoint. Create it with New, run it with Run.
type Daemon struct {
	cfg    Config
	log    *slog.Logger
	m      *opsmetrics.Pipeline
	policy atomic.Pointer[core.Policy]

	srv *server.Server
	nc  *nats.Conn
	// ctlNC and ctlJS carry cluster membership and ownership (cluster
	// mode only; nil otherwise).
	ctlNC     *nats.Conn
	ctlJS     jetstream.JetStream
	js        jetstream.JetStream
	store     *state.Store
	merchants *merchants.View
	// out publishes every partition's outputs (pipeline/outbound).
	out       *outbound.Publisher
	shadow    *apply.Shadow
	reload    chan struct{}
	workers   []*worker
	runners   []*runner
	cluster   *cluster.Cluster // nil: single daemon, owning every partition
	streamsOK atomic.Bool
	hard      context.Context // cancelled DrainTimeout after shutdown starts
	httpAddr  atomic.Value    // string: the bound HTTP address
	started   chan struct{}
	// durability is what the streams survive (streams.Durability), read
	// once the streams are set up.
	durability atomic.Pointer[streams.Durability]
}

// New validates cfg and builds a Daemon; nothing starts until Run.
func New(cfg Config) (*Daemon, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, m: opsmetrics.NewPipeline(cfg.Metrics), started: make(chan struct{})}
	d.policy.Store(cfg.Policy)
	d.reload = make(chan struct{}, 1)
	if cfg.Shadow != nil {
		d.shadow = apply.NewShadow(cfg.Shadow, cfg.Metrics)
	}
	d.merchants = merchants.New(d.log.With("component", "merchants"), cfg.Metrics)
	d.merchants.DeadLetter = d.deadLetterSync
	if cfg.Cluster != nil {
		d.cluster = cluster.New(*cfg.Cluster, cfg.Partitions, cfg.Replicas, cfg.DrainTimeout, cluster.Hooks{
			RunPartition:   d.runPartition,
			Committed:      func(p int) uint64 { return d.workers[p].committed.Load() },
			Ready:          func(p int) bool { return d.workers[p].ready.Load() },
			AdvertisedHTTP: d.AdvertisedHTTP,
		}, d.log, cfg.Metrics)
	}
	return d, nil
}

// env returns the decision environment for one batch of a worker: the
// policy is read once per batch, so a policy swap lands between batches;
// merchants are looked up as of each event's ingest time.
func (d *Daemon) env(merchantAt func(id string) *core.Merchant) *core.Env {
	return &core.Env{Policy: d.policy.Load(), Loc: d.cfg.Loc, Merchant: merchantAt}
}

// Policy returns the policy in force.
func (d *Daemon) Policy() *core.Policy { return d.policy.Load() }

// SetPolicy swaps the policy in force; batches started after the call use it.
func (d *Daemon) SetPolicy(p *core.Policy) {
	d.policy.Store(p)
	d.log.Info("policy in force", "policy", p.Name, "version", p.Version)
}

// Started is closed once Run has connected, created the streams and bound
// the HTTP listener (ClientURL and HTTPAddr are valid from then on).
func (d *Daemon) Started() <-chan struct{} { return d.started }

// ClientURL is the NATS URL publishers use (the embedded server's, or the
// configured one).
func (d *Daemon) ClientURL() string {
	if d.srv != nil {
		return d.srv.ClientURL()
	}
	return d.cfg.NATSURL
}

// HTTPAddr is the bound HTTP address, empty when HTTP is off.
func (d *Daemon) HTTPAddr() string {
	s, _ := d.httpAddr.Load().(string)
	return s
}

// Ready reports whether the streams exist, the merchant view has caught up
// and every partition is consuming.
func (d *Daemon) Ready() bool {
	// d.workers is written before started closes: reading it earlier (a
	// /readyz probe during start-up) would race.
	select {
	case <-d.started:
	default:
		return false
	}
	if !d.streamsOK.Load() || !d.merchants.CaughtUp() || len(d.workers) == 0 {
		return false
	}
	if d.cluster != nil {
		return d.cluster.Ready()
	}
	for _, w := range d.workers {
		if !w.ready.Load() {
			return false
		}
	}
	return true
}

// Run starts everything and blocks until ctx is done, then drains: stop
// pulling, finish and commit the batch in hand, publish its outputs, ack,
// close the store and the connection, shut the embedded server down. It
// returns nil after a clean drain.
func (d *Daemon) Run(ctx context.Context) error {
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	// Every goroutine Run starts is waited for before it returns: the
	// deadline timer here (deferred: it ends once hardCancel, deferred
	// after it and so run before it, has run), the HTTP server, and the
	// workers, merchant view and housekeeping below. Nothing of a daemon
	// outlives its Run, so a test or a process that starts another daemon
	// on the same data dir never shares it with a straggler.
	var owned sync.WaitGroup
	defer owned.Wait()
	defer hardCancel()
	d.hard = hard
	owned.Go(func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(d.cfg.DrainTimeout)
			defer t.Stop()
			select {
			case <-t.C:
			case <-hard.Done():
			}
			hardCancel()
		case <-hard.Done():
		}
	})

	if err := os.MkdirAll(d.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := d.connect(); err != nil {
		return err
	}
	defer d.closeNATS()

	store, err := state.Open(state.Options{
		Dir:        filepath.Join(d.cfg.DataDir, "state"),
		SyncWrites: d.cfg.StateSyncWrites, Compression: d.cfg.StateCompression,
		CacheBytes: d.cfg.CacheBytes,
		// Records written before requests kept their policy are read
		// with the policy in force at start (state/doc.go, migration).
		LegacyPolicy: d.policy.Load(),
		Logger:       d.log,
		Metrics:      d.cfg.Metrics,
	})
	if err != nil {
		return fmt.Errorf("open state: %w", err)
	}
	d.store = store
	defer func() {
		if err := store.Close(); err != nil {
			d.log.Error("close state", "err", err)
		}
	}()

	if err := d.setupRetry(ctx); err != nil {
		return err
	}
	d.streamsOK.Store(true)

	var httpSrv *http.Server
	if d.cfg.HTTPAddr != "off" {
		ln, err := net.Listen("tcp", d.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("http listen %s: %w", d.cfg.HTTPAddr, err)
		}
		d.httpAddr.Store(ln.Addr().String())
		httpSrv = &http.Server{Handler: d.cfg.HTTP(d), ReadHeaderTimeout: 5 * time.Second}
		owned.Go(func() {
			// Serve returns once Shutdown (below, after the drain) closes
			// the listener; the deferred Wait collects it.
			if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("http serve", "err", err)
			}
		})
	}

	pol, dur := d.policy.Load(), d.readDurability(ctx)
	d.log.Info("flashreturnd started",
		"nats", RedactURL(d.ClientURL()), "embedded", d.srv != nil, "layout", d.cfg.Layout,
		"partitions", d.cfg.Partitions, "policy", pol.Name, "policy_version", pol.Version,
		"tz", d.cfg.Loc.String(), "http", d.HTTPAddr(), "sonic_fast_path", wire.FastPath(),
		"nats_server", dur.ServerVersion, "in_replicas", dur.Streams[0].Replicas, "out_replicas", dur.Streams[1].Replicas, "fsync", dur.Fsync,
		"state_sync", d.cfg.StateSyncWrites, "state_compression", d.cfg.StateCompression.String(), "cache_mb", d.cfg.CacheBytes>>20)

	var wg sync.WaitGroup
	// The merchant view serves the workers' drain too: a batch in hand
	// waits for the view to catch up with its requests (WaitThrough). So
	// it stops only once the workers have (or at the hard deadline); had
	// it stopped with ctx, a worker taking a batch then would wait for the
	// hard deadline, and in cluster mode its partition's release snapshot
	// with it (issue 16).
	mctx, stopMerchants := context.WithCancel(hard)
	defer stopMerchants()
	// The publisher, like the merchant view, serves the workers' drain:
	// it stops once they have.
	d.out = outbound.New(outbound.Config{
		Conn: d.nc, JS: d.js, Stream: wire.StreamOut, Owner: d.memberID(),
		EpochHeader: cluster.EpochHeader, AckTimeout: publishAckTimeout,
		Log: d.log.With("component", "outbound"), Metrics: d.m.Set,
	})
	pctx, stopPublisher := context.WithCancel(hard)
	defer stopPublisher()
	wg.Go(func() { labelled(pctx, d.out.Run, "component", "outbound") })
	wg.Go(func() {
		labelled(mctx, func(mctx context.Context) {
			if err := d.merchants.Run(mctx, d.js); err != nil {
				d.log.Error("merchant view stopped", "err", err)
			}
		}, "component", "merchants")
	})
	wg.Go(func() {
		labelled(ctx, func(ctx context.Context) {
			if err := store.Run(ctx); err != nil && ctx.Err() == nil {
				d.log.Error("state housekeeping stopped", "err", err)
			}
		}, "component", "state")
	})
	// The runners serve the partitions in groups (runner.go); each worker
	// lends its partition to runner p mod Runners. They stop once every
	// worker has returned (below), after draining what was lent.
	d.runners = newRunners(d, min(d.cfg.Runners, d.cfg.Partitions))
	var runners sync.WaitGroup
	for _, r := range d.runners {
		runners.Go(func() {
			labelled(ctx, func(context.Context) { r.run() }, "component", "runner", "runner", strconv.Itoa(r.id))
		})
	}
	defer func() {
		for _, r := range d.runners {
			close(r.stop)
		}
		runners.Wait()
	}()
	d.workers = make([]*worker, d.cfg.Partitions)
	for p := range d.workers {
		w := newWorker(d, p)
		d.workers[p] = w
		d.m.Set.NewGauge(`flashreturn_consumer_pending_events`+partitionLabel(p), func() float64 { return float64(w.pending.Load()) })
		d.m.Set.NewGauge(`flashreturn_partition_ready`+partitionLabel(p), func() float64 { return b2f(w.ready.Load()) })
		d.m.Set.NewGauge(`flashreturn_partition_outbox_messages`+partitionLabel(p), func() float64 { return float64(w.outboxLen.Load()) })
	}
	d.m.Set.NewGauge(`flashreturn_ready`, func() float64 { return b2f(d.Ready()) })
	close(d.started)
	// Wait for the merchant view to catch up before deciding anything, so
	// a restart never decides with a half-loaded view.
	for !d.merchants.CaughtUp() && ctx.Err() == nil {
		streams.Sleep(ctx, 10*time.Millisecond)
	}
	var workers sync.WaitGroup
	if d.cluster != nil {
		// Workers start and stop as partitions are claimed and released.
		// The slots' goroutines inherit the cluster label; runPartition
		// adds each worker's partition label.
		workers.Go(func() {
			labelled(ctx, func(ctx context.Context) {
				if err := d.cluster.Run(ctx, hard); err != nil {
					d.log.Error("cluster membership stopped", "err", err)
				}
			}, "component", "cluster")
		})
	} else {
		for _, w := range d.workers {
			workers.Go(func() {
				labelled(ctx, func(ctx context.Context) {
					if err := w.run(ctx); err != nil {
						d.log.Error("partition worker stopped", "partition", w.p, "err", err)
					}
				}, partitionLabels(w.p)...)
			})
		}
	}
	if d.cfg.ClockInterval > 0 {
		wg.Go(func() { labelled(ctx, d.runClock, "component", "clock") })
	}
	if d.cfg.PolicyPath != "" {
		wg.Go(func() { labelled(ctx, d.runPolicyReload, "component", "policy-reload") })
	}
	<-ctx.Done()
	d.log.Info("draining")
	workers.Wait()
	stopPublisher()
	stopMerchants()
	wg.Wait()
	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = httpSrv.Shutdown(sctx)
		cancel()
	}
	d.log.Info("drained")
	return nil
}

// memberID is this daemon's cluster member name, "" for a single daemon.
func (d *Daemon) memberID() string {
	if d.cfg.Cluster == nil {
		return ""
	}
	return d.cfg.Cluster.MemberID
}

// labelled runs f on the calling goroutine with the pprof labels kv
// (key, value, key, value...) added to ctx and to the goroutine, so that
// a CPU or goroutine profile of the daemon (/debug/pprof) splits its time
// by partition and by component: on a hot night the first question is
// which partition burns the CPU, and without labels every worker looks
// alike. Goroutines f starts inherit the labels.
func labelled(ctx context.Context, f func(context.Context), kv ...string) {
	pprof.Do(ctx, pprof.Labels(kv...), f)
}

// partitionLabels are a partition worker's pprof labels.
func partitionLabels(p int) []string {
	return []string{"component", "worker", "partition", strconv.Itoa(p)}
}

// b2f is a gauge's value of a boolean.
func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// drainContext is the context a batch in hand finishes under once the
// daemon's context has ended: the hard deadline (DrainTimeout after the
// drain began), so a drain finishes its batch rather than abandon it
// half published, yet never hangs a shutdown on a dead server.
func (d *Daemon) drainContext(context.Context) (context.Context, context.CancelFunc) {
	return d.hard, func() {}
}

// connect starts the embedded server (when no NATSURL is given) and opens
// the data connection (and, in cluster mode, the control connection).
// Reconnects are unlimited and quick (250 ms): a daemon never gives up on
// its server, it reports not-ready while it is away, and its workers
// retry; a crash-looping process would only add restarts to an outage.
func (d *Daemon) connect() error {
	url := d.cfg.NATSURL
	opts := append([]nats.Option{
		nats.Name("flashreturnd"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { d.log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { d.log.Info("nats reconnected", "url", RedactURL(nc.ConnectedUrl())) }),
	}, d.cfg.NATSOptions...)
	if url == "" {
		srv, err := streams.StartEmbedded(streams.EmbeddedOptions{
			Listen: d.cfg.NATSListen, StoreDir: filepath.Join(d.cfg.DataDir, "nats"),
			SyncInterval: d.cfg.JetStreamSync, SyncAlways: d.cfg.JetStreamSyncAlways,
			Layout: d.cfg.Layout, Partitions: d.cfg.Partitions,
		})
		if err != nil {
			return err
		}
		d.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		d.shutdownServer()
		return fmt.Errorf("nats connect %q: %w", RedactURL(url), err)
	}
	// A publish ack lost without a reconnect (a stream leader change, a
	// server restart) must not stall a worker for ever (in a cluster it
	// would also block the partition's release): the future fails after
	// publishAckTimeout and the worker republishes the batch
	// (deduplicated by Msg-Id).
	jsOpts := []jetstream.JetStreamOpt{jetstream.WithPublishAsyncMaxPending(16384), jetstream.WithPublishAsyncTimeout(publishAckTimeout)}
	js, err := jetstream.New(nc, jsOpts...)
	if err != nil {
		nc.Close()
		d.shutdownServer()
		return fmt.Errorf("jetstream: %w", err)
	}
	d.nc, d.js = nc, js
	if d.cluster != nil {
		// Membership and ownership get a connection of their own, so that
		// a heartbeat never queues behind a busy worker's publishes (in
		// the client's buffer or the server's per-connection read loop):
		// a member saturated with work must not lose its lease for it.
		ctl, err := nats.Connect(url, append(opts, nats.Name("flashreturnd-control"))...)
		if err != nil {
			nc.Close()
			d.shutdownServer()
			return fmt.Errorf("nats connect %q (control): %w", RedactURL(url), err)
		}
		ctlJS, err := jetstream.New(ctl)
		if err != nil {
			ctl.Close()
			nc.Close()
			d.shutdownServer()
			return fmt.Errorf("jetstream (control): %w", err)
		}
		d.ctlNC, d.ctlJS = ctl, ctlJS
	}
	return nil
}

// closeNATS closes the connections, the control one first (the member's
// heartbeats stop before its data connection goes), then shuts the
// embedded server down.
func (d *Daemon) closeNATS() {
	if d.ctlNC != nil {
		d.ctlNC.Close()
	}
	if d.nc != nil {
		d.nc.Close()
	}
	d.shutdownServer()
}

// shutdownServer stops the embedded server, if any, and waits until it
// has released its store, so that a restart on the same data dir finds it
// free.
func (d *Daemon) shutdownServer() {
	if d.srv != nil {
		d.srv.Shutdown()
		d.srv.WaitForShutdown()
	}
}

// publishAckTimeout bounds the wait for one output's publish ack (see
// connect): long enough for a stream leader election on a 3-node cluster
// (~2 s), short enough that a lost ack costs a worker one retry, not a
// stall that would also hold up its partition's release.
const publishAckTimeout = 5 * time.Second

// setupRetry creates or checks the streams (and, in cluster mode, the
// cluster's buckets). NATS may still be starting (a fresh cluster electing
// its leaders answers late or drops requests), so a failed attempt is
// retried with backoff for up to SetupTimeout; a permanent error (a
// configuration contradicting the existing streams) ends it at once.
func (d *Daemon) setupRetry(ctx context.Context) error {
	deadline := time.Now().Add(d.cfg.SetupTimeout)
	for attempt := 0; ; attempt++ {
		err := streams.CheckServerVersion(d.nc.ConnectedServerVersion())
		if err == nil {
			err = streams.EnsureStreams(ctx, d.js, streams.StreamOptions{Layout: d.cfg.Layout, Partitions: d.cfg.Partitions,
				InMaxAge: d.cfg.InMaxAge, OutMaxAge: d.cfg.OutMaxAge, Replicas: d.cfg.Replicas, OutDuplicates: d.cfg.OutDuplicates})
		}
		if err == nil && d.cluster != nil {
			sctx, cancel := context.WithTimeout(ctx, streams.SetupCallTimeout)
			err = d.cluster.Setup(sctx, d.ctlJS, d.js, d.store)
			cancel()
		}
		if err == nil {
			return nil
		}
		if !streams.Retryable(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		d.m.SetupRetries.Inc()
		d.log.Warn("stream setup failed; retrying", "attempt", attempt, "err", err)
		if !streams.Sleep(ctx, streams.Backoff(attempt)) {
			return err
		}
	}
}

// deadLetterSync publishes one dead letter outside a partition batch (the
// merchant view's), retrying until it is stored or ctx ends.
func (d *Daemon) deadLetterSync(ctx context.Context, reason, text, subject string, seq uint64, data []byte) {
	d.m.DeadLetter(nil, reason)
	out := wire.AppendDLQ(nil, reason, text, subject, seq, data)
	for attempt := 0; ; attempt++ {
		_, err := d.js.Publish(ctx, wire.DLQSubject(reason), out, jetstream.WithMsgID(wire.DLQMsgID(wire.StreamMerchant, seq)))
		if err == nil {
			return
		}
		d.log.Warn("dead letter publish failed; retrying", "err", err)
		if !streams.Sleep(ctx, streams.Backoff(attempt)) {
			return
		}
	}
}
