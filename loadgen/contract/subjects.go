package contract

// Subjects and streams of the contract, as loadgen publishes to and reads
// from them. Like the rest of this package they restate contract.md
// rather than import the daemon's internal/wire: subjects_test.go holds
// the two copies equal, so a rename on either side fails a test instead
// of letting loadgen agree with a daemon that left the contract.

// Subject kinds: the <kind> of fr.in.<kind>.<user_id>.
const (
	KindOrder      = "order"
	KindCredit     = "credit"
	KindReturn     = "return"
	KindLogistics  = "logistics"
	KindInspection = "inspection"
	KindReview     = "review"
)

// Subject prefixes: every inbound event, merchant profile and output
// starts with one of these.
const (
	InPrefix       = "fr.in."
	MerchantPrefix = "fr.merchant."
	OutPrefix      = "fr.out."
)

// Streams loadgen reads (FR_OUT, FR_DLQ), publishes merchant profiles to
// (FR_MERCHANT), or inspects for its backlog figures (FR_IN, or FR_IN_<p>
// per partition, whose shared prefix is StreamIn).
const (
	StreamIn       = "FR_IN"
	StreamOut      = "FR_OUT"
	StreamDLQ      = "FR_DLQ"
	StreamMerchant = "FR_MERCHANT"
)

// InSubject is fr.in.<kind>.<user>: the user token is what the daemon
// partitions by, and it must equal the payload's user_id
// (subject_mismatch otherwise).
func InSubject(kind, user string) string { return InPrefix + kind + "." + user }

// MerchantSubject is fr.merchant.<merchant_id>.
func MerchantSubject(merchantID string) string { return MerchantPrefix + merchantID }

// OutSubject is fr.out.<kind>.<user>.
func OutSubject(kind, user string) string { return OutPrefix + kind + "." + user }
