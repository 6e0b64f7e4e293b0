package recordtest

import (
	"encoding/binary"

	"github.com/flashreturn/flashreturn/internal/core"
)

// AppendUserV1 is the version-1 encoder as release ea8a0fb shipped it
// (TrustMarks stands where BadInspections was), frozen to write version-1
// records for the migration tests. TestCodecGolden checks that it still
// writes testdata/user_v1.golden byte for byte. Fields version 1 did not
// have are ignored.
func AppendUserV1(dst []byte, u *core.User) []byte {
	base := u.MaxAt
	dst = append(dst, 1) // the version byte
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
		dst = append(dst, flagByte(o.SevenDay, o.FreightInsurance))
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
		dst = append(dst, flagByte(r.RefundSent, r.RefundAdvance, r.Pickup, r.Replace,
			r.PickupDone, r.CompensationSent, r.Tracked))
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
	dst = binary.AppendUvarint(dst, uint64(len(u.TrustMarks)))
	for _, t := range u.TrustMarks {
		dst = appendTime(dst, base, t)
	}
	return dst
}

// The encoding helpers below are copies of record's as version 1 used
// them, not calls into record: a frozen encoder must not change when the
// live codec does (a new time encoding in a version 3 would otherwise
// silently rewrite what "version 1" means here). TestCodecGolden checks
// both encoders against their golden files independently.

// appendString writes a uvarint length and the bytes.
func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// flagByte packs booleans, the first in bit 0.
func flagByte(bs ...bool) byte {
	var f byte
	for i, b := range bs {
		if b {
			f |= 1 << i
		}
	}
	return f
}

// appendTime writes t relative to base: 0 for "not yet", else the
// difference in whole seconds, milliseconds or nanoseconds (unit in bits
// 1-2, sign in bit 0), or escape 1 and the full wrapping difference when
// the quotient does not fit.
func appendTime(dst []byte, base, t int64) []byte {
	if t == 0 {
		return append(dst, 0)
	}
	d := uint64(base) - uint64(t)
	var sign uint64
	a := d
	if int64(d) < 0 {
		sign, a = 1, -d
	}
	unit, div := uint64(3), uint64(1)
	switch {
	case a%1e9 == 0:
		unit, div = 1, 1e9
	case a%1e6 == 0:
		unit, div = 2, 1e6
	}
	q := a / div
	if q >= 1<<61 {
		dst = append(dst, 1)
		return binary.AppendUvarint(dst, d)
	}
	return binary.AppendUvarint(dst, q<<3|unit<<1|sign)
}
