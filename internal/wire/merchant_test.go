package wire

import (
	"reflect"
	"strings"
	"testing"

	"github.com/flashreturn/flashreturn/internal/core"
)

var validMerchant = map[string]any{
	"type": "merchant.updated", "event_id": "em1", "at": at0, "merchant_id": "m1",
	"return_addresses": []any{"Hangzhou, Xihu District, No. 1"},
	"ship_addresses":   []any{"Hangzhou, Xihu District, No. 1", "Ningbo warehouse"},
	"rules": []any{
		map[string]any{"name": "small-apparel", "kinds": []any{"return_refund", "exchange"},
			"reasons": []any{"no_reason", "dislike"}, "min_stars": 3, "max_amount_fen": 20000,
			"max_days": 7, "categories": []any{"apparel", "shoes"}},
		map[string]any{"name": "anything"},
	},
}

var wantMerchant = &core.Merchant{
	ID:              "m1",
	ReturnAddresses: []string{"Hangzhou, Xihu District, No. 1"},
	ShipAddresses:   []string{"Hangzhou, Xihu District, No. 1", "Ningbo warehouse"},
	Rules: []core.MerchantRule{
		{Name: "small-apparel", Kinds: 1<<core.KindReturnRefund | 1<<core.KindExchange,
			Reasons: 1<<core.ReasonNoReason | 1<<core.ReasonDislike, MinStars: 3,
			MaxAmountFen: 20000, HasMaxAmount: true, MaxDays: 7, HasMaxDays: true,
			Categories: []string{"apparel", "shoes"}},
		{Name: "anything"},
	},
	Revision: 42,
}

func TestDecodeMerchant(t *testing.T) {
	m, err := DecodeMerchant("m1", mustJSON(t, validMerchant), 42)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, wantMerchant) {
		t.Fatalf("got  %+v\nwant %+v", m, wantMerchant)
	}
	// Round trip through AppendMerchant.
	b := AppendMerchant(nil, m, "em1", at0)
	m2, err := DecodeMerchant("m1", b, 42)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(m2, m) {
		t.Fatalf("round trip: got %+v\nwant %+v", m2, m)
	}

	// Empty address arrays and no rules.
	m, err = DecodeMerchant("m1", mustJSON(t, with(validMerchant, "return_addresses", []any{}, "ship_addresses", []any{}, "rules", nil)), 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.ReturnAddresses == nil || len(m.ReturnAddresses) != 0 || len(m.ShipAddresses) != 0 || m.Rules != nil {
		t.Fatalf("got %+v", m)
	}
	// Empty condition lists match anything, like omitted ones.
	m, err = DecodeMerchant("m1", mustJSON(t, with(validMerchant, "rules", []any{
		map[string]any{"name": "r", "kinds": []any{}, "reasons": []any{}, "categories": []any{}, "min_stars": nil}})), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Rules, []core.MerchantRule{{Name: "r"}}) {
		t.Fatalf("got %+v", m.Rules)
	}
	// The result does not alias the input.
	b = mustJSON(t, validMerchant)
	m, _ = DecodeMerchant("m1", b, 42)
	for i := range b {
		b[i] = '#'
	}
	if !reflect.DeepEqual(m, wantMerchant) {
		t.Fatal("DecodeMerchant result aliases its input")
	}
}

