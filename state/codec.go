package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/flashreturn/flashreturn/internal/core"
)

// Record format versions. The first byte of every stored value is its
// format version. A decoder accepts every version up to the current one and
// rejects anything newer with ErrUnsupportedVersion, so a record written by
// a newer release is reported rather than misread (and then overwritten).
//
// Adding a field to core.User, core.Order or core.Request is a versioned
// change: add the field at the end of its section in appendUser, bump
// userVersion, and make decodeUser read it only when the record's version is
// high enough (older records leave it zero). Keep testdata/user_v1.golden and
// add a golden file for the new version. TestCodecCoversAllFields fails until
// the codec knows every field.
const (
	userV1      = 1
	userVersion = userV1 // version written by appendUser

	metaV1   = 1
	outboxV1 = 1
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

// Request flags.
const (
	rfRefundSent = 1 << iota
	rfRefundAdvance
	rfPickup
	rfReplace
	rfPickupDone
	rfCompensationSent
	rfTracked
	rfAll = 1<<iota - 1
)

// appendUser appends the current-version encoding of u to dst.
//
// Layout (version 1); s = uvarint length + bytes, v = zig-zag varint,
// uv = uvarint, b = one byte, t = time relative to MaxAt (appendTime):
//
//	b version | s ID | v Stars | v OutstandingFen | v MaxAt
//	uv len(Orders), each: s ID, s MerchantID, s Category, s City, b Size,
//	  v PaidFen, b flags(SevenDay, FreightInsurance), t PaidAt, t ShippedAt,
//	  t DeliveredAt
//	uv len(Requests), each: s ID, s OrderID, b Kind, b Reason, t At,
//	  v AmountFen, b Status, b Verdict, uv Reasons, s MerchantRule,
//	  uv MerchantRevision, b RefundTrigger, b flags(RefundSent, RefundAdvance,
//	  Pickup, Replace, PickupDone, CompensationSent, Tracked), t RefundAt,
//	  b PickupSize, t WindowStart, t WindowEnd, b Inspection, t ClosedAt
//	uv len(RecentRequests), each t | uv len(BadInspections), each t
func appendUser(dst []byte, u *core.User) []byte {
	base := u.MaxAt
	dst = append(dst, userVersion)
	dst = appendString(dst, u.ID)
	dst = binary.AppendVarint(dst, int64(u.Stars))
	dst = binary.AppendVarint(dst, u.OutstandingFen)
	dst = binary.AppendVarint(dst, u.MaxAt)
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
		var f byte
		if r.RefundSent {
			f |= rfRefundSent
		}
		if r.RefundAdvance {
			f |= rfRefundAdvance
		}
		if r.Pickup {
			f |= rfPickup
		}
		if r.Replace {
			f |= rfReplace
		}
		if r.PickupDone {
			f |= rfPickupDone
		}
		if r.CompensationSent {
			f |= rfCompensationSent
		}
		if r.Tracked {
			f |= rfTracked
		}
		dst = append(dst, f)
		dst = appendTime(dst, base, r.RefundAt)
		dst = append(dst, byte(r.PickupSize))
		dst = appendTime(dst, base, r.WindowStart)
		dst = appendTime(dst, base, r.WindowEnd)
		dst = append(dst, byte(r.Inspection))
		dst = appendTime(dst, base, r.ClosedAt)
	}
	dst = binary.AppendUvarint(dst, uint64(len(u.RecentRequests)))
	for _, t := range u.RecentRequests {
		dst = appendTime(dst, base, t)
	}
	dst = binary.AppendUvarint(dst, uint64(len(u.BadInspections)))
	for _, t := range u.BadInspections {
		dst = appendTime(dst, base, t)
	}
	return dst
}

// Upper bounds of the encoded size of the fixed-size parts (varints at their
// longest), used by encodedSizeBound.
const (
	maxVarint    = binary.MaxVarintLen64
	userFixedMax = 1 + 3*maxVarint + 4*maxVarint
	orderMax     = 1 + maxVarint + 1 + 3*maxVarint
	requestMax   = 2 + maxVarint + maxVarint + 2 + maxVarint + maxVarint + 1 + 1 + maxVarint + 1 + 2*maxVarint + 1 + maxVarint
)

