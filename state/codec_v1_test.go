package state

import (
	"encoding/binary"

	"github.com/flashreturn/flashreturn/internal/core"
)

// appendUserV1 is the version-1 encoder as release ea8a0fb shipped it
// (TrustMarks stands where BadInspections was), frozen to write version-1
// records for the migration tests. TestCodecGolden checks that it still
// writes testdata/user_v1.golden byte for byte. Fields version 1 did not
// have are ignored.
func appendUserV1(dst []byte, u *core.User) []byte {
	base := u.MaxAt
	dst = append(dst, userV1)
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
