package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/wire"
)

// The relay's stream settings mirror flashreturnd's on purpose: the
// ceiling it measures is only a ceiling for the daemon if the server does
// the same work on both sides of the comparison (same subjects, same
// transform, same duplicate window, whose bookkeeping is a real cost per
// message). The contract's names come from internal/wire, the contract
// in code (checked against contract.md there), and not from the daemon's
// packages, so that the relay links none of the code it is compared with.

// options are the relay's settings; see the flags in main for defaults.
type options struct {
	natsURL    string
	listen     string
	dataDir    string
	layout     string
	partitions int
	batch      int
	syncAlways bool
	stats      io.Writer // one line per second when not nil
}

// main parses flags, starts the CPU profile and runs until a signal. The
// profile covers the embedded server too, since it runs in this process:
// that is why embedding is the default, the profile then shows how the
// time splits between NATS and the relay loop.

func main() {
	var o options
	// Exit codes follow the go tools: 0 for -h, 2 for a bad flag.
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.StringVar(&o.natsURL, "nats-url", "", "join this NATS server instead of embedding one")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:4222", "client address of the embedded server (port -1: any free port)")
	fs.StringVar(&o.dataDir, "data-dir", "", "JetStream store of the embedded server (default: a temporary directory, removed at exit)")
	fs.StringVar(&o.layout, "layout", "streams", "inbound storage: shared (one FR_IN, filtered consumers) or streams (FR_IN_<p> fed by a server mapping)")
	fs.IntVar(&o.partitions, "partitions", 64, "number of partitions P")
	fs.IntVar(&o.batch, "batch", 1024, "largest batch a partition worker takes")
	fs.BoolVar(&o.syncAlways, "sync-always", false, "embedded server fsyncs every write (JetStream sync_interval: always)")
	stats := fs.Bool("stats", false, "print relayed events/s on stderr every second")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole process (relay and embedded server) to this file")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: relay [flags]\n\nNo-op relay: consume inbound events per partition, publish one output each to fr.out.relay.<kind>.<user>, AckAll per batch.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if *stats {
		o.stats = os.Stderr
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(1)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, o, func(url string) {
		fmt.Printf("relay ready url=%s layout=%s partitions=%d batch=%d\n", url, o.layout, o.partitions, o.batch)
	})
	if err != nil {
		// os.Exit skips the deferred calls: stop the profile by hand so
		// that a failed run still leaves a readable profile behind.
		fmt.Fprintln(os.Stderr, "relay:", err)
		stop()
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// run sets up the server, streams and consumers, calls ready with the
// client URL once every partition is consuming, and relays until ctx ends.
func run(ctx context.Context, o options, ready func(url string)) error {
	if o.layout != "shared" && o.layout != "streams" {
		return fmt.Errorf("unknown layout %q (want shared or streams)", o.layout)
	}
	if o.partitions < 1 || o.batch < 1 {
		return fmt.Errorf("partitions (%d) and batch (%d) must be positive", o.partitions, o.batch)
	}
	url := o.natsURL
	if url == "" {
		srv, cleanup, err := embed(o)
		if err != nil {
			return err
		}
		defer cleanup()
		url = srv.ClientURL()
	}
	nc, err := nats.Connect(url, nats.Name("flashreturn-relay"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384), jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return err
	}
	if err := ensureStreams(ctx, js, o); err != nil {
		return err
	}
	var relayed atomic.Int64
	var wg sync.WaitGroup
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// One slot per worker: a worker that fails after another already did
	// must not block on the send, or wg.Wait below would never return.
	errs := make(chan error, o.partitions)
	for p := 0; p < o.partitions; p++ {
		w, err := newWorker(wctx, js, o, p, &relayed)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.run(wctx); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	// Ready only once every consumer exists: the load generator starts
	// its clock at this line, and events published before a consumer
	// exists would be measured as a slow start of the relay.
	if ready != nil {
		ready(url)
	}
	if o.stats != nil {
		go printStats(wctx, o.stats, &relayed)
	}
	// Drain: each worker finishes the batch in hand (its outputs acked,
	// its input acked) before run returns, as flashreturnd does on
	// SIGTERM, so an interrupted benchmark leaves no half-relayed batch.
	<-wctx.Done()
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// embed starts the in-process nats-server. NoSigs leaves SIGINT and
// SIGTERM to the relay's own drain (the server would otherwise shut
// itself down under the workers); NoLog keeps stdout to the one "relay
// ready" line that bench/run.sh waits for. The subject mapping of the
// streams layout is installed before Start, so that no publish can arrive
// before it and land unmapped. The returned cleanup waits for the
// server's shutdown before removing a temporary store, which it would
// otherwise still be writing.
func embed(o options) (*server.Server, func(), error) {
	host, port := "127.0.0.1", 4222
	if o.listen != "" {
		h, p, err := net.SplitHostPort(o.listen)
		if err != nil {
			return nil, nil, fmt.Errorf("listen address %q: %w", o.listen, err)
		}
		if port, err = strconv.Atoi(p); err != nil {
			return nil, nil, fmt.Errorf("listen port %q: %w", p, err)
		}
		host = h
	}
	dir, rm := o.dataDir, func() {}
	if dir == "" {
		d, err := os.MkdirTemp("", "relay-js-")
		if err != nil {
			return nil, nil, err
		}
		dir, rm = d, func() { os.RemoveAll(d) }
	}
	srv, err := server.NewServer(&server.Options{ServerName: "flashreturn-relay", Host: host, Port: port, JetStream: true,
		StoreDir: dir, SyncAlways: o.syncAlways, NoSigs: true, NoLog: true, MaxPayload: 1 << 20})
	if err != nil {
		rm()
		return nil, nil, fmt.Errorf("embedded nats: %w", err)
	}
	if o.layout == "streams" {
		if err := srv.GlobalAccount().AddMapping(wire.PartitionMapping(o.partitions)); err != nil {
			rm()
			return nil, nil, fmt.Errorf("embedded nats: partition mapping: %w", err)
		}
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		rm()
		return nil, nil, errors.New("embedded nats: not ready within 10s")
	}
	return srv, func() { srv.Shutdown(); srv.WaitForShutdown(); rm() }, nil
}

// inStream names the stream that stores partition p: FR_IN for every
// partition in the shared layout, FR_IN_<p> in the streams layout.
func inStream(layout string, p int) string {
	if layout == "shared" {
		return wire.StreamIn
	}
	return wire.PartitionStream(p)
}

// ensureStreams creates the streams flashreturnd would, so that loadgen
// drives the relay unchanged (it reads FR_OUT to count outputs, and
// publishes merchants to FR_MERCHANT). There is no MaxAge: a benchmark
// run is minutes long and its store is temporary. CreateOrUpdate makes a
// second run against the same --data-dir or --nats-url harmless.
func ensureStreams(ctx context.Context, js jetstream.JetStream, o options) error {
	cfgs := []jetstream.StreamConfig{
		{Name: wire.StreamOut, Subjects: []string{wire.OutSubjects}, Duplicates: wire.MinDuplicateWindow, Storage: jetstream.FileStorage},
		{Name: wire.StreamDLQ, Subjects: []string{wire.DLQSubjects}, Duplicates: wire.MinDuplicateWindow, Storage: jetstream.FileStorage},
		{Name: wire.StreamMerchant, Subjects: []string{wire.MerchantSubjects}, MaxMsgsPerSubject: wire.MerchantHistory, Storage: jetstream.FileStorage},
	}
	if o.layout == "shared" {
		// The daemon's partition() transform (wire.PartitionMapping): it
		// must hash the same token (the user) as the daemon's, or the relay
		// would spread events over partitions differently and measure
		// another fan-out.
		src, dest := wire.PartitionMapping(o.partitions)
		cfgs = append(cfgs, jetstream.StreamConfig{Name: wire.StreamIn, Subjects: []string{src}, Duplicates: wire.MinDuplicateWindow,
			Storage:          jetstream.FileStorage,
			SubjectTransform: &jetstream.SubjectTransformConfig{Source: src, Destination: dest}})
	} else {
		for p := 0; p < o.partitions; p++ {
			cfgs = append(cfgs, jetstream.StreamConfig{Name: inStream(o.layout, p), Subjects: []string{wire.PartitionFilter(p)},
				Duplicates: wire.MinDuplicateWindow, Storage: jetstream.FileStorage})
		}
	}
	for _, c := range cfgs {
		if _, err := js.CreateOrUpdateStream(ctx, c); err != nil {
			return fmt.Errorf("create stream %s: %w", c.Name, err)
		}
	}
	return nil
}

// worker relays one partition: one durable consumer, one goroutine, like
// a flashreturnd partition worker, so that the relay has the same
// parallelism and the same per-partition ordering.
type worker struct {
	js      jetstream.JetStream
	p       int
	stream  string
	batch   int
	cc      jetstream.ConsumeContext
	msgs    chan jetstream.Msg
	relayed *atomic.Int64
	// futs and outs are reused from batch to batch (one allocation per
	// worker, not per batch); outs keeps each message for a resend.
	futs []jetstream.PubAckFuture
	outs []*nats.Msg
}

// newWorker creates partition p's consumer and starts its delivery into
// w.msgs. AckWait (30 s) is far above a batch's round trip so that no
// message is redelivered during a measurement, which would be counted
// twice; MaxAckPending (4 batches) lets the server run ahead by the
// buffered batches without letting one partition hoard the stream.

func newWorker(ctx context.Context, js jetstream.JetStream, o options, p int, relayed *atomic.Int64) (*worker, error) {
	w := &worker{js: js, p: p, stream: inStream(o.layout, p), batch: o.batch, msgs: make(chan jetstream.Msg, 2*o.batch),
		relayed: relayed}
	cfg := jetstream.ConsumerConfig{Durable: "relay-" + strconv.Itoa(p), AckPolicy: jetstream.AckAllPolicy,
		AckWait: 30 * time.Second, MaxAckPending: 4 * o.batch}
	if o.layout == "shared" {
		cfg.FilterSubject = wire.PartitionFilter(p)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, w.stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("partition %d: consumer: %w", p, err)
	}
	// The callback only hands the message over. The channel holds two
	// batches, the same as PullMaxMessages, so a full channel means the
	// worker is behind and blocking here is the back-pressure; ctx frees
	// it at shutdown.
	w.cc, err = cons.Consume(func(m jetstream.Msg) {
		select {
		case w.msgs <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(2*o.batch))
	if err != nil {
		return nil, fmt.Errorf("partition %d: consume: %w", p, err)
	}
	return w, nil
}

// run relays batches until ctx ends, then finishes the batch in hand.
func (w *worker) run(ctx context.Context) error {
	defer func() {
		w.cc.Stop()
		<-w.cc.Closed()
	}()
	batch := make([]jetstream.Msg, 0, w.batch)
	for {
		// Block for the first message only, then take what is already
		// buffered: latency stays one message's under light load while
		// batches fill up under heavy load, with no timer to tune.
		batch = batch[:0]
		select {
		case m := <-w.msgs:
			batch = append(batch, m)
		case <-ctx.Done():
			return nil
		}
	fill:
		for len(batch) < w.batch {
			select {
			case m := <-w.msgs:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		if err := w.relay(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// relay publishes one output per message of the batch, waits for all the
// publish acks, then acknowledges the batch with one AckAll.
func (w *worker) relay(ctx context.Context, batch []jetstream.Msg) error {
	w.futs, w.outs = w.futs[:0], w.outs[:0]
	for _, m := range batch {
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("partition %d: metadata: %w", w.p, err)
		}
		// Every layout stores under fr.p.<p>.<kind>.<user>: the kind and
		// the user are the last two tokens.
		subj := m.Subject()
		cut := strings.LastIndexByte(subj, '.')
		user := subj[cut+1:]
		kind := subj[strings.LastIndexByte(subj[:max(cut, 0)], '.')+1 : max(cut, 0)]
		// The Nats-Msg-Id is the input's stream and sequence, so a batch
		// redelivered after a crash publishes the same ids and FR_OUT keeps
		// one copy: the same idempotence (and dedup cost) as the daemon's.
		// "relay" is no contract kind on purpose: FR_OUT stores it (its
		// filter is fr.out.>) but no consumer of decisions mistakes it for
		// one. The inbound kind in the subject lets loadgen read only the
		// echoes of fr.in.return.* (RelaySubject), as it reads only the
		// daemon's outputs, not one message per event.
		out := &nats.Msg{Subject: wire.RelaySubject(kind, user), Data: m.Data(),
			Header: nats.Header{jetstream.MsgIDHeader: []string{w.stream + "-" + strconv.FormatUint(md.Sequence.Stream, 10)}}}
		f, err := w.publish(ctx, out)
		if err != nil {
			return err
		}
		w.futs = append(w.futs, f)
		w.outs = append(w.outs, out)
	}
	// Every output is stored before the input is acknowledged; a failed
	// async publish is retried synchronously (resend) rather than failing
	// the batch, as a transient timeout under load is expected.
	for i, f := range w.futs {
		select {
		case <-f.Ok():
		case <-f.Err():
			if err := w.resend(ctx, w.outs[i]); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// One AckAll on the last message acknowledges the whole batch: one
	// ack per batch instead of per message, the largest saving batching
	// buys on the consumer side.
	if err := batch[len(batch)-1].Ack(); err != nil {
		return fmt.Errorf("partition %d: ack: %w", w.p, err)
	}
	w.relayed.Add(int64(len(batch)))
	return nil
}

// publish sends asynchronously, waiting while the in-flight bound is hit.
// The bound (WithPublishAsyncMaxPending in run) is shared by all workers;
// hitting it is back-pressure from the server, so the loop waits in
// one-second stalls instead of failing the batch.
func (w *worker) publish(ctx context.Context, m *nats.Msg) (jetstream.PubAckFuture, error) {
	for {
		f, err := w.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Second))
		if err == nil {
			return f, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return nil, fmt.Errorf("partition %d: publish: %w", w.p, err)
		}
	}
}

// resend publishes synchronously until acknowledged or ctx ends: an input
// is never acknowledged while its output is not stored.
func (w *worker) resend(ctx context.Context, m *nats.Msg) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := w.js.PublishMsg(actx, m)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// printStats writes the relayed total and the last second's rate once a
// second, for watching a run by eye; bench/run.sh reads loadgen's report,
// not this.
func printStats(ctx context.Context, w io.Writer, relayed *atomic.Int64) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var prev int64
	start := time.Now()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		n := relayed.Load()
		fmt.Fprintf(w, "[%5.0fs] relayed %d (%d/s)\n", time.Since(start).Seconds(), n, n-prev)
		prev = n
	}
}
