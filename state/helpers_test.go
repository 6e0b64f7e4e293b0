package state

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashreturn/flashreturn/internal/core"
)

// t0 is a fixed event time (2025-11-11 00:00:00 +08:00) for deterministic users.
var t0 = time.Date(2025, 11, 11, 0, 0, 0, 0, time.FixedZone("CST", 8*3600)).UnixNano()

// Test policies: the presets, finished, one pointer each.
var (
	polTmall  = mustPreset(core.PresetTmall)
	polJD     = mustPreset(core.PresetJD)
	polDouyin = mustPreset(core.PresetDouyin)
	testPols  = []*core.Policy{polTmall, polJD, polDouyin}
)

func mustPreset(name string) *core.Policy {
	p, ok := core.Preset(name)
	if !ok {
		panic(name)
	}
	return p
}

// testResolver resolves the test policies, and gives requests stored
// without one the legacy policy (nil: none).
// It looks versions up in a map, as a partition does.
func testResolver(legacy *core.Policy) *policyResolver {
	m := make(map[polKey]*core.Policy)
	for _, p := range testPols {
		m[mustPolKey(p)] = p
	}
	return &policyResolver{
		find: func(k polKey) (*core.Policy, error) {
			if p := m[k]; p != nil {
				return p, nil
			}
			return nil, unknownPolicy(0, k)
		},
		legacy: legacy,
	}
}

// decodeTest decodes rec with testResolver(nil).
func decodeTest(rec []byte) (*core.User, error) { return decodeUser(rec, testResolver(nil)) }

// typicalUser is a shopper with 3 orders and 1 request, as a busy season
// leaves them: the benchmark and footprint subject. The request is a tmall
// fast return approved an hour before MaxAt, its advance promised until
// the tracking number comes.
func typicalUser(i int) *core.User {
	day := int64(24 * time.Hour)
	id := fmt.Sprintf("u%08d", i)
	u := &core.User{ID: id, Stars: 1 + i%5, MaxAt: t0 + 3*day + int64(i%3600)*1e9}
	for j := range 3 {
		paid := t0 - int64(10-j)*day + int64(i%86400)*1e9
		u.Orders = append(u.Orders, core.Order{
			ID:               fmt.Sprintf("o%08d-%d", i, j),
			MerchantID:       fmt.Sprintf("m%05d", (i*7+j)%20000),
			Category:         []string{"apparel", "electronics", "home", "beauty"}[(i+j)%4],
			City:             []string{"shanghai", "hangzhou", "beijing", "shenzhen"}[(i+j)%4],
			Size:             core.SizeSmall,
			PaidFen:          int64(1990 + (i*13+j)%50000),
			SevenDay:         true,
			FreightInsurance: j == 0,
			PaidAt:           paid,
			ShippedAt:        paid + day/2,
			DeliveredAt:      paid + 2*day,
			LastAt:           paid + 2*day,
		})
	}
	at := u.MaxAt - 3600e9
	o := &u.Orders[0]
	u.Requests = []core.Request{{
		ID: fmt.Sprintf("r%08d-0", i), OrderID: o.ID,
		Kind: core.KindReturnRefund, Reason: core.ReasonDislike, At: at, AmountFen: o.PaidFen,
		Status: core.StatusOpen, Verdict: core.VerdictApproved, PickupAsked: true, Policy: polTmall,
		MerchantRule: "auto-7day", MerchantRevision: 42,
		ApprovedAt: at, PayTrigger: core.TriggerTracking, PayAdvance: true, Reserved: true, Promised: true,
		Pickup: true, PickupSize: core.SizeSmall,
		WindowStart: at + 3600e9, WindowEnd: at + 4*3600e9,
	}}
	o.LastAt, o.ReservedFen = at, o.PaidFen
	u.PromisedFen = o.PaidFen
	u.RecentRequests = []int64{at}
	return u
}

// fullUserV1 sets every field version 1 knew to a non-zero value: the
// subject of testdata/user_v1.golden.
func fullUserV1() *core.User {
	return &core.User{
		ID: "shopper-42", Stars: 4, OutstandingFen: 12345, MaxAt: t0,
		Orders: []core.Order{{
			ID: "o1", MerchantID: "m1", Category: "apparel", City: "shanghai", Size: core.SizeLarge,
			PaidFen: 29900, SevenDay: true, FreightInsurance: true,
			PaidAt: t0 - 5*86400e9, ShippedAt: t0 - 4*86400e9 + 123e6, DeliveredAt: t0 - 3*86400e9 + 7,
		}, {
			ID: "o2", MerchantID: "m2", Category: "home", City: "hangzhou", Size: core.SizeSmall,
			PaidFen: -1, PaidAt: t0 + 1e9,
		}},
		Requests: []core.Request{{
			ID: "r1", OrderID: "o1", Kind: core.KindExchange, Reason: core.ReasonDamaged, At: t0 - 86400e9,
			AmountFen: 29900, Status: core.StatusFinished, Verdict: core.VerdictReview,
			Reasons: core.CodeSet(0).With(core.CodeCreditLow).With(core.CodeMerchantUnknown), MerchantRule: "rule-a",
			MerchantRevision: 1 << 40, RefundTrigger: core.TriggerInspection, RefundSent: true, RefundAdvance: true,
			RefundAt: t0 - 3600e9, Pickup: true, PickupSize: core.SizeLarge, Replace: true,
			WindowStart: t0 - 7200e9, WindowEnd: t0 - 3600e9, PickupDone: true, CompensationSent: true,
			Tracked: true, Inspection: core.OutcomeEmptyBox, ClosedAt: t0,
		}},
		RecentRequests: []int64{t0 - 86400e9, math.MinInt64, math.MaxInt64},
		TrustMarks:     []int64{t0 - 1, 1},
	}
}

