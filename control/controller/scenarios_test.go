package controller_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/client/clienttest"
	"github.com/berth-io/berth/control/controller"
	"github.com/berth-io/berth/control/controller/internal/simnode"
)

// cluster is an API to run scenarios against: the clienttest fake here,
// a real control plane in the integration tests.
type cluster struct {
	t   *testing.T
	cli *client.Client
	ctx context.Context
}

func fakeCluster(t *testing.T) *cluster {
	t.Helper()
	srv, err := clienttest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &cluster{t: t, cli: srv.Client(), ctx: t.Context()}
}

// fastOptions are controller options with small timings for tests. A
// node is never found silent here, however late a loaded machine (-race,
// two cores) delivers its heartbeats: a scenario that is not about lost
// nodes must not depend on how fast they arrive. The scenarios that stop
// a node use silentNodeOptions.
func fastOptions(id string) controller.Options {
	return controller.Options{
		Identity:      id,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
		NodeGracePeriod: time.Hour, PodEvictionTimeout: time.Hour,
		GCInterval: 200 * time.Millisecond,
	}
}

// silentNodeOptions are fastOptions for scenarios that stop a node: it is
// found silent 2 s after its last heartbeat and its pods are evicted a
// second later. A healthy node's heartbeat delayed that long only delays
// such a scenario, whose checks all wait for an outcome.
func silentNodeOptions(id string) controller.Options {
	o := fastOptions(id)
	o.NodeGracePeriod, o.PodEvictionTimeout = 2*time.Second, time.Second
	return o
}

