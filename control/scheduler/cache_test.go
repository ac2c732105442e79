package scheduler

import (
	"fmt"
	"strings"
	"testing"

	"github.com/berth-io/berth/control/api"
)

func node(name string, ready bool, cpu, mem, pods string, labels map[string]string) *api.Node {
	st := api.ConditionFalse
	if ready {
		st = api.ConditionTrue
	}
	alloc := api.ResourceList{}
	if cpu != "" {
		alloc[api.ResourceCPU] = api.Quantity(cpu)
	}
	if mem != "" {
		alloc[api.ResourceMemory] = api.Quantity(mem)
	}
	if pods != "" {
		alloc[api.ResourcePods] = api.Quantity(pods)
	}
	return &api.Node{
		Metadata: api.ObjectMeta{Name: name, Labels: labels},
		Status:   api.NodeStatus{Allocatable: alloc, Conditions: []api.Condition{{Type: api.NodeReady, Status: st}}},
	}
}

func pod(name, owner, cpu, mem string) *api.Pod {
	req := api.ResourceList{}
	if cpu != "" {
		req[api.ResourceCPU] = api.Quantity(cpu)
	}
	if mem != "" {
		req[api.ResourceMemory] = api.Quantity(mem)
	}
	p := &api.Pod{
		Metadata: api.ObjectMeta{Name: name, Namespace: "default"},
		Spec:     api.PodSpec{Containers: []api.Container{{Name: "c", Image: "img", Resources: api.ResourceRequirements{Requests: req}}}},
	}
	if owner != "" {
		p.Metadata.OwnerReferences = []api.OwnerReference{{Kind: "Deployment", Name: owner, UID: owner, Controller: true}}
	}
	return p
}

func bound(p *api.Pod, node string) *api.Pod {
	p.Spec.NodeName = node
	return p
}

