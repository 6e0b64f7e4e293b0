package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/flashreturn/flashreturn/internal/core"
)

// Record format versions. The first byte of every stored value is its
// format version. A decoder accepts every version up to the current one and
// rejects anything newer with ErrUnsupportedVersion, so a record written by
// a newer release is reported rather than misread (and then overwritten).
//
// Adding a field to core.User, core.Order or core.Request is a versioned
// change: add the field at the end of its section in AppendUser, bump
// UserVersion, and make DecodeUser read it only when the record's version is
// high enough (older records leave it zero, or derive it: see deriveV1).
// Keep the golden files of the older versions (testdata/user_v1.golden...)
// and add one for the new version. TestCodecCoversAllFields fails until
// the codec knows every field.
const (
	UserV1      = 1
	userV2      = 2      // issue 14: money safety, review lifecycle, request policies
	userV3      = 3      // pruned requests' IDs on their orders, pruned velocity and trust times
	userV4      = 4      // pruned requests' IDs no kept order holds (User.Forgotten)
	UserVersion = userV4 // version written by AppendUser

	metaV1   = 1
	outboxV1 = 1
	outboxV2 = 2
)

// ErrUnsupportedVersion reports a stored record whose format version this
// release does not know (written by a newer release, or garbage).
var ErrUnsupportedVersion = errors.New("state: unsupported record version")

// errShort is the decoder's error for a record that ends too early.
var errShort = errors.New("state: record truncated")

// Order flags.
const (
	ofSevenDay = 1 << iota
	ofFreightInsurance
	ofAll = 1<<iota - 1
)

// Request flags, first byte (bits 0-6 since version 1, bit 7 since 2).
const (
	rfRefundSent = 1 << iota
	rfRefundAdvance
	rfPickup
	rfReplace
	rfPickupDone
	rfCompensationSent
	rfTracked
	rfPickupAsked
	rfAllV1 = rfPickupAsked - 1
	rfAll   = rfPickupAsked<<1 - 1
)

// Request flags, second byte (version 2).
const (
	rf2PayAdvance = 1 << iota
	rf2Reserved
	rf2Promised
	rf2GoodsAdvance
	rf2CourierOnTime
	rf2ClawbackSent
	rf2TrustSent
	// rf2Resolved: the resolution block (Resolution, ResolvedBy,
	// ResolvedAt, ResolveCodes, Note) follows; absent when all are zero.
	rf2Resolved
	rf2All = 1<<iota - 1
)

// Policy dictionary entry tags (version 2).
const (
	// polTagKey: 8 bytes follow, a version of 16 hex digits (the only
	// form Commit stores: see EncodePolicy).
	polTagKey = 1
	// polTagString: a length-prefixed version string follows, for a
	// version that is not 16 hex digits (a hand-built policy; it can never
	// be resolved, so such a record reads back as corrupt).
	polTagString = 2
)

// maxDictStack is the number of distinct policies per user the encoder
// and decoder handle without allocating.
const maxDictStack = 4

