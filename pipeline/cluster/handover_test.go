package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/state"
	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

// snapEnv is an embedded JetStream server with the snapshot bucket, and a
// source store whose partition snapPart holds snapUsers typical shoppers
// at cursor snapUsers.
type snapEnv struct {
	js  jetstream.JetStream
	obs jetstream.ObjectStore
	src *state.Store
}

const (
	snapPart  = 3
	snapUsers = 2000 // ~0.9 MB of export: several 128 KiB chunks
)

func newSnapEnv(t *testing.T) *snapEnv {
	t.Helper()
	srv := testkit.StartServer(t)
	_, js := testkit.Connect(t, srv.ClientURL())
	obs, err := js.CreateObjectStore(context.Background(), jetstream.ObjectStoreConfig{Bucket: BucketSnapshots, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	e := &snapEnv{js: js, obs: obs, src: openSnapStore(t)}
	pt, err := e.src.Partition(snapPart)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Release()
	for i := range snapUsers {
		u, err := pt.User(fmt.Sprintf("u%08d", i))
		if err != nil {
			t.Fatal(err)
		}
		*u = *recordtest.TypicalUser(i)
		pt.MarkDirty(u)
		if (i+1)%500 == 0 || i == snapUsers-1 {
			if err := pt.Commit(uint64(i+1), 1, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	return e
}

func openSnapStore(t *testing.T) *state.Store {
	t.Helper()
	st, err := state.Open(state.Options{Dir: t.TempDir(), Metrics: metrics.NewSet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// put uploads the source partition as name and returns the object's info.
func (e *snapEnv) put(t *testing.T, name string) *jetstream.ObjectInfo {
	t.Helper()
	ctx := context.Background()
	if _, err := PutSnapshot(ctx, e.src, e.obs, snapPart, name, snapUsers); err != nil {
		t.Fatal(err)
	}
	info, err := e.obs.GetInfo(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if info.Chunks < 3 {
		t.Fatalf("object of %d bytes in %d chunks: the tests want several", info.Size, info.Chunks)
	}
	return info
}

func (e *snapEnv) get(ctx context.Context, dst *state.Store, name string) (int64, error) {
	return GetSnapshot(ctx, dst, e.js, e.obs, snapPart, name)
}

// objStream is the object store's stream.
func (e *snapEnv) objStream(t *testing.T) jetstream.Stream {
	t.Helper()
	s, err := e.js.Stream(context.Background(), "OBJ_"+BucketSnapshots)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// consumers is the number of consumers on the object store's stream.
func (e *snapEnv) consumers(t *testing.T) int {
	t.Helper()
	si, err := e.objStream(t).Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return si.State.Consumers
}

func chunkSubject(info *jetstream.ObjectInfo) string {
	return "$O." + info.Bucket + ".C." + info.NUID
}

// TestSnapshotHandover: a partition put into the object store and got
// back into another store is the same partition, and the download leaves
// no consumer behind.
func TestSnapshotHandover(t *testing.T) {
	e := newSnapEnv(t)
	info := e.put(t, "p3-e1-c2000")
	dst := openSnapStore(t)
	n, err := e.get(context.Background(), dst, "p3-e1-c2000")
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(info.Size) {
		t.Fatalf("read %d bytes of a %d-byte object", n, info.Size)
	}
	pt, err := dst.Partition(snapPart)
	if err != nil {
		t.Fatal(err)
	}
	if pt.Cursor() != snapUsers {
		t.Fatalf("cursor %d, want %d", pt.Cursor(), snapUsers)
	}
	pt.Release()
	for _, i := range []int{0, 1, 999, snapUsers - 1} {
		id := fmt.Sprintf("u%08d", i)
		want, _, err := e.src.ReadUser(snapPart, id)
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := dst.ReadUser(snapPart, id)
		if err != nil || !ok {
			t.Fatalf("user %s: ok=%v err=%v", id, ok, err)
		}
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(got)
		if string(wb) != string(gb) {
			t.Fatalf("user %s differs:\n got %s\nwant %s", id, gb, wb)
		}
	}
	if c := e.consumers(t); c != 0 {
		t.Fatalf("%d consumers left on the object stream", c)
	}
	if _, err := e.get(context.Background(), dst, "p3-e9-c9"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("missing object: %v", err)
	}
}

// getWithin runs get on another goroutine and returns its error and how
// long it took, failing the test when it has not returned after within
// (the bug: a download whose chunks stop coming held its caller for the
// 10-minute restore deadline, whatever its context said).
func getWithin(t *testing.T, within time.Duration, get func() error, whileWaiting func()) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- get() }()
	if whileWaiting != nil {
		whileWaiting()
	}
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(within):
		t.Fatalf("GetSnapshot has not returned %s after it started", within)
		return 0, nil
	}
}

// waitBlockedRead waits until a goroutine is blocked reading the
// snapshot for its import (in countReader.Read, in a select: past any
// check of the context before the wait). Cancelling before that point
// would not show the bug, which is a wait that the cancel does not end.
func waitBlockedRead(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	testkit.WaitUntil(t, 5*time.Second, "the import blocked reading the download", func() bool {
		n := runtime.Stack(buf, true)
		for g := range strings.SplitSeq(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "cluster.(*countReader).Read") && strings.Contains(g, " [select") {
				return true
			}
		}
		return false
	})
}

// TestGetSnapshotStalled is the regression test of a drain held by a
// stalled download: the object's metadata promises its bytes but no chunk
// ever arrives (its chunks purged, as a download whose consumer was lost
// sees it). The caller's cancel, the stall watchdog and the caller's
// deadline each end the download within a second or so, with an error,
// and leave no consumer behind.
func TestGetSnapshotStalled(t *testing.T) {
	e := newSnapEnv(t)
	info := e.put(t, "p3-e1-c2000")
	if err := e.objStream(t).Purge(context.Background(), jetstream.WithPurgeSubject(chunkSubject(info))); err != nil {
		t.Fatal(err)
	}

	t.Run("cancel", func(t *testing.T) {
		dst := openSnapStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var cancelled time.Time
		_, err := getWithin(t, 10*time.Second, func() error {
			_, err := e.get(ctx, dst, "p3-e1-c2000")
			return err
		}, func() {
			waitBlockedRead(t)
			cancelled = time.Now()
			cancel()
		})
		took := time.Since(cancelled)
		t.Logf("returned %s after the cancel: %v", took, err)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want one wrapping context.Canceled", err)
		}
		if took > 3*time.Second {
			t.Fatalf("returned %s after the cancel", took)
		}
		if c := e.consumers(t); c != 0 {
			t.Fatalf("%d consumers left on the object stream", c)
		}
		if _, err := dst.Partition(snapPart); !errors.Is(err, state.ErrImportIncomplete) && err != nil {
			t.Fatalf("partition after a cancelled import: %v", err)
		}
	})

	t.Run("watchdog", func(t *testing.T) {
		defer func(d time.Duration) { restoreStall = d }(restoreStall)
		restoreStall = time.Second
		dst := openSnapStore(t)
		took, err := getWithin(t, 10*time.Second, func() error {
			_, err := e.get(context.Background(), dst, "p3-e1-c2000")
			return err
		}, nil)
		t.Logf("returned after %s: %v", took, err)
		if err == nil || !strings.Contains(err.Error(), "no snapshot bytes for 1s") {
			t.Fatalf("error %v, want the stall watchdog's", err)
		}
		if took > 4*time.Second {
			t.Fatalf("a 1 s stall watchdog returned after %s", took)
		}
		if c := e.consumers(t); c != 0 {
			t.Fatalf("%d consumers left on the object stream", c)
		}
	})

	t.Run("deadline", func(t *testing.T) {
		dst := openSnapStore(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		took, err := getWithin(t, 10*time.Second, func() error {
			_, err := e.get(ctx, dst, "p3-e1-c2000")
			return err
		}, nil)
		t.Logf("returned after %s: %v", took, err)
		if err == nil {
			t.Fatal("a download of missing chunks succeeded")
		}
		if took > 4*time.Second {
			t.Fatalf("a 1 s deadline returned after %s", took)
		}
		if c := e.consumers(t); c != 0 {
			t.Fatalf("%d consumers left on the object stream", c)
		}
	})
}

// TestGetSnapshotCorrupt: an object whose chunks do not match its
// metadata (a wrong digest, a lost last chunk) fails the restore with an
// error saying so, and leaves the partition an incomplete import rather
// than a silently wrong one.
func TestGetSnapshotCorrupt(t *testing.T) {
	e := newSnapEnv(t)
	ctx := context.Background()

	t.Run("digest", func(t *testing.T) {
		info := e.put(t, "p3-e1-c2000")
		// Republish the metadata with the digest of nothing.
		bad := *info
		bad.Digest = jetstream.GetObjectDigestValue(sha256.New())
		data, err := json.Marshal(&bad)
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg("$O." + info.Bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(info.Name)))
		m.Header.Set("Nats-Rollup", "sub")
		m.Data = data
		if _, err := e.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		dst := openSnapStore(t)
		_, err = e.get(ctx, dst, info.Name)
		t.Logf("wrong digest: %v", err)
		if !errors.Is(err, jetstream.ErrDigestMismatch) {
			t.Fatalf("error %v, want one wrapping ErrDigestMismatch", err)
		}
		if _, err := dst.Partition(snapPart); !errors.Is(err, state.ErrImportIncomplete) {
			t.Fatalf("partition after a bad download: %v, want ErrImportIncomplete", err)
		}
	})

	t.Run("truncated", func(t *testing.T) {
		info := e.put(t, "p3-e2-c2000")
		s := e.objStream(t)
		last, err := s.GetLastMsgForSubject(ctx, chunkSubject(info))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteMsg(ctx, last.Sequence); err != nil {
			t.Fatal(err)
		}
		dst := openSnapStore(t)
		_, err = e.get(ctx, dst, info.Name)
		t.Logf("last chunk lost: %v", err)
		if err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("error %v, want one saying the object is truncated", err)
		}
		if _, err := dst.Partition(snapPart); !errors.Is(err, state.ErrImportIncomplete) {
			t.Fatalf("partition after a bad download: %v, want ErrImportIncomplete", err)
		}
	})

	t.Run("link", func(t *testing.T) {
		info := e.put(t, "p3-e3-c2000")
		if _, err := e.obs.AddLink(ctx, "p3-e4-c2000", info); err != nil {
			t.Fatal(err)
		}
		_, err := e.get(ctx, openSnapStore(t), "p3-e4-c2000")
		t.Logf("link: %v", err)
		if err == nil || !strings.Contains(err.Error(), "link") {
			t.Fatalf("error %v, want one refusing the link", err)
		}
	})
	if c := e.consumers(t); c != 0 {
		t.Fatalf("%d consumers left on the object stream", c)
	}
}
