package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/policyfile"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline"
	"github.com/flashreturn/flashreturn/pipeline/cluster"
	"github.com/flashreturn/flashreturn/pipeline/defaults"
	"github.com/flashreturn/flashreturn/pipeline/httpapi"
	"github.com/flashreturn/flashreturn/pipeline/streams"
	"github.com/flashreturn/flashreturn/state"
)

func main() {
	// /metrics carries # HELP and # TYPE lines (Prometheus' text format;
	// tools such as promtool check-metrics expect them).
	metrics.ExposeMetadata(true)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without os.Exit, so that tests (and the test binary
// standing in for the daemon) can call it: it returns the exit code
// documented in doc.go and writes only to stdout and stderr.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "policy" {
		return policyCmd(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "replay" {
		return replayCmd(args[1:], stdout, stderr)
	}
	cfg, logger, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "flashreturnd:", err)
		return 2
	}
	d, err := pipeline.New(*cfg)
	if err != nil {
		// A Config that does not validate is a usage error: nothing ran.
		fmt.Fprintln(stderr, "flashreturnd:", err)
		return 2
	}
	// SIGINT and SIGTERM end ctx: the daemon drains (finishes and
	// publishes the batch in hand, releases its partitions in cluster
	// mode) within its DrainTimeout, and a second signal is not needed.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP re-reads the policy file now instead of at the next poll.
	// The forwarder is owned by run: it ends when hup is closed, and run
	// waits for it, so no goroutine outlives the daemon it reloads.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var forwarder sync.WaitGroup
	forwarder.Go(func() {
		for range hup {
			d.Reload()
		}
	})
	defer func() {
		signal.Stop(hup)
		close(hup)
		forwarder.Wait()
	}()
	if err := d.Run(ctx); err != nil {
		logger.Error("flashreturnd stopped", "err", err)
		return 1
	}
	return 0
}

// serveHTTP is the handler the daemon serves on --http: the query API,
// the status page, metrics and health (pipeline/httpapi), built over what
// the daemon exposes. The daemon binds the listener; this command decides
// what answers there.
func serveHTTP(d *pipeline.Daemon) http.Handler { return httpapi.New(d) }

// loadPolicy resolves --policy: a preset name or a policy file. A preset
// name wins over a file of the same name in the working directory:
// presets are what docs and tests name, and a stray file must not change
// what they mean.
func loadPolicy(arg string) (*core.Policy, error) {
	if p, ok := core.Preset(arg); ok {
		return p, nil
	}
	if _, err := os.Stat(arg); err != nil {
		return nil, fmt.Errorf("policy %q is neither a preset (%s) nor a readable file: %w", arg, strings.Join(core.PresetNames(), ", "), err)
	}
	return policyfile.Load(arg)
}

