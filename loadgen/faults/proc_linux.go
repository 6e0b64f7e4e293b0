package faults

import "syscall"

// sysProcAttr puts a spawned process in its own process group (a Ctrl-C
// at loadgen's terminal reaches loadgen, which then stops its children
// itself) and, unless it is to be kept, has the kernel kill it should
// loadgen die first.
func sysProcAttr(keep bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if !keep {
		a.Pdeathsig = syscall.SIGKILL
	}
	return a
}
