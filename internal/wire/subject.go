package wire

import (
	"strconv"

	"github.com/flashreturn/flashreturn/internal/core"
)

// Subject kinds: the <kind> token of fr.in.<kind>.<user_id> and
// fr.p.<p>.<kind>.<user_id>, plus the merchant subject's kind as reported by
// [ParseSubject].
const (
	KindOrder      = "order"
	KindCredit     = "credit"
	KindReturn     = "return"
	KindLogistics  = "logistics"
	KindInspection = "inspection"
	// KindReview carries a person's answer to a request in review.
	KindReview = "review"
	// KindClock carries the daemon's clock.tick events; its last token is a
	// [ClockToken], not a user.
	KindClock = "clock"
	// KindMerchant is what ParseSubject reports for fr.merchant.<merchant_id>.
	KindMerchant = "merchant"
)

// Subject prefixes and stream filters of the contract.
const (
	// InPrefix starts every inbound user subject: fr.in.<kind>.<user_id>.
	InPrefix = "fr.in."
	// PartPrefix starts the partitioned form fr.p.<p>.<kind>.<user_id>
	// that [PartitionMapping] produces.
	PartPrefix = "fr.p."
	// MerchantPrefix starts fr.merchant.<merchant_id>.
	MerchantPrefix = "fr.merchant."
	// OutPrefix starts fr.out.<effect kind>.<user_id>.
	OutPrefix = "fr.out."
	// DLQPrefix starts fr.dlq.<reason>.
	DLQPrefix = "fr.dlq."

	// InSubjects is the filter of every inbound user subject.
	InSubjects = "fr.in.>"
	// MerchantSubjects is the FR_MERCHANT stream's filter.
	MerchantSubjects = "fr.merchant.>"
	// OutSubjects is the FR_OUT stream's filter.
	OutSubjects = "fr.out.>"
	// DLQSubjects is the FR_DLQ stream's filter.
	DLQSubjects = "fr.dlq.>"
)

// KindOf returns the subject kind an event type must be published on
// (KindOrder for order.paid), or "" for an invalid type.
func KindOf(t core.EventType) string {
	switch t {
	case core.EventOrderPaid, core.EventOrderShipped, core.EventOrderDelivered:
		return KindOrder
	case core.EventCreditUpdated:
		return KindCredit
	case core.EventReturnRequested, core.EventReturnCancelled:
		return KindReturn
	case core.EventLogisticsTracking, core.EventPickupDone:
		return KindLogistics
	case core.EventInspectionResult:
		return KindInspection
	case core.EventReviewApproved, core.EventReviewRejected:
		return KindReview
	case core.EventClock:
		return KindClock
	}
	return ""
}

// inKind reports whether s is a kind of the fr.in / fr.p subjects.
func inKind(s string) bool {
	switch s {
	case KindOrder, KindCredit, KindReturn, KindLogistics, KindInspection, KindReview, KindClock:
		return true
	}
	return false
}

// InSubject returns fr.in.<kind>.<user>, the subject a publisher uses for
// an event of that kind. It does not validate its arguments.
func InSubject(kind, user string) string { return InPrefix + kind + "." + user }

// MerchantSubject returns fr.merchant.<merchantID>.
func MerchantSubject(merchantID string) string { return MerchantPrefix + merchantID }