// control starts one control-plane instance's loops; stop ends them and
// waits.
func (c *cluster) control(opts controller.Options) (stop func()) {
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := controller.Run(ctx, c.cli, opts); err != nil {
			c.t.Errorf("controller.Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	c.t.Cleanup(stop)
	return stop
}

func (c *cluster) nodes(opts simnode.Options, names ...string) map[string]*simnode.Node {
	c.t.Helper()
	out := map[string]*simnode.Node{}
	for _, n := range names {
		sn, err := simnode.Start(c.ctx, c.cli, n, opts)
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(sn.Stop)
		out[n] = sn
	}
	return out
}

func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	if err := clienttest.WaitFor(c.ctx, cond); err != nil {
		c.t.Fatalf("waiting for %s: %v", what, err)
	}
}

func (c *cluster) deployment(name string) *api.Deployment {
	c.t.Helper()
	var d api.Deployment
	if err := c.cli.Get(c.ctx, "default", name, &d); err != nil {
		c.t.Fatal(err)
	}
	return &d
}

func (c *cluster) pods(labels map[string]string) []api.Pod {
	c.t.Helper()
	var l api.PodList
	if err := c.cli.List(c.ctx, &l, client.ListOptions{Namespace: "default", Labels: labels}); err != nil {
		c.t.Fatal(err)
	}
	return l.Items
}

func webDeployment(name string, replicas int32, image string) *api.Deployment {
	labels := map[string]string{"app": name}
	return &api.Deployment{
		Metadata: api.ObjectMeta{Name: name, Namespace: "default"},
		Spec: api.DeploymentSpec{
			Replicas: &replicas,
			Selector: labels,
			Template: api.PodTemplate{
				Metadata: api.TemplateMeta{Labels: labels},
				Spec: api.PodSpec{Containers: []api.Container{{
					Name: "web", Image: image,
					Resources: api.ResourceRequirements{Requests: api.ResourceList{api.ResourceCPU: "100m"}},
				}}},
			},
		},
	}
}

// complete reports whether the deployment's latest rollout has finished.
func complete(d *api.Deployment, revision int64) bool {
	return d.Status.ObservedGeneration == d.Metadata.Generation && d.Status.RolloutState == api.RolloutComplete &&
		d.Status.LiveRevision == revision && d.Status.AvailableReplicas == *d.Spec.Replicas
}

func badImage(p *api.Pod) bool { return !strings.Contains(p.Spec.Containers[0].Image, "bad") }

func TestDeploymentReplicasAreSpreadAcrossNodes(t *testing.T) {
	runDeploymentSpread(fakeCluster(t))
}

func runDeploymentSpread(c *cluster) {
	c.nodes(simnode.Options{}, "n1", "n2", "n3")
	c.control(fastOptions("cp1"))
	if err := c.cli.Create(c.ctx, webDeployment("web", 3, "registry.example/web:1")); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("rollout complete", func() bool { return complete(c.deployment("web"), 1) })
	used := map[string]bool{}
	for _, p := range c.pods(map[string]string{"app": "web"}) {
		used[p.Spec.NodeName] = true
		if p.Metadata.Labels[api.LabelTemplateHash] == "" || p.Metadata.Annotations[api.AnnotationRevision] != "1" {
			c.t.Fatalf("pod %s lacks the template hash label or revision annotation", p.Metadata.Name)
		}
		if r := api.ControllerOf(&p.Metadata); r == nil || r.Kind != "Deployment" || r.Name != "web" {
			c.t.Fatalf("pod %s is not controlled by its deployment", p.Metadata.Name)
		}
	}
	if len(used) != 3 {
		c.t.Fatalf("3 replicas on %d nodes, want one on each of 3", len(used))
	}
	var revs api.RevisionList
	if err := c.cli.List(c.ctx, &revs, client.ListOptions{Namespace: "default"}); err != nil {
		c.t.Fatal(err)
	}
	if len(revs.Items) != 1 || revs.Items[0].Number != 1 || revs.Items[0].Deployment != "web" {
		c.t.Fatalf("want one revision numbered 1, got %+v", revs.Items)
	}
}

func TestRollingUpdateStaysWithinSurgeAndUnavailability(t *testing.T) {
	runRollingUpdateBounds(fakeCluster(t))
}

func runRollingUpdateBounds(c *cluster) {
	c.nodes(simnode.Options{}, "n1", "n2", "n3")
	c.control(fastOptions("cp1"))
	const replicas, surge, unavailable = 4, 1, 1
	d := webDeployment("web", replicas, "registry.example/web:1")
	s, u := api.FromInt(surge), api.FromInt(unavailable)
	d.Spec.Strategy.MaxSurge, d.Spec.Strategy.MaxUnavailable = &s, &u
	if err := c.cli.Create(c.ctx, d); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("first rollout", func() bool { return complete(c.deployment("web"), 1) })

	// Watch every pod change from here on and check the bounds on each
	// intermediate state.
	var pods api.PodList
	if err := c.cli.List(c.ctx, &pods, client.ListOptions{Namespace: "default", Labels: map[string]string{"app": "web"}}); err != nil {
		c.t.Fatal(err)
	}
	pk, _ := api.LookupKind("Pod")
	w, err := c.cli.Watch(c.ctx, pk, client.WatchOptions{Namespace: "default", Labels: map[string]string{"app": "web"}, ResourceVersion: pods.ResourceVersion})
	if err != nil {
		c.t.Fatal(err)
	}
	defer w.Stop()
	state := map[string]*api.Pod{}
	for i := range pods.Items {
		state[pods.Items[i].Metadata.Name] = &pods.Items[i]
	}
	var violations []string
	var mu sync.Mutex
	var seenNew atomic.Int32
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for ev := range w.Events() {
			if ev.Object == nil {
				continue
			}
			p := ev.Object.(*api.Pod)
			mu.Lock()
			if ev.Type == api.Deleted {
				delete(state, p.Metadata.Name)
			} else {
				state[p.Metadata.Name] = p
			}
			total, available, updated := 0, 0, 0
			for _, sp := range state {
				total++
				if api.IsPodReady(sp) && !api.IsPodTerminating(sp) {
					available++
				}
				if sp.Spec.Containers[0].Image == "registry.example/web:2" {
					updated++
				}
			}
			seenNew.Store(int32(updated))
			if total > replicas+surge {
				violations = append(violations, fmt.Sprintf("rv %d: %d pods exist, above replicas+maxSurge=%d", ev.ResourceVersion, total, replicas+surge))
			}
			if available < replicas-unavailable {
				violations = append(violations, fmt.Sprintf("rv %d: %d pods available, below replicas-maxUnavailable=%d", ev.ResourceVersion, available, replicas-unavailable))
			}
			mu.Unlock()
		}
	}()

	d = c.deployment("web")
	d.Spec.Template.Spec.Containers[0].Image = "registry.example/web:2"
	if err := c.cli.Update(c.ctx, d); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("second rollout", func() bool { return complete(c.deployment("web"), 2) })
	c.waitFor("old pods gone", func() bool { return len(c.pods(map[string]string{"app": "web"})) == replicas })
	// The watch runs behind the reads above: check every state up to the
	// one they saw before stopping it.
	c.waitFor("the watch to reach the final pods", func() bool {
		select {
		case <-watchDone:
			c.t.Fatalf("the pod watch ended before the rollout's last change: %v", w.Err())
		default:
		}
		final := c.pods(map[string]string{"app": "web"})
		mu.Lock()
		defer mu.Unlock()
		if len(state) != len(final) {
			return false
		}
		for _, p := range final {
			if sp := state[p.Metadata.Name]; sp == nil || sp.Metadata.ResourceVersion != p.Metadata.ResourceVersion {
				return false
			}
		}
		return true
	})
	w.Stop()
	<-watchDone
	if seenNew.Load() == 0 {
		c.t.Fatal("the watch saw no new pods: the check checked nothing")
	}
	if len(violations) > 0 {
		c.t.Fatalf("bounds violated:\n%s", strings.Join(violations, "\n"))
	}
	d = c.deployment("web")
	if d.Status.UpdatedReplicas != replicas || d.Status.DesiredRevision != 2 {
		c.t.Fatalf("status after the update: %+v", d.Status)
	}
}

