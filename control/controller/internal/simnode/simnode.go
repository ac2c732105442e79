// Package simnode simulates node agents for tests of the scheduler and the
// controllers: a simulated node registers its Node, heartbeats through the
// API, and plays the agent's part for pods bound to it — it reports them
// Running with an IP and Ready (or, when told, stuck in CrashLoopBackOff)
// through the status subresource, and finishes their deletion. Stopping a
// node makes it fall silent, as a host that lost power would.
//
// It runs no containers and must never be used outside tests.
package simnode

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// Options describe a simulated node.
type Options struct {
	// HeartbeatInterval between status posts (default 100 ms).
	HeartbeatInterval time.Duration
	// Allocatable resources (default cpu 4, memory 8Gi, pods 110).
	Allocatable api.ResourceList
	// Labels of the node, besides berth.io/hostname.
	Labels map[string]string
	// PodReady decides whether a pod's containers pass readiness; by
	// default every pod does. A pod that does not is reported Running but
	// not Ready, its containers waiting in CrashLoopBackOff.
	PodReady func(*api.Pod) bool
}

// Node is a running simulated node.
type Node struct {
	name string
	cli  *client.Client
	opts Options

	cancel context.CancelFunc
	wg     sync.WaitGroup
	index  byte
}

// Start registers (or re-registers) the node and starts its heartbeats and
// pod handling.
func Start(ctx context.Context, cli *client.Client, name string, opts Options) (*Node, error) {
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 100 * time.Millisecond
	}
	if opts.Allocatable == nil {
		opts.Allocatable = api.ResourceList{api.ResourceCPU: "4", api.ResourceMemory: "8Gi", api.ResourcePods: "110"}
	}
	if opts.PodReady == nil {
		opts.PodReady = func(*api.Pod) bool { return true }
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	n := &Node{name: name, cli: cli, opts: opts, index: byte(h.Sum32()%250) + 1}
	labels := map[string]string{api.LabelHostname: name}
	for k, v := range opts.Labels {
		labels[k] = v
	}
	node := &api.Node{Metadata: api.ObjectMeta{Name: name, Labels: labels}}
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
		t := time.NewTicker(opts.HeartbeatInterval)
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

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Stop silences the node: no more heartbeats, no more pod handling.
func (n *Node) Stop() {
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

// heartbeat posts the node's status: Ready, with a fresh heartbeat time.
func (n *Node) heartbeat(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		var node api.Node
		if err := n.cli.Get(ctx, "", n.name, &node); err != nil {
			return fmt.Errorf("heartbeat of simulated node %s: %w", n.name, err)
		}
		now := time.Now().UTC()
		node.Status.LastHeartbeatTime = &now
		node.Status.Allocatable = n.opts.Allocatable
		node.Status.Capacity = n.opts.Allocatable
		node.Status.Addresses = []api.NodeAddress{{Type: api.NodeInternalIP, Address: fmt.Sprintf("198.18.0.%d", n.index)}}
		api.SetCondition(&node.Status.Conditions, api.Condition{Type: api.NodeReady, Status: api.ConditionTrue, Reason: "AgentReady", Message: "simulated agent is healthy"}, now)
		err := n.cli.UpdateStatus(ctx, &node)
		if err == nil || !api.IsConflict(err) || attempt > 5 {
			if err != nil {
				return fmt.Errorf("heartbeat of simulated node %s: %w", n.name, err)
			}
			return nil
		}
	}
}

// syncPod plays the agent for one pod.
func (n *Node) syncPod(ctx context.Context, p *api.Pod) error {
	if api.IsPodTerminating(p) {
		// The containers stopped at once.
		if err := n.cli.Delete(ctx, p, client.GracePeriod(0)); err != nil && !api.IsNotFound(err) {
			return err
		}
		return nil
	}
	cp := client.DeepCopy(p)
	now := time.Now().UTC()
	ready := n.opts.PodReady(p)
	cp.Status.Phase = api.PodRunning
	cp.Status.HostIP = fmt.Sprintf("198.18.0.%d", n.index)
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
			if old := findStatus(p.Status.ContainerStatuses, c.Name); old != nil && old.State.Running != nil {
				cs.State.Running.StartedAt = old.State.Running.StartedAt
			}
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
	if sameStatus(p.Status, cp.Status) {
		return nil
	}
	if err := n.cli.UpdateStatus(ctx, cp); err != nil && !api.IsConflict(err) && !api.IsNotFound(err) {
		return err
	}
	return nil
}

func findStatus(ss []api.ContainerStatus, name string) *api.ContainerStatus {
	for i := range ss {
		if ss[i].Name == name {
			return &ss[i]
		}
	}
	return nil
}

// sameStatus compares what the simulation sets.
func sameStatus(a, b api.PodStatus) bool {
	if a.Phase != b.Phase || a.PodIP != b.PodIP || len(a.ContainerStatuses) != len(b.ContainerStatuses) {
		return false
	}
	for i := range a.ContainerStatuses {
		if a.ContainerStatuses[i].Ready != b.ContainerStatuses[i].Ready {
			return false
		}
	}
	ca, cb := api.FindCondition(a.Conditions, api.PodReady), api.FindCondition(b.Conditions, api.PodReady)
	return ca != nil && cb != nil && ca.Status == cb.Status
}
