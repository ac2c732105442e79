package agent

import (
	"context"
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
	h := newHarness(t, nil) // the gate's bound is an hour: only the rules may open it
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
