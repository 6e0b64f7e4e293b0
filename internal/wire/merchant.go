package wire

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/flashreturn/flashreturn/internal/core"
)

// DecodeMerchant decodes and validates a merchant.updated event received on
// fr.merchant.<merchantToken> and returns the profile with Revision set to
// rev (the FR_MERCHANT stream sequence).
//
// Required: type (merchant.updated), event_id, at, merchant_id (equal to
// merchantToken, else subject_mismatch), return_addresses and
// ship_addresses (arrays of non-empty strings, possibly empty arrays).
// Optional: rules, an array of objects with a required non-empty name and
// optional kinds (request kinds), reasons (request reasons), min_stars
// (0..5), max_amount_fen (>= 0), max_days (>= 0) and categories (strings).
// An omitted, null or empty condition matches anything, as in
// [core.MerchantRule]. Unknown fields are ignored. Every error is a
// *[Error]; nested fields are named like "rules[1].kinds[0]".
//
// Merchant profiles are rare, so DecodeMerchant favours exact error
// reporting over speed: it decodes into a generic map. It is safe for
// concurrent use; the result does not alias data.
func DecodeMerchant(merchantToken string, data []byte, rev uint64) (*core.Merchant, error) {
	if err := checkObject(data); err != nil {
		return nil, err
	}
	var m map[string]any
	if err := genericAPI.Unmarshal(data, &m); err != nil {
		return nil, errBadJSON("payload is not valid JSON: %s", sonicMsg(err))
	}
	// The checks follow Decode's order (type, then event_id and at, then
	// the subject's token, then the type's own fields), so that a merchant
	// message and a user event with the same fault get the same reason.
	o := obj{m: m, typ: TypeMerchantUpdated}
	typ, err := o.str("type", true)
	if err != nil {
		if e, ok := err.(*Error); ok && e.Reason == ReasonMissingField {
			return nil, errMissing("type", "every event")
		}
		return nil, err
	}
	// A user event type on a merchant subject is a routing mistake of the
	// publisher (subject_mismatch), not an unknown type: the message says
	// which subject it belongs on.
	if typ != TypeMerchantUpdated {
		if t, ok := core.ParseEventType(typ); ok {
			return nil, &Error{Reason: ReasonSubjectMismatch, Field: "type",
				Msg: fmt.Sprintf("field \"type\" is %q, which belongs on %s%s.<user_id> subjects, not on %s<merchant_id>", t, InPrefix, KindOf(t), MerchantPrefix)}
		}
		return nil, &Error{Reason: ReasonUnknownType, Field: "type",
			Msg: fmt.Sprintf("field \"type\" is %s, which is no event type of the contract", quote(typ))}
	}
	if _, err := o.id("event_id"); err != nil {
		return nil, err
	}
	at, err := o.str("at", true)
	if err != nil {
		return nil, err
	}
	if _, ok := parseRFC3339(at); !ok {
		return nil, errBadValue("at", "%s is not an RFC 3339 time with an offset, like 2026-11-11T00:00:03.250+08:00", quote(at))
	}
	mer := &core.Merchant{Revision: rev}
	if mer.ID, err = o.id("merchant_id"); err != nil {
		return nil, err
	}
	if mer.ID != merchantToken {
		return nil, &Error{Reason: ReasonSubjectMismatch, Field: "merchant_id",
			Msg: fmt.Sprintf("field \"merchant_id\" is %q but the subject's merchant token is %s", mer.ID, quote(merchantToken))}
	}
	if mer.ReturnAddresses, err = o.strs("return_addresses", true, true); err != nil {
		return nil, err
	}
	if mer.ShipAddresses, err = o.strs("ship_addresses", true, true); err != nil {
		return nil, err
	}
	rules, ok, err := o.array("rules", false)
	if err != nil {
		return nil, err
	}
	if !ok {
		return mer, nil
	}
	mer.Rules = make([]core.MerchantRule, 0, len(rules))
	for i, v := range rules {
		path := "rules[" + strconv.Itoa(i) + "]"
		rm, isObj := v.(map[string]any)
		if !isObj {
			return nil, errBadValue(path, "it must be a JSON object, not %s", jsonKind(v))
		}
		r, err := decodeRule(obj{m: rm, prefix: path + ".", typ: TypeMerchantUpdated})
		if err != nil {
			return nil, err
		}
		mer.Rules = append(mer.Rules, r)
	}
	return mer, nil
}

