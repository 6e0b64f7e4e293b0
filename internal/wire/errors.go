package wire

import (
	"errors"
	"fmt"

	"github.com/flashreturn/flashreturn/internal/core"
)

// DLQ reasons of the wire contract: the last token of fr.dlq.<reason> and
// the "reason" field of a dead-letter message.
const (
	// ReasonBadJSON: the payload is not JSON, or not a JSON object.
	ReasonBadJSON = "bad_json"
	// ReasonMissingField: a required field is absent or null.
	ReasonMissingField = "missing_field"
	// ReasonBadValue: a field has the wrong JSON type or a value outside its
	// listed set (unknown enum, stars outside 1..5, negative fen, malformed
	// ID or time).
	ReasonBadValue = "bad_value"
	// ReasonUnknownType: "type" names no event type of the contract.
	ReasonUnknownType = "unknown_type"
	// ReasonSubjectMismatch: user_id (or merchant_id) differs from the
	// subject's token, or the type was sent on another kind's subject.
	ReasonSubjectMismatch = "subject_mismatch"
	// ReasonPoison: the event decoded but could not be processed (e.g. a
	// corrupt state record). Decode never returns it; the pipeline does.
	ReasonPoison = "poison"
	// ReasonUnknownOrder: a well-formed order.shipped or order.delivered
	// for an order the shopper does not have (core.FaultUnknownOrder).
	ReasonUnknownOrder = "unknown_order"
	// ReasonUnknownRequest: a well-formed event about a request the
	// shopper does not have (core.FaultUnknownRequest).
	ReasonUnknownRequest = "unknown_request"
	// ReasonFutureTime: the event's at is later than the time its stream
	// stored it by more than the daemon's allowed clock skew
	// (--max-future). The pipeline checks it; Decode does not.
	ReasonFutureTime = "future_time"
)

// Reasons lists every DLQ reason, in the contract's order (for metrics
// registered at start-up). Callers must not modify it.
var Reasons = [...]string{
	ReasonBadJSON, ReasonMissingField, ReasonBadValue,
	ReasonUnknownType, ReasonSubjectMismatch, ReasonPoison,
	ReasonUnknownOrder, ReasonUnknownRequest, ReasonFutureTime,
}

// FaultReason returns the DLQ reason of a core fault (an event referring
// to an order or request the shopper does not have), and the sentence for
// the DLQ's "error" field, naming the field.
func FaultReason(e *core.Effect) (reason, msg string) {
	switch e.Fault {
	case core.FaultUnknownOrder:
		return ReasonUnknownOrder, "field \"order_id\" is " + quote(e.OrderID) + ", which is no order of user " + quote(e.UserID)
	case core.FaultUnknownRequest:
		return ReasonUnknownRequest, "field \"request_id\" is " + quote(e.RequestID) + ", which is no request of user " + quote(e.UserID)
	}
	return ReasonPoison, "event could not be applied (fault " + e.Fault.String() + ")"
}

// KnownReason reports whether r is one of [Reasons].
func KnownReason(r string) bool {
	for _, k := range Reasons {
		if k == r {
			return true
		}
	}
	return false
}

// Error is a rejected inbound message: the DLQ reason, the field at fault
// (empty when the message as a whole is at fault, e.g. bad_json) and a
// sentence for the DLQ's "error" field. Decode and DecodeMerchant return
// only *Error values.
type Error struct {
	// Reason is one of the Reason* constants.
	Reason string
	// Field is the JSON field at fault ("order_id", "rules[1].name"), or
	// empty.
	Field string
	// Msg is a sentence that names the field when there is one.
	Msg string
}

// Error returns Msg, the sentence that goes into the DLQ's "error" field.
func (e *Error) Error() string { return e.Msg }

// ReasonOf returns the DLQ reason for err: the Reason of a *Error in its
// chain, or [ReasonPoison] for any other non-nil error, or "" for nil.
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	var we *Error
	if errors.As(err, &we) {
		return we.Reason
	}
	return ReasonPoison
}

func errBadJSON(format string, args ...any) *Error {
	return &Error{Reason: ReasonBadJSON, Msg: fmt.Sprintf(format, args...)}
}

func errMissing(field, typ string) *Error {
	return &Error{Reason: ReasonMissingField, Field: field,
		Msg: fmt.Sprintf("field %q is missing: it is required in %s", field, typ)}
}

func errBadValue(field, format string, args ...any) *Error {
	return &Error{Reason: ReasonBadValue, Field: field,
		Msg: fmt.Sprintf("field %q has a bad value: ", field) + fmt.Sprintf(format, args...)}
}

// DecodeReason classifies an error of Decode (or of any decoder of
// contract input) into the contract's dead-letter reason and its text:
// a *Error gives its own reason; anything else is poison.
func DecodeReason(err error) (reason, text string) {
	var we *Error
	if errors.As(err, &we) {
		return we.Reason, we.Error()
	}
	return ReasonPoison, err.Error()
}
