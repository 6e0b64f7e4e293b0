package pipeline

import (
	"encoding/base64"
	"fmt"
	"sync"
	"testing"

	"github.com/flashreturn/flashreturn/internal/wire"
)

func TestTmallApproveRefundInspect(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	h.merchant("m1", []string{"Hangzhou return desk"}, []string{"Hangzhou warehouse"}, nil)
	h.pub("credit", "u1", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 4})
	h.order("u1", "o1", "m1", 12900, "2026-11-11T15:00:00+08:00", nil)
	h.pub("return", "u1", "return.requested", "2026-11-12T10:00:00+08:00",
		map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": true})

	dec := h.waitOut("fr.out.decision.u1", 1)[0].Data
	if dec["decision"] != "approved" || dec["return_address"] != "Hangzhou return desk" {
		t.Fatalf("decision = %v", dec)
	}
	if rs, _ := dec["reasons"].([]any); rs == nil || len(rs) != 0 {
		t.Fatalf("reasons must be an empty array, got %v", dec["reasons"])
	}
	// The request was stored after the merchant view's last refresh: its
	// batch waited for the view, and the wait was timed.
	if count, _ := scrapeHistograms(t, h.d); count["flashreturn_merchant_view_wait_seconds"] == 0 {
		t.Fatal("no merchant view wait timed")
	}
	pk := h.waitOut("fr.out.pickup.u1", 1)[0].Data
	if pk["window_start"] != "2026-11-12T10:00:00.000+08:00" || pk["window_end"] != "2026-11-12T12:00:00.000+08:00" {
		t.Fatalf("pickup = %v", pk)
	}
	if len(h.out("fr.out.refund.")) != 0 {
		t.Fatal("tmall must not refund before tracking")
	}
	h.pub("logistics", "u1", "logistics.tracking", "2026-11-12T10:30:00+08:00", map[string]any{"request_id": "r1", "tracking_no": "SF123"})
	rf := h.waitOut("fr.out.refund.u1", 1)[0].Data
	if rf["trigger"] != "tracking" || rf["advance"] != true || rf["amount_fen"] != float64(12900) {
		t.Fatalf("refund = %v", rf)
	}
	// pickup.done after tracking must not refund again.
	h.pub("logistics", "u1", "pickup.done", "2026-11-12T11:00:00+08:00", map[string]any{"request_id": "r1"})
	h.pub("inspection", "u1", "inspection.result", "2026-11-14T11:00:00+08:00", map[string]any{"request_id": "r1", "outcome": "empty_box"})
	cb := h.waitOut("fr.out.clawback.u1", 1)[0].Data
	if cb["amount_fen"] != float64(12900) || cb["outcome"] != "empty_box" {
		t.Fatalf("clawback = %v", cb)
	}
	tr := h.waitOut("fr.out.trust.u1", 1)[0].Data
	if tr["penalty"] != float64(100) {
		t.Fatalf("trust = %v", tr)
	}
	if n := len(h.out("fr.out.refund.")); n != 1 {
		t.Fatalf("%d refunds, want 1", n)
	}
	if n := len(h.out("fr.out.compensation.")); n != 0 {
		t.Fatalf("pickup was done in the window, got %d compensations", n)
	}
}

func TestDouyinPreShipmentAndJDExchange(t *testing.T) {
	t.Run("douyin", func(t *testing.T) {
		h := startHarness(t, "douyin-lightning", nil)
		h.merchant("m1", []string{"addr A"}, []string{"addr A"}, nil)
		h.pub("credit", "u2", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 3})
		h.order("u2", "o2", "m1", 30000, "", nil) // paid, not shipped
		h.pub("return", "u2", "return.requested", "2026-11-10T11:00:00+08:00",
			map[string]any{"request_id": "r2", "order_id": "o2", "kind": "return_refund", "reason": "dislike", "pickup": false})
		if d := h.waitOut("fr.out.decision.u2", 1)[0].Data; d["decision"] != "approved" {
			t.Fatalf("decision = %v", d)
		}
		rf := h.waitOut("fr.out.refund.u2", 1)[0].Data
		if rf["trigger"] != "pre_shipment" || rf["advance"] != false {
			t.Fatalf("refund = %v", rf)
		}
	})
	t.Run("jd", func(t *testing.T) {
		h := startHarness(t, "jd-lightning-refund", nil)
		h.merchant("m1", []string{"addr A"}, []string{"addr B"}, nil)
		h.pub("credit", "u3", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 2})
		h.order("u3", "o3", "m1", 9900, "2026-11-11T09:00:00+08:00", map[string]any{"size": "large"})
		h.pub("return", "u3", "return.requested", "2026-11-12T21:00:00+08:00",
			map[string]any{"request_id": "r3", "order_id": "o3", "kind": "exchange", "reason": "quality", "pickup": false})
		if d := h.waitOut("fr.out.decision.u3", 1)[0].Data; d["decision"] != "approved" {
			t.Fatalf("decision = %v", d)
		}
		pk := h.waitOut("fr.out.pickup.u3", 1)[0].Data
		if pk["replace"] != true || pk["window_start"] != "2026-11-13T09:00:00.000+08:00" || pk["window_end"] != "2026-11-13T13:00:00.000+08:00" {
			t.Fatalf("pickup = %v", pk)
		}
	})
}

