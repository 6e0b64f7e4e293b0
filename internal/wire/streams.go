package wire

import (
	"strconv"
	"time"

	"github.com/flashreturn/flashreturn/internal/core"
)

// This file is the rest of the contract's names: the streams, the
// outbound subject kinds and the subject helpers the pipeline, the load
// generator and the relay benchmark used to build by hand. The names are
// untyped string constants on purpose: every consumer hands them to
// nats.go (jetstream.StreamConfig.Name, Subjects, FilterSubject), which
// takes plain strings, and a named type would force a conversion at each
// of those sites without catching a mistake the contract test below does
// not already catch (contract_test.go checks every constant against
// shared/contract.md's tables in both directions).

// Stream names of the contract. Clients outside the project read these
// streams by name, so the strings are frozen (contract.md: "do not rename
// or remove what is listed here").
const (
	// StreamIn is the shared inbound stream of the "shared" layout (every
	// partition in one stream, a partition() subject transform on the user
	// token). The per-partition layout names its streams with
	// [PartitionStream] instead.
	StreamIn = "FR_IN"
	// StreamOut stores every fr.out.> output; its duplicate window is what
	// makes re-publishing after a crash idempotent.
	StreamOut = "FR_OUT"
	// StreamDLQ stores every fr.dlq.> dead letter.
	StreamDLQ = "FR_DLQ"
	// StreamMerchant stores fr.merchant.> profiles, [MerchantHistory] per
	// merchant.
	StreamMerchant = "FR_MERCHANT"
)

// Retention the contract fixes for the streams above. The daemon may keep
// more, never less.
const (
	// MinDuplicateWindow is the shortest duplicate window the contract
	// allows on the inbound streams and on FR_OUT/FR_DLQ. A publisher that
	// retries with the same Nats-Msg-Id within it gets one stored copy;
	// shorter, and a daemon restarted after a long pause could publish an
	// output twice.
	MinDuplicateWindow = 2 * time.Minute
	// MerchantHistory is how many profiles FR_MERCHANT keeps per merchant.
	// A decision reads the profile in force when its request was stored,
	// also in a replay or after a takeover, so one kept profile is not
	// enough: the contract asks for at least 10.
	MerchantHistory = 10
	// MaxEventBytes is the largest inbound event the inbound streams store
	// (their max_msg_size); a larger publish is refused by the server with
	// an error to the publisher, never stored. The contract's events are
	// a few hundred bytes (a note is at most 512). The bound is what lets
	// a partition always commit: a malformed event goes to FR_DLQ with its
	// original bytes (base64), through the partition's outbox, and one
	// Badger transaction of the state store holds about 1.2 MiB, so an
	// event of the server's 1 MiB payload limit would never fit.
	MaxEventBytes = 64 << 10
)

// StreamSpec is one row of contract.md's stream table: a stream and the
// one subject filter it stores.
type StreamSpec struct {
	// Name is the stream's name (FR_OUT).
	Name string
	// Subjects is its filter (fr.out.>).
	Subjects string
}

// Streams lists the streams the daemon creates whatever its inbound
// layout, in the contract's table order. The inbound streams are not here
// because their names and filters depend on the layout ([StreamIn],
// [PartitionStream]). Callers must not modify it.
var Streams = [...]StreamSpec{
	{StreamMerchant, MerchantSubjects},
	{StreamOut, OutSubjects},
	{StreamDLQ, DLQSubjects},
}

// InWildcard is the two-token inbound filter fr.in.*.*: exactly the
// subjects whose partition the server can compute (partition() hashes
// wildcard 2, the user token). The shared stream FR_IN stores this rather
// than [InSubjects] so that a malformed deeper subject such as
// fr.in.order.a.b is refused at publish instead of stored without a
// partition.
const InWildcard = InPrefix + "*.*"

// PartitionStream returns FR_IN_<p>, the stream of partition p in the
// per-partition layout. p is not checked: a negative p gives a name no
// daemon creates.
func PartitionStream(p int) string { return StreamIn + "_" + strconv.Itoa(p) }