// AppendUser appends the current-version encoding of u to dst.
//
// Layout (version 4); s = uvarint length + bytes, v = zig-zag varint,
// uv = uvarint, b = one byte, t = time relative to MaxAt (appendTime),
// tA = time relative to the request's At. Fields marked [v2] to [v4] are
// new in that version; version 1 is the same without them (and with
// BadInspections where TrustMarks is):
//
//	b version | s ID | v Stars | v OutstandingFen | v MaxAt
//	  [v2] v PromisedFen | uv len(dict), each: b tag, then 8 bytes (tag 1:
//	  a version of 16 hex digits) or s version (tag 2)
//	uv len(Orders), each: s ID, s MerchantID, s Category, s City, b Size,
//	  v PaidFen, b flags(SevenDay, FreightInsurance), t PaidAt, t ShippedAt,
//	  t DeliveredAt
//	  [v2] t LastAt, v ReservedFen, v RefundedFen
//	  [v3] uv len(Forgotten), each s
//	uv len(Requests), each: s ID, s OrderID, b Kind, b Reason, t At,
//	  v AmountFen, b Status, b Verdict, uv Reasons, s MerchantRule,
//	  uv MerchantRevision, b RefundTrigger, b flags(RefundSent, RefundAdvance,
//	  Pickup, Replace, PickupDone, CompensationSent, Tracked, [v2]
//	  PickupAsked), t RefundAt, b PickupSize, t WindowStart, t WindowEnd,
//	  b Inspection, t ClosedAt
//	  [v2] uv policy (0: nil, i: dict[i-1]), b PayTrigger, b flags2(
//	  PayAdvance, Reserved, Promised, GoodsAdvance, CourierOnTime,
//	  ClawbackSent, TrustSent, resolved), tA ApprovedAt, and when resolved:
//	  b Resolution, b ResolvedBy, tA ResolvedAt, uv ResolveCodes, s Note
//	uv len(RecentRequests), each t | uv len(TrustMarks), each t
//	[v3] t VelocityPrunedTo, t TrustPrunedTo
//	[v4] uv len(Forgotten), each s
//
// A request's policy is stored as its version, once per user in the
// dictionary; DecodeUser resolves it through the partition's policy table.
func AppendUser(dst []byte, u *core.User) []byte {
	base := u.MaxAt
	dst = append(dst, UserVersion)
	dst = appendString(dst, u.ID)
	dst = binary.AppendVarint(dst, int64(u.Stars))
	dst = binary.AppendVarint(dst, u.OutstandingFen)
	dst = binary.AppendVarint(dst, u.MaxAt)
	dst = binary.AppendVarint(dst, u.PromisedFen)

	// The dictionary of distinct policy versions, in order of first use.
	var stack [maxDictStack]*core.Policy
	dict := stack[:0]
	for i := range u.Requests {
		if p := u.Requests[i].Policy; p != nil && dictIndex(dict, p) == 0 {
			dict = append(dict, p)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(dict)))
	for _, p := range dict {
		if k, ok := VersionKey(p.Version); ok {
			dst = append(dst, polTagKey)
			dst = append(dst, k[:]...)
		} else {
			dst = append(dst, polTagString)
			dst = appendString(dst, p.Version)
		}
	}

	dst = binary.AppendUvarint(dst, uint64(len(u.Orders)))
	for i := range u.Orders {
		o := &u.Orders[i]
		dst = appendString(dst, o.ID)
		dst = appendString(dst, o.MerchantID)
		dst = appendString(dst, o.Category)
		dst = appendString(dst, o.City)
		dst = append(dst, byte(o.Size))
		dst = binary.AppendVarint(dst, o.PaidFen)
		var f byte
		if o.SevenDay {
			f |= ofSevenDay
		}
		if o.FreightInsurance {
			f |= ofFreightInsurance
		}
		dst = append(dst, f)
		dst = appendTime(dst, base, o.PaidAt)
		dst = appendTime(dst, base, o.ShippedAt)
		dst = appendTime(dst, base, o.DeliveredAt)
		dst = appendTime(dst, base, o.LastAt)
		dst = binary.AppendVarint(dst, o.ReservedFen)
		dst = binary.AppendVarint(dst, o.RefundedFen)
		dst = appendStrings(dst, o.Forgotten)
	}
	dst = binary.AppendUvarint(dst, uint64(len(u.Requests)))
	for i := range u.Requests {
		r := &u.Requests[i]
		dst = appendString(dst, r.ID)
		dst = appendString(dst, r.OrderID)
		dst = append(dst, byte(r.Kind), byte(r.Reason))
		dst = appendTime(dst, base, r.At)
		dst = binary.AppendVarint(dst, r.AmountFen)
		dst = append(dst, byte(r.Status), byte(r.Verdict))
		dst = binary.AppendUvarint(dst, uint64(r.Reasons))
		dst = appendString(dst, r.MerchantRule)
		dst = binary.AppendUvarint(dst, r.MerchantRevision)
		dst = append(dst, byte(r.RefundTrigger))
		dst = append(dst, flagByte(r.RefundSent, r.RefundAdvance, r.Pickup, r.Replace,
			r.PickupDone, r.CompensationSent, r.Tracked, r.PickupAsked))
		dst = appendTime(dst, base, r.RefundAt)
		dst = append(dst, byte(r.PickupSize))
		dst = appendTime(dst, base, r.WindowStart)
		dst = appendTime(dst, base, r.WindowEnd)
		dst = append(dst, byte(r.Inspection))
		dst = appendTime(dst, base, r.ClosedAt)

		var pi int
		if r.Policy != nil {
			pi = dictIndex(dict, r.Policy)
		}
		dst = binary.AppendUvarint(dst, uint64(pi))
		dst = append(dst, byte(r.PayTrigger))
		resolved := r.Resolution != 0 || r.ResolvedBy != 0 || r.ResolvedAt != 0 || r.ResolveCodes != 0 || r.Note != ""
		dst = append(dst, flagByte(r.PayAdvance, r.Reserved, r.Promised, r.GoodsAdvance,
			r.CourierOnTime, r.ClawbackSent, r.TrustSent, resolved))
		dst = appendTime(dst, r.At, r.ApprovedAt)
		if resolved {
			dst = append(dst, byte(r.Resolution), byte(r.ResolvedBy))
			dst = appendTime(dst, r.At, r.ResolvedAt)
			dst = binary.AppendUvarint(dst, uint64(r.ResolveCodes))
			dst = appendString(dst, r.Note)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(u.RecentRequests)))
	for _, t := range u.RecentRequests {
		dst = appendTime(dst, base, t)
	}
	dst = binary.AppendUvarint(dst, uint64(len(u.TrustMarks)))
	for _, t := range u.TrustMarks {
		dst = appendTime(dst, base, t)
	}
	dst = appendTime(dst, base, u.VelocityPrunedTo)
	dst = appendTime(dst, base, u.TrustPrunedTo)
	return appendStrings(dst, u.Forgotten)
}

