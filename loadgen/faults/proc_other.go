//go:build !unix

package faults

import (
	"os"
	"syscall"
)

// sysProcAttr: nothing special where there are no process groups.
func sysProcAttr(bool) *syscall.SysProcAttr { return nil }

// unsupportedSignal stands for a signal the platform cannot send; sending
// it fails, so the fault is reported as not carried out.
type unsupportedSignal string

func (s unsupportedSignal) Signal()        {}
func (s unsupportedSignal) String() string { return string(s) }

// The signals the faults send; only kill9 and start work here.
var (
	sigKill os.Signal = os.Kill
	sigTerm os.Signal = unsupportedSignal("SIGTERM")
	sigStop os.Signal = unsupportedSignal("SIGSTOP")
	sigCont os.Signal = unsupportedSignal("SIGCONT")
)
