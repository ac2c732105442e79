package framework_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/plane"
	"github.com/berth-io/berth/internal/prereq"
	"github.com/berth-io/berth/provider/framework"
)

// protoV6 serves the provider in-process to terraform-plugin-testing.
var protoV6 = map[string]func() (tfprotov6.ProviderServer, error){
	"berth": providerserver.NewProtocol6WithError(framework.New("test")()),
}

// testCluster is a Dev control plane with its controllers, run in-process
// for one test, plus simulated nodes that play the agents' part.
type testCluster struct {
	t          *testing.T
	configPath string
	cli        *client.Client
}

// badImage marks images whose pods never become ready on simulated nodes.
const badImage = ":bad"

// terraformBinary is the terraform the acceptance tests run: the one on
// PATH, else OpenTofu as scripts/terraform.sh builds it (once, into
// .cache/bin), as the README promises.
var terraformBinary = sync.OnceValues(func() (string, error) {
	if tf, err := exec.LookPath("terraform"); err == nil {
		return tf, nil
	}
	out, err := exec.Command(filepath.Join("..", "..", "scripts", "terraform.sh")).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return "", fmt.Errorf("no terraform on PATH, and scripts/terraform.sh could not build OpenTofu: %w\n%s", err, stderr)
	}
	return strings.TrimSpace(string(out)), nil
})

// accPrereqs skips acceptance tests under -short, and points
// terraform-plugin-testing at terraformBinary so nothing is downloaded.
func accPrereqs(t *testing.T) {
	t.Helper()
	prereq.Integration(t)
	tf, err := terraformBinary()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TF_ACC", "1")
	t.Setenv("TF_ACC_TERRAFORM_PATH", tf)
	if filepath.Base(tf) == "tofu" {
		// OpenTofu resolves the configurations' implied provider "berth"
		// in its own registry's namespace; the test provider must be
		// served under that address.
		t.Setenv("TF_ACC_PROVIDER_HOST", "registry.opentofu.org")
	}
	t.Setenv("CHECKPOINT_DISABLE", "1")
	t.Setenv("TF_IN_AUTOMATION", "1")
	// An empty CLI configuration: no provider installation rules from the
	// developer's machine, and no warning about a missing ~/.terraformrc.
	rc := filepath.Join(t.TempDir(), "terraformrc")
	if err := os.WriteFile(rc, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TF_CLI_CONFIG_FILE", rc)
}

// startCluster runs a control plane on a temporary directory and nodes
// simulated nodes on it.
func startCluster(t *testing.T, nodes ...string) *testCluster {
	t.Helper()
	accPrereqs(t)
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := plane.Config{Name: "cp1", DataDir: dir, ListenAddress: "127.0.0.1:0", Dev: true}
	go func() { done <- plane.Run(ctx, cfg, nil) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("control plane stopped with %v", err)
		}
	})
	adminPath := filepath.Join(dir, "admin.json")
	for {
		if _, err := os.Stat(adminPath); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("control plane stopped while starting: %v", err)
		case <-t.Context().Done():
			t.Fatal("test ended before the control plane started")
		case <-time.After(20 * time.Millisecond):
		}
	}
	cc, err := client.LoadConfig(adminPath)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := client.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cli.Close)
	c := &testCluster{t: t, configPath: adminPath, cli: cli}
	for _, n := range nodes {
		c.startNode(n)
	}
	return c
}

// providerConfig is the provider block every test configuration starts with.
func (c *testCluster) providerConfig() string {
	return fmt.Sprintf("provider \"berth\" {\n  config_path = %q\n}\n", c.configPath)
}

