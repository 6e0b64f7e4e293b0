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
		// Shared and immutable once written: clipped, an append by
		// either user copies instead of writing into the other's array.
		c.Orders[i].Forgotten = slices.Clip(c.Orders[i].Forgotten)
	}
	c.Requests = slices.Clone(u.Requests)
	c.RecentRequests = slices.Clone(u.RecentRequests)
	c.TrustMarks = slices.Clone(u.TrustMarks)
	c.slab = nil
	return &c
}
