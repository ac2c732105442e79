package controller_test

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"testing"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/controller/internal/simnode"
)

func TestServiceEndpointsFollowReadyPods(t *testing.T) {
	runServiceEndpoints(fakeCluster(t))
}

func TestIntegrationServiceEndpointsFollowReadyPods(t *testing.T) {
	runServiceEndpoints(realCluster(t))
}

func runServiceEndpoints(c *cluster) {
	c.nodes(simnode.Options{}, "n1", "n2")
	c.control(fastOptions("cp1"))
	d := webDeployment("web", 2, "registry.example/web:1")
	d.Spec.Template.Spec.Containers[0].Ports = []api.ContainerPort{{Name: "http", ContainerPort: 8080}}
	if err := c.cli.Create(c.ctx, d); err != nil {
		c.t.Fatal(err)
	}
	svc := &api.Service{
		Metadata: api.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: api.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []api.ServicePort{
			{Name: "http", Port: 80, TargetPort: api.FromString("http")},
		}},
	}
	if err := c.cli.Create(c.ctx, svc); err != nil {
		c.t.Fatal(err)
	}
	endpoints := func() *api.Endpoints {
		var ep api.Endpoints
		if err := c.cli.Get(c.ctx, "default", "web", &ep); err != nil {
			return nil
		}
		return &ep
	}
	ready := func(ep *api.Endpoints) []api.EndpointAddress {
		if ep == nil || len(ep.Subsets) != 1 {
			return nil
		}
		return ep.Subsets[0].Addresses
	}
	c.waitFor("two ready endpoints", func() bool { return len(ready(endpoints())) == 2 })
	ep := endpoints()
	if p := ep.Subsets[0].Ports; len(p) != 1 || p[0].Port != 8080 || p[0].Name != "http" {
		c.t.Fatalf("named target port resolved to %+v, want http:8080", p)
	}
	if r := api.ControllerOf(&ep.Metadata); r == nil || r.Kind != "Service" || r.UID != svc.Metadata.UID {
		c.t.Fatalf("endpoints must be owned by their service: %+v", ep.Metadata.OwnerReferences)
	}
	// A pod that starts terminating leaves at once.
	gone := ep.Subsets[0].Addresses[0].PodName
	var p api.Pod
	if err := c.cli.Get(c.ctx, "default", gone, &p); err != nil {
		c.t.Fatal(err)
	}
	if err := c.cli.Delete(c.ctx, &p); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("the deleted pod to leave the endpoints", func() bool {
		for _, a := range ready(endpoints()) {
			if a.PodName == gone {
				return false
			}
		}
		return true
	})
	c.waitFor("a replacement pod in the endpoints", func() bool { return len(ready(endpoints())) == 2 })
}

func TestGarbageCollectorRemovesWhatDeletedOwnersLeft(t *testing.T) {
	runGarbageCollection(fakeCluster(t))
}

func TestIntegrationGarbageCollectorRemovesWhatDeletedOwnersLeft(t *testing.T) {
	runGarbageCollection(realCluster(t))
}

func runGarbageCollection(c *cluster) {
	c.nodes(simnode.Options{}, "n1")
	c.control(fastOptions("cp1"))
	d := webDeployment("web", 2, "registry.example/web:1")
	if err := c.cli.Create(c.ctx, d); err != nil {
		c.t.Fatal(err)
	}
	svc := &api.Service{
		Metadata: api.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:     api.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []api.ServicePort{{Port: 80}}},
	}
	if err := c.cli.Create(c.ctx, svc); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("rollout complete", func() bool { return complete(c.deployment("web"), 1) })
	c.waitFor("endpoints", func() bool {
		var ep api.Endpoints
		return c.cli.Get(c.ctx, "default", "web", &ep) == nil
	})
	// An object whose owner never existed under that UID is collected too.
	stray := &api.Pod{
		Metadata: api.ObjectMeta{Name: "stray", Namespace: "default", OwnerReferences: []api.OwnerReference{
			{Kind: "Deployment", Name: "web", UID: "not-the-web-deployment", Controller: true},
		}},
		Spec: api.PodSpec{Containers: []api.Container{{Name: "c", Image: "registry.example/web:1"}}},
	}
	if err := c.cli.Create(c.ctx, stray); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("the stray pod collected", func() bool {
		var p api.Pod
		return api.IsNotFound(c.cli.Get(c.ctx, "default", "stray", &p))
	})
	if err := c.cli.Delete(c.ctx, d); err != nil {
		c.t.Fatal(err)
	}
	if err := c.cli.Delete(c.ctx, svc); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("pods, revisions and endpoints collected", func() bool {
		var revs api.RevisionList
		var ep api.Endpoints
		if err := c.cli.List(c.ctx, &revs, client.ListOptions{Namespace: "default"}); err != nil {
			return false
		}
		return len(c.pods(map[string]string{"app": "web"})) == 0 && len(revs.Items) == 0 &&
			api.IsNotFound(c.cli.Get(c.ctx, "default", "web", &ep))
	})
}