// startNode registers a simulated node that heartbeats and reports its
// pods Running and Ready, except pods of images containing badImage, which
// it reports stuck in CrashLoopBackOff with a termination message.
func (c *testCluster) startNode(name string) {
	t := c.t
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	index := h.Sum32()%250 + 1
	node := &api.Node{Metadata: api.ObjectMeta{Name: name, Labels: map[string]string{api.LabelHostname: name}}}
	if err := c.cli.Create(ctx, node); err != nil {
		t.Fatalf("register node %s: %v", name, err)
	}
	heartbeat := func() {
		var n api.Node
		if err := c.cli.Get(ctx, "", name, &n); err != nil {
			return
		}
		now := time.Now().UTC()
		n.Status.LastHeartbeatTime = &now
		all := api.ResourceList{api.ResourceCPU: "4", api.ResourceMemory: "8Gi", api.ResourcePods: "110"}
		n.Status.Allocatable, n.Status.Capacity = all, all
		n.Status.Addresses = []api.NodeAddress{{Type: api.NodeInternalIP, Address: fmt.Sprintf("198.18.0.%d", index)}}
		n.Status.NodeInfo.BerthVersion = "test"
		api.SetCondition(&n.Status.Conditions, api.Condition{Type: api.NodeReady, Status: api.ConditionTrue, Reason: "AgentReady"}, now)
		_ = c.cli.UpdateStatus(ctx, &n)
	}
	heartbeat()
	pk, _ := api.LookupKind("Pod")
	inf := client.NewInformer(c.cli, pk, client.InformerOptions{NodeName: name})
	q := client.NewWorkQueue()
	enqueue := func(o api.Object) { q.Add(client.ObjectKey(o)) }
	inf.AddHandler(client.Handler{OnAdd: enqueue, OnUpdate: func(_, o api.Object) { enqueue(o) }})
	wg.Go(func() { inf.Run(ctx) })
	wg.Go(func() {
		q.Run(ctx, 2, nil, func(ctx context.Context, key string) error {
			ns, pod, _ := strings.Cut(key, "/")
			o, ok := inf.Get(ns, pod)
			if !ok {
				return nil
			}
			return c.syncPod(ctx, o.(*api.Pod), index)
		})
	})
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				heartbeat()
			}
		}
	})
}

func (c *testCluster) syncPod(ctx context.Context, p *api.Pod, index uint32) error {
	if api.IsPodTerminating(p) {
		if err := c.cli.Delete(ctx, p, client.GracePeriod(0)); err != nil && !api.IsNotFound(err) {
			return err
		}
		return nil
	}
	if p.Status.Phase == api.PodRunning {
		return nil
	}
	cp := client.DeepCopy(p)
	now := time.Now().UTC()
	ready := true
	for _, ctr := range p.Spec.Containers {
		if strings.Contains(ctr.Image, badImage) {
			ready = false
		}
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(p.Metadata.UID))
	cp.Status.Phase = api.PodRunning
	cp.Status.PodIP = fmt.Sprintf("10.244.%d.%d", index, h.Sum32()%250+2)
	cp.Status.HostIP = fmt.Sprintf("198.18.0.%d", index)
	cp.Status.StartTime = &now
	cp.Status.ContainerStatuses = nil
	for _, ctr := range p.Spec.Containers {
		cs := api.ContainerStatus{Name: ctr.Name, Image: ctr.Image, Ready: ready}
		if ready {
			cs.State.Running = &api.ContainerStateRunning{StartedAt: now}
		} else {
			cs.RestartCount = 3
			cs.State.Waiting = &api.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container " + ctr.Name}
			cs.LastState.Terminated = &api.ContainerStateTerminated{ExitCode: 2, Reason: "Error", Message: "panic: cannot open /etc/web.conf"}
		}
		cp.Status.ContainerStatuses = append(cp.Status.ContainerStatuses, cs)
	}
	st := api.ConditionFalse
	if ready {
		st = api.ConditionTrue
	}
	api.SetCondition(&cp.Status.Conditions, api.Condition{Type: api.PodReady, Status: st}, now)
	if err := c.cli.UpdateStatus(ctx, cp); err != nil && !api.IsConflict(err) && !api.IsNotFound(err) {
		return err
	}
	return nil
}

// deployment reads a deployment from the control plane.
func (c *testCluster) deployment(ns, name string) *api.Deployment {
	c.t.Helper()
	var d api.Deployment
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.cli.Get(ctx, ns, name, &d); err != nil {
		c.t.Fatal(err)
	}
	return &d
}