// PartitionFilter returns fr.p.<p>.>, the subjects of partition p after
// [PartitionMapping]: the filter of partition p's consumer (shared layout)
// or of its stream (per-partition layout).
func PartitionFilter(p int) string { return PartPrefix + strconv.Itoa(p) + ".>" }

// ClockSubject returns fr.in.clock.<token>, where the daemon publishes
// partition p's clock ticks so that they hash to p (see [ClockToken]). It
// returns "" when p is outside [0, pCount).
func ClockSubject(p, pCount int) string {
	tok := ClockToken(p, pCount)
	if tok == "" {
		return ""
	}
	return InSubject(KindClock, tok)
}

// InKinds lists the kinds a publisher may use in fr.in.<kind>.<user_id>,
// in the contract's table order. [KindClock] is not among them: only the
// daemon publishes ticks. Callers must not modify it.
var InKinds = [...]string{KindOrder, KindCredit, KindReturn, KindLogistics, KindInspection, KindReview}

// Outbound subject kinds: the <kind> token of fr.out.<kind>.<user_id>.
// Each equals the String of a [core.EffectKind]; [OutSubject] builds the
// subject from the effect, these name it for readers (the load generator's
// tracker, tests) that only hold the subject.
const (
	OutDecision     = "decision"
	OutRefund       = "refund"
	OutPickup       = "pickup"
	OutCompensation = "compensation"
	OutClawback     = "clawback"
	OutTrust        = "trust"
	OutResolution   = "resolution"
)

// OutKinds lists the outbound kinds in the contract's table order.
// Callers must not modify it.
var OutKinds = [...]string{OutDecision, OutRefund, OutPickup, OutCompensation, OutClawback, OutTrust, OutResolution}

// OutKindSubject returns fr.out.<kind>.<user>; [OutSubject] is the same
// for a [core.Effect]. It does not validate its arguments.
func OutKindSubject(kind, user string) string { return OutPrefix + kind + "." + user }

// RelaySubject returns fr.out.relay.<kind>.<user>, where the no-op relay
// of bench/relay echoes an event stored under fr.p.<p>.<kind>.<user>.
// "relay" is no contract kind: no consumer of the contract's outputs
// mistakes an echo for one, and ParseOutSubject refuses it.
func RelaySubject(kind, user string) string { return OutPrefix + "relay." + kind + "." + user }

// ParseOutSubject splits fr.out.<kind>.<user_id> without allocating. ok
// is false unless kind is one of [OutKinds] and user is a non-empty token
// without dots; kind and user are substrings of subj.
func ParseOutSubject(subj string) (kind, user string, ok bool) {
	if !hasPrefix(subj, OutPrefix) {
		return "", "", false
	}
	rest := subj[len(OutPrefix):]
	i := indexDot(rest)
	if i <= 0 {
		return "", "", false
	}
	kind, user = rest[:i], rest[i+1:]
	if !outKind(kind) || user == "" || indexDot(user) >= 0 {
		return "", "", false
	}
	return kind, user, true
}

// outKind reports whether s is one of OutKinds.
func outKind(s string) bool {
	for _, k := range OutKinds {
		if k == s {
			return true
		}
	}
	return false
}

// OutKindOf returns the outbound kind of an effect kind, or "" for
// [core.EffectDeadLetter] and invalid kinds, which have no fr.out subject
// (a dead letter goes to fr.dlq.<reason>).
func OutKindOf(k core.EffectKind) string {
	if s := k.String(); outKind(s) {
		return s
	}
	return ""
}

// ParseDLQSubject returns the reason of fr.dlq.<reason>; ok is false for
// any other subject and for a reason that is not one of [Reasons], so a
// reader can tell a contract dead letter from a stray message.
func ParseDLQSubject(subj string) (reason string, ok bool) {
	if !hasPrefix(subj, DLQPrefix) {
		return "", false
	}
	reason = subj[len(DLQPrefix):]
	return reason, KnownReason(reason)
}

// MerchantOf returns the merchant ID of fr.merchant.<merchant_id>; ok is
// false for any other subject.
func MerchantOf(subj string) (merchantID string, ok bool) {
	part, kind, id, ok := ParseSubject(subj)
	if !ok || part >= 0 || kind != KindMerchant {
		return "", false
	}
	return id, true
}
