package outbound

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/state/record"
)

// setup starts a real server with FR_OUT as the daemon makes it (atomic
// batches, marker subjects, a 1 s duplicate window) and returns a
// publisher factory.
func setup(t *testing.T) (jetstream.JetStream, func(owner string, max int) *Publisher) {
	js, newPub, _ := setupConn(t)
	return js, newPub
}

// setupConn is setup that also gives a publisher that does not run (for
// tests that drive rounds by hand).
func setupConn(t *testing.T) (jetstream.JetStream, func(owner string, max int) *Publisher, func() *Publisher) {
	t.Helper()
	srv := testkit.StartServer(t)
	nc, js := testkit.Connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FR_OUT", Subjects: []string{"fr.out.>", Subjects},
		AllowAtomicPublish: true, Duplicates: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FR_DLQ", Subjects: []string{"fr.dlq.>"}}); err != nil {
		t.Fatal(err)
	}
	mk := func(owner string, max int) *Publisher {
		return New(Config{Conn: nc, JS: js, Stream: "FR_OUT", Owner: owner, EpochHeader: "Flashreturn-Epoch", MaxBatch: max, AckTimeout: 2 * time.Second})
	}
	return js, func(owner string, max int) *Publisher {
		p := mk(owner, max)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); p.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return p
	}, func() *Publisher { return mk("", 0) }
}

// outputs makes n outputs of partition p, input sequence seq, with a
// dead letter first when dlq is set.
func outputs(p int, seq uint64, n int, dlq bool) []record.OutMsg {
	var out []record.OutMsg
	idx := uint32(0)
	if dlq {
		out = append(out, record.OutMsg{Subject: "fr.dlq.bad_json", MsgID: fmt.Sprintf("dlq-%d-%d", p, seq), Data: []byte(`{}`), Pos: record.Pos{Seq: seq, Idx: idx}})
		idx++
	}
	for i := range n {
		out = append(out, record.OutMsg{Subject: fmt.Sprintf("fr.out.decision.u%d", p), MsgID: fmt.Sprintf("o-%d-%d-%d", p, seq, i),
			Data: []byte(`{}`), Pos: record.Pos{Seq: seq, Idx: idx}})
		idx++
	}
	return out
}

// wait returns b's result within 10 s.
func wait(t *testing.T, b *Batch) error {
	t.Helper()
	select {
	case err := <-b.Done():
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no result within 10s")
		return nil
	}
}

// TestChunksAndMarkers: a batch larger than a round goes out in chunks,
// each ending with a marker at its last output's position, the last at
// the batch's; the dead letter is stored first; the stream holds every
// output once and the markers chain.
func TestChunksAndMarkers(t *testing.T) {
	js, newPub := setup(t)
	p := newPub("", 5)
	ctx := context.Background()
	if pos, err := p.Claim(ctx, 2, 0); err != nil || !pos.IsZero() {
		t.Fatalf("claim: %v %v", pos, err)
	}
	b := NewBatch()
	msgs := outputs(2, 7, 10, true)
	b.Reset(2, "", msgs)
	p.Submit(b)
	if err := wait(t, b); err != nil {
		t.Fatal(err)
	}
	s, _ := js.Stream(ctx, "FR_OUT")
	last, _, err := Last(ctx, s, 2)
	if err != nil || last.Kind != KindCommit || last.Pos() != msgs[len(msgs)-1].Pos {
		t.Fatalf("last marker %+v %v, want a commit at %v", last, err, msgs[len(msgs)-1].Pos)
	}
	got, err := testkit.ReadStream(ctx, js, "FR_OUT")
	if err != nil || len(got) != 10 {
		t.Fatalf("FR_OUT holds %d outputs (%v), want 10", len(got), err)
	}
	info, _ := s.Info(ctx)
	// 10 outputs in chunks of 4 (a round of 5 keeps one for the marker):
	// 3 commit markers, plus the claim.
	if info.State.Msgs != 10+3+1 {
		t.Fatalf("FR_OUT holds %d messages, want 14 (10 outputs, 3 commit markers, 1 claim)", info.State.Msgs)
	}
	d, _ := js.Stream(ctx, "FR_DLQ")
	if di, _ := d.Info(ctx); di.State.Msgs != 1 {
		t.Fatalf("FR_DLQ holds %d messages, want 1", di.State.Msgs)
	}
	// A second process claims: it learns the position and the first
	// process's next batch is refused, counted and failed as fenced.
	q := newPub("b", 0)
	if pos, err := q.Claim(ctx, 2, 3); err != nil || pos != msgs[len(msgs)-1].Pos {
		t.Fatalf("second claim: %v %v, want %v", pos, err, msgs[len(msgs)-1].Pos)
	}
	b.Reset(2, "", outputs(2, 8, 2, false))
	p.Submit(b)
	if err := wait(t, b); !errors.Is(err, ErrFenced) {
		t.Fatalf("former owner's batch: %v, want ErrFenced", err)
	}
	if n := p.m.rejections.Get(); n != 1 {
		t.Fatalf("rejections %d, want 1", n)
	}
	// A claim of an older epoch than the chain's last is refused too.
	if _, err := newPub("c", 0).Claim(ctx, 2, 2); !errors.Is(err, ErrFenced) {
		t.Fatalf("claim of epoch 2 after epoch 3: %v, want ErrFenced", err)
	}
	// The new owner publishes on.
	c := NewBatch()
	c.Reset(2, "3", outputs(2, 8, 2, false))
	q.Submit(c)
	if err := wait(t, c); err != nil {
		t.Fatal(err)
	}
}

