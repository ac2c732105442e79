package testbed

import (
	"fmt"
	"os"
)

// The testbed runs two kinds of helper process, both the calling program
// re-executed (os.Executable) with childEnv set: a host's init, and the
// keeper. That keeps the testbed one binary with nothing to install.
const (
	childEnv = "BERTH_TESTBED_CHILD"
	roleHost = "host-init"
	roleKeep = "keeper"
)

// childReady records that the program routes re-executions to RunChild, so
// Up may re-execute it.
var childReady bool

// RunChild must be called first thing in main (or TestMain, which Main does)
// of every program that calls Up or boots hosts: when the process is one of
// the testbed's helper processes it runs that helper and exits; otherwise it
// returns at once. Without it, a re-executed program would run its normal
// main inside a host.
func RunChild() {
	role := os.Getenv(childEnv)
	if role == "" {
		childReady = true
		return
	}
	var err error
	switch role {
	case roleHost:
		err = hostInit()
	case roleKeep:
		err = keeperMain()
	default:
		err = fmt.Errorf("unknown testbed helper %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
