package defaults

import (
	"fmt"
	"time"
)

// The settings below are the ones a daemon, its flags and replay must
// agree on. Each was repeated in cmd/flashreturnd/main.go, replay.go and
// pipeline's Config before; a change to one copy only would have made a
// replay decide differently from the daemon it replays.

// Partitions is P, the number of partitions, when none is given. 64
// spreads a day's peak over the cores of one large machine and over a
// handful of cluster members while keeping one consumer per partition
// cheap for the NATS server; P is fixed for the life of the streams, so a
// replay must use the value the daemon ran with.
const Partitions = 64

// MaxPartitions bounds P: each partition is a consumer (and, in the
// streams layout, a stream), and a server with thousands of them spends
// its time on their bookkeeping.
const MaxPartitions = 4096

// Zone is the shoppers' time zone when none is given: calendar rules
// (the 7-day return window ends at local midnight) are computed in it, so
// a replay in another zone would move decisions across midnight.
const Zone = "Asia/Shanghai"

// Location loads Zone. It fails only on a system without the time zone
// database (the binary does not embed it).
func Location() (*time.Location, error) {
	loc, err := time.LoadLocation(Zone)
	if err != nil {
		return nil, fmt.Errorf("load time zone %s: %w", Zone, err)
	}
	return loc, nil
}

// CacheBytes is the state cache budget (256 MiB): enough to keep the
// active shoppers of a node's partitions hot in the benchmark's double-11
// load, small enough for a 1 GiB container with the Go runtime's slack.
const CacheBytes = 256 << 20

// CacheMiB is CacheBytes in MiB, the unit of the --cache-mb flag.
const CacheMiB = CacheBytes >> 20

// BatchMax bounds a partition's batch (events applied and committed at
// once). 512 amortises a Badger commit and a round of publish acks over
// enough events to reach the benchmark's throughput, while one batch's
// outputs stay far under FR_OUT's duplicate window to republish.
const BatchMax = 512

// MaxTxnBytes is where a partition worker cuts a batch by size: once the
// state it has staged (state.Partition.StagedBytes, an estimate up to 2x
// high) plus the outbox its commit stores (the outputs of its batches in
// flight and its own) passes MaxTxnBytes, the batch ends before the next
// event. It is about half of what Badger accepts in one transaction with
// state's 8 MiB memtables (state.DefaultMaxBatchBytes, 1.2 MiB), the other
// half being room for the last event (its timers are bounded by
// apply.FireMaxBytes); a typical shopper stages under 1 KiB. A commit that
// still does not fit is applied again smaller (the worker's shrink).
const MaxTxnBytes = 600 << 10

// MaxFuture is how far an event's at may be ahead of the time its stream
// stored it before it is dead-lettered as future_time (the contract's
// --max-future default): publishers' clocks may skew by seconds, never
// by minutes, and a wrong clock must not fire a partition's timers early.
const MaxFuture = 5 * time.Minute

// ClockInterval is how often the daemon publishes a clock event into each
// partition, so that idle partitions still fire their timers: timers have
// second resolution in the contract.
const ClockInterval = time.Second

// DataDir is where the daemon keeps Badger state and the embedded
// server's store.
const DataDir = "./data"

// NATSListen is the embedded server's client address: NATS' usual port,
// loopback only, since an embedded server is for one machine.
const NATSListen = "127.0.0.1:4222"

// HTTPAddr is the metrics, health and query API address; loopback only
// until an operator decides to expose it.
const HTTPAddr = "127.0.0.1:8080"

// Retention of the streams the daemon creates: 7 days of inbound events
// (the replay horizon) and of outputs and dead letters.
const (
	InMaxAge  = 7 * 24 * time.Hour
	OutMaxAge = 7 * 24 * time.Hour
)

// Cluster mode defaults (see pipeline/cluster).
const (
	// LeaseTTL is the membership lease: long enough that a GC pause or a
	// slow heartbeat does not cost a member its partitions, short enough
	// that a crashed member's partitions move within seconds.
	LeaseTTL = 5 * time.Second
	// SnapshotInterval bounds what a takeover after a crash replays;
	// well under FR_OUT's 2-minute duplicate window, so the re-emitted
	// outputs are still dropped as duplicates.
	SnapshotInterval = time.Minute
	// Replicas of the streams and buckets: 1 on a single server.
	Replicas = 1
)

// MaxChanged bounds the list of requests whose outcome a replay reports
// as changed (every change is still counted).
const MaxChanged = 1000

// Policy is the preset a daemon decides with when none is named, and the
// baseline a replay compares against: the platform's standard policy, so
// that a replay with no --baseline compares with what a daemon with no
// --policy would have decided.
const Policy = "tmall-fast-return"
