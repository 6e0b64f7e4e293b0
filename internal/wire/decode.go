package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/bytedance/sonic"
	"github.com/bytedance/sonic/decoder"

	"github.com/flashreturn/flashreturn/internal/core"
)

// TypeMerchantUpdated is the type of the merchant profile events on
// fr.merchant.<merchant_id>, decoded by [DecodeMerchant]. It is not a
// [core.EventType]: merchant profiles are reference data, not user events.
const TypeMerchantUpdated = "merchant.updated"

// decodeOpts: exact (case-sensitive) key matching, so "USER_ID" is an
// unknown field rather than user_id; ValidateString rejects raw control
// characters in strings (as RFC 8259 and encoding/json do) and replaces
// invalid UTF-8 with U+FFFD (as encoding/json does).
const decodeOpts = decoder.OptionCaseSensitive | decoder.OptionValidateString

// fallback is true where sonic wraps encoding/json (see [FastPath]). Decode
// then still rejects trailing data but matches keys case-insensitively.
const fallback = sonic.APIKind != sonic.UseSonicJSON

// genericAPI decodes whole payloads into map[string]any: merchant profiles
// and the slow path that classifies a wrongly typed field.
var genericAPI = sonic.Config{UseNumber: true, CaseSensitive: true, ValidateString: true}.Froze()

// unsetStr marks a string field the payload did not set (absent or null).
// It is recognised by its address, so no payload content can imitate it.
// The contract tells "absent" from "empty" (a missing city defaults, a
// missing category is missing_field, "" is a value); *string fields would
// tell them apart too but cost an allocation per field on the hot path,
// which this sentinel does not. Decoding into the pre-set struct leaves
// the sentinel wherever the key is absent, and JSON null leaves a Go
// string unchanged too (encoding/json's rule, which sonic follows), so
// null reads as unset: the contract's "null counts as absent".
var unsetStr = "\x00unset"

// isUnset compares addresses, not bytes: a payload holding the same
// eight bytes as the sentinel is still a set value.
func isUnset(s string) bool {
	return len(s) == len(unsetStr) && unsafe.StringData(s) == unsafe.StringData(unsetStr)
}

// Field states of optInt and optBool.
const (
	stUnset uint8 = iota // absent or null
	stSet
	stBad // present with a value of the wrong JSON type or out of range
)

// optInt is an integer field whose presence is known. Decoding it never
// fails: a non-integer is recorded as stBad and reported by the validator,
// which knows the field's name. Had it returned an error, sonic would have
// stopped decoding at that field, losing the later ones, and its error
// names no field in a form a dead letter can use.
type optInt struct {
	v  int64
	st uint8
}

// UnmarshalJSON implements json.Unmarshaler (sonic calls it with the raw
// value, null included).
func (o *optInt) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*o = optInt{}
		return nil
	}
	v, ok := parseJSONInt(b)
	if !ok {
		*o = optInt{st: stBad}
		return nil
	}
	*o = optInt{v: v, st: stSet}
	return nil
}

// parseJSONInt parses -?(0|[1-9][0-9]*) into an int64; fractions,
// exponents, strings and overflow fail. Money is integer fen by contract:
// 100.0 or 1e2 is refused rather than converted, since a publisher that
// sends floats has a rounding bug somewhere and the dead letter is where
// it learns of it. Hand-written rather than strconv.ParseInt because the
// input is a []byte and the conversion to string would allocate.
func parseJSONInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 19 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0') // at most 19 digits: no uint64 overflow
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return int64(-u), true
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// optBool is a boolean field whose presence is known (see optInt).
type optBool struct {
	v  bool
	st uint8
}

// UnmarshalJSON implements json.Unmarshaler.
func (o *optBool) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "null":
		*o = optBool{}
	case "true":
		*o = optBool{v: true, st: stSet}
	case "false":
		*o = optBool{st: stSet}
	default:
		*o = optBool{st: stBad}
	}
	return nil
}

