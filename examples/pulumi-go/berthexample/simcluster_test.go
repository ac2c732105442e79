package berthexample_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/plane"
)

// testCluster is what the example's scenario runs against: where the
// program finds its cluster, the images to roll, and hooks for what
// differs between a simulated cluster and testbed hosts.
type testCluster struct {
	// StackConfig is the stack configuration that points the program at
	// the cluster: adminConfig for a given cluster, inventory and
	// nodeImage for one the program provisions.
	StackConfig map[string]string
	// V1, V2 and Broken are workload images; Broken's pods never become
	// ready.
	V1, V2, Broken string
	// BrokenEvidence are phrases the failed up's error must contain.
	BrokenEvidence []string
	// Client is an admin client of the cluster; nil until Connect made
	// it when the program provisions the cluster.
	Client *client.Client
	// Connect, when set, makes Client from the first up's outputs.
	Connect func(t *testing.T, outputs auto.OutputMap) *client.Client
	// Serve, when set, starts measuring availability through the
	// service's node port after the first up; the returned function
	// reports the requests that failed so far, waiting first until the
	// given version has answered.
	Serve func(t *testing.T, nodePort int) (failed func(t *testing.T, answered string) int)
	// AfterDestroy checks that destroy left nothing behind.
	AfterDestroy func(t *testing.T)
}

// brokenImage is an image whose pods never become ready on simulated
// nodes: their containers crash-loop.
const brokenImage = "registry.test/broken:1"

// simulatedCluster runs a Dev control plane (scheduler and controllers
// included) and simulated nodes that register, heartbeat and report the
// pods bound to them Running and Ready through the status subresource,
// except pods of brokenImage, whose containers crash-loop.
func simulatedCluster(t *testing.T, nodes int) *testCluster {
	t.Helper()
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cfg := plane.Config{Name: "cp1", DataDir: dir, ListenAddress: "127.0.0.1:0", Dev: true}
		done <- plane.Run(ctx, cfg, nil)
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("control plane stopped with %v", err)
		}
	})
	path := filepath.Join(dir, "admin.json")
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("control plane stopped while starting: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cfg, err := client.LoadConfig(path)
	if err != nil {
		t.Fatalf("load the admin config: %v", err)
	}
	cli, err := client.New(cfg, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	for i := range nodes {
		n, err := startSimNode(ctx, cli, fmt.Sprintf("sim-%d", i+1), func(p *api.Pod) bool {
			for _, c := range p.Spec.Containers {
				if c.Image == brokenImage {
					return false
				}
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.stop)
	}
	return &testCluster{
		StackConfig: map[string]string{"adminConfig": path},
		V1:          "registry.test/web:1", V2: "registry.test/web:2", Broken: brokenImage,
		// The same evidence the Terraform provider gives: what is live
		// after the rollback, and why the new pods are not ready.
		BrokenEvidence: []string{"rolled deployment default/web back: revision 2 is live", "CrashLoopBackOff"},
		Client:         cli,
		AfterDestroy: func(t *testing.T) {
			var d api.Deployment
			if err := cli.Get(t.Context(), "default", "web", &d); !api.IsNotFound(err) {
				t.Errorf("deployment after destroy: %v, want not found", err)
			}
			var svc api.Service
			if err := cli.Get(t.Context(), "default", "web", &svc); !api.IsNotFound(err) {
				t.Errorf("service after destroy: %v, want not found", err)
			}
		},
	}
}

// simNode plays a node agent without running anything.
type simNode struct {
	name    string
	index   byte
	cli     *client.Client
	ready   func(*api.Pod) bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	address string
}

func startSimNode(ctx context.Context, cli *client.Client, name string, ready func(*api.Pod) bool) (*simNode, error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	n := &simNode{name: name, cli: cli, ready: ready, index: byte(h.Sum32()%250) + 1}
	n.address = fmt.Sprintf("198.18.0.%d", n.index)
	node := &api.Node{Metadata: api.ObjectMeta{Name: name, Labels: map[string]string{api.LabelHostname: name}}}
	if err := cli.Create(ctx, node); err != nil && !api.IsAlreadyExists(err) {
		return nil, fmt.Errorf("register simulated node %s: %w", name, err)
	}
	if err := n.heartbeat(ctx); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	pk, _ := api.LookupKind("Pod")
	pods := client.NewInformer(cli, pk, client.InformerOptions{NodeName: name})
	q := client.NewWorkQueue()
	enqueue := func(o api.Object) { q.Add(client.ObjectKey(o)) }
	pods.AddHandler(client.Handler{OnAdd: enqueue, OnUpdate: func(_, o api.Object) { enqueue(o) }})
	n.wg.Go(func() { pods.Run(runCtx) })
	n.wg.Go(func() {
		q.Run(runCtx, 2, nil, func(ctx context.Context, key string) error {
			ns, pname := splitKey(key)
			o, ok := pods.Get(ns, pname)
			if !ok {
				return nil
			}
			return n.syncPod(ctx, o.(*api.Pod))
		})
	})
	n.wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				_ = n.heartbeat(runCtx)
			}
		}
	})
	return n, nil
}

