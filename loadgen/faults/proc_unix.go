//go:build unix && !linux

package faults

import "syscall"

// sysProcAttr puts a spawned process in its own process group, so that a
// Ctrl-C at loadgen's terminal reaches loadgen, which then stops its
// children itself.
func sysProcAttr(bool) *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
