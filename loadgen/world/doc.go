// Package world is loadgen's seeded marketplace: shoppers, merchants,
// orders and the endless sequence of inbound events they produce
// ([Generator.Next]), and the encoding of each event as the contract's
// JSON once its send time is known ([Generator.Encode]). The loadgen
// package documentation describes what the world contains (the
// after-sales lifecycle, the events that must be dead-lettered); this
// package is where it is made.
//
// Invariants:
//
//   - Determinism: the same [Options] (seed, run id, sizes, fractions)
//     give the same worlds and the same event sequence, byte for byte
//     once the event times are fixed. Delays inside an order's life are
//     counted in events, not seconds, so the sequence does not depend on
//     the rate it is sent at. TestClassicWorldUnchanged pins the digest
//     of the classic world; a change that moves it changes every
//     recorded benchmark's traffic.
//   - A lifecycle fraction that is off (negative, or Classic) draws no
//     random number at all, so turning a behaviour off leaves the rest of
//     the sequence as it was (that is how a failure is bisected).
//   - Causality: an order's shipped and delivered follow its paid, a
//     request's follow-ups follow the request, and every valid event is
//     dated at or before its send (shifted only back, except the
//     future_time events that must be dead-lettered).
//   - Every id carries the run id, so two runs against one daemon never
//     collide, and [Generator.RequestIndex], [Generator.IsInvalidID] and
//     [Generator.IsOwnEventID] can tell this run's outputs from others'.
//   - [Request.Hist] records what was sent about each request, in
//     sequence positions; the audit places outputs against it. A
//     Generator is not safe for concurrent use: the run's sender drives
//     it, and the tracker copies what it needs when a request is sent.
//
// Callers: loadgen (the run loop: Next, Encode, MerchantEvent), and
// loadgen/audit (Hist, the id parsers, the orders' amounts). It imports
// only loadgen/contract.
package world
