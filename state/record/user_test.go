package record

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// codecFields lists the fields the codec encodes. When core gains a field,
// this test fails: encode it (as a new version, see codec.go), then add it
// here.
var codecFields = map[reflect.Type][]string{
	reflect.TypeFor[core.User](): {"ID", "Stars", "Orders", "Requests", "OutstandingFen", "PromisedFen",
		"RecentRequests", "TrustMarks", "MaxAt", "VelocityPrunedTo", "TrustPrunedTo", "Forgotten"},
	reflect.TypeFor[core.Order](): {"ID", "MerchantID", "Category", "City", "Size", "PaidFen",
		"SevenDay", "FreightInsurance", "PaidAt", "ShippedAt", "DeliveredAt", "LastAt", "ReservedFen", "RefundedFen", "Forgotten"},
	reflect.TypeFor[core.Request](): {"ID", "OrderID", "Kind", "Reason", "At", "AmountFen", "Status",
		"Verdict", "Reasons", "PickupAsked", "Policy", "MerchantRule", "MerchantRevision",
		"Resolution", "ResolvedBy", "ResolvedAt", "ResolveCodes", "Note",
		"ApprovedAt", "PayTrigger", "PayAdvance", "Reserved", "Promised", "GoodsAdvance",
		"RefundTrigger", "RefundSent", "RefundAdvance", "RefundAt", "Pickup", "PickupSize", "Replace",
		"WindowStart", "WindowEnd", "PickupDone", "CourierOnTime", "CompensationSent",
		"Tracked", "Inspection", "ClawbackSent", "TrustSent", "ClosedAt"},
}

// notEncoded lists the fields the codec leaves out on purpose, and why.
var notEncoded = map[string]string{
	"User.slab": "core's storage for the strings it owns; a decoded user's strings share the record's",
}

func TestCodecCoversAllFields(t *testing.T) {
	for typ, known := range codecFields {
		var got []string
		for i := range typ.NumField() {
			f := typ.Field(i).Name
			if _, ok := notEncoded[typ.Name()+"."+f]; ok {
				continue
			}
			got = append(got, f)
		}
		for _, f := range got {
			if !slices.Contains(known, f) {
				t.Errorf("core.%s.%s is not in the state codec: add it as a new record version (see state/record/user.go)", typ.Name(), f)
			}
		}
		for _, f := range known {
			if !slices.Contains(got, f) {
				t.Errorf("core.%s.%s was removed: the codec must still skip it in old records", typ.Name(), f)
			}
		}
	}
}

func roundTrip(t *testing.T, u *core.User) []byte {
	t.Helper()
	enc := AppendUser(nil, u)
	got, err := decodeTest(enc)
	if err != nil {
		t.Fatalf("decode %x: %v", enc, err)
	}
	if !reflect.DeepEqual(got, u) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, u)
	}
	for i := range got.Requests {
		if got.Requests[i].Policy != u.Requests[i].Policy {
			t.Fatalf("request %d: policy %p, want the table's %p", i, got.Requests[i].Policy, u.Requests[i].Policy)
		}
	}
	if b := EncodedSizeBound(u); b < len(enc) {
		t.Fatalf("EncodedSizeBound %d < encoded %d", b, len(enc))
	}
	return enc
}

func TestCodecRoundTrip(t *testing.T) {
	roundTrip(t, &core.User{})
	roundTrip(t, &core.User{ID: "x"})
	roundTrip(t, recordtest.FullUser())
	roundTrip(t, recordtest.TypicalUser(7))
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	n := 5000
	if raceEnabled {
		n = 500
	}
	for range n {
		roundTrip(t, randomUser(r))
	}
}

