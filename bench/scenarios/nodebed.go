package scenarios

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-io/berth/acceptance/testbed"
	"github.com/berth-io/berth/acceptance/workloads"
)

// Paths on the node host that startBerthCluster sets up.
const (
	nodeContainerdSock = "/run/berth/containerd/containerd.sock"
	nodeContainerdPID  = "/var/lib/berth/containerd.pid"
	nodeAgentPID       = "/var/lib/berth/agent.pid"
)

// upBerthBed builds berth (static) and the testbed command (and, for each
// name → package of extra, that package, static) into a directory under
// /var/tmp that the hosts share, brings up a two-host testbed, and starts a
// dev control plane on the first host and containerd plus `berth agent` on
// the second (startBerthCluster). It returns the cluster, the directory of
// the binaries (as the hosts see it too), and a function that tears all of
// it down.
func upBerthBed(ctx context.Context, w io.Writer, set *workloads.Set, extra map[string]string) (*berthCluster, string, func(), error) {
	var undo []func()
	down := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	// A host's /tmp is private; /var/tmp is shared with the hosts.
	binDir, err := os.MkdirTemp("/var/tmp", "berth-bench-nodes-")
	if err != nil {
		return nil, "", nil, err
	}
	undo = append(undo, func() { os.RemoveAll(binDir) })
	if err := os.Chmod(binDir, 0o755); err != nil {
		down()
		return nil, "", nil, err
	}
	tbBin, berthBin := filepath.Join(binDir, "testbed"), filepath.Join(binDir, "berth")
	fmt.Fprintln(w, "    berth side: building berth (static) and the testbed command")
	if err := goBuild(ctx, "./acceptance/cmd/testbed", tbBin); err != nil {
		down()
		return nil, "", nil, err
	}
	if err := goBuild(ctx, "./cmd/berth", berthBin, "CGO_ENABLED=0"); err != nil {
		down()
		return nil, "", nil, err
	}
	for name, pkg := range extra {
		if err := goBuild(ctx, pkg, filepath.Join(binDir, name), "CGO_ENABLED=0"); err != nil {
			down()
			return nil, "", nil, err
		}
	}
	name := fmt.Sprintf("bench-%d", os.Getpid())
	fmt.Fprintf(w, "    berth side: testbed %s with two hosts\n", name)
	if _, err := runCmd(ctx, 5*time.Minute, tbBin, "up", "--name", name, "--hosts", "vendor-a=2"); err != nil {
		down()
		return nil, "", nil, err
	}
	undo = append(undo, func() {
		if _, err := runCmd(context.Background(), 3*time.Minute, tbBin, "down", "--name", name); err != nil {
			fmt.Fprintf(w, "    testbed down: %v\n", err)
		}
	})
	tb, err := testbed.Open(ctx, name)
	if err != nil {
		down()
		return nil, "", nil, fmt.Errorf("open testbed %s: %w", name, err)
	}
	c, err := startBerthCluster(ctx, tb, set, berthBin)
	if err != nil {
		down()
		return nil, "", nil, err
	}
	undo = append(undo, c.admin.Close)
	return c, binDir, down, nil
}

// upNodebenchBed builds the test web app and brings up the testbed of
// upBerthBed with bench/cmd/nodebench built beside berth. It returns the
// cluster, the path of nodebench (as the node host sees it too) and the
// teardown.
func upNodebenchBed(ctx context.Context, w io.Writer) (*berthCluster, string, func(), error) {
	fmt.Fprintln(w, "    building the test web app")
	set, err := workloads.Build(ctx, "")
	if err != nil {
		return nil, "", nil, fmt.Errorf("build test workloads: %w", err)
	}
	c, binDir, down, err := upBerthBed(ctx, w, set, map[string]string{"nodebench": "./bench/cmd/nodebench"})
	if err != nil {
		return nil, "", nil, err
	}
	return c, filepath.Join(binDir, "nodebench"), down, nil
}

// nodeExec runs a shell command on the node host and returns its output.
func (c *berthCluster) nodeExec(ctx context.Context, timeout time.Duration, command string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := c.tb.Exec(cctx, c.node.Name, command)
	return string(out), err
}

// nodeRSS reads VmRSS (MiB) of the process whose PID (in the node host's
// PID namespace) is in pidFile on the node.
func (c *berthCluster) nodeRSS(ctx context.Context, pidFile string) (float64, error) {
	out, err := c.nodeExec(ctx, 30*time.Second, "grep VmRSS: /proc/$(cat "+pidFile+")/status")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		return 0, fmt.Errorf("VmRSS of %s: unexpected %q", pidFile, out)
	}
	kb, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		return 0, fmt.Errorf("VmRSS of %s: %w", pidFile, err)
	}
	return kb / 1024, nil
}