// TestDeadLetters sends one input of every DLQ reason, each followed by a
// valid event that must still be decided.
func TestDeadLetters(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	cases := []struct {
		reason, subject, payload string
	}{
		{"bad_json", "fr.in.return.ub", `{"event_id":`},
		{"bad_json", "fr.in.return.ub", `[1,2,3]`},
		{"missing_field", "fr.in.return.ub", `{"event_id":"x1","type":"return.requested","at":"2026-11-12T10:00:00+08:00","user_id":"ub","order_id":"o1","kind":"return_refund","reason":"no_reason","pickup":false}`},
		{"bad_value", "fr.in.credit.ub", `{"event_id":"x2","type":"credit.updated","at":"2026-11-12T10:00:00+08:00","user_id":"ub","stars":9}`},
		{"bad_value", "fr.in.credit.ub", `{"event_id":"x3","type":"credit.updated","at":"2026-11-12T10:00:00","user_id":"ub","stars":3}`},
		{"unknown_type", "fr.in.order.ub", `{"event_id":"x4","type":"order.exploded","at":"2026-11-12T10:00:00+08:00","user_id":"ub"}`},
		{"subject_mismatch", "fr.in.credit.ub", `{"event_id":"x5","type":"credit.updated","at":"2026-11-12T10:00:00+08:00","user_id":"someone_else","stars":3}`},
		{"subject_mismatch", "fr.in.order.ub", `{"event_id":"x6","type":"credit.updated","at":"2026-11-12T10:00:00+08:00","user_id":"ub","stars":3}`},
	}
	for i, c := range cases {
		h.pubRaw(c.subject, fmt.Sprintf("bad%d", i), []byte(c.payload))
		req := fmt.Sprintf("ok%d", i)
		h.pub("return", "ub", "return.requested", "2026-11-12T10:00:00+08:00",
			map[string]any{"request_id": req, "order_id": "nope", "kind": "return_refund", "reason": "no_reason", "pickup": false})
		dl := h.waitOut("fr.dlq.", i+1)[i]
		if dl.Subject != "fr.dlq."+c.reason || dl.Data["reason"] != c.reason {
			t.Fatalf("case %d: dead letter %s %v, want reason %s", i, dl.Subject, dl.Data, c.reason)
		}
		raw, _ := base64.StdEncoding.DecodeString(fmt.Sprint(dl.Data["payload_b64"]))
		if string(raw) != c.payload || dl.Data["subject"] == "" || dl.Data["error"] == "" || dl.Data["stream_seq"] == float64(0) {
			t.Fatalf("case %d: dead letter %v does not carry the original", i, dl.Data)
		}
		decs := h.waitOut("fr.out.decision.ub", i+1)
		if d := decs[i].Data; d["request_id"] != req || d["decision"] != "rejected" {
			t.Fatalf("case %d: decision after the bad input = %v", i, d)
		}
	}
	if got := h.d.m.DLQ["bad_json"].Get(); got != 2 {
		t.Fatalf("dead letter metric bad_json = %d, want 2", got)
	}
}

// TestPerUserOrderConcurrentPublishers publishes many users' event chains
// from several goroutines at once; each user's chain only yields the
// expected decision when applied in order.
func TestPerUserOrderConcurrentPublishers(t *testing.T) {
	h := startHarness(t, "tmall-fast-return", nil)
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	const users = 40
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for u := g; u < users; u += 4 {
				user := fmt.Sprintf("cu%d", u)
				h.pub("credit", user, "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
				h.order(user, "o", "m1", 1000+u, "2026-11-11T15:00:00+08:00", nil)
				// Downgrade then upgrade: only in-order application approves.
				h.pub("credit", user, "credit.updated", "2026-11-11T16:00:00+08:00", map[string]any{"stars": 1})
				h.pub("credit", user, "credit.updated", "2026-11-11T17:00:00+08:00", map[string]any{"stars": 4})
				h.pub("return", user, "return.requested", "2026-11-12T10:00:00+08:00",
					map[string]any{"request_id": "r", "order_id": "o", "kind": "return_refund", "reason": "dislike", "pickup": false})
			}
		})
	}
	wg.Wait()
	decs := h.waitOut("fr.out.decision.", users)
	if len(decs) != users {
		t.Fatalf("%d decisions, want %d", len(decs), users)
	}
	for _, d := range decs {
		if d.Data["decision"] != "approved" {
			t.Fatalf("out-of-order application: %v", d.Data)
		}
	}
	parts := map[int]bool{}
	for u := 0; u < users; u++ {
		parts[wire.Partition(fmt.Sprintf("cu%d", u), 8)] = true
	}
	if len(parts) < 4 {
		t.Fatalf("test users cover only %d partitions", len(parts))
	}
}