// ParseSubject splits an inbound subject without allocating. It accepts
//
//   - fr.in.<kind>.<user>: part is -1;
//   - fr.p.<p>.<kind>.<user>: part is p (decimal, no sign or leading zero);
//   - fr.merchant.<merchant_id>: part is -1, kind is [KindMerchant] and user
//     is the merchant ID.
//
// kind must be one of the Kind* constants (KindMerchant only in the
// merchant form) and the last token must be non-empty. kind and user are
// substrings of subj. ok is false for anything else; the pipeline
// dead-letters such a message with [ReasonSubjectMismatch]. The last token
// is not checked against the ID syntax here: Decode compares it with the
// payload's validated user_id.
func ParseSubject(subj string) (part int, kind string, user string, ok bool) {
	var rest string
	part = -1
	switch {
	case hasPrefix(subj, InPrefix):
		rest = subj[len(InPrefix):]
	case hasPrefix(subj, PartPrefix):
		rest = subj[len(PartPrefix):]
		i := indexDot(rest)
		if i <= 0 {
			return -1, "", "", false
		}
		n, okN := parseSmallUint(rest[:i])
		if !okN {
			return -1, "", "", false
		}
		part, rest = n, rest[i+1:]
	case hasPrefix(subj, MerchantPrefix):
		user = subj[len(MerchantPrefix):]
		if user == "" || indexDot(user) >= 0 {
			return -1, "", "", false
		}
		return -1, KindMerchant, user, true
	default:
		return -1, "", "", false
	}
	i := indexDot(rest)
	if i <= 0 {
		return -1, "", "", false
	}
	kind, user = rest[:i], rest[i+1:]
	if !inKind(kind) || user == "" || indexDot(user) >= 0 {
		return -1, "", "", false
	}
	return part, kind, user, true
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

func indexDot(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// parseSmallUint parses a canonical decimal in [0, 1<<30).
func parseSmallUint(s string) (int, bool) {
	if len(s) == 0 || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// FNV-1a, 32 bit (hash/fnv.New32a).
const (
	fnvOffset32 = 2166136261
	fnvPrime32  = 16777619
)

// Partition returns the partition of a user token among p partitions:
// FNV-1a 32 of the token's bytes modulo p, exactly what nats-server's
// {{partition(p,2)}} subject transform computes for fr.in.<kind>.<user>
// (see [PartitionMapping]). It does not allocate. p <= 0 yields 0, as the
// server does for 0 buckets.
func Partition(userID string, p int) int {
	if p <= 0 {
		return 0
	}
	h := uint32(fnvOffset32)
	for i := 0; i < len(userID); i++ {
		h ^= uint32(userID[i])
		h *= fnvPrime32
	}
	return int(h % uint32(p))
}

// PartitionMapping returns the nats-server subject transform that maps
// fr.in.<kind>.<user> to fr.p.<partition>.<kind>.<user> for p partitions,
// usable as a stream's SubjectTransform or as a server subject mapping.
// Its partition token equals [Partition](user, p).
func PartitionMapping(p int) (src, dest string) {
	return InWildcard, PartPrefix + "{{partition(" + strconv.Itoa(p) + ",2)}}.{{wildcard(1)}}.{{wildcard(2)}}"
}

// ClockToken returns the first of "c0", "c1", "c2", ... that [Partition]
// maps to partition p of pCount, so that clock ticks published on
// fr.in.clock.<ClockToken(p, pCount)> land on partition p. It is
// deterministic (every daemon computes the same token) and returns "" when
// p is outside [0, pCount).
func ClockToken(p, pCount int) string {
	if pCount <= 0 || p < 0 || p >= pCount {
		return ""
	}
	var buf [24]byte
	for i := 0; i < 1<<24; i++ {
		tok := strconv.AppendInt(append(buf[:0], 'c'), int64(i), 10)
		if Partition(string(tok), pCount) == p {
			return string(tok)
		}
	}
	return ""
}

// OutSubject returns fr.out.<kind>.<user_id> for an effect.
func OutSubject(e *core.Effect) string {
	return OutPrefix + e.Kind.String() + "." + e.UserID
}

var dlqSubjects = func() (s [len(Reasons)]string) {
	for i, r := range Reasons {
		s[i] = DLQPrefix + r
	}
	return s
}()

// PublishedSubject returns the subject an inbound message was published
// to: fr.in.<kind>.<user_id> for a message stored under its partitioned
// form fr.p.<p>.<kind>.<user_id> (the daemon's inbound layouts map
// fr.in.*.* there, whatever the kind token: an unknown one is
// dead-lettered under the subject it came in on), subj itself for
// anything else, such as a deeper subject published straight to
// fr.p.<p>.>, which the mapping never produces.
func PublishedSubject(subj string) string {
	if !hasPrefix(subj, PartPrefix) {
		return subj
	}
	rest := subj[len(PartPrefix):]
	i := indexDot(rest)
	if i <= 0 {
		return subj
	}
	if _, ok := parseSmallUint(rest[:i]); !ok {
		return subj
	}
	kindUser := rest[i+1:]
	if j := indexDot(kindUser); j <= 0 || j == len(kindUser)-1 || indexDot(kindUser[j+1:]) >= 0 {
		return subj
	}
	return InPrefix + kindUser
}

// DLQSubject returns fr.dlq.<reason>; it does not allocate for the
// contract's reasons.
func DLQSubject(reason string) string {
	for i, r := range Reasons {
		if r == reason {
			return dlqSubjects[i]
		}
	}
	return DLQPrefix + reason
}
