package wire

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/flashreturn/flashreturn/internal/core"
)

func TestParseSubject(t *testing.T) {
	cases := []struct {
		subj       string
		part       int
		kind, user string
		ok         bool
	}{
		{"fr.in.order.u1", -1, "order", "u1", true},
		{"fr.in.credit.u-1_A", -1, "credit", "u-1_A", true},
		{"fr.in.return.u1", -1, "return", "u1", true},
		{"fr.in.logistics.u1", -1, "logistics", "u1", true},
		{"fr.in.inspection.u1", -1, "inspection", "u1", true},
		{"fr.in.clock.c17", -1, "clock", "c17", true},
		{"fr.p.0.order.u1", 0, "order", "u1", true},
		{"fr.p.63.return.u1", 63, "return", "u1", true},
		{"fr.p.123456789.clock.c0", 123456789, "clock", "c0", true},
		{"fr.merchant.m1", -1, "merchant", "m1", true},

		{"", -1, "", "", false},
		{"fr.in", -1, "", "", false},
		{"fr.in.", -1, "", "", false},
		{"fr.in.order", -1, "", "", false},
		{"fr.in.order.", -1, "", "", false},
		{"fr.in..u1", -1, "", "", false},
		{"fr.in.refund.u1", -1, "", "", false},
		{"fr.in.order.u1.extra", -1, "", "", false},
		{"fr.in.merchant.m1", -1, "", "", false},
		{"fr.p.x.order.u1", -1, "", "", false},
		{"fr.p.-1.order.u1", -1, "", "", false},
		{"fr.p.01.order.u1", -1, "", "", false},
		{"fr.p..order.u1", -1, "", "", false},
		{"fr.p.1234567890.order.u1", -1, "", "", false},
		{"fr.p.3.order", -1, "", "", false},
		{"fr.p.3.merchant.m1", -1, "", "", false},
		{"fr.merchant.", -1, "", "", false},
		{"fr.merchant.m.1", -1, "", "", false},
		{"fr.out.decision.u1", -1, "", "", false},
		{"xfr.in.order.u1", -1, "", "", false},
	}
	for _, tc := range cases {
		part, kind, user, ok := ParseSubject(tc.subj)
		if part != tc.part || kind != tc.kind || user != tc.user || ok != tc.ok {
			t.Errorf("ParseSubject(%q) = %d %q %q %v, want %d %q %q %v",
				tc.subj, part, kind, user, ok, tc.part, tc.kind, tc.user, tc.ok)
		}
	}
	n := testing.AllocsPerRun(100, func() { _, _, _, _ = ParseSubject("fr.p.17.return.u-000042") })
	if n != 0 {
		t.Fatalf("ParseSubject allocates %.1f", n)
	}
}

func TestPartitionFNV(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		b := make([]byte, 1+r.IntN(64))
		for j := range b {
			b[j] = byte(r.UintN(256))
		}
		h := fnv.New32a()
		h.Write(b)
		for _, p := range []int{1, 2, 7, 64, 1000} {
			if got, want := Partition(string(b), p), int(h.Sum32()%uint32(p)); got != want {
				t.Fatalf("Partition(%q, %d) = %d, want %d", b, p, got, want)
			}
		}
	}
	if Partition("u1", 0) != 0 || Partition("u1", -3) != 0 {
		t.Fatal("Partition with p <= 0 must be 0")
	}
	if n := testing.AllocsPerRun(100, func() { _ = Partition("u-000042", 64) }); n != 0 {
		t.Fatalf("Partition allocates %.1f", n)
	}
}

// TestPartitionMatchesServer runs nats-server's own subject transform.
func TestPartitionMatchesServer(t *testing.T) {
	for _, p := range []int{1, 3, 64} {
		src, dest := PartitionMapping(p)
		tr, err := server.NewSubjectTransform(src, dest)
		if err != nil {
			t.Fatalf("NewSubjectTransform(%q, %q): %v", src, dest, err)
		}
		for i := 0; i < 300; i++ {
			user := fmt.Sprintf("u-%06d", i*7919)
			for _, kind := range []string{KindOrder, KindReturn} {
				got, err := tr.Match(InSubject(kind, user))
				if err != nil {
					t.Fatal(err)
				}
				part, k, u, ok := ParseSubject(got)
				if !ok || k != kind || u != user || part != Partition(user, p) {
					t.Fatalf("server maps %s to %s; Partition says %d", InSubject(kind, user), got, Partition(user, p))
				}
			}
		}
		// Clock tokens land where they should.
		for q := 0; q < p; q++ {
			got, err := tr.Match(InSubject(KindClock, ClockToken(q, p)))
			if err != nil {
				t.Fatal(err)
			}
			if part, _, _, _ := ParseSubject(got); part != q {
				t.Fatalf("clock token %q of partition %d maps to %s", ClockToken(q, p), q, got)
			}
		}
	}
}