func TestFiltersExplainWhyNoNodeFits(t *testing.T) {
	tests := []struct {
		name     string
		nodes    []*api.Node
		existing []*api.Pod
		pod      *api.Pod
		want     string // node, or the FitError message
	}{
		{
			name:  "a not-ready node is skipped",
			nodes: []*api.Node{node("a", false, "4", "4Gi", "10", nil), node("b", true, "4", "4Gi", "10", nil)},
			pod:   pod("p", "", "1", ""),
			want:  "b",
		},
		{
			name: "a cordoned node is skipped",
			nodes: func() []*api.Node {
				a := node("a", true, "4", "4Gi", "10", nil)
				a.Spec.Unschedulable = true
				return []*api.Node{a, node("b", true, "4", "4Gi", "10", nil)}
			}(),
			pod:  pod("p", "", "", ""),
			want: "b",
		},
		{
			name:  "node selector must match labels",
			nodes: []*api.Node{node("a", true, "4", "4Gi", "10", nil), node("b", true, "4", "4Gi", "10", map[string]string{"disk": "ssd"})},
			pod: func() *api.Pod {
				p := pod("p", "", "", "")
				p.Spec.NodeSelector = map[string]string{"disk": "ssd"}
				return p
			}(),
			want: "b",
		},
		{
			name:     "requests already bound count against the node",
			nodes:    []*api.Node{node("a", true, "2", "4Gi", "10", nil), node("b", true, "2", "4Gi", "10", nil)},
			existing: []*api.Pod{bound(pod("x", "", "1500m", ""), "a")},
			pod:      pod("p", "", "1", ""),
			want:     "b",
		},
		{
			name:  "every filter failing is counted per node",
			nodes: []*api.Node{node("a", false, "4", "4Gi", "10", nil), node("b", true, "500m", "4Gi", "10", nil), node("c", true, "4", "64Mi", "10", nil), node("d", true, "4", "4Gi", "1", nil)},
			existing: []*api.Pod{
				bound(pod("x", "", "", ""), "d"),
			},
			pod:  pod("p", "", "1", "128Mi"),
			want: "0/4 nodes are available: 1 not ready, 1 too many pods, 1 insufficient cpu, 1 insufficient memory",
		},
		{
			name: "no nodes at all",
			pod:  pod("p", "", "", ""),
			want: "0/0 nodes are available: the cluster has no nodes",
		},
		{
			name:  "the least loaded node wins",
			nodes: []*api.Node{node("a", true, "4", "4Gi", "10", nil), node("b", true, "4", "4Gi", "10", nil)},
			existing: []*api.Pod{
				bound(pod("x", "", "2", "1Gi"), "a"),
			},
			pod:  pod("p", "", "100m", ""),
			want: "b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache()
			for _, n := range tt.nodes {
				c.SetNode(n)
			}
			for _, p := range tt.existing {
				c.SetPod(p)
			}
			got, fe := c.Schedule(tt.pod)
			if fe != nil {
				got = fe.Error()
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReplicasOfOneOwnerSpreadAcrossNodes(t *testing.T) {
	c := NewCache()
	for _, n := range []string{"a", "b", "c"} {
		c.SetNode(node(n, true, "8", "8Gi", "100", nil))
	}
	// Unrelated load makes "a" the least loaded choice for anything else.
	c.SetPod(bound(pod("other1", "other", "1", ""), "b"))
	c.SetPod(bound(pod("other2", "other", "1", ""), "c"))
	count := map[string]int{}
	for i := range 6 {
		p := pod(fmt.Sprintf("web-%d", i), "web", "100m", "")
		n, fe := c.Schedule(p)
		if fe != nil {
			t.Fatal(fe)
		}
		c.Assume(p, n)
		count[n]++
	}
	for _, n := range []string{"a", "b", "c"} {
		if count[n] != 2 {
			t.Fatalf("replicas per node %v, want 2 on each", count)
		}
	}
}

func TestAccountingFollowsPodChanges(t *testing.T) {
	c := NewCache()
	c.SetNode(node("a", true, "1", "", "10", nil))
	p := pod("p", "", "1", "")
	c.Assume(p, "a")
	if _, fe := c.Schedule(pod("q", "", "1", "")); fe == nil {
		t.Fatal("an assumed binding must count against its node")
	}
	// The watch still shows the pod unbound: the assumption stays.
	c.SetPod(pod("p", "", "1", ""))
	if _, fe := c.Schedule(pod("q", "", "1", "")); fe == nil {
		t.Fatal("an older unbound view of an assumed pod must not free its node")
	}
	done := bound(pod("p", "", "1", ""), "a")
	done.Status.Phase = api.PodSucceeded
	c.SetPod(done)
	if n, fe := c.Schedule(pod("q", "", "1", "")); fe != nil || n != "a" {
		t.Fatalf("a finished pod frees its node: got %q %v", n, fe)
	}
	c.RemovePod("default/p")
	if len(c.pods) != 0 || c.nodes["a"].reqCPU != 0 || c.nodes["a"].pods != 0 {
		t.Fatalf("accounting left over: %+v", c.nodes["a"])
	}
}

// TestBindingCostDoesNotGrowWithPods proves the per-node accounting: a
// decision evaluates each node once, whether 1,000 or 10,000 pods are
// bound.
func TestBindingCostDoesNotGrowWithPods(t *testing.T) {
	const nodes = 200
	cost := func(existing int) int64 {
		c := NewCache()
		for i := range nodes {
			c.SetNode(node(fmt.Sprintf("n%03d", i), true, "1000", "1000Gi", "1000", nil))
		}
		for i := range existing {
			c.SetPod(bound(pod(fmt.Sprintf("p%05d", i), fmt.Sprintf("d%d", i%50), "10m", "10Mi"), fmt.Sprintf("n%03d", i%nodes)))
		}
		before := c.evaluations
		for i := range 10 {
			p := pod(fmt.Sprintf("new%d", i), "d1", "10m", "10Mi")
			n, fe := c.Schedule(p)
			if fe != nil {
				t.Fatal(fe)
			}
			c.Assume(p, n)
		}
		return c.evaluations - before
	}
	small, large := cost(1_000), cost(10_000)
	if small != large {
		t.Fatalf("10 bindings evaluated %d nodes with 1,000 pods but %d with 10,000: the cost grows with pods", small, large)
	}
	if small != 10*nodes {
		t.Fatalf("10 bindings evaluated %d nodes, want %d (each node once per binding)", small, 10*nodes)
	}
}

func TestFitErrorNamesFiltersInOrder(t *testing.T) {
	fe := &FitError{Nodes: 3, Failures: map[string]int{failCPU: 2, failNotReady: 1}}
	if got := fe.Error(); !strings.HasPrefix(got, "0/3 nodes are available: 1 not ready, 2 insufficient cpu") {
		t.Fatalf("got %q", got)
	}
}
