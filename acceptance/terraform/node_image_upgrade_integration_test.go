package terraform_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/acceptance/prober"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/provider/nodeimage"
)

// buildNodeImage builds a node image of this tree's berth with version
// stamped in, into dir (never over the shared bin/node-image.tar.gz), on
// the static runtime scripts/build-runtime.sh makes (cached), and returns
// its path and digest.
func buildNodeImage(ctx context.Context, root, dir, version string) (string, string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(root, "scripts", "build-runtime.sh")).Output()
	if err != nil {
		return "", "", fmt.Errorf("build runtime: %w", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) == 0 {
		return "", "", errors.New("build runtime: build-runtime.sh printed no directory")
	}
	runtimeDir := lines[len(lines)-1]
	bin := filepath.Join(dir, "berth-"+version)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin,
		"-ldflags", "-s -w -X github.com/berth-io/berth/internal/version.Version="+version, "./cmd/berth")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS=-buildvcs=false")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build berth %s: %w\n%s", version, err, msg)
	}
	path := filepath.Join(dir, "node-image-"+version+".tar.gz")
	_, d, err := nodeimage.BuildFile(ctx, nodeimage.BuildSpec{BerthBinary: bin, BerthVersion: version, RuntimeDir: runtimeDir}, path)
	if err != nil {
		return "", "", fmt.Errorf("build node image %s: %w", version, err)
	}
	return path, d.String(), nil
}

// A new node image rolls through the control-plane host and the worker
// pool one node at a time, as the plan says, while the web deployment
// keeps answering through a load balancer that follows the nodes in
// service.
func TestIntegrationNodeImageUpgradeReplacesNodesOneAtATimeWithoutFailedRequestsAndPlansEmpty(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c := newFullCluster(t, ctx)

	// The second image builds while the first apply runs.
	type built struct {
		path, digest string
		err          error
	}
	image := make(chan built, 1)
	imageDir := t.TempDir()
	go func() {
		var b built
		b.path, b.digest, b.err = buildNodeImage(ctx, c.root, imageDir, "v0.0.0-tf-upgrade-b")
		image <- b
	}()

	began := time.Now()
	c.must(ctx, "apply", "-auto-approve", "-no-color")
	t.Logf("apply from empty state took %s", time.Since(began).Round(time.Second))
	b := <-image
	if b.err != nil {
		t.Fatal(b.err)
	}
	digestA := c.resourceValues(ctx, "berth_node_image.this")["digest"]
	if digestA == b.digest {
		t.Fatalf("second node image has the first one's digest %v", digestA)
	}

	admin := c.admin(ctx)
	port := c.nodePort(ctx)
	names := c.hostNames()
	if err := c.tb.SetLB(ctx, port, names...); err != nil {
		t.Fatal(err)
	}
	if err := c.tb.WaitLB(ctx); err != nil {
		t.Fatal(err)
	}
	pr, err := prober.Start(ctx, prober.Config{URL: "http://" + c.tb.LBAddr() + "/"})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Stop()
	if err := pr.Wait(ctx, func(r prober.Result) bool { return r.Succeeded >= 20 }); err != nil {
		t.Fatalf("web never answered through the load balancer: %v (%s)", err, pr.Snapshot())
	}
	lbCtx, lbCancel := context.WithCancel(ctx)
	lbDone := make(chan error, 1)
	var lbMu sync.Mutex
	var targets []string
	go func() {
		lbDone <- followReadyNodes(lbCtx, c.tb, admin, port, names, func(in []string) {
			t.Logf("load balancer targets %v", in)
			lbMu.Lock()
			targets = in
			lbMu.Unlock()
		})
	}()
	stopLB := func() {
		lbCancel()
		if err := <-lbDone; err != nil {
			t.Errorf("load balancer: %v", err)
		}
	}
	defer func() {
		if lbCtx.Err() == nil {
			stopLB()
		}
	}()

	c.tfvars["image_path"] = b.path
	c.vars(c.tfvars)
	out := c.must(ctx, "plan", "-no-color")
	// Terraform wraps warnings: compare with the words rejoined.
	words := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"Warning: berth_cluster: 1 node(s) will be replaced one at a time",
		"Warning: berth_node_pool workers: 2 node(s) will be replaced one at a time",
	} {
		if !strings.Contains(words, want) {
			t.Errorf("plan of the new image does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "must be replaced") {
		t.Errorf("plan of the new image replaces a resource instead of rolling its nodes:\n%s", out)
	}

	began = time.Now()
	c.must(ctx, "apply", "-auto-approve", "-no-color")
	t.Logf("image upgrade of 3 nodes took %s", time.Since(began).Round(time.Second))

	var nodes api.NodeList
	if err := admin.List(ctx, &nodes, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		found := false
		for i := range nodes.Items {
			n := &nodes.Items[i]
			if n.Metadata.Name != name {
				continue
			}
			found = true
			if got := n.Status.NodeInfo.NodeImageDigest; got != b.digest {
				t.Errorf("node %s reports image %s after the upgrade, want %s", name, got, b.digest)
			}
			if !api.IsNodeReady(n) || n.Spec.Unschedulable {
				t.Errorf("node %s is not Ready and schedulable after the upgrade (unschedulable %v)", name, n.Spec.Unschedulable)
			}
		}
		if !found {
			t.Errorf("node %s is missing after the upgrade", name)
		}
	}
	// Every node is back in service, and traffic flows through them.
	sorted := slices.Sorted(slices.Values(names))
	for {
		lbMu.Lock()
		in := targets
		lbMu.Unlock()
		if slices.Equal(in, sorted) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the load balancer never had every node back in service: %v", in)
		case <-time.After(200 * time.Millisecond):
		}
	}
	servedBefore := pr.Snapshot().Succeeded
	if err := pr.Wait(ctx, func(r prober.Result) bool { return r.Succeeded >= servedBefore+20 }); err != nil {
		t.Fatalf("web stopped answering after the upgrade: %v (%s)", err, pr.Snapshot())
	}
	stopLB()
	r := pr.Stop()
	t.Logf("prober during the upgrade: %s", r)
	if r.Failed != 0 {
		t.Fatalf("requests failed while the node image rolled: %s", r)
	}
	c.planEmpty(ctx, "after the image upgrade")

	c.must(ctx, "destroy", "-auto-approve", "-no-color")
	c.destroyed = true
}