// rawEvent is the union of every inbound event's fields. Strings start as
// unsetStr; optInt and optBool start unset. One struct for all types, not
// one per type, because the type is only known after decoding: a union
// decodes in one pass, and sonic compiles a single decoder for it. The
// validator then reads only the fields of the decoded type, which is how
// "fields that the type does not list are ignored, whatever their value"
// holds.
type rawEvent struct {
	Type    string `json:"type"`
	EventID string `json:"event_id"`
	At      string `json:"at"`
	UserID  string `json:"user_id"`

	OrderID          string  `json:"order_id"`
	MerchantID       string  `json:"merchant_id"`
	Category         string  `json:"category"`
	Size             string  `json:"size"`
	PaidFen          optInt  `json:"paid_fen"`
	SevenDay         optBool `json:"seven_day"`
	FreightInsurance optBool `json:"freight_insurance"`
	City             string  `json:"city"`

	Stars optInt `json:"stars"`

	RequestID  string  `json:"request_id"`
	Kind       string  `json:"kind"`
	Reason     string  `json:"reason"`
	Pickup     optBool `json:"pickup"`
	AmountFen  optInt  `json:"amount_fen"`
	TrackingNo string  `json:"tracking_no"`

	Outcome string `json:"outcome"`

	By   string `json:"by"`
	Note string `json:"note"`
}

// rawEventUnset is the starting value of every decode: each string field
// holds the sentinel, so that after the decode an untouched field is
// recognisable (see unsetStr).
var rawEventUnset = rawEvent{
	Type: unsetStr, EventID: unsetStr, At: unsetStr, UserID: unsetStr,
	OrderID: unsetStr, MerchantID: unsetStr, Category: unsetStr, Size: unsetStr,
	City: unsetStr, RequestID: unsetStr, Kind: unsetStr, Reason: unsetStr,
	TrackingNo: unsetStr, Outcome: unsetStr, By: unsetStr, Note: unsetStr,
}

// decodeState is pooled so that a decode allocates only sonic's copy of
// the payload.
type decodeState struct {
	dec decoder.Decoder
	raw rawEvent
	chk checker
}

// statePool holds decodeStates between calls. The pipeline decodes on one
// goroutine per partition, so a pool (per-P caches) rather than one state
// per worker keeps Decode a plain function that any caller can use
// concurrently.
var statePool = sync.Pool{New: func() any { return new(decodeState) }}

// Decode decodes and validates one inbound user event (or clock tick)
// received on fr.in.<kindToken>.<userToken> (or its fr.p form), filling
// every field of *ev (fields that the type does not use are zeroed).
//
// Validation follows the wire contract: see the package documentation for
// the order of checks. Every error is a *[Error] whose Reason is one of
// ReasonBadJSON, ReasonMissingField, ReasonBadValue, ReasonUnknownType or
// ReasonSubjectMismatch; on error *ev is unspecified.
//
// The strings in *ev never alias data (the caller may reuse it); they share
// one copy of the payload per call, which stays alive as long as any of
// them does. For clock.tick events ev.UserID is empty. Decode is safe for
// concurrent use; on success it allocates once (that copy).
func Decode(kindToken, userToken string, data []byte, ev *core.Event) error {
	if err := checkObject(data); err != nil {
		return err
	}
	if fallback && !json.Valid(data) {
		// sonic's encoding/json fallback ignores trailing data.
		return errBadJSON("payload is not valid JSON")
	}
	st := statePool.Get().(*decodeState)
	st.raw = rawEventUnset
	// string(data) is the payload copy that decoded strings point into.
	st.dec.Reset(string(data))
	st.dec.SetOptions(decodeOpts)
	err := st.dec.Decode(&st.raw)
	mismatch := false
	if err == nil || isMismatch(err) {
		mismatch = err != nil
		err = st.dec.CheckTrailings()
	}
	if err == nil {
		st.chk = checker{data: data, mismatch: mismatch}
		err = st.chk.event(kindToken, userToken, &st.raw, ev)
	} else {
		err = errBadJSON("payload is not valid JSON: %s", sonicMsg(err))
	}
	st.raw = rawEvent{}
	st.chk = checker{}
	st.dec.Reset("")
	statePool.Put(st)
	return err
}

