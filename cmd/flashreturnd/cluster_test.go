package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/testkit"
	"github.com/flashreturn/flashreturn/internal/wire"
)

// owners reads FR_OWNERS: partition -> owning member ("" when released).
func owners(js jetstream.JetStream, parts int) map[int]string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := map[int]string{}
	kv, err := js.KeyValue(ctx, "FR_OWNERS")
	if err != nil {
		return out
	}
	for p := range parts {
		e, err := kv.Get(ctx, fmt.Sprintf("p.%d", p))
		if err != nil {
			continue
		}
		var rec struct {
			Member string `json:"member"`
		}
		_ = json.Unmarshal(e.Value(), &rec)
		out[p] = rec.Member
	}
	return out
}

// TestClusterKill9 runs three flashreturnd processes as cluster members on
// a 3-node NATS cluster with R3 streams. Under load it SIGKILLs one daemon
// and shuts one NATS node down; every request still gets exactly one
// decision and one refund, the survivors take every partition, and the
// longest time from a request's publish ack to its decision is reported.
// The survivors then drain on SIGTERM and exit 0 within 10 s.
func TestClusterKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster process test skipped in -short mode")
	}
	srvs, urls := testkit.StartCluster(t, 3)
	// The merchant goes in before the daemons start (they wait for their
	// merchant view to catch up), so that no request meets an empty view.
	{
		_, js := testkit.Connect(t, urls)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "FR_MERCHANT", Subjects: []string{"fr.merchant.>"}, MaxMsgsPerSubject: 1, Storage: jetstream.FileStorage, Replicas: 3})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		merchant, _ := json.Marshal(map[string]any{"event_id": "m1", "type": "merchant.updated", "at": "2026-11-01T00:00:00+08:00", "merchant_id": "m1", "return_addresses": []string{"addr"}, "ship_addresses": []string{"addr"}})
		testkit.Publish(t, js, "fr.merchant.m1", "m1", merchant, 20*time.Second)
	}
	kids := map[string]*child{}
	for _, id := range []string{"a", "b", "c"} {
		kids[id] = startChild(t, t.TempDir(), testkit.FreePort(t), testkit.FreePort(t),
			"--nats-url", urls, "--member", id, "--lease", "2s", "--replicas", "3", "--snapshot-interval", "1s",
			// FR_OUT forgets a Msg-Id after 1 s: the takeover's replay must
			// not rely on it (commit markers, pipeline/outbound).
			"--out-duplicate-window", "1s")
	}
	t.Cleanup(func() {
		for _, c := range kids {
			if c.cmd.ProcessState == nil {
				c.kill9(t)
			}
		}
	})
	nc, js := testkit.Connect(t, urls)
	const parts = 8
	members := func(o map[int]string) map[string][]int {
		m := map[string][]int{}
		for p, id := range o {
			if id != "" {
				m[id] = append(m[id], p)
			}
		}
		return m
	}
	testkit.WaitUntil(t, 30*time.Second, "partitions spread over the 3 members", func() bool {
		o := owners(js, parts)
		return len(o) == parts && len(members(o)) == 3 && len(members(o)[""]) == 0
	})
	lost := members(owners(js, parts))["c"]
	t.Logf("c owns %v", lost)

	// The load: 600 shoppers, each with a request that tmall approves and
	// refunds on tracking, published with acks (retried while a node is
	// down); the ack time of each request is kept.
	const users = 600
	var mu sync.Mutex
	acked := map[string]time.Time{}
	var published sync.WaitGroup
	progress := make(chan int, users)
	published.Go(func() {
		for i := range users {
			for _, e := range refundWorld(i, i+1) {
				// Retried with the same ID while a node is down.
				if err := testkit.PublishRetry(context.Background(), js, e.subject, e.id, e.data, 2*time.Minute); err != nil {
					t.Error(err)
					return
				}
				if strings.HasPrefix(e.subject, "fr.in.return.") {
					mu.Lock()
					acked[fmt.Sprintf("k%d", i)] = time.Now()
					mu.Unlock()
				}
			}
			progress <- i
			time.Sleep(2 * time.Millisecond) // pacing of the load, not synchronisation
		}
	})
	for i := range progress {
		if i == users/3 {
			break
		}
	}
	crashed := time.Now()
	kids["c"].kill9(t)
	srvs[2].Shutdown()
	published.Wait()

	// Exactly once: read FR_OUT from the start until every refund is there.
	type out struct {
		user     string
		at       time.Time
		decision string
	}
	var decisions, refunds map[string][]out
	var ids map[string]int // Nats-Msg-Id -> copies
	deadline := time.Now().Add(60 * time.Second)
	for {
		decisions, refunds, ids = map[string][]out{}, map[string][]out{}, map[string]int{}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		// Message by message with the stream's get API: no consumer to
		// place while the cluster is recovering from the lost node.
		s, err := js.Stream(ctx, "FR_OUT")
		if err == nil {
			last := s.CachedInfo().State.LastSeq
			for seq := uint64(1); err == nil && seq <= last; seq++ {
				var m *jetstream.RawStreamMsg
				if m, err = s.GetMsg(ctx, seq); err != nil {
					break
				}
				var v struct {
					UserID    string `json:"user_id"`
					RequestID string `json:"request_id"`
					Decision  string `json:"decision"`
				}
				_ = json.Unmarshal(m.Data, &v)
				if strings.HasPrefix(m.Subject, "fr.out.") {
					ids[m.Header.Get("Nats-Msg-Id")]++
				}
				o := out{user: v.UserID, at: m.Time, decision: v.Decision}
				key := v.UserID + "/" + v.RequestID
				switch {
				case strings.HasPrefix(m.Subject, "fr.out.decision."):
					decisions[key] = append(decisions[key], o)
				case strings.HasPrefix(m.Subject, "fr.out.refund."):
					refunds[key] = append(refunds[key], o)
				}
			}
		}
		cancel()
		if err == nil && len(refunds) == users {
			break
		}
		if time.Now().After(deadline) {
			for _, s := range srvs {
				t.Logf("node %s running=%v js=%v leader=%v clients=%d", s.Name(), s.Running(), s.JetStreamEnabled(), s.JetStreamIsLeader(), s.NumClients())
				if s.Running() {
					if jz, err := s.Jsz(&server.JSzOptions{Accounts: true, Streams: true, Consumer: true}); err == nil {
						for _, ad := range jz.AccountDetails {
							for _, sd := range ad.Streams {
								if sd.Cluster != nil {
									t.Logf("  %s stream %s leader %q msgs %d consumers %d", s.Name(), sd.Name, sd.Cluster.Leader, sd.State.Msgs, len(sd.Consumer))
								}
							}
						}
					}
				}
			}
			t.Logf("client on %s status %v", nc.ConnectedUrl(), nc.Status())
			for k, ds := range decisions {
				if len(refunds[k]) == 0 {
					u := ds[0].user
					t.Logf("no refund for %s (partition %d, %s at %s)", k, wire.Partition(u, parts), ds[0].decision, ds[0].at.Format(time.StampMicro))
				}
			}
			t.Fatalf("%d requests decided and %d refunded after 60s, want %d (last error %v)", len(decisions), len(refunds), users, err)
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("Nats-Msg-Id %q stored %d times", id, n)
		}
	}
	var worstLost, worstOther time.Duration
	for k, ds := range decisions {
		if len(ds) != 1 || len(refunds[k]) != 1 || ds[0].decision != "approved" {
			t.Errorf("request %s: %d decisions (%s), %d refunds", k, len(ds), ds[0].decision, len(refunds[k]))
		}
		mu.Lock()
		d := ds[0].at.Sub(acked[ds[0].user])
		mu.Unlock()
		if slices.Contains(lost, wire.Partition(ds[0].user, parts)) {
			worstLost = max(worstLost, d)
		} else {
			worstOther = max(worstOther, d)
		}
	}
	if len(decisions) != users {
		t.Errorf("%d requests decided, want %d", len(decisions), users)
	}
	o := owners(js, parts)
	for p := range parts {
		if o[p] != "a" && o[p] != "b" {
			t.Errorf("partition %d owned by %q after the crash", p, o[p])
		}
	}
	t.Logf("kill -9 of c and of NATS node n2 at %s: longest request-to-decision time %s on c's partitions, %s on the others",
		crashed.Format(time.TimeOnly), worstLost.Round(time.Millisecond), worstOther.Round(time.Millisecond))

	for _, id := range []string{"a", "b"} {
		c := kids[id]
		start := time.Now()
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("member %s exit after SIGTERM: %v", id, err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("member %s drained in %s, want under 10s", id, took)
		}
	}
}