func TestIntegrationTerminatingNamespaceIsEmptiedAndRemoved(t *testing.T) {
	c := realCluster(t)
	c.nodes(simnode.Options{}, "n1")
	c.control(fastOptions("cp1"))
	ns := &api.Namespace{Metadata: api.ObjectMeta{Name: "team"}}
	if err := c.cli.Create(c.ctx, ns); err != nil {
		t.Fatal(err)
	}
	d := webDeployment("web", 2, "registry.example/web:1")
	d.Metadata.Namespace = "team"
	if err := c.cli.Create(c.ctx, d); err != nil {
		t.Fatal(err)
	}
	c.waitFor("pods running in the namespace", func() bool {
		var l api.PodList
		return c.cli.List(c.ctx, &l, client.ListOptions{Namespace: "team"}) == nil && len(l.Items) == 2
	})
	if err := c.cli.Delete(c.ctx, ns); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the namespace removed", func() bool {
		var got api.Namespace
		return api.IsNotFound(c.cli.Get(c.ctx, "", "team", &got))
	})
}

func TestSilentNodesPodsLeaveServiceBeforeEviction(t *testing.T) {
	runSilentNode(fakeCluster(t))
}

func TestIntegrationSilentNodesPodsLeaveServiceBeforeEviction(t *testing.T) {
	runSilentNode(realCluster(t))
}

func runSilentNode(c *cluster) {
	nodes := c.nodes(simnode.Options{}, "n1", "n2")
	opts := silentNodeOptions("cp1")
	opts.PodEvictionTimeout = time.Hour // only the not-ready marking happens here
	c.control(opts)
	if err := c.cli.Create(c.ctx, webDeployment("web", 2, "registry.example/web:1")); err != nil {
		c.t.Fatal(err)
	}
	svc := &api.Service{
		Metadata: api.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:     api.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []api.ServicePort{{Port: 80}}},
	}
	if err := c.cli.Create(c.ctx, svc); err != nil {
		c.t.Fatal(err)
	}
	addresses := func() (ready, notReady []api.EndpointAddress) {
		var ep api.Endpoints
		if err := c.cli.Get(c.ctx, "default", "web", &ep); err != nil {
			return nil, nil
		}
		for _, s := range ep.Subsets {
			ready = append(ready, s.Addresses...)
			notReady = append(notReady, s.NotReadyAddresses...)
		}
		return ready, notReady
	}
	c.waitFor("two ready endpoints", func() bool { r, _ := addresses(); return len(r) == 2 })
	nodes["n1"].Stop()
	c.waitFor("n1's pod out of service", func() bool {
		r, nr := addresses()
		for _, a := range r {
			if a.NodeName == "n1" {
				return false
			}
		}
		return len(nr) == 1 && nr[0].NodeName == "n1"
	})
	for _, p := range c.pods(map[string]string{"app": "web"}) {
		if p.Spec.NodeName == "n1" {
			cond := api.FindCondition(p.Status.Conditions, api.PodReady)
			if cond == nil || cond.Status != api.ConditionFalse || cond.Reason != "NodeNotReady" {
				c.t.Fatalf("pod on the silent node: Ready condition %+v", cond)
			}
		}
	}
}