func (n *simNode) stop() {
	n.cancel()
	n.wg.Wait()
}

func splitKey(k string) (string, string) {
	for i := range len(k) {
		if k[i] == '/' {
			return k[:i], k[i+1:]
		}
	}
	return "", k
}

func (n *simNode) heartbeat(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		var node api.Node
		if err := n.cli.Get(ctx, "", n.name, &node); err != nil {
			return fmt.Errorf("heartbeat of simulated node %s: %w", n.name, err)
		}
		now := time.Now().UTC()
		alloc := api.ResourceList{api.ResourceCPU: "4", api.ResourceMemory: "8Gi", api.ResourcePods: "110"}
		node.Status.LastHeartbeatTime = &now
		node.Status.Allocatable = alloc
		node.Status.Capacity = alloc
		node.Status.Addresses = []api.NodeAddress{{Type: api.NodeInternalIP, Address: n.address}}
		api.SetCondition(&node.Status.Conditions, api.Condition{Type: api.NodeReady, Status: api.ConditionTrue, Reason: "AgentReady", Message: "simulated agent is healthy"}, now)
		err := n.cli.UpdateStatus(ctx, &node)
		if err == nil {
			return nil
		}
		if !api.IsConflict(err) || attempt > 5 {
			return fmt.Errorf("heartbeat of simulated node %s: %w", n.name, err)
		}
	}
}

func (n *simNode) syncPod(ctx context.Context, p *api.Pod) error {
	if api.IsPodTerminating(p) {
		if err := n.cli.Delete(ctx, p, client.GracePeriod(0)); err != nil && !api.IsNotFound(err) {
			return fmt.Errorf("finish deleting pod %s: %w", p.Metadata.Name, err)
		}
		return nil
	}
	cp := client.DeepCopy(p)
	now := time.Now().UTC()
	ready := n.ready(p)
	cp.Status.Phase = api.PodRunning
	cp.Status.HostIP = n.address
	if cp.Status.PodIP == "" {
		h := fnv.New32a()
		_, _ = h.Write([]byte(p.Metadata.UID))
		cp.Status.PodIP = fmt.Sprintf("10.244.%d.%d", n.index, h.Sum32()%250+2)
	}
	if cp.Status.StartTime == nil {
		cp.Status.StartTime = &now
	}
	var statuses []api.ContainerStatus
	for _, c := range p.Spec.Containers {
		cs := api.ContainerStatus{Name: c.Name, Image: c.Image, Ready: ready}
		if ready {
			cs.State.Running = &api.ContainerStateRunning{StartedAt: now}
		} else {
			cs.RestartCount = 3
			cs.State.Waiting = &api.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container " + c.Name}
		}
		statuses = append(statuses, cs)
	}
	cp.Status.ContainerStatuses = statuses
	st := api.ConditionFalse
	if ready {
		st = api.ConditionTrue
	}
	api.SetCondition(&cp.Status.Conditions, api.Condition{Type: api.PodReady, Status: st}, now)
	if c := api.FindCondition(p.Status.Conditions, api.PodReady); c != nil && c.Status == st &&
		p.Status.Phase == api.PodRunning && p.Status.PodIP != "" && len(p.Status.ContainerStatuses) == len(statuses) {
		return nil
	}
	if err := n.cli.UpdateStatus(ctx, cp); err != nil && !api.IsConflict(err) && !api.IsNotFound(err) {
		return fmt.Errorf("report pod %s: %w", p.Metadata.Name, err)
	}
	return nil
}
