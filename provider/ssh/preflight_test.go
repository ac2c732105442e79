package ssh_test

import (
	"os/exec"
	"runtime"
	"strings"
	"testing"

	berthssh "github.com/berth-io/berth/provider/ssh"
	"github.com/berth-io/berth/provider/ssh/sshtest"
)

// The in-process server runs commands on this machine, so Preflight must
// describe this machine.
func TestPreflightDescribesTheHostItRunsOn(t *testing.T) {
	_, cfg := newHost(t, "node-1", sshtest.Options{})
	c := dial(t, cfg)
	r, err := berthssh.Preflight(testContext(t), c)
	if err != nil {
		t.Fatal(err)
	}
	uname, err := exec.Command("uname", "-r").Output()
	if err != nil {
		t.Fatal(err)
	}
	if r.Host != "node-1" || r.Kernel != strings.TrimSpace(string(uname)) {
		t.Errorf("report names host %q kernel %q; want node-1, %s", r.Host, r.Kernel, uname)
	}
	if (runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64") && r.Arch != runtime.GOARCH {
		t.Errorf("Arch = %q (uname -m %q); want %s", r.Arch, r.Machine, runtime.GOARCH)
	}
	skew := r.ClockSkew
	if skew < 0 {
		skew = -skew
	}
	if skew > r.ClockUncertainty {
		t.Errorf("clock skew against the same clock = %s, beyond its uncertainty %s", r.ClockSkew, r.ClockUncertainty)
	}
	if _, ok := r.FreeBytes["/opt"]; !ok {
		t.Errorf("free space under /opt not reported: %v", r.FreeBytes)
	}
	if len(r.Features) != 6 {
		t.Errorf("features = %v; want all six reported", r.Features)
	}
	t.Logf("report: %+v; problems: %q", r, r.Problems())
}
