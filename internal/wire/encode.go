package wire

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/flashreturn/flashreturn/internal/core"
)

// AppendEffect appends the contract JSON of e to dst and returns the
// extended buffer. Fields come in a fixed order, so the same effect, zone
// and decidedAt always give the same bytes:
//
//	decision:     request_id, order_id, user_id, decision, reasons, policy
//	              {name, version}, return_address (approved with an
//	              address only), merchant_rule (when set), merchant_revision,
//	              request_at, decided_at
//	refund:       refund_id, request_id, order_id, user_id, amount_fen,
//	              trigger, advance, policy
//	pickup:       pickup_id, request_id, user_id, order_id, size,
//	              window_start, window_end, replace, policy
//	compensation: request_id, user_id, reason ("pickup_missed"), amount_fen,
//	              policy
//	clawback:     request_id, user_id, amount_fen, outcome, policy
//	trust:        user_id, request_id, outcome, penalty, policy
//	resolution:   resolution_id, request_id, order_id, user_id, outcome,
//	              by, reasons, return_address (when set), note (when set),
//	              policy, at
//
// policy is the policy of the effect's request (e.Policy, the one that
// decided it: promises keep their policy); it must be non-nil. Times
// (window_start, window_end, at, decided_at) are written in loc (UTC when
// nil) in [TimeLayout]; decidedAt is the wall-clock time of the decision,
// the one field replay does not reproduce. AppendEffect does not allocate
// when dst has room, and panics on an effect kind it does not encode
// (dead letters go through [AppendDLQ]; anything else is a bug in the
// caller).
func AppendEffect(dst []byte, e *core.Effect, loc *time.Location, decidedAt time.Time) []byte {
	pol := e.Policy
	switch e.Kind {
	case core.EffectDecision:
		dst = append(dst, `{"request_id":`...)
		dst = appendString(dst, e.RequestID)
		dst = append(dst, `,"order_id":`...)
		dst = appendString(dst, e.OrderID)
		dst = append(dst, `,"user_id":`...)
		dst = appendString(dst, e.UserID)
		dst = append(dst, `,"decision":`...)
		dst = appendString(dst, e.Verdict.String())
		dst = append(dst, `,"reasons":`...)
		dst = appendCodes(dst, e.Reasons)
		dst = appendPolicy(dst, pol)
		if e.Verdict == core.VerdictApproved && e.ReturnAddress != "" {
			dst = append(dst, `,"return_address":`...)
			dst = appendString(dst, e.ReturnAddress)
		}
		if e.MerchantRule != "" {
			dst = append(dst, `,"merchant_rule":`...)
			dst = appendString(dst, e.MerchantRule)
		}
		dst = append(dst, `,"merchant_revision":`...)
		dst = strconv.AppendUint(dst, e.MerchantRevision, 10)
		dst = append(dst, `,"request_at":`...)
		dst = appendString(dst, e.RequestAt)
		dst = append(dst, `,"decided_at":"`...)
		dst = appendTime(dst, decidedAt, loc)
		return append(dst, `"}`...)

	case core.EffectRefund:
		dst = append(dst, `{"refund_id":`...)
		dst = append(dst, '"')
		dst = appendIDBody(dst, "rf.", e)
		dst = append(dst, `","request_id":`...)
		dst = appendString(dst, e.RequestID)
		dst = append(dst, `,"order_id":`...)
		dst = appendString(dst, e.OrderID)
		dst = append(dst, `,"user_id":`...)
		dst = appendString(dst, e.UserID)
		dst = append(dst, `,"amount_fen":`...)
		dst = strconv.AppendInt(dst, e.AmountFen, 10)
		dst = append(dst, `,"trigger":`...)
		dst = appendString(dst, e.Trigger.String())
		dst = append(dst, `,"advance":`...)
		dst = strconv.AppendBool(dst, e.Advance)
		return appendPolicyEnd(dst, pol)

	case core.EffectPickup:
		dst = append(dst, `{"pickup_id":`...)
		dst = append(dst, '"')
		dst = appendIDBody(dst, "pk.", e)
		dst = append(dst, `","request_id":`...)
		dst = appendString(dst, e.RequestID)
		dst = append(dst, `,"user_id":`...)
		dst = appendString(dst, e.UserID)
		dst = append(dst, `,"order_id":`...)
		dst = appendString(dst, e.OrderID)
		dst = append(dst, `,"size":`...)
		dst = appendString(dst, e.Size.String())
		dst = append(dst, `,"window_start":"`...)
		dst = appendTime(dst, time.Unix(0, e.WindowStart), loc)
		dst = append(dst, `","window_end":"`...)
		dst = appendTime(dst, time.Unix(0, e.WindowEnd), loc)
		dst = append(dst, `","replace":`...)
		dst = strconv.AppendBool(dst, e.Replace)
		return appendPolicyEnd(dst, pol)

	case core.EffectCompensation:
		dst = append(dst, `{"request_id":`...)
		dst = appendString(dst, e.RequestID)
		dst = append(dst, `,"user_id":`...)
		dst = appendString(dst, e.UserID)
		dst = append(dst, `,"reason":"pickup_missed","amount_fen":`...)
		dst = strconv.AppendInt(dst, e.AmountFen, 10)
		return appendPolicyEnd(dst, pol)

	case core.EffectClawback:
		dst = append(dst, `{"request_id":`...)
		dst = appendString(dst, e.RequestID)
		dst = append(dst, `,"user_id":`...)
		dst = appendString(dst, e.UserID)
		dst = append(dst, `,"amount_fen":`...)
		dst = strconv.AppendInt(dst, e.AmountFen, 10)
		dst = append(dst, `,"outcome":`...)
		dst = appendString(dst, e.Outcome.String())
		return appendPolicyEnd(dst, pol)

	case core.EffectTrust:
		dst = append(dst, `{"user_id":`...)
		dst = appendString(dst, e.UserID)
		dst = append(dst, `,"request_id":`...)
		dst = appendString(dst, e.RequestID)
		dst = append(dst, `,"outcome":`...)
		dst = appendString(dst, e.Outcome.String())
		dst = append(dst, `,"penalty":`...)
		dst = strconv.AppendInt(dst, int64(e.Penalty), 10)
		return appendPolicyEnd(dst, pol)

	case core.EffectResolution:
		dst = append(dst, `{"resolution_id":"`...)
		dst = appendIDBody(dst, "rs.", e)
		if e.Resolution == core.ResolutionClosed {
			dst = append(dst, ".closed"...)
		}
		dst = append(dst, `","request_id":`...)
		dst = appendString(dst, e.RequestID)
		dst = append(dst, `,"order_id":`...)
		dst = appendString(dst, e.OrderID)
		dst = append(dst, `,"user_id":`...)
		dst = appendString(dst, e.UserID)
		dst = append(dst, `,"outcome":`...)
		dst = appendString(dst, e.Resolution.String())
		dst = append(dst, `,"by":`...)
		dst = appendString(dst, e.By.String())
		dst = append(dst, `,"reasons":`...)
		dst = appendCodes(dst, e.Reasons)
		if e.ReturnAddress != "" {
			dst = append(dst, `,"return_address":`...)
			dst = appendString(dst, e.ReturnAddress)
		}
		if e.Note != "" {
			dst = append(dst, `,"note":`...)
			dst = appendString(dst, e.Note)
		}
		dst = appendPolicy(dst, pol)
		dst = append(dst, `,"at":"`...)
		dst = appendTime(dst, time.Unix(0, e.At), loc)
		return append(dst, `"}`...)
	}
	panic("wire: AppendEffect: unknown effect kind " + strconv.Itoa(int(e.Kind)))
}