// dictIndex returns 1 + the index of p's version in dict, or 0. Policies
// are compared by pointer first, then by version (a version names one
// content).
func dictIndex(dict []*core.Policy, p *core.Policy) int {
	for i, q := range dict {
		if q == p || q.Version == p.Version {
			return i + 1
		}
	}
	return 0
}

// Upper bounds of the encoded size of the fixed-size parts (varints at their
// longest), used by EncodedSizeBound. A time takes at most maxTime bytes
// (the escape byte and a full uvarint).
const (
	maxVarint    = binary.MaxVarintLen64
	maxTime      = 1 + maxVarint
	userFixedMax = 1 + 4*maxVarint + 5*maxVarint + 2*maxTime
	orderMax     = 1 + maxVarint + 1 + 4*maxTime + 2*maxVarint + maxVarint
	requestMax   = 2 + maxTime + maxVarint + 2 + maxVarint + maxVarint + 1 + 1 + maxTime + 1 + 3*maxTime + 1 +
		maxVarint + 1 + 1 + maxTime + 2 + maxTime + maxVarint
)

// EncodedSizeBound returns an upper bound of len(AppendUser(nil, u)),
// cheaply (no encoding). Typical users encode to about half of it.
func EncodedSizeBound(u *core.User) int {
	n := userFixedMax + strBound(u.ID) + (len(u.RecentRequests)+len(u.TrustMarks))*maxTime + maxVarint
	for _, id := range u.Forgotten {
		n += strBound(id)
	}
	for i := range u.Orders {
		o := &u.Orders[i]
		n += orderMax + strBound(o.ID) + strBound(o.MerchantID) + strBound(o.Category) + strBound(o.City)
		for _, id := range o.Forgotten {
			n += strBound(id)
		}
	}
	for i := range u.Requests {
		r := &u.Requests[i]
		n += requestMax + strBound(r.ID) + strBound(r.OrderID) + strBound(r.MerchantRule) + strBound(r.Note)
		if r.Policy != nil { // at most one dictionary entry per request
			n += 1 + max(len(PolicyKey{}), strBound(r.Policy.Version))
		}
	}
	return n
}

