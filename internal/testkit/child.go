package testkit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
)

// RunChild lets a test binary stand in for the program it tests, so that
// a test sees real exit codes, signals and restarts of a real process
// without building the program first. Call it first in TestMain: when the
// environment variable env holds a JSON array of arguments (set by
// ChildCommand), the process is a child, runs run with them and exits
// with its code; otherwise RunChild returns and TestMain goes on to
// m.Run.
//
// The arguments travel as JSON rather than split on spaces so that a
// path or a shell command with spaces stays one argument. A malformed
// array exits 99, a code no program under test uses.
func RunChild(env string, run func(args []string) int) {
	v := os.Getenv(env)
	if v == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(v), &args); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", env, err)
		os.Exit(99)
	}
	os.Exit(run(args))
}

// ChildCommand is a command that runs this test binary as a child with
// args (see RunChild, called with the same env). "-test.run=^$" makes a
// binary whose TestMain forgot RunChild run no test rather than all of
// them again, recursively. The child inherits the environment, so a
// child's own children see env too: a TestMain that serves two roles
// must check the more specific variable first. ctx kills the child when
// done (context.Background for a child the test stops itself).
func ChildCommand(ctx context.Context, env string, args ...string) *exec.Cmd {
	b, _ := json.Marshal(args) // a []string always marshals
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+string(b))
	return cmd
}