// TestCodecPolicies checks how requests' policies are stored: once per
// user, by version; a request with no policy reads back with the legacy
// policy (or none).
func TestCodecPolicies(t *testing.T) {
	u := recordtest.FullUser() // r1 and r3 follow tmall, r2 jd
	enc := AppendUser(nil, u)
	if n := bytes.Count(enc, mustKey(t, recordtest.Tmall)); n != 1 {
		t.Errorf("tmall's version stored %d times, want once", n)
	}
	if n := bytes.Count(enc, mustKey(t, recordtest.JD)); n != 1 {
		t.Errorf("jd's version stored %d times, want once", n)
	}
	// Two pointers to one version share an entry.
	u.Requests[2].Policy = recordtest.Preset(core.PresetTmall)
	if again := AppendUser(nil, u); !bytes.Equal(again, enc) {
		t.Errorf("a second pointer to tmall changed the record")
	}

	u.Requests[1].Policy = nil
	enc = AppendUser(nil, u)
	got, err := DecodeUser(enc, testResolver(recordtest.Douyin))
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests[1].Policy != recordtest.Douyin || got.Requests[0].Policy != recordtest.Tmall {
		t.Errorf("no policy decodes as %v, want the legacy one", got.Requests[1].Policy.Name)
	}
	if got, _ := decodeTest(enc); got.Requests[1].Policy != nil {
		t.Errorf("no policy and no legacy decodes as %v", got.Requests[1].Policy.Name)
	}

	// A version the partition does not have: an error naming it.
	other := *recordtest.JD
	other.Name = "jd-hangzhou"
	if err := other.Finish(); err != nil {
		t.Fatal(err)
	}
	u.Requests[1].Policy = &other
	_, err = decodeTest(AppendUser(nil, u))
	if !errors.Is(err, ErrUnknownPolicy) || !strings.Contains(err.Error(), other.Version) {
		t.Errorf("unknown version: %v", err)
	}
	// A version that is not 16 hex digits is kept as a string, and never
	// resolves.
	bad := other
	bad.Version = "v1"
	u.Requests[1].Policy = &bad
	enc = AppendUser(nil, u)
	if b := EncodedSizeBound(u); b < len(enc) {
		t.Errorf("bound %d < %d", b, len(enc))
	}
	if _, err := decodeTest(enc); !errors.Is(err, ErrUnknownPolicy) || !strings.Contains(err.Error(), `"v1"`) {
		t.Errorf("non-hex version: %v", err)
	}
}

func mustKey(t *testing.T, p *core.Policy) []byte {
	k, ok := VersionKey(p.Version)
	if !ok {
		t.Fatalf("version %q", p.Version)
	}
	return k[:]
}

// TestEncodedSizeBound checks the bound on users whose every varint and
// time takes its longest form.
func TestEncodedSizeBound(t *testing.T) {
	long := strings.Repeat("x", 200)
	u := &core.User{ID: long, Stars: math.MinInt, OutstandingFen: math.MinInt64, PromisedFen: math.MinInt64, MaxAt: math.MaxInt64}
	// worst is a time whose distance from base takes the escape and a
	// full 10-byte uvarint.
	worst := func(base int64) int64 { return int64(uint64(base) - (1<<63 + 1)) }
	worstTime := worst(u.MaxAt)
	for i := range 3 {
		u.Orders = append(u.Orders, core.Order{ID: long, MerchantID: long, Category: long, City: long, Size: 255,
			PaidFen: math.MinInt64, PaidAt: worstTime, ShippedAt: worstTime, DeliveredAt: worstTime, LastAt: worstTime,
			ReservedFen: math.MinInt64, RefundedFen: math.MinInt64, SevenDay: i > 0})
	}
	for i := range 6 {
		p := &core.Policy{Version: strings.Repeat("z", 100*i)}
		u.Requests = append(u.Requests, core.Request{ID: long, OrderID: long, Kind: 255, Reason: 255, At: worstTime,
			AmountFen: math.MinInt64, Status: 255, Verdict: 255, Reasons: math.MaxUint32, MerchantRule: long,
			MerchantRevision: math.MaxUint64, RefundTrigger: 255, RefundSent: true, RefundAt: worstTime,
			PickupSize: 255, WindowStart: worstTime, WindowEnd: worstTime, Inspection: 255, ClosedAt: worstTime,
			Policy: p, PayTrigger: 255, ApprovedAt: worst(worstTime), Resolution: 255, ResolvedBy: 255,
			ResolvedAt: worst(worstTime), ResolveCodes: math.MaxUint32, Note: long, TrustSent: true})
		u.RecentRequests = append(u.RecentRequests, worstTime)
		u.TrustMarks = append(u.TrustMarks, worstTime)
	}
	enc := AppendUser(nil, u)
	if b := EncodedSizeBound(u); b < len(enc) {
		t.Fatalf("EncodedSizeBound %d < encoded %d", b, len(enc))
	}
	if d := appendTime(nil, u.MaxAt, worstTime); len(d) != maxTime {
		t.Fatalf("worst time takes %d bytes, maxTime is %d", len(d), maxTime)
	}
	if d := appendTime(nil, worstTime, worst(worstTime)); len(d) != maxTime {
		t.Fatalf("worst request time takes %d bytes, maxTime is %d", len(d), maxTime)
	}
	t.Logf("worst case: %d bytes, bound %d", len(enc), EncodedSizeBound(u))
}

