// Package merchants is the daemon's merchant view: every process's
// read-only copy of the merchant profiles in FR_MERCHANT, kept current by
// a watcher, read by the partition workers as of each request's ingest
// time (View.LookupAt) after waiting until every profile stored before it
// has been read (View.WaitThrough).
//
// # Invariants
//
//   - A decision does not depend on when its worker runs: the view is
//     read as of the request's FR_IN timestamp, so a restart, a takeover
//     and a replay decide it with the same profile.
//   - The view keeps per merchant exactly the versions FR_MERCHANT keeps
//     (wire.MerchantHistory), no older one.
//   - A malformed profile is dead-lettered through View.DeadLetter and the
//     watch goes on.
package merchants
