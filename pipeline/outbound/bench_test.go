package outbound

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/state/record"
)

// BenchmarkRound measures one round through the Publisher (an atomic
// batch of n outputs of one partition and its marker, answered) on an
// embedded server's R1 file stream, against the same n outputs published
// asynchronously with per-message acks (the publishing before commit
// markers). ns/op is per round; outputs/s is what one round at a time
// sustains.
func BenchmarkRound(b *testing.B) {
	for _, n := range []int{1, 50, 200, 999} {
		b.Run(fmt.Sprintf("atomic/n=%d", n), func(b *testing.B) {
			p, _ := benchSetup(b, true)
			ctx := context.Background()
			if _, err := p.Claim(ctx, 0, 0); err != nil {
				b.Fatal(err)
			}
			run, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); p.Run(run) }()
			defer func() { stop(); <-done }()
			bt := NewBatch()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				bt.Reset(0, "", benchOutputs(uint64(i+1), n))
				p.Submit(bt)
				if err := <-bt.Done(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "outputs/s")
		})
		b.Run(fmt.Sprintf("async/n=%d", n), func(b *testing.B) {
			_, js := benchSetup(b, false)
			futures := make([]jetstream.PubAckFuture, 0, n)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				futures = futures[:0]
				for _, o := range benchOutputs(uint64(i+1), n) {
					msg := nats.NewMsg(o.Subject)
					msg.Data = o.Data
					f, err := js.PublishMsgAsync(msg, jetstream.WithMsgID(o.MsgID))
					if err != nil {
						b.Fatal(err)
					}
					futures = append(futures, f)
				}
				for _, f := range futures {
					select {
					case <-f.Ok():
					case err := <-f.Err():
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "outputs/s")
		})
	}
}

// benchSetup starts an embedded server with FR_OUT (atomic or not) on
// disk and returns a Publisher on it and the JetStream context.
func benchSetup(b *testing.B, atomic bool) (*Publisher, jetstream.JetStream) {
	srv := testkit.StartServer(b)
	nc, js := testkit.Connect(b, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FR_OUT", Subjects: []string{"fr.out.>", Subjects},
		AllowAtomicPublish: atomic, Duplicates: 2 * time.Minute, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	return New(Config{Conn: nc, JS: js, Stream: "FR_OUT"}), js
}

// benchOutputs is n decision-sized outputs of input seq.
func benchOutputs(seq uint64, n int) []record.OutMsg {
	out := make([]record.OutMsg, n)
	data := make([]byte, 300)
	for i := range out {
		out[i] = record.OutMsg{Subject: "fr.out.decision.u" + strconv.Itoa(i), MsgID: "d." + strconv.FormatUint(seq, 10) + "." + strconv.Itoa(i),
			Data: data, Pos: record.Pos{Seq: seq, Idx: uint32(i)}}
	}
	return out
}