func TestTimeCodec(t *testing.T) {
	f := func(base, ts int64, wantLen int) {
		t.Helper()
		enc := appendTime(nil, base, ts)
		d := decoder{s: string(enc)}
		if got := d.time(base); got != ts || d.err != nil || d.off != len(enc) {
			t.Errorf("time(base %d, t %d) = %d, err %v", base, ts, got, d.err)
		}
		if wantLen > 0 && len(enc) != wantLen {
			t.Errorf("time(base %d, t %d) takes %d bytes, want %d", base, ts, len(enc), wantLen)
		}
	}
	f(recordtest.T0, 0, 1)
	f(recordtest.T0, recordtest.T0, 1)
	f(recordtest.T0, recordtest.T0-3*86400e9, 3) // three days before, whole seconds
	f(recordtest.T0, recordtest.T0-3*86400e9-123e6, 5)
	f(recordtest.T0, recordtest.T0+1, 0)
	f(recordtest.T0, recordtest.T0-1, 0)
	f(recordtest.T0, math.MinInt64, 0)
	f(recordtest.T0, math.MaxInt64, 0)
	f(math.MinInt64, math.MaxInt64, 0)
	f(math.MaxInt64, math.MinInt64, 0)
	f(0, math.MinInt64, 0)
	f(0, 1, 0)
	f(-1, math.MaxInt64, 0)
}