// encodedSizeBound returns an upper bound of len(appendUser(nil, u)),
// cheaply (no encoding). Typical users encode to about half of it.
func encodedSizeBound(u *core.User) int {
	n := userFixedMax + strBound(u.ID) + (len(u.RecentRequests)+len(u.BadInspections))*maxVarint
	for i := range u.Orders {
		o := &u.Orders[i]
		n += orderMax + strBound(o.ID) + strBound(o.MerchantID) + strBound(o.Category) + strBound(o.City)
	}
	for i := range u.Requests {
		r := &u.Requests[i]
		n += requestMax + strBound(r.ID) + strBound(r.OrderID) + strBound(r.MerchantRule)
	}
	return n
}

func strBound(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Time encoding. Times are Unix nanoseconds where 0 means "not yet"; most
// lie within days of the user's MaxAt and are whole seconds or milliseconds.
// A time is one uvarint x:
//
//	x == 0: the time is 0
//	x == 1: escape; a second uvarint holds d = base - t (wrapping) in full
//	else:   x = q<<3 | unit<<1 | sign, |base - t| = q * unit (unit 1 = s,
//	        2 = ms, 3 = ns), sign 1 when t > base
//
// Three days before MaxAt costs 3 bytes in seconds, 5 in milliseconds.
const (
	timeZero   = 0
	timeEscape = 1
)

var timeUnits = [4]uint64{0, 1e9, 1e6, 1}

func appendTime(dst []byte, base, t int64) []byte {
	if t == 0 {
		return append(dst, timeZero)
	}
	d := uint64(base) - uint64(t) // wrapping; decode reverses it exactly
	var sign uint64
	a := d
	if int64(d) < 0 {
		sign, a = 1, -d
	}
	unit := uint64(3)
	switch {
	case a%1e9 == 0:
		unit = 1
	case a%1e6 == 0:
		unit = 2
	}
	q := a / timeUnits[unit]
	if q >= 1<<61 {
		dst = append(dst, timeEscape)
		return binary.AppendUvarint(dst, d)
	}
	return binary.AppendUvarint(dst, q<<3|unit<<1|sign)
}

// decoder reads a record. Strings are cut from one string holding the whole
// record, so decoding a user costs one allocation for all its strings.
type decoder struct {
	s   string // the whole record
	off int
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.off = len(d.s)
}

func (d *decoder) byte() byte {
	if d.off >= len(d.s) {
		d.fail(errShort)
		return 0
	}
	b := d.s[d.off]
	d.off++
	return b
}

func (d *decoder) uvarint() uint64 {
	var x uint64
	var s uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if d.off >= len(d.s) {
			d.fail(errShort)
			return 0
		}
		b := d.s[d.off]
		d.off++
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				break
			}
			return x | uint64(b)<<s
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	d.fail(errors.New("state: varint overflows 64 bits"))
	return 0
}

func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.s)-d.off) {
		d.fail(errShort)
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

// count reads a slice length and checks that at least min bytes per element
// remain, so a corrupt length cannot make the decoder allocate much.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64((len(d.s)-d.off)/min) {
		d.fail(fmt.Errorf("state: slice length %d exceeds record", n))
		return 0
	}
	return int(n)
}

func (d *decoder) time(base int64) int64 {
	x := d.uvarint()
	switch x {
	case timeZero:
		return 0
	case timeEscape:
		return int64(uint64(base) - d.uvarint())
	}
	unit := (x >> 1) & 3
	if unit == 0 {
		d.fail(fmt.Errorf("state: bad time unit in %#x", x))
		return 0
	}
	a := (x >> 3) * timeUnits[unit]
	if x&1 != 0 {
		a = -a
	}
	return int64(uint64(base) - a)
}

func (d *decoder) flags(all byte) byte {
	f := d.byte()
	if f&^all != 0 {
		d.fail(fmt.Errorf("state: unknown flag bits %#x", f&^all))
	}
	return f
}