// appendCodes appends the codes as a JSON array of their contract
// strings, in ascending order ([] when empty).
func appendCodes(dst []byte, codes core.CodeSet) []byte {
	dst = append(dst, '[')
	n := 0
	for c := core.Code(0); c < core.NumCodes; c++ {
		if codes.Has(c) {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, c.String())
			n++
		}
	}
	return append(dst, ']')
}

// appendPolicy appends `,"policy":{"name":...,"version":...}`.
func appendPolicy(dst []byte, pol *core.Policy) []byte {
	dst = append(dst, `,"policy":{"name":`...)
	dst = appendString(dst, pol.Name)
	dst = append(dst, `,"version":`...)
	dst = appendString(dst, pol.Version)
	return append(dst, '}')
}

// appendPolicyEnd appends the policy field and closes the object.
func appendPolicyEnd(dst []byte, pol *core.Policy) []byte {
	return append(appendPolicy(dst, pol), '}')
}

// appendIDBody appends prefix + user + "." + request, escaped for a JSON
// string body (IDs are plain ASCII after Decode, so this is a copy): the
// bytes of core's Effect.RefundID ("rf.") and Effect.PickupID ("pk.")
// without their allocation.
func appendIDBody(dst []byte, prefix string, e *core.Effect) []byte {
	dst = append(dst, prefix...)
	dst = appendStringBody(dst, e.UserID)
	dst = append(dst, '.')
	return appendStringBody(dst, e.RequestID)
}