func TestClockToken(t *testing.T) {
	for _, pc := range []int{1, 2, 16, 64, 256, 1024} {
		seen := map[string]bool{}
		for p := 0; p < pc; p++ {
			tok := ClockToken(p, pc)
			if tok == "" || !ValidID(tok) || Partition(tok, pc) != p || seen[tok] {
				t.Fatalf("ClockToken(%d, %d) = %q", p, pc, tok)
			}
			seen[tok] = true
			if ClockToken(p, pc) != tok {
				t.Fatal("ClockToken is not deterministic")
			}
		}
	}
	// It is the first token that fits: every earlier one maps elsewhere.
	for p := 0; p < 64; p++ {
		tok := ClockToken(p, 64)
		for i := 0; "c"+strconv.Itoa(i) != tok; i++ {
			if Partition("c"+strconv.Itoa(i), 64) == p {
				t.Fatalf("ClockToken(%d, 64) = %q but c%d fits earlier", p, tok, i)
			}
		}
	}
	for _, bad := range [][2]int{{-1, 4}, {4, 4}, {0, 0}} {
		if tok := ClockToken(bad[0], bad[1]); tok != "" {
			t.Fatalf("ClockToken(%d, %d) = %q, want empty", bad[0], bad[1], tok)
		}
	}
}

func TestSubjectsAndKinds(t *testing.T) {
	for ty := core.EventOrderPaid; ty.String() != ""; ty++ {
		k := KindOf(ty)
		if !inKind(k) {
			t.Fatalf("KindOf(%s) = %q", ty, k)
		}
	}
	if KindOf(core.EventInvalid) != "" {
		t.Fatal("KindOf(invalid)")
	}
	e := &core.Effect{Kind: core.EffectRefund, UserID: "u1", RequestID: "r1"}
	if s := OutSubject(e); s != "fr.out.refund.u1" {
		t.Fatal(s)
	}
	if s := MerchantSubject("m1"); s != "fr.merchant.m1" {
		t.Fatal(s)
	}
	for _, r := range Reasons {
		if DLQSubject(r) != "fr.dlq."+r {
			t.Fatal(DLQSubject(r))
		}
		if n := testing.AllocsPerRun(10, func() { DLQSubject(r) }); n != 0 {
			t.Fatalf("DLQSubject(%s) allocates", r)
		}
	}
	if DLQSubject("other") != "fr.dlq.other" {
		t.Fatal("DLQSubject(other)")
	}
}

func TestPublishedSubject(t *testing.T) {
	for in, want := range map[string]string{
		"fr.p.17.return.u1":     "fr.in.return.u1",
		"fr.p.0.review.u-9":     "fr.in.review.u-9",
		"fr.in.order.u1":        "fr.in.order.u1",
		"fr.merchant.m1":        "fr.merchant.m1",
		"fr.p.x.order.u1":       "fr.p.x.order.u1", // not a partitioned subject: as is
		"fr.p.6.foo.u2":         "fr.in.foo.u2",    // an unknown kind: still where it came in
		"fr.p.6.ORDER.u2":       "fr.in.ORDER.u2",
		"fr.p.6.":               "fr.p.6.",
		"fr.p.6":                "fr.p.6",
		"fr.p.6.foo":            "fr.p.6.foo",       // not what the mapping makes: as is
		"fr.p.6.order.a.b":      "fr.p.6.order.a.b", // found in review: was fr.in.order.a.b
		"fr.p.6.order.":         "fr.p.6.order.",
		"something.else.entire": "something.else.entire",
	} {
		if got := PublishedSubject(in); got != want {
			t.Errorf("PublishedSubject(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFaultReason(t *testing.T) {
	r, msg := FaultReason(&core.Effect{UserID: "u1", OrderID: "o9", Fault: core.FaultUnknownOrder})
	if r != ReasonUnknownOrder || msg != `field "order_id" is "o9", which is no order of user "u1"` {
		t.Fatalf("%s: %s", r, msg)
	}
	r, msg = FaultReason(&core.Effect{UserID: "u1", RequestID: "r9", Fault: core.FaultUnknownRequest})
	if r != ReasonUnknownRequest || !strings.Contains(msg, `"request_id"`) || !KnownReason(r) {
		t.Fatalf("%s: %s", r, msg)
	}
	if DLQSubject(ReasonFutureTime) != "fr.dlq.future_time" {
		t.Fatal(DLQSubject(ReasonFutureTime))
	}
}