func TestFailedRolloutRollsBackToTheLiveRevision(t *testing.T) {
	runFailurePolicy(fakeCluster(t), api.FailureRollback)
}

func TestFailedRolloutPausesWithThePausePolicy(t *testing.T) {
	runFailurePolicy(fakeCluster(t), api.FailurePause)
}

func runFailurePolicy(c *cluster, policy api.FailurePolicy) {
	c.nodes(simnode.Options{PodReady: badImage}, "n1", "n2")
	c.control(fastOptions("cp1"))
	d := webDeployment("web", 2, "registry.example/web:1")
	deadline := int32(1)
	d.Spec.ProgressDeadlineSeconds = &deadline
	d.Spec.Strategy.OnFailure = policy
	if err := c.cli.Create(c.ctx, d); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("first rollout", func() bool { return complete(c.deployment("web"), 1) })
	d = c.deployment("web")
	d.Spec.Template.Spec.Containers[0].Image = "registry.example/web:bad"
	if err := c.cli.Update(c.ctx, d); err != nil {
		c.t.Fatal(err)
	}
	want := api.RolloutRolledBack
	if policy == api.FailurePause {
		want = api.RolloutPaused
	}
	c.waitFor("the failure policy", func() bool {
		d := c.deployment("web")
		return d.Status.RolloutState == want && d.Status.ObservedGeneration == d.Metadata.Generation
	})
	d = c.deployment("web")
	if d.Status.FailedRevision != 2 || d.Status.LiveRevision != 1 {
		c.t.Fatalf("status %+v: want failed revision 2 and live revision 1", d.Status)
	}
	if !strings.Contains(d.Status.Message, "CrashLoopBackOff") || !strings.Contains(d.Status.Message, "pod web-") {
		c.t.Fatalf("message %q must name the failing pods and why", d.Status.Message)
	}
	switch policy {
	case api.FailureRollback:
		if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:1" {
			c.t.Fatalf("template image %q after rollback, want the live revision's", img)
		}
		// The live revision serves again with every replica, and the
		// outcome stays visible.
		c.waitFor("old revision serving", func() bool {
			d := c.deployment("web")
			return d.Status.AvailableReplicas == 2 && d.Status.UpdatedReplicas == 2 && d.Status.Replicas == 2
		})
		if d := c.deployment("web"); d.Status.RolloutState != api.RolloutRolledBack || d.Status.DesiredRevision != 1 {
			c.t.Fatalf("after converging: %+v", d.Status)
		}
	case api.FailurePause:
		if !d.Spec.Paused {
			c.t.Fatal("the Pause policy must set spec.paused")
		}
		if d.Status.DesiredRevision != 2 {
			c.t.Fatalf("paused rollout keeps revision 2 desired, got %d", d.Status.DesiredRevision)
		}
	}
}