// fullUser sets every field of the current version to a non-zero value:
// the subject of testdata/user_v2.golden. Its requests follow two
// policies (tmall, jd), one of them twice.
func fullUser() *core.User {
	u := fullUserV1()
	u.PromisedFen = 5000
	o := &u.Orders[0]
	o.LastAt, o.ReservedFen, o.RefundedFen = t0, 5000, 24900
	u.Orders[1].LastAt = t0 + 1e9
	r := &u.Requests[0]
	r.PickupAsked, r.Policy = true, polTmall
	r.Resolution, r.ResolvedBy, r.ResolvedAt = core.ResolutionApproved, core.ActorMerchant, t0-86000e9
	r.ResolveCodes = core.CodeSet(0).With(core.CodeAmountExceedsPaid)
	r.Note = "ok, 好的"
	r.ApprovedAt, r.PayTrigger, r.PayAdvance = t0-86000e9, core.TriggerTracking, true
	r.Reserved, r.Promised, r.GoodsAdvance = true, true, true
	r.CourierOnTime, r.ClawbackSent, r.TrustSent = true, true, true
	u.Requests = append(u.Requests, core.Request{
		ID: "r2", OrderID: "o2", Kind: core.KindRefundOnly, Reason: core.ReasonQuality, At: t0,
		AmountFen: 1, Status: core.StatusClosed, Verdict: core.VerdictApproved, Policy: polJD,
		ApprovedAt: t0, PayTrigger: core.TriggerApproval, Resolution: core.ResolutionClosed,
		ResolvedBy: core.ActorTimeout, ResolvedAt: t0 + 7*86400e9, ClosedAt: t0,
	}, core.Request{
		ID: "r3", OrderID: "o1", Kind: core.KindReturnRefund, At: t0, Status: core.StatusRejected,
		Verdict: core.VerdictRejected, Policy: polTmall,
	})
	return u
}

// randomUser fills every field of a User (found by reflection, so fields
// added to core later are covered too) with random values, edge values
// included; a request's policy is one of the test policies or nil.
// Zero-length slices are nil, as the decoder returns them; unexported
// fields (core's string slab) stay zero.
func randomUser(r *rand.Rand) *core.User {
	u := &core.User{}
	fillRandom(r, reflect.ValueOf(u).Elem())
	return u
}

func fillRandom(r *rand.Rand, v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillRandom(r, v.Field(i))
			}
		}
	case reflect.Pointer:
		if v.Type() != reflect.TypeFor[*core.Policy]() {
			panic("fillRandom: unhandled pointer " + v.Type().String())
		}
		if i := r.IntN(len(testPols) + 1); i < len(testPols) {
			v.Set(reflect.ValueOf(testPols[i]))
		}
	case reflect.String:
		b := make([]byte, r.IntN(14))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		v.SetString(string(b))
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 1)
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Int16, reflect.Int8:
		edges := []int64{0, 1, -1, math.MinInt64, math.MaxInt64, t0, t0 - 86400e9, t0 + 1e6, t0 - 7}
		x := edges[r.IntN(len(edges))]
		if r.IntN(2) == 0 {
			x = int64(r.Uint64())
		}
		if v.OverflowInt(x) {
			x = int64(int8(x))
		}
		v.SetInt(x)
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint16, reflect.Uint8:
		x := r.Uint64()
		if r.IntN(3) == 0 {
			x = uint64(r.IntN(4))
		}
		if v.OverflowUint(x) {
			x &= 1<<(8*v.Type().Size()) - 1
		}
		v.SetUint(x)
	case reflect.Slice:
		n := r.IntN(4)
		if n == 0 {
			return
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fillRandom(r, s.Index(i))
		}
		v.Set(s)
	default:
		panic("fillRandom: unhandled kind " + v.Kind().String())
	}
}

// openStore opens a store in a fresh temp dir, closed at cleanup.
func openStore(t testing.TB, o Options) *Store {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustPartition(t testing.TB, s *Store, p int) *Partition {
	t.Helper()
	pt, err := s.Partition(p)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

func mustUser(t testing.TB, pt *Partition, id string) *core.User {
	t.Helper()
	u, err := pt.User(id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// metricValue returns the value of the sample called name (with labels,
// if any) in set's Prometheus output, and whether it is there.
func metricValue(set *metrics.Set, name string) (float64, bool) {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