// decodeUser decodes a record written by appendUser of this or an older
// version. It never panics; a malformed record yields an error.
func decodeUser(rec []byte) (*core.User, error) {
	if len(rec) == 0 {
		return nil, errShort
	}
	if v := rec[0]; v == 0 || v > userVersion {
		return nil, fmt.Errorf("%w %d (this release reads up to %d)", ErrUnsupportedVersion, v, userVersion)
	}
	d := decoder{s: string(rec), off: 1}
	u := &core.User{}
	u.ID = d.string()
	u.Stars = int(d.varint())
	u.OutstandingFen = d.varint()
	u.MaxAt = d.varint()
	base := u.MaxAt
	if n := d.count(9); n > 0 {
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
		}
	}
	if n := d.count(20); n > 0 {
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
			reasons := d.uvarint()
			if reasons > 1<<32-1 {
				d.fail(fmt.Errorf("state: reason set %#x overflows", reasons))
			}
			r.Reasons = core.CodeSet(reasons)
			r.MerchantRule = d.string()
			r.MerchantRevision = d.uvarint()
			r.RefundTrigger = core.Trigger(d.byte())
			f := d.flags(rfAll)
			r.RefundSent = f&rfRefundSent != 0
			r.RefundAdvance = f&rfRefundAdvance != 0
			r.Pickup = f&rfPickup != 0
			r.Replace = f&rfReplace != 0
			r.PickupDone = f&rfPickupDone != 0
			r.CompensationSent = f&rfCompensationSent != 0
			r.Tracked = f&rfTracked != 0
			r.RefundAt = d.time(base)
			r.PickupSize = core.Size(d.byte())
			r.WindowStart = d.time(base)
			r.WindowEnd = d.time(base)
			r.Inspection = core.Outcome(d.byte())
			r.ClosedAt = d.time(base)
		}
	}
	u.RecentRequests = d.times(base)
	u.BadInspections = d.times(base)
	if d.err != nil {
		return nil, d.err
	}
	if d.off != len(d.s) {
		return nil, fmt.Errorf("state: %d trailing bytes in user record", len(d.s)-d.off)
	}
	return u, nil
}

func (d *decoder) times(base int64) []int64 {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = d.time(base)
	}
	return ts
}

// Meta record: b version | uv cursor | v clock.
func appendMeta(dst []byte, cursor uint64, clock int64) []byte {
	dst = append(dst, metaV1)
	dst = binary.AppendUvarint(dst, cursor)
	return binary.AppendVarint(dst, clock)
}

func decodeMeta(rec []byte) (cursor uint64, clock int64, err error) {
	if len(rec) == 0 || rec[0] != metaV1 {
		return 0, 0, fmt.Errorf("%w: meta record", ErrUnsupportedVersion)
	}
	d := decoder{s: string(rec), off: 1}
	cursor = d.uvarint()
	clock = d.varint()
	if d.err == nil && d.off != len(d.s) {
		d.err = errors.New("state: trailing bytes in meta record")
	}
	return cursor, clock, d.err
}

// Outbox record: b version | uv count | each: s Subject, s MsgID, s Data.
func appendOutbox(dst []byte, msgs []OutMsg) []byte {
	dst = append(dst, outboxV1)
	dst = binary.AppendUvarint(dst, uint64(len(msgs)))
	for i := range msgs {
		m := &msgs[i]
		dst = appendString(dst, m.Subject)
		dst = appendString(dst, m.MsgID)
		dst = binary.AppendUvarint(dst, uint64(len(m.Data)))
		dst = append(dst, m.Data...)
	}
	return dst
}

// decodeOutbox decodes an outbox record. Data slices alias rec.
func decodeOutbox(rec []byte) ([]OutMsg, error) {
	if len(rec) == 0 || rec[0] != outboxV1 {
		return nil, fmt.Errorf("%w: outbox record", ErrUnsupportedVersion)
	}
	// Subjects and IDs become strings (one allocation); Data aliases rec.
	d := decoder{s: string(rec), off: 1}
	n := d.count(3)
	msgs := make([]OutMsg, n)
	for i := range msgs {
		msgs[i].Subject = d.string()
		msgs[i].MsgID = d.string()
		l := d.uvarint()
		if l > uint64(len(d.s)-d.off) {
			d.fail(errShort)
			break
		}
		start := d.off
		d.off += int(l)
		msgs[i].Data = rec[start:d.off:d.off]
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.off != len(d.s) {
		return nil, errors.New("state: trailing bytes in outbox record")
	}
	return msgs, nil
}

// OutboxBytes returns the number of bytes msgs add to a commit's
// transaction, to be added to [Partition.StagedBytes] when checking a batch
// against [Store.MaxBatchBytes].
func OutboxBytes(msgs []OutMsg) int {
	n := 1 + maxVarint + entryOverhead + prefixLen + len(sufOutbox)
	for i := range msgs {
		n += strBound(msgs[i].Subject) + strBound(msgs[i].MsgID) + uvarintLen(uint64(len(msgs[i].Data))) + len(msgs[i].Data)
	}
	return n
}