func TestLostNodesPodsAreRecreatedElsewhere(t *testing.T) {
	runLostNode(fakeCluster(t))
}

func runLostNode(c *cluster) {
	nodes := c.nodes(simnode.Options{}, "n1", "n2", "n3")
	c.control(silentNodeOptions("cp1"))
	if err := c.cli.Create(c.ctx, webDeployment("web", 3, "registry.example/web:1")); err != nil {
		c.t.Fatal(err)
	}
	bare := &api.Pod{
		Metadata: api.ObjectMeta{Name: "bare", Namespace: "default", Labels: map[string]string{"app": "bare"}},
		Spec:     api.PodSpec{Containers: []api.Container{{Name: "c", Image: "registry.example/web:1"}}},
	}
	if err := c.cli.Create(c.ctx, bare); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("rollout complete", func() bool { return complete(c.deployment("web"), 1) })
	var lost string
	c.waitFor("bare pod running", func() bool {
		ps := c.pods(map[string]string{"app": "bare"})
		if len(ps) == 1 && api.IsPodReady(&ps[0]) {
			lost = ps[0].Spec.NodeName
			return true
		}
		return false
	})
	nodes[lost].Stop()
	c.waitFor("lost node marked not ready", func() bool {
		var n api.Node
		if err := c.cli.Get(c.ctx, "", lost, &n); err != nil {
			return false
		}
		cond := api.FindCondition(n.Status.Conditions, api.NodeReady)
		return cond != nil && cond.Status == api.ConditionUnknown
	})
	c.waitFor("every pod running elsewhere", func() bool {
		web, bare := c.pods(map[string]string{"app": "web"}), c.pods(map[string]string{"app": "bare"})
		if len(web) != 3 || len(bare) != 1 {
			return false
		}
		for _, p := range append(web, bare...) {
			if p.Spec.NodeName == lost || p.Spec.NodeName == "" || !api.IsPodReady(&p) {
				return false
			}
		}
		return true
	})
	c.waitFor("deployment available again", func() bool { return complete(c.deployment("web"), 1) })
}

func TestOnlyTheLeaderActsAndAnotherTakesOver(t *testing.T) {
	runLeaderFailover(fakeCluster(t))
}

func runLeaderFailover(c *cluster) {
	c.nodes(simnode.Options{}, "n1", "n2")
	var mu sync.Mutex
	leading := map[string]bool{}
	var overlap atomic.Bool
	track := func(id string) func(bool) {
		return func(on bool) {
			mu.Lock()
			defer mu.Unlock()
			for other, l := range leading {
				if on && l && other != id {
					overlap.Store(true)
				}
			}
			leading[id] = on
		}
	}
	leader := func() string {
		mu.Lock()
		defer mu.Unlock()
		for id, on := range leading {
			if on {
				return id
			}
		}
		return ""
	}
	oa, ob := fastOptions("cp-a"), fastOptions("cp-b")
	oa.OnLeading, ob.OnLeading = track("cp-a"), track("cp-b")
	stops := map[string]func(){"cp-a": c.control(oa), "cp-b": c.control(ob)}
	c.waitFor("a leader", func() bool { return leader() != "" })
	first := leader()
	if err := c.cli.Create(c.ctx, webDeployment("one", 2, "registry.example/web:1")); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("first deployment complete", func() bool { return complete(c.deployment("one"), 1) })
	stops[first]()
	c.waitFor("the other instance to lead", func() bool { l := leader(); return l != "" && l != first })
	if err := c.cli.Create(c.ctx, webDeployment("two", 2, "registry.example/web:1")); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("second deployment complete under the new leader", func() bool { return complete(c.deployment("two"), 1) })
	if overlap.Load() {
		c.t.Fatal("two instances led at the same time")
	}
}
