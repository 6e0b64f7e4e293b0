// Package core is flashreturn's decision core: a pure, deterministic state
// machine that, given a shopper's state ([User]), one inbound [Event], the
// policy in force and the merchant view ([Env]), mutates the state and
// appends the resulting [Effect] values (decision, refund, pickup,
// compensation, clawback, trust feedback).
//
// # Invariants
//
//   - No IO, no clock, no randomness, no goroutines: time is the event's At.
//   - Money is integer fen; nothing iterates a map into an output.
//   - Effects carry IDs derived from the user, the request and the effect
//     kind, so replaying the same events yields the same effects byte for
//     byte.
package core