// parseFlags builds the daemon's Config from the environment and args
// (in that order: the command line wins). It loads the policy files
// named, so a bad policy is a usage error reported before anything
// starts; it also sets the Go runtime's soft memory limit, which belongs
// to the process and not to a library Config. Fields left to their
// defaults stay zero: pipeline.Config.WithDefaults fills them from
// pipeline/defaults, the same values the flags show in --help.
func parseFlags(args []string, stderr io.Writer) (*pipeline.Config, *slog.Logger, error) {
	fs := flag.NewFlagSet("flashreturnd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		// Where state lives and how NATS is reached. Credentials belong in
		// --nats-creds rather than in --nats-url: the daemon redacts the
		// URL in its own logs, but a URL on the command line still shows
		// in process listings.
		dataDir    = fs.String("data-dir", defaults.DataDir, "Badger state and the embedded NATS server's store")
		natsURL    = fs.String("nats-url", "", "join an existing NATS server or cluster instead of embedding one")
		natsCreds  = fs.String("nats-creds", "", "credentials file for --nats-url")
		tlsCA      = fs.String("nats-tls-ca", "", "CA certificate to verify the NATS server")
		tlsCert    = fs.String("nats-tls-cert", "", "client certificate for NATS (with --nats-tls-key)")
		tlsKey     = fs.String("nats-tls-key", "", "client key for NATS (with --nats-tls-cert)")
		natsListen = fs.String("nats-listen", defaults.NATSListen, "the embedded server's client address")
		httpAddr   = fs.String("http", defaults.HTTPAddr, "metrics, health and the query API (\"off\" disables)")
		// What decides. A policy given as a file is watched and reloaded
		// (SIGHUP forces it); a preset is compiled in and never changes.
		policyArg = fs.String("policy", defaults.Policy, "a preset name ("+strings.Join(core.PresetNames(), ", ")+") or a policy file (JSON or YAML)")
		shadowArg = fs.String("shadow", "", "a second policy (preset or file) that decides every request on a copy of the state; only counted and shown at /v1/shadow, never published")
		// How events are laid out and read. These must agree with the
		// streams that exist (P above all): the daemon refuses a P that
		// contradicts them rather than route shoppers to the wrong state.
		partitions = fs.Int("partitions", defaults.Partitions, "P, the number of partitions, fixed for the life of the streams")
		tz         = fs.String("tz", defaults.Zone, "the shoppers' time zone for calendar rules")
		layout     = fs.String("layout", "", "inbound storage: streams (one stream per partition, needs the server mapping; default when embedded) or shared (one FR_IN stream; default with --nats-url)")
		// Durability against speed. Both fsync knobs default off: a killed
		// process loses nothing either way (the OS keeps what it was
		// given); they matter for a power loss, and README gives what each
		// costs in throughput.
		jsSync    = fs.String("js-sync", "default", "embedded JetStream fsync: default (every 2 min), always, or an interval such as 1s")
		stateSync = fs.Bool("state-sync", false, "fsync every Badger commit (survives power loss, costs throughput; see README)")
		stateComp = fs.String("state-compression", state.CompressSnappy.String(), "Badger table compression: snappy (about a third of the disk, under half the tables' resident memory) or none (faster reads when most shoppers miss the state cache)")
		inMaxAge  = fs.Duration("in-max-age", defaults.InMaxAge, "how long the inbound streams keep events: the replay horizon, and how long a stopped daemon may stay down before acknowledged events it has not processed expire (reported as flashreturn_events_expired_total)")
		outMaxAge = fs.Duration("out-max-age", defaults.OutMaxAge, "how long FR_OUT and FR_DLQ keep outputs and dead letters (at least --in-max-age: commit markers must outlive the inputs a replay reads)")
		outDups   = fs.Duration("out-duplicate-window", 0, "FR_OUT's duplicate window when the daemon creates or updates it (0: the contract's 2m); exactly-once rests on the commit markers, not on it (tests run with 1s)")
		// Memory and batching, sized for one machine serving 64 partitions
		// (see the memory limit's comment below for what else is in RSS).
		cacheMB    = fs.Int("cache-mb", defaults.CacheMiB, "state cache budget in MiB")
		memLimitMB = fs.Int("memory-limit-mb", 0, "soft memory limit for the Go runtime in MiB (0: 2x the cache budget + 384 MiB, plus 128 MiB + 8 MiB a partition with the embedded NATS server; -1: none; GOMEMLIMIT wins)")
		batchMax   = fs.Int("batch-max", defaults.BatchMax, "largest batch a partition applies and commits at once")
		runners    = fs.Int("runners", 0, "goroutines that apply, commit and publish the partitions, each serving a group of them in rounds (0: GOMAXPROCS)")
		clockEvery = fs.Duration("clock-interval", defaults.ClockInterval, "how often clock events advance idle partitions (0 disables)")
		maxFuture  = fs.Duration("max-future", defaults.MaxFuture, "how far an event's at may be ahead of the time its stream stored it; further is dead-lettered as future_time (0 turns the check off, e.g. for synthetic data dated in the future)")
		// Logs go to stderr (see newLogger).
		logFormat = fs.String("log-format", "text", "text or json")
		logLevel  = fs.String("log-level", "info", "debug, info, warn or error")
	)
	// Cluster mode: several daemons on one NATS cluster (pipeline/cluster/CLUSTER.md).
	// --lease must be the same on every member (it is the FR_MEMBERS
	// bucket's TTL; a member with another value refuses to start), and
	// --member should survive restarts (a host or pod name), since the
	// assignment depends only on member IDs and a restarted member then
	// gets its partitions, and their local state, back.
	var (
		member    = fs.String("member", "", "run as this member of a cluster of daemons sharing --nats-url (a stable name, e.g. the host's); empty: this daemon owns every partition")
		lease     = fs.Duration("lease", defaults.LeaseTTL, "cluster membership lease: a member silent this long is replaced (the same on every member)")
		snapEvery = fs.Duration("snapshot-interval", defaults.SnapshotInterval, "cluster: how often each owned partition's state is snapshotted to FR_SNAPSHOTS (bounds what a takeover replays)")
		replicas  = fs.Int("replicas", defaults.Replicas, "JetStream replicas of the streams and cluster buckets the daemon creates (3 on a 3-node NATS cluster)")
		advertise = fs.String("advertise-http", "", "cluster: the base URL at which the other members reach this daemon's HTTP endpoint, to forward queries for its partitions (e.g. http://10.0.0.5:8080); default http://<--http> when --http names a concrete host, else none (the others then answer those queries 503)")
	)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `flashreturnd: instant decisions on after-sales return requests.

Usage:
  flashreturnd [flags]                 run the daemon
  flashreturnd policy show <preset>    print a preset as a policy file
  flashreturnd policy check <file>     validate a policy file
  flashreturnd replay --policy B ...   what would B have decided (see replay --help)

Every flag may also come from the environment: --data-dir from
FLASHRETURN_DATA_DIR, --nats-url from FLASHRETURN_NATS_URL, and so on.
Flags on the command line win over the environment.

Flags:
`)
		fs.PrintDefaults()
	}
	// Environment first, so that the command line overrides it. Every flag
	// has a FLASHRETURN_<NAME> twin, derived here rather than listed, so a
	// new flag cannot be forgotten in the environment (containers set the
	// environment, people type flags).
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		key := "FLASHRETURN_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(key); ok && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", key, v, err)
			}
		}
	})
	if envErr != nil {
		return nil, nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	// A stray argument is most often a misspelt subcommand; running the
	// daemon anyway would surprise more than refusing.
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	logger, err := newLogger(*logFormat, *logLevel, stderr)
	if err != nil {
		return nil, nil, err
	}
	pol, err := loadPolicy(*policyArg)
	if err != nil {
		return nil, nil, err
	}
	var shadow *core.Policy
	if *shadowArg != "" {
		if shadow, err = loadPolicy(*shadowArg); err != nil {
			return nil, nil, fmt.Errorf("--shadow: %w", err)
		}
	}
	// JetStream refuses a max age under a stream's duplicate window (the
	// contract's 2 minutes, FR_OUT's as --out-duplicate-window sets it).
	// And outputs must outlive their inputs: a replay after a lost disk
	// stops at FR_OUT's last commit marker, so a marker aged out while
	// FR_IN still holds its inputs would let the replay publish again.
	outWindow := max(*outDups, wire.MinDuplicateWindow)
	switch {
	case *inMaxAge < wire.MinDuplicateWindow:
		return nil, nil, fmt.Errorf("--in-max-age %v: want at least the duplicate window, %v", *inMaxAge, wire.MinDuplicateWindow)
	case *outMaxAge < outWindow:
		return nil, nil, fmt.Errorf("--out-max-age %v: want at least FR_OUT's duplicate window, %v", *outMaxAge, outWindow)
	case *outMaxAge < *inMaxAge:
		return nil, nil, fmt.Errorf("--out-max-age %v: want at least --in-max-age (%v): outputs and commit markers must outlive the inputs a replay reads", *outMaxAge, *inMaxAge)
	}
	comp, err := state.ParseCompression(*stateComp)
	if err != nil {
		return nil, nil, fmt.Errorf("--state-compression: %w", err)
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return nil, nil, fmt.Errorf("--tz %q: %w", *tz, err)
	}
	cfg := &pipeline.Config{
		DataDir: *dataDir, NATSURL: *natsURL, NATSListen: *natsListen, HTTPAddr: *httpAddr, HTTP: serveHTTP,
		Policy: pol, Partitions: *partitions, Loc: loc, Layout: streams.Layout(*layout),
		StateSyncWrites: *stateSync, StateCompression: comp, CacheBytes: int64(*cacheMB) << 20, BatchMax: *batchMax, Runners: *runners,
		ClockInterval: *clockEvery, Logger: logger, Metrics: metrics.NewSet(), Shadow: shadow,
		OutDuplicates: *outDups, InMaxAge: *inMaxAge, OutMaxAge: *outMaxAge,
	}
	// A soft memory limit keeps RSS bounded: Go otherwise lets the heap
	// grow to twice the live set. The default is what the live heap needs
	// under sustained load plus room for the GC (issue 15, measured with a
	// million shoppers): the state cache, Badger's memtables and table
	// builders (~250 MiB with state's 8 MiB memtables; 96-356 MiB seen
	// right after a million-shopper rewrite), its 16 MiB block cache and
	// the garbage of decompressed blocks, the timer index, and the GC's
	// headroom. The embedded NATS server adds, in the same
	// heap, the last block of each inbound stream while it is written (up
	// to 8 MiB each), the duplicate window's message IDs and the
	// per-subject index (one entry per shopper). A limit close to the
	// live heap makes the GC run back to back (>40% of CPU), so the
	// default errs on the side of room. GOMEMLIMIT in the environment wins.
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && *memLimitMB >= 0 {
		limit := int64(*memLimitMB) << 20
		if limit == 0 {
			cache := cfg.CacheBytes
			if cache <= 0 {
				cache = defaults.CacheBytes
			}
			limit = defaultMemoryLimit(cache, max(*partitions, 1), *natsURL == "")
		}
		debug.SetMemoryLimit(limit)
	}
	if _, preset := core.Preset(*policyArg); !preset {
		cfg.PolicyPath, cfg.LoadPolicy = *policyArg, policyfile.Load
	}
	if *clockEvery == 0 {
		// The flag's 0 means off (tests drive time with their own
		// events); Config's 0 means the default, its off is negative.
		cfg.ClockInterval = -1
	}
	cfg.MaxFuture = *maxFuture
	if *maxFuture == 0 {
		cfg.MaxFuture = -1 // the contract's 0: off (Config's 0 is the default)
	}
	switch *jsSync {
	case "default", "":
	case "always":
		cfg.JetStreamSyncAlways = true
	default:
		d, err := time.ParseDuration(*jsSync)
		if err != nil || d <= 0 {
			return nil, nil, fmt.Errorf("--js-sync %q: want default, always or a positive duration", *jsSync)
		}
		cfg.JetStreamSync = d
	}
	if *natsCreds != "" {
		cfg.NATSOptions = append(cfg.NATSOptions, nats.UserCredentials(*natsCreds))
	}
	if *tlsCA != "" {
		cfg.NATSOptions = append(cfg.NATSOptions, nats.RootCAs(*tlsCA))
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return nil, nil, errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	if *tlsCert != "" {
		cfg.NATSOptions = append(cfg.NATSOptions, nats.ClientCert(*tlsCert, *tlsKey))
	}
	// Replicas apply to the streams and buckets this daemon creates; an
	// existing stream keeps its own, so every member of a cluster should
	// pass the same value (a mismatch shows as a stream update on start).
	cfg.Replicas = *replicas
	cfg.AdvertiseHTTP = advertiseHTTP(fs, *advertise, *httpAddr)
	// --member turns on cluster mode; the cluster options' own defaults
	// (MaxRestores) are pipeline/cluster's, not flags: they are tuning an
	// operator has not needed to change.
	if *member != "" {
		// A takeover restores the partition's last snapshot and replays
		// the inbound events after it, so they must still be stored:
		// with room for one failed snapshot, the interval and the lease
		// that detects a dead owner within half the inbound retention.
		if *snapEvery+*lease > *inMaxAge/2 {
			return nil, nil, fmt.Errorf("--snapshot-interval %v plus --lease %v: want at most half of --in-max-age (%v): a takeover replays the inbound events since the partition's last snapshot, which must not have expired", *snapEvery, *lease, *inMaxAge)
		}
		cfg.Cluster = &cluster.Options{MemberID: *member, LeaseTTL: *lease, SnapshotInterval: *snapEvery}
	}
	return cfg, logger, nil
}

// defaultMemoryLimit is the soft memory limit when --memory-limit-mb is
// 0 (see parseFlags): twice the state cache budget plus 384 MiB, and with
// the embedded NATS server (embedded) 128 MiB plus 8 MiB (one file-store
// block) per partition more. With the defaults, 896 MiB against an
// external NATS and 1.5 GiB with the embedded server and P=64.
func defaultMemoryLimit(cacheBytes int64, partitions int, embedded bool) int64 {
	limit := 2*cacheBytes + 384<<20
	if embedded {
		limit += 128<<20 + int64(partitions)*8<<20
	}
	return limit
}

// advertiseHTTP resolves --advertise-http: the value given on the command
// line or in FLASHRETURN_ADVERTISE_HTTP, else derived from --http
// (cluster.DefaultAdvertiseHTTP: "http://"+addr when addr names a
// concrete host, else ""). An explicitly empty value (the flag or the
// variable set to "") is kept: it is how an operator says "advertise
// nothing" for a member others must not forward to, which a default
// derived from --http would silently undo.
func advertiseHTTP(fs *flag.FlagSet, value, httpAddr string) string {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "advertise-http" })
	if _, env := os.LookupEnv("FLASHRETURN_ADVERTISE_HTTP"); set || env {
		return value
	}
	return cluster.DefaultAdvertiseHTTP(httpAddr)
}

