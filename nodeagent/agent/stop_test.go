package agent

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/nodeagent/runtime"
)

// stopWitness records what the cluster looked like when the agent sent a
// container its stop signal.
type stopWitness struct {
	runtime.Runtime
	look func() string
	mu   sync.Mutex
	seen []string
}

func (s *stopWitness) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	s.mu.Lock()
	s.seen = append(s.seen, s.look())
	s.mu.Unlock()
	return s.Runtime.StopContainer(ctx, id, grace)
}

func TestGracefulStopWaitsForEveryNodesRulesBeforeSIGTERM(t *testing.T) {
	// The gate's bound is an hour, and node-b (which never heartbeats
	// here) counts as alive for an hour: only the rules may open it.
	h := newHarness(t, func(c *Config) { c.StopGateNodeGrace = Duration(time.Hour) })
	ctx := h.ctx()
	other := &api.Node{Metadata: api.ObjectMeta{Name: "node-b"}, Spec: api.NodeSpec{PodCIDR: "10.244.2.0/24"}}
	if err := h.admin.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	other.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue}}
	if err := h.admin.UpdateStatus(ctx, other); err != nil {
		t.Fatal(err)
	}
	witness := &stopWitness{Runtime: h.fake}
	witness.look = func() string {
		ep := &api.Endpoints{}
		n := &api.Node{}
		if err := h.admin.Get(context.Background(), "default", "web", ep); err != nil {
			return "endpoints unreadable: " + err.Error()
		}
		if err := h.admin.Get(context.Background(), "", "node-b", n); err != nil {
			return "node unreadable: " + err.Error()
		}
		if len(ep.Subsets) > 0 && len(ep.Subsets[0].Addresses) > 0 {
			return "endpoints still listed the pod"
		}
		if n.Status.ServiceRulesRevision < ep.Metadata.ResourceVersion {
			return "node-b had not programmed the removal"
		}
		return "ok"
	}
	h.rt = witness
	h.start()
	h.createPod("web-1", nil)
	p := h.waitPod("web-1", "became Ready", api.IsPodReady)
	ep := &api.Endpoints{
		Metadata: api.ObjectMeta{Namespace: "default", Name: "web"},
		Subsets: []api.EndpointSubset{{Addresses: []api.EndpointAddress{{IP: p.Status.PodIP, NodeName: nodeName, PodName: "web-1"}},
			Ports: []api.EndpointPort{{Port: 8080}}}},
	}
	if err := h.admin.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}

	if err := h.admin.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	h.waitPod("web-1", "was reported not Ready", func(p *api.Pod) bool { return !api.IsPodReady(p) })

	// The endpoints controller drops the pod; node-b then catches up.
	ep.Subsets[0].NotReadyAddresses, ep.Subsets[0].Addresses = ep.Subsets[0].Addresses, nil
	if err := h.admin.Update(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if err := h.admin.Get(ctx, "default", "web", ep); err != nil {
		t.Fatal(err)
	}
	if err := h.admin.Get(ctx, "", "node-b", other); err != nil {
		t.Fatal(err)
	}
	other.Status.ServiceRulesRevision = ep.Metadata.ResourceVersion
	if err := h.admin.UpdateStatus(ctx, other); err != nil {
		t.Fatal(err)
	}

	h.wait("finalised the deletion", func() bool { return h.pod("web-1") == nil })
	witness.mu.Lock()
	defer witness.mu.Unlock()
	if len(witness.seen) != 1 || witness.seen[0] != "ok" {
		t.Fatalf("at SIGTERM: %v", witness.seen)
	}
	if h.net.isAttached(p.Metadata.UID) {
		t.Fatal("pod network left attached")
	}
	if infos, _ := h.fake.ListContainers(ctx); len(infos) != 0 {
		t.Fatalf("containers left: %+v", infos)
	}
	n := &api.Node{}
	if err := h.admin.Get(ctx, "", nodeName, n); err != nil {
		t.Fatal(err)
	}
	if n.Status.ServiceRulesRevision < ep.Metadata.ResourceVersion {
		t.Fatalf("node reports rules revision %d, endpoints are at %d", n.Status.ServiceRulesRevision, ep.Metadata.ResourceVersion)
	}
}