func TestDecodeRejects(t *testing.T) {
	good := AppendUser(nil, recordtest.FullUser())
	f := func(name string, rec []byte, want error) {
		t.Helper()
		u, err := DecodeUser(rec, testResolver(recordtest.Tmall))
		if err == nil {
			t.Errorf("%s: decoded %+v, want error", name, u)
			return
		}
		if want != nil && !errors.Is(err, want) {
			t.Errorf("%s: error %v, want %v", name, err, want)
		}
	}
	f("empty", nil, errShort)
	f("version 0", append([]byte{0}, good[1:]...), ErrUnsupportedVersion)
	f("future version", append([]byte{UserVersion + 1}, good[1:]...), ErrUnsupportedVersion)
	f("trailing byte", append(slices.Clone(good), 0), nil)
	for n := 1; n < len(good); n++ {
		f("truncated", good[:n], nil)
	}
	bad := AppendUser(nil, &core.User{Orders: []core.Order{{}}})
	// The order's flags byte follows the header (version, ID, stars,
	// outstanding, MaxAt, promised, empty dictionary, order count), 4
	// empty strings, size and paid.
	i := 1 + 1 + 4 + 1 + 1 + 4 + 1 + 1
	bad[i] = 0x80
	f("unknown flag", bad, nil)
	f("huge slice", []byte{userV2, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, nil)
	f("huge slice v1", []byte{UserV1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, nil)
	f("huge dictionary", []byte{userV2, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, nil)
	f("bad policy tag", []byte{userV2, 0, 0, 0, 0, 0, 1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil)

	// A request referring past the dictionary.
	u := &core.User{Requests: []core.Request{{Policy: recordtest.Tmall}}}
	rec := AppendUser(nil, u)
	j := bytes.Index(rec, mustKey(t, recordtest.Tmall)) + 8 + 1 + 1 + 19 // key, order and request counts, v1 part of the request
	if rec[j] != 1 {
		t.Fatalf("policy index at %d is %d, want 1: %x", j, rec[j], rec)
	}
	rec[j] = 2
	f("policy index", rec, nil)

	// Version 1: no legacy policy, or a flag version 1 did not have.
	v1 := recordtest.AppendUserV1(nil, recordtest.FullUserV1())
	if _, err := decodeTest(v1); !errors.Is(err, ErrNoLegacyPolicy) {
		t.Errorf("v1 without a legacy policy: %v", err)
	}
	bad = recordtest.AppendUserV1(nil, &core.User{Requests: []core.Request{{}}})
	bad[len(bad)-1-1-1-1-1-1-1-1-1] = rfPickupAsked // the request's flags
	f("v1 flag bit 7", bad, nil)
	bad[len(bad)-9] = 0
	if _, err := DecodeUser(bad, testResolver(recordtest.Tmall)); err != nil {
		t.Errorf("v1 flags offset: %v", err)
	}
}

func TestCodecGolden(t *testing.T) {
	// golden returns the golden record of version v, checking that enc
	// (the version's encoder's output, nil when no frozen encoder of the
	// version is kept) is still the same bytes.
	golden := func(v int, enc []byte) []byte {
		t.Helper()
		path := filepath.Join("testdata", fmt.Sprintf("user_v%d.golden", v))
		if *update && v == UserVersion {
			if err := os.WriteFile(path, []byte(hex.Dump(enc)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		dump, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./state/record -run Golden -update to create it)", err)
		}
		g := undump(t, dump)
		// Stability: while v is the current version the encoding must
		// not change; the frozen encoders of older versions neither.
		if enc != nil && !bytes.Equal(enc, g) {
			t.Fatalf("version %d encoding changed:\n got %x\nwant %x", v, enc, g)
		}
		return g
	}

	// Version 4 reads back exactly.
	g4 := golden(userV4, AppendUser(nil, recordtest.FullUser()))
	got, err := decodeTest(g4)
	if err != nil {
		t.Fatalf("decode golden v4: %v", err)
	}
	if !reflect.DeepEqual(got, recordtest.FullUser()) {
		t.Fatalf("golden v4 decodes to\n%+v\nwant\n%+v", got, recordtest.FullUser())
	}

	// Version 3 (its file is the reference from here on) reads back
	// with no user-level forgotten IDs.
	got, err = decodeTest(golden(userV3, nil))
	if err != nil {
		t.Fatalf("decode golden v3: %v", err)
	}
	if !reflect.DeepEqual(got, recordtest.FullUserV3()) {
		t.Fatalf("golden v3 decodes to\n%+v\nwant\n%+v", got, recordtest.FullUserV3())
	}

	// Version 2 (its file is the reference: no frozen encoder) reads
	// back with version 3's pruned times derived from MaxAt.
	got, err = decodeTest(golden(userV2, nil))
	if err != nil {
		t.Fatalf("decode golden v2: %v", err)
	}
	want := recordtest.FullUserV2()
	want.VelocityPrunedTo = want.MaxAt - int64(core.DefaultVelocityWindow)
	want.TrustPrunedTo = want.MaxAt - int64(core.DefaultTrustWindow)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("golden v2 decodes to\n%+v\nwant\n%+v", got, want)
	}

	// Version 1 reads with the legacy policy and the derived fields.
	g1 := golden(UserV1, recordtest.AppendUserV1(nil, recordtest.FullUserV1()))
	got, err = DecodeUser(g1, testResolver(recordtest.JD))
	if err != nil {
		t.Fatalf("decode golden v1: %v", err)
	}
	want = recordtest.FullUserV1()
	want.VelocityPrunedTo = want.MaxAt - int64(core.DefaultVelocityWindow)
	want.TrustPrunedTo = want.MaxAt - int64(core.DefaultTrustWindow)
	r := &want.Requests[0] // in review, finished by an empty box after an advance
	r.Policy, r.TrustSent, r.ClawbackSent = recordtest.JD, true, true
	// An exchange's pickup under jd (exchange_pickup) was not asked for.
	want.Orders[0].LastAt = recordtest.T0       // the inspection closed r1
	want.Orders[1].LastAt = recordtest.T0 + 1e9 // paid
	if !reflect.DeepEqual(got, want) {          // RefundedFen 0: clawed back
		t.Fatalf("golden v1 decodes to\n%+v\nwant\n%+v", got, want)
	}
}

// TestDecodeV1Derives reads a version-1 shopper whose requests stand at
// every point of the old lifecycle and checks what is derived.
func TestDecodeV1Derives(t *testing.T) {
	day := int64(86400e9)
	at := recordtest.T0 - 2*day
	o := func(id string, paid int64) core.Order {
		return core.Order{ID: id, MerchantID: "m1", PaidFen: paid, SevenDay: true, PaidAt: at - 5*day,
			ShippedAt: at - 4*day, DeliveredAt: at - 3*day}
	}
	rq := func(id, order string, kind core.Kind, amount int64) core.Request {
		return core.Request{ID: id, OrderID: order, Kind: kind, Reason: core.ReasonDislike, At: at,
			AmountFen: amount, Status: core.StatusOpen, Verdict: core.VerdictApproved}
	}
	v1 := &core.User{ID: "u", Stars: 5, OutstandingFen: 3000, MaxAt: recordtest.T0,
		Orders:         []core.Order{o("o1", 10000), o("o2", 3000), o("o3", 4000), o("o4", 5000), o("o5", 6000), o("o6", 7000)},
		RecentRequests: []int64{at}, TrustMarks: []int64{at + day},
	}
	// o1: approved, waiting for tracking (tmall: an advance promised); a
	// pickup window with no sign of the courier yet.
	a := rq("a", "o1", core.KindReturnRefund, 8000)
	a.Pickup, a.PickupSize, a.WindowStart, a.WindowEnd = true, core.SizeSmall, at+3600e9, at+7200e9
	// o1: a second request, rejected (duplicate).
	dup := rq("dup", "o1", core.KindReturnRefund, 2000)
	dup.Status, dup.Verdict, dup.Reasons, dup.ClosedAt = core.StatusRejected, core.VerdictRejected, core.CodeSet(0).With(core.CodeDuplicateRequest), at
	// o2: refunded in advance on tracking, the courier came, waiting for
	// the inspection (the 3000 outstanding).
	b := rq("b", "o2", core.KindReturnRefund, 3000)
	b.RefundSent, b.RefundAdvance, b.RefundTrigger, b.RefundAt, b.Tracked = true, true, core.TriggerTracking, at+day, true
	b.Pickup, b.PickupDone, b.WindowStart, b.WindowEnd = true, true, at+3600e9, at+7200e9
	// o3: refunded in advance, came back damaged: clawed back; the
	// courier was late (compensated).
	c := rq("c", "o3", core.KindReturnRefund, 4000)
	c.RefundSent, c.RefundAdvance, c.RefundTrigger, c.RefundAt, c.Tracked = true, true, core.TriggerTracking, at+day, true
	c.Pickup, c.PickupDone, c.CompensationSent, c.WindowStart, c.WindowEnd = true, true, true, at+3600e9, at+7200e9
	c.Inspection, c.Status, c.ClosedAt = core.OutcomeDamaged, core.StatusFinished, at+day+1e9
	// o4: refund_only refunded at approval, finished.
	d := rq("d", "o4", core.KindRefundOnly, 5000)
	d.RefundSent, d.RefundTrigger, d.RefundAt, d.Status, d.ClosedAt = true, core.TriggerApproval, at, core.StatusFinished, at
	// o5: in review.
	e := rq("e", "o5", core.KindReturnRefund, 6000)
	e.Verdict, e.Reasons = core.VerdictReview, core.CodeSet(0).With(core.CodeCreditLow)
	// o6: refunded before shipment (douyin), finished at once.
	f := rq("f", "o6", core.KindReturnRefund, 7000)
	f.RefundSent, f.RefundTrigger, f.RefundAt, f.Status, f.ClosedAt = true, core.TriggerPreShipment, at, core.StatusFinished, at
	v1.Requests = []core.Request{a, dup, b, c, d, e, f}

	got, err := DecodeUser(recordtest.AppendUserV1(nil, v1), testResolver(recordtest.Tmall))
	if err != nil {
		t.Fatal(err)
	}
	want := v1
	for i := range want.Requests {
		want.Requests[i].Policy = recordtest.Tmall
	}
	r := want.Requests
	r[0].ApprovedAt, r[0].PayTrigger, r[0].PayAdvance, r[0].Reserved, r[0].Promised = at, core.TriggerTracking, true, true, true
	r[0].PickupAsked = true
	r[2].ApprovedAt, r[2].PayTrigger, r[2].PayAdvance, r[2].CourierOnTime = at, core.TriggerTracking, true, true
	r[2].PickupAsked = true
	r[3].ApprovedAt, r[3].PayTrigger, r[3].PayAdvance = at, core.TriggerTracking, true
	r[3].PickupAsked = true
	r[3].ClawbackSent, r[3].TrustSent = true, true
	r[4].ApprovedAt, r[4].PayTrigger = at, core.TriggerApproval
	r[6].ApprovedAt, r[6].PayTrigger = at, core.TriggerPreShipment
	want.PromisedFen = 8000
	want.VelocityPrunedTo = want.MaxAt - int64(core.DefaultVelocityWindow)
	want.TrustPrunedTo = want.MaxAt - int64(core.DefaultTrustWindow)
	ords := want.Orders
	ords[0].ReservedFen, ords[0].LastAt = 8000, at
	ords[1].RefundedFen, ords[1].LastAt = 3000, at+day
	ords[2].LastAt = at + day + 1e9 // refunded 4000, clawed back
	ords[3].RefundedFen, ords[3].LastAt = 5000, at
	ords[4].LastAt = at
	ords[5].RefundedFen, ords[5].LastAt = 7000, at
	if !reflect.DeepEqual(got, want) {
		for i := range got.Requests {
			if !reflect.DeepEqual(got.Requests[i], want.Requests[i]) {
				t.Errorf("request %s:\n got %+v\nwant %+v", got.Requests[i].ID, got.Requests[i], want.Requests[i])
			}
		}
		for i := range got.Orders {
			if !reflect.DeepEqual(got.Orders[i], want.Orders[i]) {
				t.Errorf("order %s:\n got %+v\nwant %+v", got.Orders[i].ID, got.Orders[i], want.Orders[i])
			}
		}
		t.Fatalf("user:\n got %+v\nwant %+v", got, want)
	}
	// The derived state is what core would hold: the timers it arms are
	// the new lifecycle's (a's pickup, with grace; e's review deadline).
	if k, dl := got.Requests[0].Timer(); k != core.TimerPickup || dl != a.WindowEnd+int64(recordtest.Tmall.PickupGrace) {
		t.Errorf("a's timer %v %d", k, dl)
	}
	if k, _ := got.Requests[2].Timer(); k != core.TimerNone {
		t.Errorf("b's timer %v, want none (the courier came, tracked)", k)
	}
	if k, dl := got.Requests[5].Timer(); k != core.TimerReview || dl != at+int64(recordtest.Tmall.ReviewDeadline) {
		t.Errorf("e's timer %v %d, want its review deadline", k, dl)
	}
}

// undump parses the output of hex.Dump.
func undump(t *testing.T, dump []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(dump, []byte("\n")) {
		if len(line) < 10 {
			continue
		}
		hexPart := line[10:min(len(line), 58)]
		b, err := hex.DecodeString(string(bytes.ReplaceAll(hexPart, []byte(" "), nil)))
		if err != nil {
			t.Fatalf("bad golden line %q: %v", line, err)
		}
		out = append(out, b...)
	}
	return out
}

func FuzzDecodeUser(f *testing.F) {
	f.Add(AppendUser(nil, recordtest.FullUser()))
	f.Add(AppendUser(nil, recordtest.TypicalUser(1)))
	f.Add(AppendUser(nil, &core.User{}))
	f.Add(recordtest.AppendUserV1(nil, recordtest.FullUserV1()))
	f.Add([]byte{UserV1, 1, 'x', 0, 0, 0, 1})
	res := testResolver(recordtest.JD)
	f.Fuzz(func(t *testing.T, rec []byte) {
		u, err := DecodeUser(rec, res)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to something that decodes the same.
		u2, err := DecodeUser(AppendUser(nil, u), res)
		if err != nil {
			t.Fatalf("re-encoded record fails: %v", err)
		}
		if !reflect.DeepEqual(u, u2) {
			t.Fatalf("re-encoding changed the user:\n%+v\n%+v", u, u2)
		}
	})
}

func FuzzDecodeOutbox(f *testing.F) {
	f.Add(AppendOutbox(nil, []OutMsg{{Subject: "fr.out.refund.u1", MsgID: "r1:refund", Data: []byte(`{}`)}}))
	f.Fuzz(func(t *testing.T, rec []byte) {
		msgs, err := DecodeOutbox(rec)
		if err != nil {
			return
		}
		// Varints need not be canonical; the messages must survive.
		again, err := DecodeOutbox(AppendOutbox(nil, msgs))
		if err != nil {
			t.Fatalf("re-encoded outbox fails: %v", err)
		}
		if len(again) != len(msgs) {
			t.Fatalf("outbox of %d messages re-decodes to %d", len(msgs), len(again))
		}
		for i := range msgs {
			if again[i].Subject != msgs[i].Subject || again[i].MsgID != msgs[i].MsgID || !bytes.Equal(again[i].Data, msgs[i].Data) || again[i].Pos != msgs[i].Pos {
				t.Fatalf("message %d changed: %+v vs %+v", i, again[i], msgs[i])
			}
		}
	})
}

func TestMetaOutboxCodec(t *testing.T) {
	c, k, err := DecodeMeta(AppendMeta(nil, math.MaxUint64, math.MinInt64))
	if err != nil || c != math.MaxUint64 || k != math.MinInt64 {
		t.Fatalf("meta round trip: %d %d %v", c, k, err)
	}
	if _, _, err := DecodeMeta([]byte{2, 0, 0}); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("meta v2: %v", err)
	}
	msgs := []OutMsg{{"a", "b", []byte("c"), Pos{math.MaxUint64, math.MaxUint32}}, {"", "", nil, Pos{}}}
	got, err := DecodeOutbox(AppendOutbox(nil, msgs))
	if err != nil || len(got) != 2 || got[0].Subject != "a" || string(got[0].Data) != "c" || len(got[1].Data) != 0 ||
		got[0].Pos != msgs[0].Pos || !got[1].Pos.IsZero() {
		t.Fatalf("outbox round trip: %+v %v", got, err)
	}
	// An outbox written before positions (version 1) still decodes, with
	// zero positions: no marker covers it, so a restart republishes it.
	v1 := []byte{outboxV1, 1, 1, 'a', 1, 'b', 1, 'c'}
	got, err = DecodeOutbox(v1)
	if err != nil || len(got) != 1 || got[0].Subject != "a" || got[0].MsgID != "b" || string(got[0].Data) != "c" || !got[0].Pos.IsZero() {
		t.Fatalf("outbox v1: %+v %v", got, err)
	}
	if !(Pos{2, 0}).After(Pos{1, 9}) || !(Pos{2, 1}).After(Pos{2, 0}) || (Pos{2, 0}).After(Pos{2, 0}) {
		t.Fatal("Pos.After does not order by (Seq, Idx)")
	}
	if n := OutboxSizeBound(msgs); n < len(AppendOutbox(nil, msgs)) {
		t.Fatalf("OutboxSizeBound %d too small", n)
	}
}

func BenchmarkDecodeUser(b *testing.B) {
	rec := AppendUser(nil, recordtest.TypicalUser(12345))
	res := testResolver(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeUser(rec, res); err != nil {
			b.Fatal(err)
		}
	}
}
