package wire

import (
	"strconv"

	"github.com/flashreturn/flashreturn/internal/core"
)

// AppendEvent appends the contract JSON of an inbound event (what a
// publisher sends on fr.in.[KindOf](ev.Type).<user_id>): type, event_id,
// at (ev.AtRaw, as received), user_id (not for clock ticks) and the type's
// fields in the contract's order. Optional fields are written when set:
// freight_insurance and city always for order.paid, amount_fen when
// HasAmount, note when not empty. Decode(AppendEvent(ev)) yields ev again for any event Decode
// accepted. It panics on an invalid type (a bug in the caller).
//
// It is written by hand rather than with a JSON library because loadgen
// encodes every event of a benchmark run with it (millions per run), and
// a reflection encoder's allocations would show in the load generator's
// own CPU, which shares the machine with the daemon it measures. Fields
// go out in the contract's order; Decode does not need the order, but a
// captured stream then reads like the contract's field list.
func AppendEvent(dst []byte, ev *core.Event) []byte {
	name := ev.Type.String()
	if name == "" {
		panic("wire: AppendEvent: invalid event type " + strconv.Itoa(int(ev.Type)))
	}
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, name)
	dst = append(dst, `,"event_id":`...)
	dst = appendString(dst, ev.EventID)
	dst = append(dst, `,"at":`...)
	dst = appendString(dst, ev.AtRaw)
	// Clock ticks carry no user: their last subject token is a
	// ClockToken, which Decode does not compare with anything.
	if ev.Type != core.EventClock {
		dst = append(dst, `,"user_id":`...)
		dst = appendString(dst, ev.UserID)
	}
	switch ev.Type {
	case core.EventOrderPaid:
		dst = append(dst, `,"order_id":`...)
		dst = appendString(dst, ev.OrderID)
		dst = append(dst, `,"merchant_id":`...)
		dst = appendString(dst, ev.MerchantID)
		dst = append(dst, `,"category":`...)
		dst = appendString(dst, ev.Category)
		dst = append(dst, `,"size":`...)
		dst = appendString(dst, ev.Size.String())
		dst = append(dst, `,"paid_fen":`...)
		dst = strconv.AppendInt(dst, ev.PaidFen, 10)
		dst = append(dst, `,"seven_day":`...)
		dst = strconv.AppendBool(dst, ev.SevenDay)
		dst = append(dst, `,"freight_insurance":`...)
		dst = strconv.AppendBool(dst, ev.FreightInsurance)
		dst = append(dst, `,"city":`...)
		dst = appendString(dst, ev.City)
	case core.EventOrderShipped, core.EventOrderDelivered:
		dst = append(dst, `,"order_id":`...)
		dst = appendString(dst, ev.OrderID)
	case core.EventCreditUpdated:
		dst = append(dst, `,"stars":`...)
		dst = strconv.AppendInt(dst, int64(ev.Stars), 10)
	case core.EventReturnRequested:
		dst = append(dst, `,"request_id":`...)
		dst = appendString(dst, ev.RequestID)
		dst = append(dst, `,"order_id":`...)
		dst = appendString(dst, ev.OrderID)
		dst = append(dst, `,"kind":`...)
		dst = appendString(dst, ev.Kind.String())
		dst = append(dst, `,"reason":`...)
		dst = appendString(dst, ev.Reason.String())
		dst = append(dst, `,"pickup":`...)
		dst = strconv.AppendBool(dst, ev.Pickup)
		// Absent and present differ here (absent: refund what was paid),
		// so amount_fen is written only when the event had it.
		if ev.HasAmount {
			dst = append(dst, `,"amount_fen":`...)
			dst = strconv.AppendInt(dst, ev.AmountFen, 10)
		}
	case core.EventReturnCancelled, core.EventPickupDone:
		dst = append(dst, `,"request_id":`...)
		dst = appendString(dst, ev.RequestID)
	case core.EventLogisticsTracking:
		dst = append(dst, `,"request_id":`...)
		dst = appendString(dst, ev.RequestID)
		dst = append(dst, `,"tracking_no":`...)
		dst = appendString(dst, ev.TrackingNo)
	case core.EventInspectionResult:
		dst = append(dst, `,"request_id":`...)
		dst = appendString(dst, ev.RequestID)
		dst = append(dst, `,"outcome":`...)
		dst = appendString(dst, ev.Outcome.String())
	case core.EventReviewApproved, core.EventReviewRejected:
		dst = append(dst, `,"request_id":`...)
		dst = appendString(dst, ev.RequestID)
		dst = append(dst, `,"by":`...)
		dst = appendString(dst, ev.By.String())
		if ev.Note != "" {
			dst = append(dst, `,"note":`...)
			dst = appendString(dst, ev.Note)
		}
	}
	return append(dst, '}')
}

// AppendMerchant appends the contract JSON of a merchant.updated event for
// m (published on fr.merchant.<m.ID>), with the given event_id and at
// (RFC 3339). Rule conditions are written only when set, so
// DecodeMerchant(AppendMerchant(m)) yields m again (Revision aside, which
// the stream assigns). Empty address lists are written as [].
func AppendMerchant(dst []byte, m *core.Merchant, eventID, at string) []byte {
	dst = append(dst, `{"type":"merchant.updated","event_id":`...)
	dst = appendString(dst, eventID)
	dst = append(dst, `,"at":`...)
	dst = appendString(dst, at)
	dst = append(dst, `,"merchant_id":`...)
	dst = appendString(dst, m.ID)
	dst = append(dst, `,"return_addresses":`...)
	dst = appendStrings(dst, m.ReturnAddresses)
	dst = append(dst, `,"ship_addresses":`...)
	dst = appendStrings(dst, m.ShipAddresses)
	if len(m.Rules) > 0 {
		dst = append(dst, `,"rules":[`...)
		for i := range m.Rules {
			r := &m.Rules[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"name":`...)
			dst = appendString(dst, r.Name)
			if r.Kinds != 0 {
				dst = append(dst, `,"kinds":[`...)
				n := 0
				for k := core.Kind(1); k.String() != ""; k++ {
					if r.Kinds.Has(k) {
						if n > 0 {
							dst = append(dst, ',')
						}
						dst = appendString(dst, k.String())
						n++
					}
				}
				dst = append(dst, ']')
			}
			if r.Reasons != 0 {
				dst = append(dst, `,"reasons":[`...)
				n := 0
				for rs := core.Reason(1); rs.String() != ""; rs++ {
					if r.Reasons.Has(rs) {
						if n > 0 {
							dst = append(dst, ',')
						}
						dst = appendString(dst, rs.String())
						n++
					}
				}
				dst = append(dst, ']')
			}
			if r.MinStars != 0 {
				dst = append(dst, `,"min_stars":`...)
				dst = strconv.AppendInt(dst, int64(r.MinStars), 10)
			}
			if r.HasMaxAmount {
				dst = append(dst, `,"max_amount_fen":`...)
				dst = strconv.AppendInt(dst, r.MaxAmountFen, 10)
			}
			if r.HasMaxDays {
				dst = append(dst, `,"max_days":`...)
				dst = strconv.AppendInt(dst, int64(r.MaxDays), 10)
			}
			if len(r.Categories) > 0 {
				dst = append(dst, `,"categories":`...)
				dst = appendStrings(dst, r.Categories)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}
