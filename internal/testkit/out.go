package testkit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Msg is one stored message as output checks need it: where it went,
// what it says, its headers (the cluster's epoch header), where and when
// the stream stored it.
type Msg struct {
	Subject string
	Data    []byte
	Header  nats.Header
	Seq     uint64    // stream sequence
	Stored  time.Time // the stream's timestamp (server clock)
}

// toMsg copies what a check needs out of a delivered message (the
// delivery's buffers are not kept).
func toMsg(m jetstream.Msg) Msg {
	out := Msg{Subject: m.Subject(), Data: append([]byte(nil), m.Data()...), Header: m.Headers()}
	if meta, err := m.Metadata(); err == nil {
		out.Seq, out.Stored = meta.Sequence.Stream, meta.Timestamp
	}
	return out
}

// IsMarker reports whether subject is a commit or claim marker's
// (fr.commit.<p>, pipeline/outbound), which FR_OUT stores beside the
// outputs: ReadStream and Collect leave markers out, as a downstream
// consumer filtered on fr.out.> does.
func IsMarker(subject string) bool { return strings.HasPrefix(subject, "fr.commit.") }

// ReadStream reads stream (FR_OUT, FR_DLQ...) from its first message up
// to the last one stored when it is called, with a fresh ordered
// consumer: a long-lived one may lag while a NATS node restarts elsewhere
// in a cluster. It returns what it read and the first error; an empty
// stream is no error.
func ReadStream(ctx context.Context, js jetstream.JetStream, stream string) ([]Msg, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	last := s.CachedInfo().State.LastSeq
	if last == 0 {
		return nil, nil
	}
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	var msgs []Msg
	var seen uint64
	for seen < last {
		if ctx.Err() != nil {
			return msgs, ctx.Err()
		}
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return msgs, fmt.Errorf("read %s: %w", stream, err)
		}
		for m := range batch.Messages() {
			msg := toMsg(m)
			seen = max(seen, msg.Seq)
			if !IsMarker(msg.Subject) {
				msgs = append(msgs, msg)
			}
		}
	}
	return msgs, nil
}

// Collector follows streams from their first message for the rest of a
// test (the daemon harness reads FR_OUT and FR_DLQ this way). Safe for
// concurrent use.
type Collector struct {
	mu   sync.Mutex
	msgs []Msg
}

// Collect starts a Collector on each of streams, stopped when tb ends.
// Messages of different streams interleave in the order they arrive.
func Collect(tb testing.TB, js jetstream.JetStream, streams ...string) *Collector {
	tb.Helper()
	col := &Collector{}
	for _, stream := range streams {
		c, err := js.OrderedConsumer(context.Background(), stream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			tb.Fatal(err)
		}
		cc, err := c.Consume(func(m jetstream.Msg) {
			if IsMarker(m.Subject()) {
				return
			}
			msg := toMsg(m)
			col.mu.Lock()
			col.msgs = append(col.msgs, msg)
			col.mu.Unlock()
		})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(cc.Stop)
	}
	return col
}

// Msgs returns a copy of what was collected so far.
func (c *Collector) Msgs() []Msg { return c.From(0) }

// From returns a copy of the messages collected from the i-th on (none
// when i is past the end), so that a poller can take only what is new
// instead of copying, and decoding, everything at every poll.
func (c *Collector) From(i int) []Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i >= len(c.msgs) {
		return nil
	}
	return append([]Msg(nil), c.msgs[i:]...)
}

// EventAt returns the `at` of an encoded contract event (RFC 3339 with
// nanoseconds, as every event carries it), failing the test with the
// payload when the JSON or the time does not parse. It reads with
// encoding/json, not the module's codec: testkit imports no module
// package, and for one string field of well-formed JSON the two agree.
func EventAt(tb testing.TB, payload []byte) time.Time {
	tb.Helper()
	var v struct {
		At string `json:"at"`
	}
	if err := json.Unmarshal(payload, &v); err != nil {
		tb.Fatalf("%v: %s", err, payload)
	}
	at, err := time.Parse(time.RFC3339Nano, v.At)
	if err != nil {
		tb.Fatalf("%v: %s", err, payload)
	}
	return at
}
