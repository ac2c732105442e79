// Package prereq lets integration and acceptance tests say what they need
// (root, a binary on PATH, a kernel feature) and skip with a reason when it is
// missing on a developer's machine.
//
// Under CI the environment variable BERTH_REQUIRE_PREREQS=1 is set, and a
// missing prerequisite fails the test instead: CI installs everything, so a
// skip there would hide a test that never ran. Production code must never
// import this package.
package prereq

import (
	"os"
	"os/exec"
	"testing"
)

// EnvRequire names the variable that turns skips for missing prerequisites
// into failures.
const EnvRequire = "BERTH_REQUIRE_PREREQS"

// Required reports whether missing prerequisites must fail tests rather than
// skip them.
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// Missing skips the test with reason, or fails it when prerequisites are
// required.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("missing prerequisite (%s=1): %s", EnvRequire, reason)
	}
	t.Skipf("skipping: %s (set %s=1 to make this a failure)", reason, EnvRequire)
}

// Root skips or fails the test unless it runs as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root")
	}
}

// Binary skips or fails the test unless every named program is on PATH.
func Binary(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Missing(t, n+" is not on PATH")
		}
	}
}

// Integration skips the test under -short, which stays fast and needs no
// root. That is a choice of the caller, not a missing prerequisite, so it
// skips even when prerequisites are required.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped under -short")
	}
}
