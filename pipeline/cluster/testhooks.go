package cluster

// Hooks for the daemon's cluster tests (pipeline's cluster_test.go), which
// run real members on a real NATS cluster and need to provoke what is
// otherwise only reached by a paused process or a race. They are exported
// because those tests live in another package; nothing else calls them.

// PauseHeartbeats stops (true) or resumes (false) the member's
// heartbeats, as a process paused by the OS or a long GC would: the lease
// runs out while the workers go on, which is what the fence must catch.
func (c *Cluster) PauseHeartbeats(paused bool) { c.hbPaused.Store(paused) }

// BeforeLeave sets f to run when the reconcile loop has ended and the
// leave has not begun: the window in which the workers still run after
// the daemon's other goroutines saw the context end. Set it before the
// daemon's context ends.
func (c *Cluster) BeforeLeave(f func()) { c.beforeLeave = f }

// LeaseGen is the current lease generation (tests log it when a fence
// surprises them).
func (c *Cluster) LeaseGen() uint64 { return c.leaseGen() }
