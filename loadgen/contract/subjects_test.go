package contract

import (
	"testing"

	"github.com/flashreturn/flashreturn/internal/wire"
)

// TestSameContractAsTheDaemon holds loadgen's copy of the contract's names
// equal to the daemon's (internal/wire, itself checked against
// contract.md). The copy is deliberate: loadgen is an outside client and
// must not take the daemon's word for the contract; this test is where
// the two copies meet.
func TestSameContractAsTheDaemon(t *testing.T) {
	pairs := []struct{ name, ours, theirs string }{
		{"KindOrder", KindOrder, wire.KindOrder},
		{"KindCredit", KindCredit, wire.KindCredit},
		{"KindReturn", KindReturn, wire.KindReturn},
		{"KindLogistics", KindLogistics, wire.KindLogistics},
		{"KindInspection", KindInspection, wire.KindInspection},
		{"KindReview", KindReview, wire.KindReview},
		{"InPrefix", InPrefix, wire.InPrefix},
		{"MerchantPrefix", MerchantPrefix, wire.MerchantPrefix},
		{"OutPrefix", OutPrefix, wire.OutPrefix},
		{"StreamIn", StreamIn, wire.StreamIn},
		{"StreamOut", StreamOut, wire.StreamOut},
		{"StreamDLQ", StreamDLQ, wire.StreamDLQ},
		{"StreamMerchant", StreamMerchant, wire.StreamMerchant},
		{"OutDecision", OutDecision, wire.OutDecision},
		{"OutRefund", OutRefund, wire.OutRefund},
		{"OutPickup", OutPickup, wire.OutPickup},
		{"OutCompensation", OutCompensation, wire.OutCompensation},
		{"OutClawback", OutClawback, wire.OutClawback},
		{"OutTrust", OutTrust, wire.OutTrust},
		{"OutResolution", OutResolution, wire.OutResolution},
		{"InSubject", InSubject(KindReturn, "u1"), wire.InSubject(wire.KindReturn, "u1")},
		{"MerchantSubject", MerchantSubject("m1"), wire.MerchantSubject("m1")},
		{"OutSubject", OutSubject(OutRefund, "u1"), wire.OutKindSubject(wire.OutRefund, "u1")},
	}
	for _, p := range pairs {
		if p.ours != p.theirs {
			t.Errorf("%s: loadgen says %q, the daemon %q", p.name, p.ours, p.theirs)
		}
	}
}