// A Ready node whose heartbeats stopped (it lost power; the control plane
// has not marked it NotReady yet) must not hold the gate: it cannot route
// to the pod. The gate opens once the node has been silent for the grace,
// long before its timeout, and says which node it did not wait for.
func TestGracefulStopDoesNotWaitForASilentNode(t *testing.T) {
	const grace = 500 * time.Millisecond
	h := newHarness(t, func(c *Config) { c.StopGateNodeGrace = Duration(grace) })
	logs := &lockedBuffer{}
	h.log = slog.New(slog.NewTextHandler(logs, nil))
	ctx := h.ctx()
	now := time.Now()
	silent := &api.Node{Metadata: api.ObjectMeta{Name: "node-silent"}, Spec: api.NodeSpec{PodCIDR: "10.244.2.0/24"}}
	if err := h.admin.Create(ctx, silent); err != nil {
		t.Fatal(err)
	}
	silent.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue}}
	silent.Status.LastHeartbeatTime = &now
	if err := h.admin.UpdateStatus(ctx, silent); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.createPod("web-1", nil)
	p := h.waitPod("web-1", "became Ready", api.IsPodReady)
	ep := &api.Endpoints{Metadata: api.ObjectMeta{Namespace: "default", Name: "web"},
		Subsets: []api.EndpointSubset{{Addresses: []api.EndpointAddress{{IP: p.Status.PodIP}}}}}
	if err := h.admin.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if err := h.admin.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	h.waitPod("web-1", "was reported not Ready", func(p *api.Pod) bool { return !api.IsPodReady(p) })
	ep.Subsets[0].NotReadyAddresses, ep.Subsets[0].Addresses = ep.Subsets[0].Addresses, nil
	if err := h.admin.Update(ctx, ep); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	h.wait("finalised the deletion", func() bool { return h.pod("web-1") == nil })
	// The gate's timeout is an hour: only giving up on the silent node
	// can have opened it.
	if took := time.Since(began); took > 30*time.Second {
		t.Fatalf("the deletion took %s", took)
	}
	if !strings.Contains(logs.String(), "node=node-silent") || !strings.Contains(logs.String(), "not waiting for a node that has gone silent") {
		t.Fatalf("the agent did not say which node it gave up on:\n%s", logs.String())
	}
	if len(h.fake.Stops()) != 1 {
		t.Fatalf("stops = %+v, want one", h.fake.Stops())
	}
}

// The gate judges silence on the agent's own clock, by when a node's
// heartbeats last reached it, and only while its own heartbeats come back
// through the same informer: a stale informer makes every node look
// silent, and then it must keep waiting.
func TestNodeLivenessJudgesSilenceOnlyWithACurrentInformer(t *testing.T) {
	const grace = 30 * time.Second
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	hb := func(name string, at time.Time) *api.Node {
		return &api.Node{Metadata: api.ObjectMeta{Name: name}, Status: api.NodeStatus{LastHeartbeatTime: &at}}
	}
	// seen is a heartbeat as the informer delivered it: the node, the
	// heartbeat time it reported, and when it reached us (offsets of t0).
	type seen struct {
		node         string
		reported, at time.Duration
	}
	tests := []struct {
		name       string
		seen       []seen
		now        time.Duration
		wantSilent bool
		wantFor    time.Duration
	}{
		{
			name: "other node silent past the grace, ours current",
			seen: []seen{{"b", 0, 0}, {"self", 40 * time.Second, 40 * time.Second}},
			now:  45 * time.Second, wantSilent: true, wantFor: 45 * time.Second,
		},
		{
			name: "other node within the grace",
			seen: []seen{{"b", 20 * time.Second, 20 * time.Second}, {"self", 40 * time.Second, 40 * time.Second}},
			now:  45 * time.Second, wantFor: 25 * time.Second,
		},
		{
			name: "our own heartbeats stopped coming back: the informer may be stale",
			seen: []seen{{"b", 0, 0}, {"self", 0, 0}},
			now:  45 * time.Second,
		},
		{
			name: "a repeated heartbeat value is not news",
			seen: []seen{{"b", 0, 0}, {"b", 0, 20 * time.Second}, {"self", 40 * time.Second, 40 * time.Second}},
			now:  45 * time.Second, wantSilent: true, wantFor: 45 * time.Second,
		},
		{
			name: "a node's clock is never compared with ours",
			seen: []seen{{"b", -time.Hour, 0}, {"b", -time.Hour + 10*time.Second, 40 * time.Second}, {"self", 40 * time.Second, 40 * time.Second}},
			now:  45 * time.Second, wantFor: 5 * time.Second,
		},
		{
			name: "a node never seen is not declared silent",
			seen: []seen{{"self", 40 * time.Second, 40 * time.Second}},
			now:  45 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newNodeLiveness()
			for _, s := range tt.seen {
				l.observe(hb(s.node, t0.Add(s.reported)), t0.Add(s.at))
			}
			d, silent := l.silent("b", "self", t0.Add(tt.now), grace)
			if silent != tt.wantSilent || d != tt.wantFor {
				t.Errorf("silent = %v after %s, want %v after %s", silent, d, tt.wantSilent, tt.wantFor)
			}
		})
	}
}