func TestDecodeMerchantErrors(t *testing.T) {
	rule := func(kv ...any) map[string]any {
		return with(validMerchant, "rules", []any{with(map[string]any{"name": "r"}, kv...)})
	}
	cases := []struct {
		name   string
		token  string
		json   any // map or raw string
		reason string
		field  string
	}{
		{"not json", "m1", `{`, ReasonBadJSON, ""},
		{"array", "m1", `[]`, ReasonBadJSON, ""},
		{"null", "m1", `null`, ReasonBadJSON, ""},
		{"no type", "m1", with(validMerchant, "type", nil), ReasonMissingField, "type"},
		{"unknown type", "m1", with(validMerchant, "type", "merchant.deleted"), ReasonUnknownType, "type"},
		{"user type", "m1", with(validMerchant, "type", "order.paid"), ReasonSubjectMismatch, "type"},
		{"no event_id", "m1", with(validMerchant, "event_id", nil), ReasonMissingField, "event_id"},
		{"no at", "m1", with(validMerchant, "at", nil), ReasonMissingField, "at"},
		{"bad at", "m1", with(validMerchant, "at", "yesterday"), ReasonBadValue, "at"},
		{"no merchant_id", "m1", with(validMerchant, "merchant_id", nil), ReasonMissingField, "merchant_id"},
		{"bad merchant_id", "m 1", with(validMerchant, "merchant_id", "m 1"), ReasonBadValue, "merchant_id"},
		{"merchant differs", "m2", validMerchant, ReasonSubjectMismatch, "merchant_id"},
		{"no return_addresses", "m1", with(validMerchant, "return_addresses", nil), ReasonMissingField, "return_addresses"},
		{"null ship_addresses", "m1", with(validMerchant, "ship_addresses", jsonNull), ReasonMissingField, "ship_addresses"},
		{"string addresses", "m1", with(validMerchant, "ship_addresses", "x"), ReasonBadValue, "ship_addresses"},
		{"number address", "m1", with(validMerchant, "return_addresses", []any{"a", 5}), ReasonBadValue, "return_addresses[1]"},
		{"empty address", "m1", with(validMerchant, "return_addresses", []any{""}), ReasonBadValue, "return_addresses[0]"},
		{"rules object", "m1", with(validMerchant, "rules", map[string]any{}), ReasonBadValue, "rules"},
		{"rule string", "m1", with(validMerchant, "rules", []any{"r"}), ReasonBadValue, "rules[0]"},
		{"rule without name", "m1", with(validMerchant, "rules", []any{map[string]any{"kinds": []any{"exchange"}}}), ReasonMissingField, "rules[0].name"},
		{"rule empty name", "m1", rule("name", ""), ReasonBadValue, "rules[0].name"},
		{"rule kind", "m1", rule("kinds", []any{"exchange", "swap"}), ReasonBadValue, "rules[0].kinds[1]"},
		{"rule reason", "m1", rule("reasons", []any{"bored"}), ReasonBadValue, "rules[0].reasons[0]"},
		{"rule kinds string", "m1", rule("kinds", "exchange"), ReasonBadValue, "rules[0].kinds"},
		{"rule min_stars 6", "m1", rule("min_stars", 6), ReasonBadValue, "rules[0].min_stars"},
		{"rule min_stars float", "m1", rule("min_stars", 2.5), ReasonBadValue, "rules[0].min_stars"},
		{"rule max_amount negative", "m1", rule("max_amount_fen", -1), ReasonBadValue, "rules[0].max_amount_fen"},
		{"rule max_amount string", "m1", rule("max_amount_fen", "100"), ReasonBadValue, "rules[0].max_amount_fen"},
		{"rule max_days negative", "m1", rule("max_days", -1), ReasonBadValue, "rules[0].max_days"},
		{"rule categories numbers", "m1", rule("categories", []any{1}), ReasonBadValue, "rules[0].categories[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b []byte
			if s, ok := tc.json.(string); ok {
				b = []byte(s)
			} else {
				b = mustJSON(t, tc.json)
			}
			m, err := DecodeMerchant(tc.token, b, 1)
			if m != nil {
				t.Fatalf("got a merchant with error %v", err)
			}
			we := wireErr(t, err)
			if we.Reason != tc.reason || we.Field != tc.field {
				t.Fatalf("got %s field %q (%v), want %s field %q", we.Reason, we.Field, err, tc.reason, tc.field)
			}
			if tc.field != "" && !strings.Contains(we.Error(), `"`+tc.field+`"`) {
				t.Fatalf("message does not name the field: %v", err)
			}
		})
	}
}
