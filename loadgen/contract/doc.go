// Package contract is loadgen's copy of shared/contract.md: the inbound
// event types and their JSON shapes, the output kinds and the values of
// their fields that the audit reads, the dead-letter reasons, and the
// JSON codec every payload goes through.
//
// One job: say what is on the wire, nothing about what it means. The
// world decides what to send and the audit what the answers must be;
// both name the contract's strings only through this package, so a
// change of the contract is one edit here.
//
// Invariants:
//
//   - loadgen is an outside client written against the contract page,
//     so this package imports nothing of the daemon (not its wire
//     package either): a shape the daemon changed without changing the
//     contract then shows up as a failed audit, not as a silent match.
//   - The inbound structs marshal to exactly the bytes encoding/json
//     gives (no maps, no HTML characters), so the race build may use
//     encoding/json instead of sonic without changing a payload
//     (world's TestCodecMatchesEncodingJSON checks it).
//   - The output structs read only the fields the audit needs; unknown
//     fields are ignored, so outputs the contract adds later do not fail
//     an older loadgen.
//
// Callers: loadgen/world (encodes events), loadgen/audit (decodes
// outputs and dead letters, compares values).
package contract
