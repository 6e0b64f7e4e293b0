package streams

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/defaults"
)

// EmbeddedOptions configures the in-process NATS server that flashreturnd
// runs when it is not given a --nats-url.
type EmbeddedOptions struct {
	// Listen is the client address (host:port). Port "-1" picks a free port
	// (tests); empty means defaults.NATSListen (127.0.0.1:4222).
	Listen string
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// SyncInterval is JetStream's fsync interval; 0 keeps the server default
	// (2 minutes). SyncAlways fsyncs every write (see README for the cost).
	SyncInterval time.Duration
	SyncAlways   bool
	// Layout and Partitions: with LayoutStreams the server maps
	// fr.in.<kind>.<user> to fr.p.<p>.<kind>.<user> for every publisher,
	// which is what feeds the per-partition streams.
	Layout     Layout
	Partitions int
}

// StartEmbedded starts an in-process nats-server with JetStream and waits
// until it accepts connections. The caller shuts it down with Shutdown and
// WaitForShutdown.
func StartEmbedded(o EmbeddedOptions) (*server.Server, error) {
	listen := o.Listen
	if listen == "" {
		listen = defaults.NATSListen
	}
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: listen port %q: %w", p, err)
	}
	opts := &server.Options{
		ServerName:   "flashreturn-embedded",
		Host:         host,
		Port:         port,
		JetStream:    true,
		StoreDir:     filepath.Clean(o.StoreDir),
		SyncInterval: o.SyncInterval,
		SyncAlways:   o.SyncAlways,
		NoSigs:       true,
		NoLog:        true,
		MaxPayload:   1 << 20,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if o.Layout == LayoutStreams {
		if err := srv.GlobalAccount().AddMapping(wire.PartitionMapping(o.Partitions)); err != nil {
			return nil, fmt.Errorf("embedded nats: partition mapping: %w", err)
		}
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready for connections on %s:%d within 10s", host, port)
	}
	return srv, nil
}