// DecodeUser decodes a record written by AppendUser of this or an older
// version, resolving the policies of its requests with res. It never
// panics; a malformed record yields an error, and so does a policy version
// res cannot resolve (ErrUnknownPolicy) or a version-1 record when res has
// no legacy policy (ErrNoLegacyPolicy). A version-1 record gets the legacy
// policy and the fields version 1 lacked derived from it (deriveV1).
//
// The user's strings share one allocation holding the whole record,
// except its ID, which has its own: the ID is what outlives the user in
// the partition's timer index and cache map, and as a slice of the record
// it pinned every evicted shopper's whole record (issue 15: ~280 bytes a
// shopper, 210 MiB of live heap at a million).
func DecodeUser(rec []byte, res *Resolver) (*core.User, error) {
	if len(rec) == 0 {
		return nil, errShort
	}
	v := rec[0]
	if v == 0 || v > UserVersion {
		return nil, fmt.Errorf("%w %d (this release reads up to %d)", ErrUnsupportedVersion, v, UserVersion)
	}
	if v == UserV1 && res.Legacy == nil {
		return nil, ErrNoLegacyPolicy
	}
	d := decoder{s: string(rec), off: 1}
	u := &core.User{}
	u.ID = strings.Clone(d.string())
	u.Stars = int(d.varint())
	u.OutstandingFen = d.varint()
	u.MaxAt = d.varint()
	base := u.MaxAt
	var stack [maxDictStack]*core.Policy
	dict := stack[:0]
	if v >= userV2 {
		u.PromisedFen = d.varint()
		n := d.count(2)
		if n > maxDictStack {
			dict = make([]*core.Policy, 0, n)
		}
		for range n {
			var k PolicyKey
			switch tag := d.byte(); tag {
			case polTagKey:
				if len(d.s)-d.off < len(k) {
					d.fail(errShort)
					break
				}
				copy(k[:], d.s[d.off:])
				d.off += len(k)
				if d.err != nil {
					break
				}
				p, err := res.Find(k)
				if err != nil {
					d.fail(err)
				}
				dict = append(dict, p)
			case polTagString:
				if ver := d.string(); d.err == nil {
					d.fail(fmt.Errorf("%w %q: not 16 hex digits", ErrUnknownPolicy, ver))
				}
			default:
				d.fail(fmt.Errorf("state: bad policy tag %d", tag))
			}
		}
	}
	// The shortest order and request (empty strings, zero values).
	orderMin, requestMin := 10, 19
	if v >= userV2 {
		orderMin, requestMin = 13, 23
	}
	if v >= userV3 {
		orderMin++
	}
	if n := d.count(orderMin); n > 0 {
		u.Orders = make([]core.Order, n)
		for i := range u.Orders {
			o := &u.Orders[i]
			o.ID = d.string()
			o.MerchantID = d.string()
			o.Category = d.string()
			o.City = d.string()
			o.Size = core.Size(d.byte())
			o.PaidFen = d.varint()
			f := d.flags(ofAll)
			o.SevenDay = f&ofSevenDay != 0
			o.FreightInsurance = f&ofFreightInsurance != 0
			o.PaidAt = d.time(base)
			o.ShippedAt = d.time(base)
			o.DeliveredAt = d.time(base)
			if v >= userV2 {
				o.LastAt = d.time(base)
				o.ReservedFen = d.varint()
				o.RefundedFen = d.varint()
			}
			if v >= userV3 {
				o.Forgotten = d.strings()
			}
		}
	}
	rfMask := byte(rfAll)
	if v == UserV1 {
		rfMask = rfAllV1
	}
	if n := d.count(requestMin); n > 0 {
		u.Requests = make([]core.Request, n)
		for i := range u.Requests {
			r := &u.Requests[i]
			r.ID = d.string()
			r.OrderID = d.string()
			r.Kind = core.Kind(d.byte())
			r.Reason = core.Reason(d.byte())
			r.At = d.time(base)
			r.AmountFen = d.varint()
			r.Status = core.Status(d.byte())
			r.Verdict = core.Verdict(d.byte())
			r.Reasons = d.codeSet()
			r.MerchantRule = d.string()
			r.MerchantRevision = d.uvarint()
			r.RefundTrigger = core.Trigger(d.byte())
			f := d.flags(rfMask)
			r.RefundSent = f&rfRefundSent != 0
			r.RefundAdvance = f&rfRefundAdvance != 0
			r.Pickup = f&rfPickup != 0
			r.Replace = f&rfReplace != 0
			r.PickupDone = f&rfPickupDone != 0
			r.CompensationSent = f&rfCompensationSent != 0
			r.Tracked = f&rfTracked != 0
			r.PickupAsked = f&rfPickupAsked != 0
			r.RefundAt = d.time(base)
			r.PickupSize = core.Size(d.byte())
			r.WindowStart = d.time(base)
			r.WindowEnd = d.time(base)
			r.Inspection = core.Outcome(d.byte())
			r.ClosedAt = d.time(base)
			if v == UserV1 {
				continue
			}
			switch pi := d.uvarint(); {
			case pi == 0:
				r.Policy = res.Legacy
			case pi <= uint64(len(dict)):
				r.Policy = dict[pi-1]
			default:
				d.fail(fmt.Errorf("state: request refers to policy %d of %d", pi, len(dict)))
			}
			r.PayTrigger = core.Trigger(d.byte())
			f = d.flags(rf2All)
			r.PayAdvance = f&rf2PayAdvance != 0
			r.Reserved = f&rf2Reserved != 0
			r.Promised = f&rf2Promised != 0
			r.GoodsAdvance = f&rf2GoodsAdvance != 0
			r.CourierOnTime = f&rf2CourierOnTime != 0
			r.ClawbackSent = f&rf2ClawbackSent != 0
			r.TrustSent = f&rf2TrustSent != 0
			r.ApprovedAt = d.time(r.At)
			if f&rf2Resolved != 0 {
				r.Resolution = core.Resolution(d.byte())
				r.ResolvedBy = core.Actor(d.byte())
				r.ResolvedAt = d.time(r.At)
				r.ResolveCodes = d.codeSet()
				r.Note = d.string()
			}
		}
	}
	u.RecentRequests = d.times(base)
	u.TrustMarks = d.times(base)
	if v >= userV3 {
		u.VelocityPrunedTo = d.time(base)
		u.TrustPrunedTo = d.time(base)
	} else if u.MaxAt != 0 {
		// Versions 1 and 2 did not record what pruning dropped: as far
		// back as the windows they kept, it may have dropped anything. A
		// late request reaching back past that fails its rule safe. They
		// kept the longer of the spec's windows and the policy in force,
		// taken to be the legacy policy (the daemon's --policy).
		vw, tw := core.DefaultVelocityWindow, core.DefaultTrustWindow
		if res.Legacy != nil {
			vw, tw = max(vw, res.Legacy.VelocityWindow), max(tw, res.Legacy.TrustWindow)
		}
		u.VelocityPrunedTo = u.MaxAt - int64(vw)
		u.TrustPrunedTo = u.MaxAt - int64(tw)
	}
	if v >= userV4 {
		u.Forgotten = d.strings()
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.off != len(d.s) {
		return nil, fmt.Errorf("state: %d trailing bytes in user record", len(d.s)-d.off)
	}
	if v == UserV1 {
		deriveV1(u, res.Legacy)
	}
	return u, nil
}