func TestReturningToAnOldTemplateRenumbersItsRevision(t *testing.T) {
	runReturnToOldTemplate(fakeCluster(t))
}

func TestIntegrationReturningToAnOldTemplateRenumbersItsRevision(t *testing.T) {
	runReturnToOldTemplate(realCluster(t))
}

func runReturnToOldTemplate(c *cluster) {
	c.nodes(simnode.Options{}, "n1", "n2")
	c.control(fastOptions("cp1"))
	if err := c.cli.Create(c.ctx, webDeployment("web", 2, "registry.example/web:1")); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("revision 1 live", func() bool { return complete(c.deployment("web"), 1) })
	setImage := func(img string) {
		d := c.deployment("web")
		d.Spec.Template.Spec.Containers[0].Image = img
		if err := c.cli.Update(c.ctx, d); err != nil {
			c.t.Fatal(err)
		}
	}
	setImage("registry.example/web:2")
	c.waitFor("revision 2 live", func() bool { return complete(c.deployment("web"), 2) })
	setImage("registry.example/web:1")
	c.waitFor("the first template live again as revision 3", func() bool { return complete(c.deployment("web"), 3) })
	var revs api.RevisionList
	if err := c.cli.List(c.ctx, &revs, client.ListOptions{Namespace: "default"}); err != nil {
		c.t.Fatal(err)
	}
	numbers := map[string]int64{}
	for _, r := range revs.Items {
		numbers[r.Template.Spec.Containers[0].Image] = r.Number
	}
	if len(revs.Items) != 2 || numbers["registry.example/web:1"] != 3 || numbers["registry.example/web:2"] != 2 {
		c.t.Fatalf("revisions by image %v (%d objects): the returning template must reuse its revision, renumbered 3", numbers, len(revs.Items))
	}
	for _, p := range c.pods(map[string]string{"app": "web"}) {
		if api.IsPodTerminating(&p) {
			continue
		}
		if got := p.Metadata.Annotations[api.AnnotationRevision]; got != "3" {
			c.t.Fatalf("pod %s carries revision %q, want 3", p.Metadata.Name, got)
		}
	}
	// And "undo" means the one before again.
	d, err := c.cli.Rollback(c.ctx, "default", "web", 0)
	if err != nil {
		if api.ReasonOf(err) == api.ReasonNotFound && strings.Contains(err.Error(), "no such path") {
			return // the fake API has no rollback endpoint
		}
		c.t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:2" {
		c.t.Fatalf("undo after returning to revision 1's template set image %q, want revision 2's", img)
	}
	c.waitFor("revision 2 renumbered 4 and live", func() bool { return complete(c.deployment("web"), 4) })
}

func TestRevisionsBeyondTheHistoryLimitAreDeleted(t *testing.T) {
	c := fakeCluster(t)
	c.nodes(simnode.Options{}, "n1")
	c.control(fastOptions("cp1"))
	d := webDeployment("web", 1, "registry.example/web:1")
	limit := int32(1)
	d.Spec.RevisionHistoryLimit = &limit
	if err := c.cli.Create(c.ctx, d); err != nil {
		t.Fatal(err)
	}
	c.waitFor("revision 1 live", func() bool { return complete(c.deployment("web"), 1) })
	for rev := int64(2); rev <= 4; rev++ {
		d := c.deployment("web")
		d.Spec.Template.Spec.Containers[0].Image = fmt.Sprintf("registry.example/web:%d", rev)
		if err := c.cli.Update(c.ctx, d); err != nil {
			t.Fatal(err)
		}
		c.waitFor(fmt.Sprintf("revision %d live", rev), func() bool { return complete(c.deployment("web"), rev) })
	}
	numbers := func() []int64 {
		var revs api.RevisionList
		if err := c.cli.List(c.ctx, &revs, client.ListOptions{Namespace: "default"}); err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, r := range revs.Items {
			out = append(out, r.Number)
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out
	}
	c.waitFor("old revisions pruned", func() bool { return len(numbers()) == 2 })
	if got := numbers(); got[0] != 3 || got[1] != 4 {
		t.Fatalf("revisions %v, want the live one (4) and one more (3)", got)
	}
}