// checkObject returns a bad_json error unless data starts (after white
// space) with '{'. It catches top-level null, which sonic accepts into a
// struct without error.
func checkObject(data []byte) error {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return nil
		}
		return errBadJSON("payload is not a JSON object")
	}
	return errBadJSON("payload is empty, not a JSON object")
}

// isMismatch reports a value of the wrong JSON type for its field, after
// which sonic (like encoding/json) has still decoded every other field.
// sonic returns it unwrapped; the encoding/json fallback returns
// *json.UnmarshalTypeError. (In the fallback *decoder.MismatchTypeError is
// not an error type, hence the comparison of types rather than errors.As.)
func isMismatch(err error) bool {
	var ut *json.UnmarshalTypeError
	return reflect.TypeOf(err) == sonicMismatch || errors.As(err, &ut)
}

var sonicMismatch = reflect.TypeFor[*decoder.MismatchTypeError]()

// sonicMsg shortens a decoder error to its first line, without the quoted
// payload excerpt that sonic appends.
func sonicMsg(err error) string {
	s := err.Error()
	if u, uerr := strconv.Unquote(s); uerr == nil {
		s = u
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// checker validates one decoded payload. When sonic reported a field of
// the wrong JSON type, it decodes the payload again into a map (slow path,
// error cases only) to tell "absent" from "wrong type".
type checker struct {
	data     []byte
	mismatch bool
	generic  map[string]any
	decoded  bool
	typ      string // for messages: the event type, once known
}

// lookup returns the generic value of a field, decoding the payload into
// a map once, on first use, and only when sonic reported a type mismatch:
// valid events never pay for the map, and an event with several wrongly
// typed fields pays once.
func (c *checker) lookup(name string) (any, bool) {
	if !c.mismatch {
		return nil, false
	}
	if !c.decoded {
		c.decoded = true
		_ = genericAPI.Unmarshal(c.data, &c.generic)
	}
	v, ok := c.generic[name]
	return v, ok
}

// wrongString returns a bad_value error when the payload has name with a
// non-string, non-null value (the typed decode then left it unset).
func (c *checker) wrongString(name string) error {
	if v, ok := c.lookup(name); ok && v != nil {
		if _, isStr := v.(string); !isStr {
			return errBadValue(name, "it must be a JSON string, not %s", jsonKind(v))
		}
	}
	return nil
}

// reqString returns s or the error for an unset required string field.
func (c *checker) reqString(name, s string) (string, error) {
	if isUnset(s) {
		if err := c.wrongString(name); err != nil {
			return "", err
		}
		return "", errMissing(name, c.typ)
	}
	return s, nil
}

// optString returns s, or "" when unset.
func (c *checker) optString(name, s string) (string, error) {
	if isUnset(s) {
		return "", c.wrongString(name)
	}
	return s, nil
}

// id validates a required ID field. IDs become NATS subject tokens and
// Badger key parts downstream, which is why the syntax is strict: a dot
// or a space in a user_id would make a subject with another meaning.
func (c *checker) id(name, s string) (string, error) {
	s, err := c.reqString(name, s)
	if err != nil {
		return "", err
	}
	if !ValidID(s) {
		return "", errBadValue(name, "%s does not match [A-Za-z0-9_-]{1,64}", quote(s))
	}
	return s, nil
}

// at validates the event time and returns it in Unix nanoseconds and as
// sent. The raw text is kept because decisions echo it as request_at:
// re-formatting would change a publisher's offset or precision.
func (c *checker) at(s string) (int64, string, error) {
	s, err := c.reqString("at", s)
	if err != nil {
		return 0, "", err
	}
	ns, ok := parseRFC3339(s)
	if !ok {
		return 0, "", errBadValue("at", "%s is not an RFC 3339 time with an offset, like 2026-11-11T00:00:03.250+08:00", quote(s))
	}
	return ns, s, nil
}

// nonNegative validates a fen amount; the bool reports whether it was
// present, for amount_fen, whose absence means "the paid amount".
func (c *checker) nonNegative(name string, o optInt, required bool) (int64, bool, error) {
	switch o.st {
	case stUnset:
		if required {
			return 0, false, errMissing(name, c.typ)
		}
		return 0, false, nil
	case stBad:
		return 0, false, errBadValue(name, "it must be an integer number of fen")
	}
	if o.v < 0 {
		return 0, false, errBadValue(name, "%d is negative", o.v)
	}
	return o.v, true, nil
}

// boolean validates a true/false field; "true" as a string is bad_value,
// not true, so that a publisher's serialisation bug is seen.
func (c *checker) boolean(name string, o optBool, required bool) (bool, error) {
	switch o.st {
	case stUnset:
		if required {
			return false, errMissing(name, c.typ)
		}
		return false, nil
	case stBad:
		return false, errBadValue(name, "it must be true or false")
	}
	return o.v, nil
}

// enum validates a required enum field with its contract parser.
func enum[T ~uint8](c *checker, name, s string, parse func(string) (T, bool), allowed string) (T, error) {
	s, err := c.reqString(name, s)
	if err != nil {
		return 0, err
	}
	v, ok := parse(s)
	if !ok {
		return 0, errBadValue(name, "%s is not one of %s", quote(s), allowed)
	}
	return v, nil
}

// event validates r as an event on the given subject tokens and fills ev.
// The order of checks is the contract's (see the package doc) and decides
// which reason a message with several faults is dead-lettered under, so
// it must not change: loadgen's audit expects the reason it injected.
func (c *checker) event(kindToken, userToken string, r *rawEvent, ev *core.Event) error {
	if isUnset(r.Type) {
		if err := c.wrongString("type"); err != nil {
			return err
		}
		return errMissing("type", "every event")
	}
	t, ok := core.ParseEventType(r.Type)
	if !ok {
		if r.Type == TypeMerchantUpdated {
			return &Error{Reason: ReasonSubjectMismatch, Field: "type",
				Msg: fmt.Sprintf("field \"type\" is %q, which belongs on %s<merchant_id> subjects, not on %s%s.<user_id>", TypeMerchantUpdated, MerchantPrefix, InPrefix, token(kindToken))}
		}
		return &Error{Reason: ReasonUnknownType, Field: "type",
			Msg: fmt.Sprintf("field \"type\" is %s, which is no event type of the contract", quote(r.Type))}
	}
	if want := KindOf(t); kindToken != want {
		return &Error{Reason: ReasonSubjectMismatch, Field: "type",
			Msg: fmt.Sprintf("field \"type\" is %q, which belongs on %s%s.<user_id> subjects, not on %s%s.<user_id>", t, InPrefix, want, InPrefix, token(kindToken))}
	}
	c.typ = t.String()
	*ev = core.Event{Type: t}
	var err error
	if ev.EventID, err = c.id("event_id", r.EventID); err != nil {
		return err
	}
	if ev.At, ev.AtRaw, err = c.at(r.At); err != nil {
		return err
	}
	if t != core.EventClock {
		if ev.UserID, err = c.id("user_id", r.UserID); err != nil {
			return err
		}
		if ev.UserID != userToken {
			return &Error{Reason: ReasonSubjectMismatch, Field: "user_id",
				Msg: fmt.Sprintf("field \"user_id\" is %q but the subject's user token is %s", ev.UserID, quote(userToken))}
		}
	}
	switch t {
	case core.EventOrderPaid:
		if ev.OrderID, err = c.id("order_id", r.OrderID); err != nil {
			return err
		}
		if ev.MerchantID, err = c.id("merchant_id", r.MerchantID); err != nil {
			return err
		}
		if ev.Category, err = c.reqString("category", r.Category); err != nil {
			return err
		}
		if ev.Size, err = enum(c, "size", r.Size, core.ParseSize, "small, large"); err != nil {
			return err
		}
		if ev.PaidFen, _, err = c.nonNegative("paid_fen", r.PaidFen, true); err != nil {
			return err
		}
		if ev.SevenDay, err = c.boolean("seven_day", r.SevenDay, true); err != nil {
			return err
		}
		if ev.FreightInsurance, err = c.boolean("freight_insurance", r.FreightInsurance, false); err != nil {
			return err
		}
		if ev.City, err = c.optString("city", r.City); err != nil {
			return err
		}
	case core.EventOrderShipped, core.EventOrderDelivered:
		if ev.OrderID, err = c.id("order_id", r.OrderID); err != nil {
			return err
		}
	case core.EventCreditUpdated:
		switch r.Stars.st {
		case stUnset:
			return errMissing("stars", c.typ)
		case stBad:
			return errBadValue("stars", "it must be an integer from 1 to 5")
		}
		if r.Stars.v < 1 || r.Stars.v > 5 {
			return errBadValue("stars", "%d is outside 1..5", r.Stars.v)
		}
		ev.Stars = int(r.Stars.v)
	case core.EventReturnRequested:
		if ev.RequestID, err = c.id("request_id", r.RequestID); err != nil {
			return err
		}
		if ev.OrderID, err = c.id("order_id", r.OrderID); err != nil {
			return err
		}
		if ev.Kind, err = enum(c, "kind", r.Kind, core.ParseKind, "return_refund, refund_only, exchange"); err != nil {
			return err
		}
		if ev.Reason, err = enum(c, "reason", r.Reason, core.ParseReason,
			"no_reason, dislike, wrong_order, quality, damaged, not_as_described, other"); err != nil {
			return err
		}
		if ev.Pickup, err = c.boolean("pickup", r.Pickup, true); err != nil {
			return err
		}
		if ev.AmountFen, ev.HasAmount, err = c.nonNegative("amount_fen", r.AmountFen, false); err != nil {
			return err
		}
		if ev.HasAmount && ev.AmountFen == 0 {
			return errBadValue("amount_fen", "0 refunds nothing: it must be at least 1 (leave it out to refund the paid amount)")
		}
	case core.EventReturnCancelled, core.EventPickupDone:
		if ev.RequestID, err = c.id("request_id", r.RequestID); err != nil {
			return err
		}
	case core.EventLogisticsTracking:
		if ev.RequestID, err = c.id("request_id", r.RequestID); err != nil {
			return err
		}
		if ev.TrackingNo, err = c.reqString("tracking_no", r.TrackingNo); err != nil {
			return err
		}
		if ev.TrackingNo == "" {
			return errBadValue("tracking_no", "it is empty")
		}
	case core.EventInspectionResult:
		if ev.RequestID, err = c.id("request_id", r.RequestID); err != nil {
			return err
		}
		if ev.Outcome, err = enum(c, "outcome", r.Outcome, core.ParseOutcome,
			"ok, damaged, used, empty_box, wrong_item"); err != nil {
			return err
		}
	case core.EventReviewApproved, core.EventReviewRejected:
		if ev.RequestID, err = c.id("request_id", r.RequestID); err != nil {
			return err
		}
		if ev.By, err = enum(c, "by", r.By, core.ParseActor, "merchant, platform"); err != nil {
			return err
		}
		if ev.Note, err = c.optString("note", r.Note); err != nil {
			return err
		}
	}
	return nil
}

// idChars is the ID alphabet as a lookup table: ValidID runs for every ID
// of every event, and a table index per byte is cheaper than a regexp or
// range comparisons.
var idChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	t['_'], t['-'] = true, true
	return t
}()

// ValidID reports whether s matches [A-Za-z0-9_-]{1,64}, the syntax of
// user_id, order_id, request_id, merchant_id and event_id (safe as a NATS
// subject token).
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idChars[s[i]] {
			return false
		}
	}
	return true
}

// quote returns s quoted for an error sentence, cut to 64 bytes, so that
// a dead letter of a huge bad value does not repeat it in its error field
// (the payload itself is kept, in payload_b64).
func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

// token returns a subject token for a message: as is when it is a plain
// ID, else quoted.
func token(s string) string {
	if ValidID(s) {
		return s
	}
	return quote(s)
}

// jsonKind names the JSON type of a generically decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, float64, int64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
