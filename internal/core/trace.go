package core

import (
	"strconv"
	"strings"
)

var ruleNames = [NumCodes]string{
	CodeCreditLow:               "credit",
	CodeOutsideWindow:           "window",
	CodeReasonNotEligible:       "reason",
	CodeAmountOverCap:           "amount_cap",
	CodeNotSevenDay:             "seven_day",
	CodeMerchantAddressMismatch: "single_address",
	CodeCategoryExcluded:        "category",
	CodeCityNotCovered:          "city",
	CodeKindNotEligible:         "kind",
	CodeOrderUnknown:            "order",
	CodeNotDelivered:            "delivered",
	CodeExposureCap:             "exposure",
	CodeVelocityCap:             "velocity",
	CodeTrustFlagged:            "trust",
	CodeDuplicateRequest:        "duplicate",
	CodeAmountExceedsPaid:       "amount_paid",
	CodeMerchantUnknown:         "merchant",
}

// Name returns the stable name of the rule the check evaluated ("credit",
// "window", "amount_cap", ...): one rule per reason code.
func (c Check) Name() string { return enumName(ruleNames[:], c.Code) }

// List returns the checks recorded in the trace (a view of its array).
func (t *Trace) List() []Check { return t.Checks[:t.N] }

// String renders the check for people, with the values compared, e.g.
// "amount 30001 > cap 30000", "stars 2 < min 3", "days 8 > window 7". It
// allocates; it is meant for the query API and tests, not the hot path.
func (c Check) String() string {
	cmp := func(what string, got int64, op, limitName string, limit int64) string {
		return what + " " + strconv.FormatInt(got, 10) + " " + op + " " + limitName + " " + strconv.FormatInt(limit, 10)
	}
	le := func(pass bool) string {
		if pass {
			return "<="
		}
		return ">"
	}
	switch c.Code {
	case CodeCreditLow:
		op := ">="
		if !c.Pass {
			op = "<"
		}
		return cmp("stars", c.Got, op, "min", c.Limit)
	case CodeOutsideWindow:
		return cmp("days", c.Got, le(c.Pass), "window", c.Limit)
	case CodeAmountOverCap:
		return cmp("amount", c.Got, le(c.Pass), "cap", c.Limit)
	case CodeAmountExceedsPaid:
		// "order ceiling 6000 + 4000 <= paid 10000": reserved or refunded
		// on the order, plus this amount, against the paid amount.
		return cmp("order ceiling "+strconv.FormatInt(c.Held, 10)+" +", c.Got, le(c.Pass), "paid", c.Limit)
	case CodeExposureCap:
		// "exposure 400000 + 400000 promised + 400000 > 500000":
		// outstanding advances, promised advances, this amount, the cap.
		return "exposure " + strconv.FormatInt(c.Held, 10) + " + " + strconv.FormatInt(c.Promised, 10) +
			" promised + " + strconv.FormatInt(c.Got, 10) + " " + le(c.Pass) + " " + strconv.FormatInt(c.Limit, 10)
	case CodeVelocityCap, CodeTrustFlagged:
		what := [2]string{"requests in window", "trust marks in window"}[b2i(c.Code == CodeTrustFlagged)]
		if c.Text != "" { // failed safe: the count is a lower bound
			return what + " at least " + strconv.FormatInt(c.Got, 10) + ", max " + strconv.FormatInt(c.Limit, 10) + ": " + c.Text
		}
		return cmp(what, c.Got, le(c.Pass), "max", c.Limit)
	case CodeKindNotEligible:
		return "kind " + Kind(c.Got).String() + in(c.Pass) + enumList(KindSet(c.Limit).Kinds())
	case CodeReasonNotEligible:
		return "reason " + Reason(c.Got).String() + in(c.Pass) + enumList(ReasonSet(c.Limit).Reasons())
	case CodeNotSevenDay:
		if c.Pass {
			return "product supports 7-day returns"
		}
		return "product does not support 7-day returns"
	case CodeNotDelivered:
		switch {
		case c.Got == DeliveryDelivered:
			return "order delivered"
		case c.Got == DeliveryAfterRequest:
			return "order delivered after the request"
		case c.Pass:
			return "order not shipped: pre-shipment, no window"
		case c.Got == DeliveryShipped:
			return "order shipped, not delivered"
		default:
			return "order not shipped"
		}
	case CodeCategoryExcluded:
		if c.Pass {
			return "category " + strconv.Quote(c.Text) + " not excluded"
		}
		return "category " + strconv.Quote(c.Text) + " excluded"
	case CodeCityNotCovered:
		if c.Pass {
			return "city " + strconv.Quote(c.Text) + " covered"
		}
		return "city " + strconv.Quote(c.Text) + " not among " + strconv.FormatInt(c.Limit, 10) + " covered cities"
	case CodeMerchantAddressMismatch:
		switch {
		case c.Pass:
			return "one return address, equal to the one ship address"
		case c.Got < 0:
			return "merchant unknown: addresses cannot be compared"
		case c.Got == 1 && c.Limit == 1:
			return "return address differs from ship address"
		default:
			return "return addresses " + strconv.FormatInt(c.Got, 10) + ", ship addresses " + strconv.FormatInt(c.Limit, 10) + ": want one each, equal"
		}
	case CodeMerchantUnknown:
		switch {
		case c.Got < 0:
			return "merchant unknown"
		case c.Got == 0:
			return "merchant has no return address"
		default:
			return "merchant has " + strconv.FormatInt(c.Got, 10) + " return address(es)"
		}
	case CodeOrderUnknown:
		if c.Pass {
			return "order known"
		}
		return "order unknown"
	case CodeDuplicateRequest:
		if c.Pass {
			return "no open request on the order"
		}
		return "order already has an open request"
	}
	return c.Name()
}

func in(pass bool) string {
	if pass {
		return " in "
	}
	return " not in "
}

// enumList renders contract names as "[a b c]".
func enumList[T interface{ String() string }](items []T) string {
	return "[" + joinNames(items, " ") + "]"
}

// joinNames joins the contract names of items with sep. The policy's
// canonical form (and so its Version) depends on this exact output: a
// change here changes every policy version.
func joinNames[T interface{ String() string }](items []T, sep string) string {
	var b strings.Builder
	for i, it := range items {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(it.String())
	}
	return b.String()
}
