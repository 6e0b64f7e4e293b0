package core

// MsgID returns the effect's deterministic message ID (the Nats-Msg-Id):
// "<kind>.<user_id>.<request_id>", e.g. "refund.u1.r1". Contract IDs never
// contain '.', so the ID is unambiguous; each kind is emitted at most once
// per request, so it is unique.
func (e *Effect) MsgID() string { return string(e.AppendMsgID(nil)) }

// AppendMsgID appends [Effect.MsgID] to dst without allocating when dst
// has room.
func (e *Effect) AppendMsgID(dst []byte) []byte {
	dst = append(dst, e.Kind.String()...)
	return e.appendIDTail(dst)
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
