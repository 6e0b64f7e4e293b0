package core

import "slices"

// Clone returns a deep copy of the user's state, so that a what-if
// decision (a shadow policy) can be applied without touching the real
// state. Strings are shared (they are immutable); the clone starts a
// string slab of its own, so neither writes where the other's strings
// live.
func (u *User) Clone() *User {
	c := *u
	c.Orders = slices.Clone(u.Orders)
	for i := range c.Orders {
		// Copied: forget shifts a full list in place.
		c.Orders[i].Forgotten = slices.Clone(c.Orders[i].Forgotten)
	}
	c.Forgotten = slices.Clone(u.Forgotten)
	c.Requests = slices.Clone(u.Requests)
	c.RecentRequests = slices.Clone(u.RecentRequests)
	c.TrustMarks = slices.Clone(u.TrustMarks)
	c.slab = nil
	return &c
}