// AppendDLQ appends a dead-letter message: {"reason", "error", "subject",
// "stream_seq", "payload_b64"} where error is a sentence naming the field
// (see [Error]) and payload_b64 the original bytes in standard base64 with
// padding. It does not allocate when dst has room.
//
// The payload is base64, not embedded: a dead letter is often not JSON
// or not valid UTF-8 at all (that may be why it is dead), and only base64
// carries every byte through a JSON string unchanged, so the publisher
// can be shown exactly what it sent.
func AppendDLQ(dst []byte, reason, errMsg, subject string, streamSeq uint64, payload []byte) []byte {
	dst = append(dst, `{"reason":`...)
	dst = appendString(dst, reason)
	dst = append(dst, `,"error":`...)
	dst = appendString(dst, errMsg)
	dst = append(dst, `,"subject":`...)
	dst = appendString(dst, subject)
	dst = append(dst, `,"stream_seq":`...)
	dst = strconv.AppendUint(dst, streamSeq, 10)
	dst = append(dst, `,"payload_b64":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, payload)
	return append(dst, `"}`...)
}

// DLQMsgID returns the Nats-Msg-Id of the dead letter for message seq of
// stream: "dlq.<stream>.<seq>", so that dead-lettering the same stored
// message twice (after a crash) yields one DLQ entry. The stream name is
// part of the ID because sequences are per stream: in the per-partition
// layout FR_IN_3 and FR_IN_7 both have a message 42, and a sequence alone
// would make FR_DLQ drop the second as a duplicate.
func DLQMsgID(stream string, seq uint64) string {
	return "dlq." + stream + "." + strconv.FormatUint(seq, 10)
}

// TypeClockTick is the type of the daemon's clock events.
const TypeClockTick = "clock.tick"

// ClockMsgID returns the event_id and Nats-Msg-Id of partition p's clock
// tick for the second of at: "clock-<p>-<unix seconds>". It is a valid ID
// ([ValidID]), and two daemons ticking partition p in the same second
// produce the same ID, so the stream keeps one of them.
func ClockMsgID(p int, at time.Time) string {
	return string(appendClockID(nil, p, at))
}

// appendClockID writes ClockMsgID into dst. The second, not the tick's
// full time, is in the ID: daemons' tickers are not aligned, and only a
// coarser unit makes two daemons that both believe they own p (during a
// hand-over) produce the same ID for the same tick.
func appendClockID(dst []byte, p int, at time.Time) []byte {
	dst = append(dst, "clock-"...)
	dst = strconv.AppendInt(dst, int64(p), 10)
	dst = append(dst, '-')
	return strconv.AppendInt(dst, at.Unix(), 10)
}

// AppendClock appends partition p's clock tick for the second of at:
// {"type":"clock.tick","event_id":ClockMsgID(p, at),"at":...} with at
// truncated to the second and written in UTC. Every field depends only on
// p and that second, so two publishers produce identical messages. Publish
// it on fr.in.clock.<ClockToken(p, P)>.
func AppendClock(dst []byte, p int, at time.Time) []byte {
	at = time.Unix(at.Unix(), 0)
	dst = append(dst, `{"type":"clock.tick","event_id":"`...)
	dst = appendClockID(dst, p, at)
	dst = append(dst, `","at":"`...)
	dst = appendTime(dst, at, time.UTC)
	return append(dst, `"}`...)
}

const hexDigits = "0123456789abcdef"

// plainASCII[c]: c needs no escaping inside a JSON string.
var plainASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// lsb and msb are the per-byte constants of plainPrefix's word-at-a-time
// test (a byte of 0x01 and a byte of 0x80 repeated eight times).
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainPrefix returns the length of the longest prefix of s that needs no
// escaping (ASCII 0x20..0x7f except '"' and '\\'), eight bytes at a time.
// Almost every string the daemon writes is a plain ID or code, so the
// common case is one pass of word compares and a single copy; the test
// may flag a plain byte as suspect (the subtraction borrows), never the
// reverse, and the byte loop after it settles what the words left open.
func plainPrefix(s string) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		q := w ^ (lsb * '"')
		b := w ^ (lsb * '\\')
		// A byte < 0x20, == '"', == '\\' or >= 0x80 sets its high bit here.
		if ((w-lsb*0x20)|(q-lsb)|(b-lsb)|w)&msb != 0 {
			break
		}
	}
	for i < len(s) && s[i] < utf8.RuneSelf && plainASCII[s[i]] {
		i++
	}
	return i
}

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendStringBody(dst, s)
	return append(dst, '"')
}

// appendStringBody appends s escaped for the inside of a JSON string: '"',
// '\\' and control characters are escaped, invalid UTF-8 becomes \ufffd,
// and U+2028/U+2029 are escaped (as encoding/json does, minus HTML
// escaping). U+2028/U+2029 are valid in JSON but end a line in older
// JavaScript, and the shopper app is a JavaScript consumer of FR_OUT;
// HTML escaping is left out because no consumer embeds outputs in HTML
// and it would make notes with "<" unreadable. FuzzAppendString holds
// the output to encoding/json's decoding of it.
func appendStringBody(dst []byte, s string) []byte {
	start := 0
	i := plainPrefix(s)
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainASCII[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(dst, s[start:]...)
}
