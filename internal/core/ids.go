package core

// MsgID returns the effect's deterministic message ID (the Nats-Msg-Id):
// "<kind>.<user_id>.<request_id>", e.g. "refund.u1.r1", and for the close
// of a request by its return deadline "resolution.<user_id>.<request_id>.closed".
// Contract IDs never contain '.', so the ID is unambiguous; each kind is
// emitted at most once per request (a resolution once as an answer and
// once as a close), so it is unique.
func (e *Effect) MsgID() string { return string(e.AppendMsgID(nil)) }

// AppendMsgID appends [Effect.MsgID] to dst without allocating when dst
// has room.
func (e *Effect) AppendMsgID(dst []byte) []byte {
	dst = append(dst, e.Kind.String()...)
	dst = e.appendIDTail(dst)
	if e.Kind == EffectResolution && e.Resolution == ResolutionClosed {
		dst = append(dst, closedSuffix...)
	}
	return dst
}

// RefundID returns the refund's downstream idempotency key,
// "rf.<user_id>.<request_id>". It depends only on UserID and RequestID.
func (e *Effect) RefundID() string { return "rf." + e.UserID + "." + e.RequestID }

// PickupID returns the pickup's downstream idempotency key,
// "pk.<user_id>.<request_id>". It depends only on UserID and RequestID.
func (e *Effect) PickupID() string { return "pk." + e.UserID + "." + e.RequestID }

func (e *Effect) appendIDTail(dst []byte) []byte {
	dst = append(dst, '.')
	dst = append(dst, e.UserID...)
	dst = append(dst, '.')
	return append(dst, e.RequestID...)
}

// ResolutionID returns the resolution's downstream idempotency key:
// "rs.<user_id>.<request_id>" for the answer to a review (approved or
// rejected: at most one per request), "rs.<user_id>.<request_id>.closed"
// for the close by the return deadline (at most one per request; a
// request approved after review can have both). It depends only on
// UserID, RequestID and whether the resolution is a close.
func (e *Effect) ResolutionID() string {
	if e.Resolution == ResolutionClosed {
		return "rs." + e.UserID + "." + e.RequestID + closedSuffix
	}
	return "rs." + e.UserID + "." + e.RequestID
}

// closedSuffix ends the IDs of a close by the return deadline.
const closedSuffix = ".closed"
