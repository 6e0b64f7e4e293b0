package recordtest

import (
	"fmt"
	"math"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
)

// T0 is the fixed event time of the fixtures (2025-11-11 00:00:00
// +08:00): deterministic users encode to the same bytes on every run, so
// golden files can pin them.
var T0 = time.Date(2025, 11, 11, 0, 0, 0, 0, time.FixedZone("CST", 8*3600)).UnixNano()

// The presets, finished, one pointer each: tests compare a decoded
// request's policy with these by pointer, so every test of a process
// must share them (a second copy of a preset has the same version but
// another address).
var (
	Tmall    = Preset(core.PresetTmall)
	JD       = Preset(core.PresetJD)
	Douyin   = Preset(core.PresetDouyin)
	Policies = []*core.Policy{Tmall, JD, Douyin}
)

// Preset is a fresh copy of the preset called name: another pointer with
// the same version as the shared one above, for the tests that check a
// decoder resolves a policy by version and not by address. It panics on
// an unknown name: callers pass core's constants, so a failure is a bug
// in the test, not a condition to report.
func Preset(name string) *core.Policy {
	p, ok := core.Preset(name)
	if !ok {
		panic(name)
	}
	return p
}

// TypicalUser is a shopper with 3 orders and 1 request, as a busy season
// leaves them: the benchmark and footprint subject. The request is a tmall
// fast return approved an hour before MaxAt, its advance promised until
// the tracking number comes.
func TypicalUser(i int) *core.User {
	day := int64(24 * time.Hour)
	id := fmt.Sprintf("u%08d", i)
	u := &core.User{ID: id, Stars: 1 + i%5, MaxAt: T0 + 3*day + int64(i%3600)*1e9}
	// Three orders a few days apart, delivered and signed for, as a
	// shopper in a sales season has them; the strings vary with i so
	// that a million users do not share their bytes (TestFootprint).
	for j := range 3 {
		paid := T0 - int64(10-j)*day + int64(i%86400)*1e9
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
		Status: core.StatusOpen, Verdict: core.VerdictApproved, PickupAsked: true, Policy: Tmall,
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

// FullUserV1 sets every field version 1 knew to a non-zero value: the
// subject of testdata/user_v1.golden.
func FullUserV1() *core.User {
	return &core.User{
		ID: "shopper-42", Stars: 4, OutstandingFen: 12345, MaxAt: T0,
		Orders: []core.Order{{
			ID: "o1", MerchantID: "m1", Category: "apparel", City: "shanghai", Size: core.SizeLarge,
			PaidFen: 29900, SevenDay: true, FreightInsurance: true,
			// Whole seconds, milliseconds and nanoseconds: each of the
			// time encoding's three units.
			PaidAt: T0 - 5*86400e9, ShippedAt: T0 - 4*86400e9 + 123e6, DeliveredAt: T0 - 3*86400e9 + 7,
		}, {
			ID: "o2", MerchantID: "m2", Category: "home", City: "hangzhou", Size: core.SizeSmall,
			// A negative amount and a time after MaxAt: the codec stores
			// what core holds, without judging it (zig-zag varints and
			// signed time differences).
			PaidFen: -1, PaidAt: T0 + 1e9,
		}},
		Requests: []core.Request{{
			ID: "r1", OrderID: "o1", Kind: core.KindExchange, Reason: core.ReasonDamaged, At: T0 - 86400e9,
			AmountFen: 29900, Status: core.StatusFinished, Verdict: core.VerdictReview,
			Reasons: core.CodeSet(0).With(core.CodeCreditLow).With(core.CodeMerchantUnknown), MerchantRule: "rule-a",
			// Beyond 32 bits: the revision is a uvarint, not an int.
			MerchantRevision: 1 << 40, RefundTrigger: core.TriggerInspection, RefundSent: true, RefundAdvance: true,
			RefundAt: T0 - 3600e9, Pickup: true, PickupSize: core.SizeLarge, Replace: true,
			WindowStart: T0 - 7200e9, WindowEnd: T0 - 3600e9, PickupDone: true, CompensationSent: true,
			Tracked: true, Inspection: core.OutcomeEmptyBox, ClosedAt: T0,
		}},
		// The extremes of int64 take the time encoding's escape (the
		// difference from MaxAt does not fit a unit), which must round
		// trip too.
		RecentRequests: []int64{T0 - 86400e9, math.MinInt64, math.MaxInt64},
		TrustMarks:     []int64{T0 - 1, 1},
	}
}

// FullUser sets every field of the current version to a non-zero value:
// the subject of testdata/user_v4.golden. It is FullUserV3 with version
// 4's field: the IDs of pruned requests no kept order holds.
func FullUser() *core.User {
	u := FullUserV3()
	u.Forgotten = []string{"r-1", "再见"}
	return u
}

// FullUserV3 is the subject of testdata/user_v3.golden: FullUserV2 with
// version 3's fields: pruned requests' IDs on an order, pruned velocity
// and trust times.
func FullUserV3() *core.User {
	u := FullUserV2()
	u.Orders[0].Forgotten = []string{"r0", "再见"}
	u.VelocityPrunedTo = T0 - 8*86400e9
	u.TrustPrunedTo = T0 - 97*86400e9
	return u
}

// FullUserV2 sets every field of version 2 to a non-zero value: the
// subject of testdata/user_v2.golden. Its requests follow two policies
// (tmall, jd), one of them twice.
func FullUserV2() *core.User {
	u := FullUserV1()
	u.PromisedFen = 5000
	o := &u.Orders[0]
	o.LastAt, o.ReservedFen, o.RefundedFen = T0, 5000, 24900
	u.Orders[1].LastAt = T0 + 1e9
	r := &u.Requests[0]
	r.PickupAsked, r.Policy = true, Tmall
	r.Resolution, r.ResolvedBy, r.ResolvedAt = core.ResolutionApproved, core.ActorMerchant, T0-86000e9
	r.ResolveCodes = core.CodeSet(0).With(core.CodeAmountExceedsPaid)
	// A note with multi-byte UTF-8: strings are stored as bytes.
	r.Note = "ok, 好的"
	r.ApprovedAt, r.PayTrigger, r.PayAdvance = T0-86000e9, core.TriggerTracking, true
	r.Reserved, r.Promised, r.GoodsAdvance = true, true, true
	r.CourierOnTime, r.ClawbackSent, r.TrustSent = true, true, true
	// r2 follows JD, r3 tmall again: the policy dictionary must hold
	// two versions, tmall's once, and r2's closing resolution (a
	// resolution block with no note) must round trip.
	u.Requests = append(u.Requests, core.Request{
		ID: "r2", OrderID: "o2", Kind: core.KindRefundOnly, Reason: core.ReasonQuality, At: T0,
		AmountFen: 1, Status: core.StatusClosed, Verdict: core.VerdictApproved, Policy: JD,
		ApprovedAt: T0, PayTrigger: core.TriggerApproval, Resolution: core.ResolutionClosed,
		ResolvedBy: core.ActorTimeout, ResolvedAt: T0 + 7*86400e9, ClosedAt: T0,
	}, core.Request{
		ID: "r3", OrderID: "o1", Kind: core.KindReturnRefund, At: T0, Status: core.StatusRejected,
		Verdict: core.VerdictRejected, Policy: Tmall,
	})
	return u
}
