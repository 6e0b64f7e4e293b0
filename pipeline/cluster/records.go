package cluster

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/ownership"
	"github.com/flashreturn/flashreturn/pipeline/defaults"
)

// Cluster mode's configuration and what it stores in NATS: the options,
// the bucket names, the FR_MEMBERS and FR_OWNERS records and their
// mapping to the ownership machine's types (cluster.go does the IO).

// ErrFenced is wrapped by a partition worker's error when it stopped
// because its daemon no longer holds the partition's claim (lease lapsed,
// or a newer claim seen).
var ErrFenced = errors.New("pipeline: partition fenced: claim no longer held")

// Names of the cluster's JetStream buckets and of the output header.
const (
	BucketMembers   = "FR_MEMBERS"
	BucketOwners    = "FR_OWNERS"
	BucketSnapshots = "FR_SNAPSHOTS"
	// EpochHeader carries, on every output published in cluster mode, the
	// epoch of the claim under which it was produced.
	EpochHeader = "Flashreturn-Epoch"
)

// memberIDRe is what a member ID may be: characters valid in a KV key, a
// metrics label and a log line without quoting, and short enough to stay
// readable in FR_OWNERS records and on the status page.
var memberIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Options turn on cluster mode (pipeline.Config.Cluster). The zero value
// of every field but MemberID means the default it documents
// ([Options.WithDefaults] fills them in).
type Options struct {
	// MemberID names this daemon in the cluster (required;
	// [A-Za-z0-9_-]{1,64}). Keep it stable across restarts (a host or pod
	// name): the assignment depends only on the member IDs, so a restarted
	// daemon gets the same partitions back and can reuse its local state.
	MemberID string
	// LeaseTTL is the membership lease: a daemon that cannot heartbeat for
	// this long is considered gone and its partitions are taken over.
	// Heartbeats go every LeaseTTL/5; a daemon stops writing LeaseTTL/5
	// before its lease can be seen expired. Every member must use the same
	// value (it is the FR_MEMBERS bucket's TTL). Default 5s, at least 1s.
	LeaseTTL time.Duration
	// SnapshotInterval is how often each owned partition whose cursor moved
	// is snapshotted to FR_SNAPSHOTS, which bounds what a takeover after a
	// crash replays. Keep it well under FR_OUT's duplicate window (2 min).
	// Default 1 min; negative disables periodic snapshots (a release still
	// snapshots).
	SnapshotInterval time.Duration
	// MaxRestores bounds the restores (snapshot downloads and imports) run
	// at once. Default 2.
	MaxRestores int
}

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	if o.LeaseTTL == 0 {
		o.LeaseTTL = defaults.LeaseTTL
	}
	if o.SnapshotInterval == 0 {
		o.SnapshotInterval = defaults.SnapshotInterval
	}
	if o.MaxRestores <= 0 {
		// Two restores at once keep a joining member's downloads from
		// starving its NATS connection, while a member taking over a dead
		// one's partitions still restores them in parallel.
		o.MaxRestores = 2
	}
	return o
}

// Validate checks o (after WithDefaults) without changing it. The
// member ID must be usable as a KV key and in metrics labels; a lease
// under a second leaves heartbeats (every LeaseTTL/5) no slack for a GC
// pause or a slow NATS round trip.
func (o Options) Validate() error {
	if !memberIDRe.MatchString(o.MemberID) {
		return fmt.Errorf("pipeline: config: cluster MemberID %q must match [A-Za-z0-9_-]{1,64}", o.MemberID)
	}
	if o.LeaseTTL < time.Second {
		return fmt.Errorf("pipeline: config: cluster LeaseTTL %s is under 1s", o.LeaseTTL)
	}
	return nil
}

// Hooks are what a Cluster asks of its daemon's partition runtime. The
// cluster decides when a partition runs; the daemon owns how: the
// Cluster never touches a worker, only these functions, each safe to call
// from any goroutine.
type Hooks struct {
	// RunPartition runs partition p's worker until ctx ends or fence
	// reports an error (the claim is gone), and returns the worker's
	// error (one wrapping ErrFenced when fenced). The worker checks fence
	// before every commit and every publish, and sends epoch as the
	// EpochHeader of every output. Before it returns, the daemon releases
	// the partition's state (the cluster snapshots it next).
	RunPartition func(ctx context.Context, p int, fence func() error, epoch string) error
	// Committed is partition p's last committed cursor: a lower bound of
	// what a snapshot exported now holds, and, once RunPartition has
	// returned, the final cursor a release records.
	Committed func(p int) uint64
	// Ready reports whether partition p's worker is consuming.
	Ready func(p int) bool
	// AdvertisedHTTP is the base URL the member record advertises for
	// forwarded queries ("" none).
	AdvertisedHTTP func() string
}

// memberRecord is the value of a member's key in FR_MEMBERS.
type memberRecord struct {
	Member   string `json:"member"`
	Instance string `json:"instance"`
	// Leaving: the member is shutting down; it keeps its partitions until
	// it releases them but is no longer a target.
	Leaving bool `json:"leaving,omitempty"`
	// HTTP is the base URL of the member's query API
	// (Config.AdvertiseHTTP), where the others forward queries for its
	// partitions; "" when it advertises none. Optional: records without it
	// decode, and a bare host:port (older daemons) is read as http://.
	HTTP string `json:"http,omitempty"`
}

// OwnerRecord is the value of a partition's key in FR_OWNERS.
type OwnerRecord struct {
	// Member owns the partition; "" once released.
	Member string `json:"member"`
	// Epoch is incremented by every claim: the fencing token.
	Epoch uint64 `json:"epoch"`
	// Snapshot is the object in FR_SNAPSHOTS holding the latest snapshot,
	// Cursor a lower bound of its cursor (exact for a release's).
	Snapshot string `json:"snapshot,omitempty"`
	Cursor   uint64 `json:"cursor"`
	// Released is, on a released record, the cursor the last owner had
	// reached; above Cursor when it could not snapshot there (the next
	// owner logs the gap as an error). Older daemons omit it.
	Released uint64    `json:"released,omitempty"`
	At       time.Time `json:"at"`
}

// OwnerKey is partition p's key in FR_OWNERS ("p.<p>").
func OwnerKey(p int) string { return "p." + strconv.Itoa(p) }

// ownerKeyPartition parses an FR_OWNERS key back to its partition; ok is
// false for any other key (the bucket may hold keys of later versions).
func ownerKeyPartition(key string) (int, bool) {
	if len(key) < 3 || key[:2] != "p." {
		return 0, false
	}
	p, err := strconv.Atoi(key[2:])
	return p, err == nil
}

// toRecord and fromRecord convert between FR_OWNERS' JSON and the
// machine's record (the wall-clock At is for operators only).
func toRecord(r OwnerRecord) ownership.Record {
	return ownership.Record{Member: r.Member, Epoch: r.Epoch, Snapshot: r.Snapshot, Cursor: r.Cursor, Released: r.Released}
}

func fromRecord(r ownership.Record) OwnerRecord {
	return OwnerRecord{Member: r.Member, Epoch: r.Epoch, Snapshot: r.Snapshot, Cursor: r.Cursor, Released: r.Released, At: time.Now().UTC()}
}

// outcome classifies a compare-and-set write's error for the machine: a
// refusal is a Conflict (certainly not stored); any other error (a
// timeout, a lost connection) leaves the write's fate Unknown.
func outcome(err error) ownership.Outcome {
	switch {
	case err == nil:
		return ownership.Written
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
		return ownership.Conflict
	}
	return ownership.Unknown
}
