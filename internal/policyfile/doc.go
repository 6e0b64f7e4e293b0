// Package policyfile reads and writes platform policies as JSON or YAML
// files: every parameter of [core.Policy], under the keys that
// shared/domain.md's preset table names.
//
// # Format
//
//	base: tmall-fast-return          # optional: start from a preset
//	name: tmall-hangzhou             # required
//	kinds: [return_refund]           # required without base
//	min_stars: 3                     # required without base
//	reasons: [no_reason, dislike]    # required without base
//	require_seven_day: true
//	window_days: 7
//	amount_cap_fen: 30000            # 0: no cap
//	excluded_categories: [fresh]
//	require_single_address: false
//	cities: [Hangzhou]               # empty: all
//	refunds:                         # required without base
//	  return_refund: {trigger: tracking, advance: true}
//	  refund_only: {trigger: approval, advance: false}
//	pre_shipment_refund: false
//	exchange_pickup: false
//	service_hours: {start: "09:00", end: "20:00"}
//	small_window: 2h
//	large_window: 4h
//	compensation_fen: 500
//	pickup_grace: 10m                # compensation waits this long past the window
//	review_deadline: 72h             # silent merchant: approved by timeout
//	return_deadline: 7d              # nothing sent back: closed (not_returned)
//	exposure_cap_fen: 500000
//	velocity_max: 5
//	velocity_window: 24h
//	trust_window: 90d
//	penalties: {damaged: 20, used: 30, wrong_item: 50, empty_box: 100, not_returned: 50}
//
// Durations are Go durations ("2h", "90m") or whole days ("90d"). Fields a
// file leaves out take the base preset's value or, without a base, the
// defaults the presets share ([core.DefaultWindowDays] and friends; false,
// 0 or empty for the rest). refunds, when given, replaces the whole table
// (a kind left out pays no refund); penalties, when given, overrides only
// the outcomes it lists. Unknown and repeated fields, values of the wrong
// type and invalid parameters are errors of type [*Error] naming the
// field, and its line when it was set in the file; so is a policy that
// fast-tracks a kind it gives no refund trigger (every approval pays, or
// says why not; an exchange may have none), naming the kind.
//
// [Marshal] writes every parameter, so `Marshal(preset)` is a complete,
// commented file that [Parse] reads back into the same Version.
package policyfile