func decodeRule(o obj) (core.MerchantRule, error) {
	var r core.MerchantRule
	var err error
	if r.Name, err = o.str("name", true); err != nil {
		return r, err
	}
	if r.Name == "" {
		return r, errBadValue(o.prefix+"name", "it is empty")
	}
	kinds, err := o.strs("kinds", false, false)
	if err != nil {
		return r, err
	}
	for i, s := range kinds {
		k, ok := core.ParseKind(s)
		if !ok {
			return r, errBadValue(o.path("kinds")+"["+strconv.Itoa(i)+"]", "%s is not one of return_refund, refund_only, exchange", quote(s))
		}
		r.Kinds |= 1 << k
	}
	reasons, err := o.strs("reasons", false, false)
	if err != nil {
		return r, err
	}
	for i, s := range reasons {
		rs, ok := core.ParseReason(s)
		if !ok {
			return r, errBadValue(o.path("reasons")+"["+strconv.Itoa(i)+"]",
				"%s is not one of no_reason, dislike, wrong_order, quality, damaged, not_as_described, other", quote(s))
		}
		r.Reasons |= 1 << rs
	}
	if v, ok, err := o.int("min_stars"); err != nil {
		return r, err
	} else if ok {
		if v < 0 || v > 5 {
			return r, errBadValue(o.path("min_stars"), "%d is outside 0..5", v)
		}
		r.MinStars = int(v)
	}
	if v, ok, err := o.int("max_amount_fen"); err != nil {
		return r, err
	} else if ok {
		if v < 0 {
			return r, errBadValue(o.path("max_amount_fen"), "%d is negative", v)
		}
		r.MaxAmountFen, r.HasMaxAmount = v, true
	}
	if v, ok, err := o.int("max_days"); err != nil {
		return r, err
	} else if ok {
		if v < 0 || v > 1<<20 {
			return r, errBadValue(o.path("max_days"), "%d is outside 0..%d", v, 1<<20)
		}
		r.MaxDays, r.HasMaxDays = int(v), true
	}
	if r.Categories, err = o.strs("categories", false, false); err != nil {
		return r, err
	}
	if len(r.Categories) == 0 {
		r.Categories = nil
	}
	return r, nil
}

// obj reads fields of a generically decoded JSON object, naming them with
// prefix in errors.
type obj struct {
	m      map[string]any
	prefix string
	typ    string
}

// path names a field for an error: "rules[1].max_days", so that a
// merchant fixing a profile with a dozen rules knows which one.
func (o obj) path(name string) string { return o.prefix + name }

// get returns the field, treating null as absent.
func (o obj) get(name string) (any, bool) {
	v, ok := o.m[name]
	return v, ok && v != nil
}

// str reads a string field; a number or boolean is bad_value, never
// converted, the same rule Decode applies to user events.
func (o obj) str(name string, required bool) (string, error) {
	v, ok := o.get(name)
	if !ok {
		if required {
			return "", errMissing(o.path(name), o.typ)
		}
		return "", nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", errBadValue(o.path(name), "it must be a JSON string, not %s", jsonKind(v))
	}
	return s, nil
}

// id reads a required ID field with Decode's ID syntax: merchant_id
// becomes a subject token, like user_id.
func (o obj) id(name string) (string, error) {
	s, err := o.str(name, true)
	if err != nil {
		return "", err
	}
	if !ValidID(s) {
		return "", errBadValue(o.path(name), "%s does not match [A-Za-z0-9_-]{1,64}", quote(s))
	}
	return s, nil
}

// array reads an array field; ok tells an absent optional array (match
// anything) from an empty one, which for addresses is a real value.
func (o obj) array(name string, required bool) ([]any, bool, error) {
	v, ok := o.get(name)
	if !ok {
		if required {
			return nil, false, errMissing(o.path(name), o.typ)
		}
		return nil, false, nil
	}
	a, isArr := v.([]any)
	if !isArr {
		return nil, false, errBadValue(o.path(name), "it must be a JSON array, not %s", jsonKind(v))
	}
	return a, true, nil
}

// strs reads an array of strings; a required array that is present is
// returned non-nil even when empty. nonEmpty rejects "" elements.
func (o obj) strs(name string, required, nonEmpty bool) ([]string, error) {
	a, ok, err := o.array(name, required)
	if err != nil || !ok {
		return nil, err
	}
	out := make([]string, 0, len(a))
	for i, v := range a {
		s, isStr := v.(string)
		if !isStr {
			return nil, errBadValue(o.path(name)+"["+strconv.Itoa(i)+"]", "it must be a JSON string, not %s", jsonKind(v))
		}
		if nonEmpty && s == "" {
			return nil, errBadValue(o.path(name)+"["+strconv.Itoa(i)+"]", "it is empty")
		}
		out = append(out, s)
	}
	return out, nil
}

// int reads an optional integer. genericAPI decodes numbers as
// json.Number (UseNumber), so the text is checked with Decode's integer
// rule: 5.0 and 5e0 are refused, and a value beyond 2^53 is not rounded
// through a float64 on its way.
func (o obj) int(name string) (int64, bool, error) {
	v, ok := o.get(name)
	if !ok {
		return 0, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, false, errBadValue(o.path(name), "it must be an integer, not %s", jsonKind(v))
	}
	i, ok := parseJSONInt([]byte(n))
	if !ok {
		return 0, false, errBadValue(o.path(name), "%s is not an integer", quote(string(n)))
	}
	return i, true, nil
}
