package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/internal/testkit"
)

// TestMain lets the test binary stand in for flashreturnd: with
// FLASHRETURND_CHILD set it runs the daemon with the arguments it holds
// (testkit.RunChild).
func TestMain(m *testing.M) {
	testkit.RunChild("FLASHRETURND_CHILD", func(args []string) int { return run(args, os.Stdout, os.Stderr) })
	os.Exit(m.Run())
}

type child struct {
	cmd      *exec.Cmd
	natsURL  string
	httpAddr string
}

func startChild(t *testing.T, dataDir string, natsPort, httpPort int, extra ...string) *child {
	t.Helper()
	args := []string{"--data-dir", dataDir, "--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort),
		"--http", fmt.Sprintf("127.0.0.1:%d", httpPort), "--partitions", "8", "--clock-interval", "0", "--log-level", "warn"}
	args = append(args, extra...)
	cmd := testkit.ChildCommand(context.Background(), "FLASHRETURND_CHILD", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Never leave a daemon behind, whatever way the test ends.
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	c := &child{cmd: cmd, natsURL: fmt.Sprintf("nats://127.0.0.1:%d", natsPort), httpAddr: fmt.Sprintf("127.0.0.1:%d", httpPort)}
	testkit.WaitUntil(t, 30*time.Second, "child daemon ready", func() bool {
		resp, err := http.Get("http://" + c.httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return c
}

func (c *child) kill9(t *testing.T) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

// publishAll publishes events with acks, retrying each (same Nats-Msg-Id)
// until stored; it gives up only when the deadline passes.
func publishAll(t *testing.T, url string, evs []event) {
	t.Helper()
	nc, js := testkit.Connect(t, url)
	defer nc.Close()
	for _, e := range evs {
		testkit.Publish(t, js, e.subject, e.id, e.data, 20*time.Second)
	}
}

type event struct {
	subject, id string
	data        []byte
}

func mkEvent(kind, user, typ, at string, fields map[string]any) event {
	id := user + "-" + strings.ReplaceAll(typ, ".", "_")
	for _, k := range []string{"order_id", "request_id"} {
		if v, ok := fields[k]; ok {
			id += fmt.Sprintf("-%v", v)
		}
	}
	m := map[string]any{"event_id": id, "type": typ, "at": at, "user_id": user}
	for k, v := range fields {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return event{subject: "fr.in." + kind + "." + user, id: id, data: b}
}

// world builds users k<from>..k<to-1>, each with an order and one request
// under tmall, in four lives (i%4): 0 approved at once and refunded on
// tracking; 1 sent to review, approved by its merchant, refunded on an ok
// inspection; 2 sent to review and approved by the 72-hour deadline; 3
// approved at once and closed by the 7-day return deadline with nothing
// sent back. A last event per user, dated after every deadline (a second
// apart, so that each one moves its partition's clock), fires them.
func world(from, to int) []event {
	var evs []event
	for i := from; i < to; i++ {
		u := fmt.Sprintf("k%d", i)
		reason := "no_reason"
		if i%4 == 1 || i%4 == 2 {
			reason = "quality" // not fast-tracked by tmall: review
		}
		evs = append(evs,
			mkEvent("credit", u, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5}),
			mkEvent("order", u, "order.paid", "2026-11-10T10:00:00+08:00", map[string]any{"order_id": "o", "merchant_id": "m1", "category": "apparel", "size": "small", "paid_fen": 1000 + i, "seven_day": true}),
			mkEvent("order", u, "order.delivered", "2026-11-11T10:00:00+08:00", map[string]any{"order_id": "o"}),
			mkEvent("return", u, "return.requested", "2026-11-12T10:00:00+08:00", map[string]any{"request_id": "r", "order_id": "o", "kind": "return_refund", "reason": reason, "pickup": false}),
		)
		switch i % 4 {
		case 0:
			evs = append(evs, mkEvent("logistics", u, "logistics.tracking", "2026-11-12T11:00:00+08:00", map[string]any{"request_id": "r", "tracking_no": "T"}))
		case 1:
			evs = append(evs,
				mkEvent("review", u, "review.approved", "2026-11-12T12:00:00+08:00", map[string]any{"request_id": "r", "by": "merchant"}),
				mkEvent("inspection", u, "inspection.result", "2026-11-14T12:00:00+08:00", map[string]any{"request_id": "r", "outcome": "ok"}))
		}
		last := time.Date(2026, 11, 20, 12, 0, 0, 0, time.FixedZone("CST", 8*3600)).Add(time.Duration(i) * time.Second)
		e := mkEvent("credit", u, "credit.updated", last.Format(time.RFC3339), map[string]any{"stars": 5})
		e.id += "-last"
		e.data = []byte(strings.Replace(string(e.data), `"event_id":"`+u+"-credit_updated", `"event_id":"`+e.id, 1))
		evs = append(evs, e)
	}
	return evs
}

// refundWorld builds users k<from>..k<to-1>, each with an order and a
// request that tmall approves at once and refunds on tracking: one
// decision and one refund each (the cluster tests count both).
func refundWorld(from, to int) []event {
	var evs []event
	for i := from; i < to; i++ {
		u := fmt.Sprintf("k%d", i)
		evs = append(evs,
			mkEvent("credit", u, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5}),
			mkEvent("order", u, "order.paid", "2026-11-10T10:00:00+08:00", map[string]any{"order_id": "o", "merchant_id": "m1", "category": "apparel", "size": "small", "paid_fen": 1000 + i, "seven_day": true}),
			mkEvent("order", u, "order.delivered", "2026-11-11T10:00:00+08:00", map[string]any{"order_id": "o"}),
			mkEvent("return", u, "return.requested", "2026-11-12T10:00:00+08:00", map[string]any{"request_id": "r", "order_id": "o", "kind": "return_refund", "reason": "no_reason", "pickup": false}),
			mkEvent("logistics", u, "logistics.tracking", "2026-11-12T11:00:00+08:00", map[string]any{"request_id": "r", "tracking_no": "T"}),
		)
	}
	return evs
}

// wantOutputs is what world(i, i+1) must produce for user k<i>: outputs
// by subject kind, each exactly once.
func wantOutputs(i int) map[string]int {
	switch i % 4 {
	case 0:
		return map[string]int{"decision": 1, "refund": 1}
	case 1:
		return map[string]int{"decision": 1, "resolution": 1, "refund": 1, "trust": 1}
	case 2:
		return map[string]int{"decision": 1, "resolution": 1}
	}
	return map[string]int{"decision": 1, "resolution": 1}
}

// TestKill9AndRestart kills the daemon with SIGKILL several times while it
// works through a backlog (with review answers and deadlines in flight),
// restarts it on the same data dir, and checks that every shopper got
// exactly the outputs its life implies, each exactly once: nothing lost,
// nothing doubled.
func TestKill9AndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	dir := t.TempDir()
	natsPort, httpPort := testkit.FreePort(t), testkit.FreePort(t)
	c := startChild(t, dir, natsPort, httpPort)
	merchant, _ := json.Marshal(map[string]any{"event_id": "m1", "type": "merchant.updated", "at": "2026-11-01T00:00:00+08:00", "merchant_id": "m1", "return_addresses": []string{"addr"}, "ship_addresses": []string{"addr"}})
	publishAll(t, c.natsURL, []event{{subject: "fr.merchant.m1", id: "m1", data: merchant}})
	// The merchant view refreshes asynchronously; a restart waits for it to
	// catch up before deciding, so no request meets a view without m1.
	c.kill9(t)
	// FR_OUT forgets a Msg-Id 1 s after storing it, and each restart
	// comes after that: exactly-once rests on the commit markers
	// (pipeline/outbound), not on the duplicate window.
	window := []string{"--out-duplicate-window", "1s"}
	c = startChild(t, dir, natsPort, httpPort, window...)
	const users, rounds = 600, 5
	per := users / rounds
	for r := 0; r < rounds; r++ {
		publishAll(t, c.natsURL, world(r*per, (r+1)*per))
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond) // a random moment to crash at, not synchronisation
		c.kill9(t)
		time.Sleep(1100 * time.Millisecond) // wall time past the duplicate window: what is tested, not a wait for a condition
		c = startChild(t, dir, natsPort, httpPort, window...)
	}
	defer c.kill9(t)
	_, js := testkit.Connect(t, c.natsURL)
	var outputs map[string]map[string]int // user → output kind → count
	var ids map[string]int                // Nats-Msg-Id → copies
	complete := func() bool {
		for i := range users {
			for kind, n := range wantOutputs(i) {
				if outputs[fmt.Sprintf("k%d", i)][kind] < n {
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		outputs, ids = map[string]map[string]int{}, map[string]int{}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		msgs, err := testkit.ReadStream(ctx, js, "FR_OUT")
		if err != nil {
			t.Fatalf("read FR_OUT: %v", err)
		}
		for _, m := range msgs {
			var v struct {
				UserID    string `json:"user_id"`
				RequestID string `json:"request_id"`
			}
			_ = json.Unmarshal(m.Data, &v)
			ids[m.Header.Get("Nats-Msg-Id")]++
			kind := strings.Split(m.Subject, ".")[2]
			if outputs[v.UserID] == nil {
				outputs[v.UserID] = map[string]int{}
			}
			outputs[v.UserID][kind]++
		}
		cancel()
		if complete() || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
	if !complete() {
		if resp, err := http.Get("http://" + c.httpAddr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, "pending") || strings.Contains(l, "outbox") || strings.Contains(l, "redeliver") || strings.Contains(l, "events_in") || strings.Contains(l, "partition_events") || strings.Contains(l, "resets") {
					t.Log(l)
				}
			}
		}
		t.Fatalf("not every output arrived within 60s")
	}
	if len(outputs) != users {
		t.Errorf("outputs for %d users, want %d", len(outputs), users)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("Nats-Msg-Id %q stored %d times", id, n)
		}
	}
	for i := range users {
		u := fmt.Sprintf("k%d", i)
		want := wantOutputs(i)
		for kind, n := range outputs[u] {
			if n != want[kind] {
				t.Errorf("%s (life %d): %d %s outputs, want %d", u, i%4, n, kind, want[kind])
			}
		}
	}
}
