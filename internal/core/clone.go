package core

import "slices"

// Clone returns a deep copy of the user's state, so that a what-if
// decision (a shadow policy) can be applied without touching the real
// state. Strings are shared (they are immutable).
func (u *User) Clone() *User {
	c := *u
	c.Orders = slices.Clone(u.Orders)
	c.Requests = slices.Clone(u.Requests)
	c.RecentRequests = slices.Clone(u.RecentRequests)
	c.BadInspections = slices.Clone(u.BadInspections)
	return &c
}