// newLogger makes the daemon's logger: text for a terminal, JSON for a log
// pipeline. Logs go to stderr; stdout is left to the subcommands' output
// (a policy file, a replay report) so that it can be redirected whole.
func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// policyCmd implements `flashreturnd policy show|check`: show prints a
// preset as the policy file that reproduces it (the starting point of a
// custom policy), check loads a file with the daemon's own loader, so a
// file that passes check is one the daemon's reload accepts.
func policyCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || (args[0] != "show" && args[0] != "check") {
		fmt.Fprintln(stderr, "usage: flashreturnd policy show <preset> | policy check <file>")
		return 2
	}
	switch args[0] {
	case "show":
		p, ok := core.Preset(args[1])
		if !ok {
			fmt.Fprintf(stderr, "flashreturnd: unknown preset %q (presets: %s)\n", args[1], strings.Join(core.PresetNames(), ", "))
			return 2
		}
		b, err := policyfile.Marshal(p)
		if err != nil {
			fmt.Fprintln(stderr, "flashreturnd:", err)
			return 1
		}
		_, _ = stdout.Write(b)
	case "check":
		p, err := policyfile.Load(args[1])
		if err != nil {
			fmt.Fprintln(stderr, "flashreturnd:", err)
			return 1
		}
		fmt.Fprintf(stdout, "ok: policy %s version %s\n", p.Name, p.Version)
	}
	return 0
}
