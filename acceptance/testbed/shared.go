package testbed

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/internal/prereq"
)

// shared is the one testbed of a test binary.
var shared struct {
	mu    sync.Mutex
	main  bool
	opts  Options
	tb    *Testbed
	err   error
	tried bool
}

// DefaultVendors is what Shared makes unless MainWith says otherwise: two
// vendors of two hosts each.
func DefaultVendors() []Vendor {
	return []Vendor{{Name: "vendor-a", Hosts: 2}, {Name: "vendor-b", Hosts: 2}}
}

// Main runs the tests of a package that uses Shared and takes the shared
// testbed down when they finish. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(testbed.Main(m)) }
//
// It also routes the testbed's re-executed helper processes (RunChild).
func Main(m *testing.M) int { return MainWith(m, Options{}) }

// MainWith is Main with the shared testbed's options. An empty Name becomes
// "test-PID", no Vendors DefaultVendors(); Detach is ignored.
func MainWith(m *testing.M, o Options) int {
	RunChild()
	if o.Name == "" {
		o.Name = fmt.Sprintf("test-%d", os.Getpid())
	}
	if len(o.Vendors) == 0 {
		o.Vendors = DefaultVendors()
	}
	o.Detach = false
	shared.mu.Lock()
	shared.main, shared.opts = true, o
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.tb != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := shared.tb.Down(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "testbed: take down shared testbed:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Shared returns the testbed shared by every test of the binary, making it
// on first use. It skips the test under -short or without root and the
// tools the testbed needs (failing instead under BERTH_REQUIRE_PREREQS=1).
// Tests must leave it as they found it: heal what they kill or cut.
func Shared(t testing.TB) *Testbed {
	t.Helper()
	Prereqs(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("testbed.Shared needs TestMain to call testbed.Main (or MainWith)")
	}
	if !shared.tried {
		shared.tried = true
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared.tb, shared.err = Up(ctx, shared.opts)
	}
	if shared.err != nil {
		t.Fatalf("make shared testbed: %v", shared.err)
	}
	return shared.tb
}

// Prereqs skips (or fails, see package prereq) a test that cannot make a
// testbed on this machine: under -short, without root, or without the
// programs the testbed runs.
func Prereqs(t testing.TB) {
	t.Helper()
	prereq.Integration(t)
	prereq.Root(t)
	prereq.Binary(t, "ip", "nft", "nsenter")
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		prereq.Missing(t, "/usr/sbin/sshd is not installed (openssh-server)")
	}
}
