package testkit

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestPublishReadCollect: a retried publish (same ID) is stored once, and
// both readers see exactly what the stream holds.
func TestPublishReadCollect(t *testing.T) {
	s := StartServer(t)
	_, js := Connect(t, s.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}
	col := Collect(t, js, "T")
	for range 3 {
		Publish(t, js, "t.a", "id-1", []byte("one"), 5*time.Second)
	}
	Publish(t, js, "t.b", "id-2", []byte("two"), 5*time.Second)
	msgs, err := ReadStream(ctx, js, "T")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || string(msgs[0].Data) != "one" || msgs[1].Subject != "t.b" || msgs[1].Seq != 2 {
		t.Fatalf("read %+v, want one and two", msgs)
	}
	WaitUntil(t, 5*time.Second, "the collector seeing both", func() bool { return len(col.Msgs()) == 2 })
	if err := PublishRetry(ctx, js, "nowhere", "id-3", nil, 50*time.Millisecond); err == nil {
		t.Fatal("publish to a subject no stream holds succeeded")
	}
}

// TestFreePort: the port can be listened on.
func TestFreePort(t *testing.T) {
	ln, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

// TestWaitUntilFails: a condition that never holds fails the test (run in
// a goroutine, as t.Fatal ends it).
func TestWaitUntilFails(t *testing.T) {
	ft := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		WaitUntil(ft, 30*time.Millisecond, "never", func() bool { return false })
	}()
	<-done
	if !ft.failed {
		t.Fatal("WaitUntil returned on a condition that never held")
	}
}

// fakeTB records Fatalf instead of ending the test.
type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(string, ...any) {
	f.failed = true
	runtime.Goexit()
}