// TestLandedRetryIsRecognised: a round whose answer was lost is settled
// from the markers. Here the round is stored by hand first (as if its
// answer had been lost), so the publisher's own send is refused (its
// marker check fails): it must see its claim's marker at the batch's
// position and report success, not fence itself or publish again.
func TestLandedRetryIsRecognised(t *testing.T) {
	js, _, idle := setupConn(t)
	p := idle()
	ctx := context.Background()
	if _, err := p.Claim(ctx, 1, 0); err != nil {
		t.Fatal(err)
	}
	b := NewBatch()
	msgs := outputs(1, 3, 2, false)
	b.Reset(1, "", msgs)
	// Store the round as the publisher would, then submit it.
	var r round
	p.mu.Lock()
	p.parts[1].queue, p.parts[1].listed, p.order = []*Batch{b}, true, []int{1}
	p.build(&r)
	p.mu.Unlock()
	if _, err := p.send(ctx, &r); err != nil {
		t.Fatal(err)
	}
	p.end(&r)
	if progress := p.reconcile(ctx, &r, errors.New("test: answer lost")); !progress {
		t.Fatal("reconcile did not settle its own stored round")
	}
	if n := p.m.rejections.Get(); n != 0 {
		t.Fatalf("its own stored round counted as %d fencing rejections", n)
	}
	if err := wait(t, b); err != nil {
		t.Fatalf("landed batch: %v, want nil", err)
	}
	got, err := testkit.ReadStream(ctx, js, "FR_OUT")
	if err != nil || len(got) != 2 {
		t.Fatalf("FR_OUT holds %d outputs (%v), want 2", len(got), err)
	}
}

// TestDuplicateIDStoredOnce: an output whose Msg-Id FR_OUT holds though
// no marker covers it (an outbox written before positions existed, or
// markers purged by hand) would make every atomic batch carrying it fail;
// the round goes out without atomicity instead: the duplicate is dropped,
// the rest stored once, the marker written, the batch reported done.
func TestDuplicateIDStoredOnce(t *testing.T) {
	js, newPub := setup(t)
	p := newPub("", 0)
	ctx := context.Background()
	if _, err := p.Claim(ctx, 4, 0); err != nil {
		t.Fatal(err)
	}
	msgs := outputs(4, 9, 3, false)
	if _, err := js.Publish(ctx, msgs[1].Subject, msgs[1].Data, jetstream.WithMsgID(msgs[1].MsgID)); err != nil {
		t.Fatal(err)
	}
	b := NewBatch()
	b.Reset(4, "", msgs)
	p.Submit(b)
	if err := wait(t, b); err != nil {
		t.Fatal(err)
	}
	got, err := testkit.ReadStream(ctx, js, "FR_OUT")
	if err != nil || len(got) != 3 {
		t.Fatalf("FR_OUT holds %d outputs (%v), want 3", len(got), err)
	}
	s, _ := js.Stream(ctx, "FR_OUT")
	if last, _, err := Last(ctx, s, 4); err != nil || last.Kind != KindCommit || last.Pos() != msgs[2].Pos {
		t.Fatalf("last marker %+v %v, want a commit at %v", last, err, msgs[2].Pos)
	}
	if n := p.m.lenient.Get(); n != 1 {
		t.Fatalf("lenient rounds %d, want 1", n)
	}
}

// TestUnansweredRoundsStillOnce: with a commit answer timeout far below
// the server's answer time, nearly every round is settled by reading the
// markers while it may still be committing, and many are sent again and
// refused as duplicates or stale. Every partition still ends with every
// output stored once, in order, and its last marker at its last output.
func TestUnansweredRoundsStillOnce(t *testing.T) {
	js, _, idle := setupConn(t)
	p := idle()
	p.cfg.AckTimeout = 200 * time.Microsecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	const parts, batches, per = 4, 20, 3
	errs := make(chan error, parts)
	for part := range parts {
		if _, err := p.Claim(context.Background(), part, 0); err != nil {
			t.Fatal(err)
		}
		go func() {
			b := NewBatch()
			for i := range batches {
				b.Reset(part, "", outputs(part, uint64(i+1), per, false))
				p.Submit(b)
				select {
				case err := <-b.Done():
					if err != nil {
						errs <- fmt.Errorf("partition %d batch %d: %w", part, i, err)
						return
					}
				case <-time.After(30 * time.Second):
					errs <- fmt.Errorf("partition %d batch %d: no result", part, i)
					return
				}
			}
			errs <- nil
		}()
	}
	for range parts {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got, err := testkit.ReadStream(context.Background(), js, "FR_OUT")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, m := range got {
		ids[m.Header.Get(jetstream.MsgIDHeader)]++
	}
	if len(ids) != parts*batches*per {
		t.Fatalf("%d distinct outputs stored, want %d", len(ids), parts*batches*per)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	s, _ := js.Stream(context.Background(), "FR_OUT")
	for part := range parts {
		last, _, err := Last(context.Background(), s, part)
		if want := (record.Pos{Seq: batches, Idx: per - 1}); err != nil || last.Pos() != want {
			t.Errorf("partition %d: last marker %+v %v, want at %v", part, last, err, want)
		}
	}
	t.Logf("%d rounds stored, %d retries, %d lenient", p.m.rounds.Get(), p.m.retries.Get(), p.m.lenient.Get())
	// Failed rounds count as publish errors, which the commit-or-publish
	// alert watches.
	if r, e := p.m.retries.Get(), p.m.publishErrs.Get(); r == 0 || e != r {
		t.Errorf("%d retries, %d publish errors: want as many, and some", r, e)
	}
}
