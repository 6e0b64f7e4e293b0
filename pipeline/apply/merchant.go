package apply

import "github.com/flashreturn/flashreturn/internal/core"

// MerchantVersion is one stored merchant profile and the time its
// FR_MERCHANT message was stored (Unix ns).
//
// A decision reads the profile in force when its request was stored, not
// when a worker happens to run: the daemon's merchant view and replay
// both keep every version with its stored time and look it up with
// [VersionAt] at the request's ingest time, which is what makes a
// decision independent of processing time (a restart, a takeover, a
// replay decide the same request with the same profile).
type MerchantVersion struct {
	At int64 // Unix ns, FR_MERCHANT's stored timestamp
	M  *core.Merchant
}

// VersionAt returns the latest version in vs (oldest first) stored at or
// before at, or nil when none was: a request stored before the merchant's
// first profile sees an unknown merchant, as it did live.
func VersionAt(vs []MerchantVersion, at int64) *core.Merchant {
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].At <= at {
			return vs[i].M
		}
	}
	return nil
}
