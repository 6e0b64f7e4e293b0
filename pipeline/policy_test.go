package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/policyfile"
	"github.com/flashreturn/flashreturn/internal/wire"
)

// policyFileHarness starts a daemon whose policy is the tmall preset
// written to a file it watches, with merchant m1 known.
func policyFileHarness(t *testing.T) (h *harness, path string, body []byte, first *core.Policy) {
	t.Helper()
	preset, _ := core.Preset("tmall-fast-return")
	body, err := policyfile.Marshal(preset)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	first, err = policyfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	h = startHarness(t, "tmall-fast-return", func(c *Config) {
		c.Policy, c.PolicyPath, c.LoadPolicy = first, path, policyfile.Load
	})
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	return h, path, body, first
}

// TestPolicyHotReload: a changed policy file is picked up without a
// restart and named in decisions from then on; a bad file is refused and
// the old policy stays.
func TestPolicyHotReload(t *testing.T) {
	h, path, body, first := policyFileHarness(t)
	h.pub("credit", "uh", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 3})
	h.order("uh", "o1", "m1", 5000, "2026-11-11T15:00:00+08:00", nil)
	h.order("uh", "o2", "m1", 5000, "2026-11-11T15:00:00+08:00", nil)
	req := func(id, order string) {
		h.pub("return", "uh", "return.requested", "2026-11-12T10:00:00+08:00",
			map[string]any{"request_id": id, "order_id": order, "kind": "return_refund", "reason": "no_reason", "pickup": false})
	}
	req("r1", "o1")
	d1 := h.waitOut("fr.out.decision.uh", 1)[0].Data
	if d1["decision"] != "approved" {
		t.Fatalf("r1 = %v", d1)
	}

	// A bad file is refused.
	refused := h.d.m.Set.GetOrCreateCounter(`flashreturn_policy_reloads_total{result="error"}`)
	if err := os.WriteFile(path, []byte("name: broken\nmin_stars: eleven\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.d.Reload()
	h.waitFor("bad file refused", func() bool { return refused.Get() >= 1 })
	if h.d.Policy().Version != first.Version {
		t.Fatal("a bad file replaced the policy")
	}

	// A good change (min stars 4) lands between batches.
	changed := strings.Replace(string(body), "min_stars: 3", "min_stars: 4", 1)
	if changed == string(body) {
		t.Fatalf("policy file has no 'min_stars: 3' line:\n%s", body)
	}
	if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	h.d.Reload()
	h.waitFor("new policy in force", func() bool { return h.d.Policy().Version != first.Version })
	req("r2", "o2")
	d2 := h.waitOut("fr.out.decision.uh", 2)[1].Data
	pol := d2["policy"].(map[string]any)
	if d2["decision"] != "review" || pol["version"] == first.Version || pol["version"] != h.d.Policy().Version {
		t.Fatalf("r2 under the reloaded policy = %v", d2)
	}
}

// TestShadowPolicy: the shadow decides every request on a copy of the
// state; only live decisions are published; disagreements are counted.
func TestShadowPolicy(t *testing.T) {
	jd, _ := core.Preset("jd-lightning-refund")
	h := startHarness(t, "tmall-fast-return", func(c *Config) { c.Shadow = jd })
	h.merchant("m1", []string{"addr"}, []string{"addr"}, nil)
	h.pub("credit", "us", "credit.updated", "2026-11-01T00:00:00+08:00", map[string]any{"stars": 5})
	for _, o := range []string{"o1", "o2", "o3"} {
		h.order("us", o, "m1", 10000, "2026-11-11T15:00:00+08:00", nil)
	}
	// tmall approves no_reason, jd does not; jd approves quality, tmall does not.
	h.pub("return", "us", "return.requested", "2026-11-12T10:00:00+08:00", map[string]any{"request_id": "r1", "order_id": "o1", "kind": "return_refund", "reason": "no_reason", "pickup": false})
	h.pub("return", "us", "return.requested", "2026-11-12T10:00:00+08:00", map[string]any{"request_id": "r2", "order_id": "o2", "kind": "return_refund", "reason": "quality", "pickup": false})
	h.pub("return", "us", "return.requested", "2026-11-12T10:00:00+08:00", map[string]any{"request_id": "r3", "order_id": "o3", "kind": "refund_only", "reason": "damaged", "pickup": false})
	decs := h.waitOut("fr.out.decision.us", 3)
	if len(decs) != 3 {
		t.Fatalf("%d decisions published, want 3 (live only)", len(decs))
	}
	for _, d := range decs {
		if d.Data["policy"].(map[string]any)["name"] != "tmall-fast-return" {
			t.Fatalf("a shadow decision was published: %v", d.Data)
		}
	}
	s := h.d.shadow.Summary()
	if s.Requests != 3 || s.LiveApproved != 1 || s.ShadowApproved != 2 || s.Disagreements != 3 {
		t.Fatalf("shadow summary = %+v", s)
	}
	// jd advances return_refund money at approval: r2's 10000 fen.
	if s.ShadowAdvancedFen != 10000 || s.LiveAdvancedFen != 0 {
		t.Fatalf("advanced money live %d shadow %d", s.LiveAdvancedFen, s.ShadowAdvancedFen)
	}
	if len(h.out("fr.out.refund.")) != 0 {
		t.Fatal("shadow refunds must never be published")
	}
}

// TestPolicyReloadUnderLoad swaps the policy while events stream in: every
// decision names one of the two versions, and within each partition the
// old version never reappears after the new one (the swap lands between
// batches, never inside one).
func TestPolicyReloadUnderLoad(t *testing.T) {
	h, path, body, first := policyFileHarness(t)
	const n = 400
	done := make(chan struct{})
	swapped := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			if i == n/2 {
				// The second half goes out once the new policy is in
				// force, while the first half may still be applied: both
				// versions decide, the swap lands wherever a batch ends.
				<-swapped
			}
			u := fmt.Sprintf("ld%d", i%50)
			h.pub("return", u, "return.requested", "2026-11-12T10:00:00+08:00",
				map[string]any{"request_id": fmt.Sprintf("r%d", i), "order_id": "none", "kind": "return_refund", "reason": "no_reason", "pickup": false})
		}
	}()
	h.waitOut("fr.out.decision.", n/4)
	changed := strings.Replace(string(body), "min_stars: 3", "min_stars: 4", 1)
	if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	h.d.Reload()
	h.waitFor("the new policy in force", func() bool { return h.d.Policy().Version != first.Version })
	close(swapped)
	<-done
	decs := h.waitOut("fr.out.decision.", n)
	second := h.d.Policy().Version
	if second == first.Version {
		t.Fatal("policy was not reloaded")
	}
	newSeen := map[int]bool{}
	counts := map[string]int{}
	for _, d := range decs {
		v := d.Data["policy"].(map[string]any)["version"].(string)
		counts[v]++
		p := wire.Partition(d.Data["user_id"].(string), 8)
		switch v {
		case second:
			newSeen[p] = true
		case first.Version:
			if newSeen[p] {
				t.Fatalf("partition %d decided with the old policy after the new one", p)
			}
		default:
			t.Fatalf("decision names unknown version %s", v)
		}
	}
	if counts[first.Version] == 0 || counts[second] == 0 {
		t.Fatalf("swap not observed mid-stream: %v", counts)
	}
}