func TestGracefulStopGateIsBoundedWhenANodeNeverCatchesUp(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StopGateTimeout = Duration(time.Millisecond) })
	ctx := h.ctx()
	h.start()
	h.createPod("web-1", nil)
	p := h.waitPod("web-1", "became Ready", api.IsPodReady)
	ep := &api.Endpoints{Metadata: api.ObjectMeta{Namespace: "default", Name: "web"},
		Subsets: []api.EndpointSubset{{Addresses: []api.EndpointAddress{{IP: p.Status.PodIP}}}}}
	if err := h.admin.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if err := h.admin.Delete(ctx, p, client.GracePeriod(5)); err != nil {
		t.Fatal(err)
	}
	h.wait("finalised the deletion", func() bool { return h.pod("web-1") == nil })
	stops := h.fake.Stops()
	if len(stops) != 1 || stops[0].Grace != 5*time.Second {
		t.Fatalf("stops = %+v, want one with the 5s grace period", stops)
	}
}

func TestAgentRestartAdoptsRunningContainersAndRemovesOrphans(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RestartBackoff = Duration(time.Millisecond) })
	h.start()
	h.createPod("web-1", nil)
	p := h.waitPod("web-1", "became Ready", api.IsPodReady)
	id := containerStatus(p).ContainerID
	ip := p.Status.PodIP

	h.stop()
	if err := h.fake.Close(); err != nil {
		t.Fatal(err)
	}
	// While the agent is down, a pod of another node's leftovers appears
	// in the runtime, and web-1 stays bound here.
	reopened := h.fake.Reopen()
	orphanID, err := runtime.RunContainer(h.ctx(), reopened, runtime.ContainerSpec{
		Meta:  runtime.Meta{PodNamespace: "default", PodName: "gone", PodUID: "uid-gone", ContainerName: "web"},
		Image: webImage,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.fake, h.rt = reopened, reopened
	before := len(reopened.Calls())
	h.start()

	h.wait("removed the orphan", func() bool {
		_, err := reopened.ContainerStatus(context.Background(), orphanID)
		return err != nil
	})
	p = h.waitPod("web-1", "kept running", func(p *api.Pod) bool { return api.IsPodReady(p) })
	if got := containerStatus(p).ContainerID; got != id || p.Status.PodIP != ip {
		t.Fatalf("after restart: container %s ip %s, want %s %s", got, p.Status.PodIP, id, ip)
	}
	for _, c := range reopened.Calls()[before:] {
		if strings.HasPrefix(c, "create ") || strings.HasPrefix(c, "start ") {
			t.Fatalf("restart recreated or restarted the container: calls %v", reopened.Calls())
		}
	}
	// Exits still reach the new agent, and restart counts carry on.
	if err := reopened.Exit(id, 1); err != nil {
		t.Fatal(err)
	}
	h.waitPod("web-1", "was restarted by the new agent", func(p *api.Pod) bool {
		cs := containerStatus(p)
		return cs.RestartCount == 1 && cs.State.Running != nil && cs.ContainerID != id
	})
}

func TestAgentRestartKeepsAdoptedPodsReadyWhileTheirProbesPass(t *testing.T) {
	h := newHarness(t, nil)
	passing := func(string, []string) (int, []byte, error) { return 0, nil, nil }
	h.fake.SetExec(passing)
	h.start()
	h.createPod("web-1", func(p *api.Pod) {
		p.Spec.Containers[0].ReadinessProbe = &api.Probe{Exec: &api.ExecAction{Command: []string{"ready"}}, PeriodSeconds: 1}
	})
	p := h.waitPod("web-1", "became Ready", api.IsPodReady)
	since := api.FindCondition(p.Status.Conditions, api.PodReady).LastTransitionTime

	h.stop()
	if err := h.fake.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := h.fake.Reopen()
	probed := make(chan struct{}, 16)
	reopened.SetExec(func(id string, cmd []string) (int, []byte, error) {
		select {
		case probed <- struct{}{}:
		default:
		}
		return passing(id, cmd)
	})
	h.fake, h.rt = reopened, reopened
	h.start()
	// Two probes of the new agent: its first verdict has been applied
	// and any status it caused has been written.
	for range 2 {
		select {
		case <-probed:
		case <-h.ctx().Done():
			t.Fatal("the new agent never probed the adopted container")
		}
	}
	p = h.waitPod("web-1", "stayed Ready", api.IsPodReady)
	if got := api.FindCondition(p.Status.Conditions, api.PodReady).LastTransitionTime; !got.Equal(since) {
		t.Fatalf("Ready condition changed at %s across the agent restart (Ready since %s): the pod left its services", got, since)
	}
}
