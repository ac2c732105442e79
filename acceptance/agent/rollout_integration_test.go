package agent

import (
	"context"
	"testing"
	"time"

	"github.com/berth-io/berth/acceptance/prober"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// rollingUpdate rolls a three-replica deployment from v1 to v2 behind a
// node-port service while a prober sends requests through the testbed's
// load balancer over both worker nodes, and expects no failed request.
func (c *cluster) rollingUpdate(t *testing.T, ctx context.Context) {
	replicas := int32(3)
	surge, unavailable := api.FromInt(1), api.FromInt(0)
	labels := map[string]string{"app": "roll"}
	d := &api.Deployment{Metadata: api.ObjectMeta{Namespace: "default", Name: "roll"},
		Spec: api.DeploymentSpec{Replicas: &replicas, Selector: labels,
			Strategy: api.DeploymentStrategy{Type: api.StrategyRollingUpdate, MaxSurge: &surge, MaxUnavailable: &unavailable},
			Template: api.PodTemplate{Metadata: api.TemplateMeta{Labels: labels}, Spec: api.PodSpec{Containers: []api.Container{{
				Name: "web", Image: c.refs.V1, Ports: []api.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &api.Probe{HTTPGet: &api.HTTPGetAction{Path: "/healthz", Port: api.FromString("http")},
					PeriodSeconds: 1, FailureThreshold: 1},
			}}}}}}
	if err := c.admin.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	svc := &api.Service{Metadata: api.ObjectMeta{Namespace: "default", Name: "roll"},
		Spec: api.ServiceSpec{Type: api.ServiceNodePort, Selector: labels,
			Ports: []api.ServicePort{{Name: "http", Port: 80, TargetPort: api.FromString("http")}}}}
	if err := c.admin.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if err := c.admin.Get(ctx, "default", "roll", svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = c.admin.Delete(cctx, svc)
		_ = c.admin.Delete(cctx, d)
	})
	complete := func(image string) func() bool {
		return func() bool {
			cur := &api.Deployment{}
			if c.admin.Get(ctx, "default", "roll", cur) != nil || cur.Spec.Template.Spec.Containers[0].Image != image {
				return false
			}
			st := cur.Status
			return st.ObservedGeneration == cur.Metadata.Generation && st.RolloutState == api.RolloutComplete &&
				st.UpdatedReplicas == replicas && st.ReadyReplicas == replicas && st.Replicas == replicas
		}
	}
	poll(t, "roll v1 complete", 3*time.Minute, complete(c.refs.V1))

	nodePort := int(svc.Spec.Ports[0].NodePort)
	var hosts []string
	for _, n := range c.nodes {
		hosts = append(hosts, n.Name)
	}
	if err := c.tb.SetLB(ctx, nodePort, hosts...); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	err := c.tb.WaitLB(wctx)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	p, err := prober.Start(ctx, prober.Config{URL: "http://" + c.tb.LBAddr() + "/", Rate: 50})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel = context.WithTimeout(ctx, time.Minute)
	err = p.Wait(wctx, func(r prober.Result) bool { return r.Seen("web v1 ") >= 50 })
	wcancel()
	if err != nil {
		t.Fatalf("v1 never answered through the load balancer: %v (%s)", err, p.Snapshot())
	}

	timeoutsBefore := c.gateTimeouts(t)
	started := time.Now()
	for {
		cur := &api.Deployment{}
		if err := c.admin.Get(ctx, "default", "roll", cur); err != nil {
			t.Fatal(err)
		}
		cur.Spec.Template.Spec.Containers[0].Image = c.refs.V2
		err := c.admin.Update(ctx, cur)
		if err == nil {
			break
		}
		if !api.IsConflict(err) {
			t.Fatal(err)
		}
	}
	poll(t, "roll v2 complete", 4*time.Minute, complete(c.refs.V2))
	took := time.Since(started)
	// Old pods may still be stopping: wait until only v2 pods are left,
	// then let the prober see v2 for a while longer.
	poll(t, "only v2 pods left", 2*time.Minute, func() bool {
		var pods api.PodList
		if c.admin.List(ctx, &pods, client.ListOptions{Namespace: "default", Labels: labels}) != nil {
			return false
		}
		for _, pod := range pods.Items {
			if pod.Spec.Containers[0].Image != c.refs.V2 {
				return false
			}
		}
		return len(pods.Items) == int(replicas)
	})
	settled := p.Snapshot().Sent
	wctx, wcancel = context.WithTimeout(ctx, time.Minute)
	err = p.Wait(wctx, func(r prober.Result) bool { return r.Sent >= settled+50 })
	wcancel()
	res := p.Stop()
	t.Logf("rolling update v1 → v2 took %s; prober: %s", took.Round(100*time.Millisecond), res)
	if err != nil {
		t.Fatalf("prober stalled: %v", err)
	}
	if res.Failed != 0 {
		t.Fatalf("%d of %d requests failed during the rolling update: %v (first at %s, last at %s)",
			res.Failed, res.Sent, res.Reasons, res.FirstFailure.Format(time.StampMilli), res.LastFailure.Format(time.StampMilli))
	}
	// Zero failures must come from the stop ordering, not from luck: no
	// old pod got SIGTERM while a node could still route to it.
	if n := c.gateTimeouts(t) - timeoutsBefore; n != 0 {
		t.Fatalf("%d old pods were stopped before every node had dropped them from its service rules", n)
	}
	if res.Seen("web v2 ") == 0 {
		t.Fatalf("v2 never answered: %s", res)
	}
	// The last answers come from v2 only.
	wctx, wcancel = context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	tail, err := prober.Start(wctx, prober.Config{URL: "http://" + c.tb.LBAddr() + "/"})
	if err != nil {
		t.Fatal(err)
	}
	err = tail.Wait(wctx, func(r prober.Result) bool { return r.Sent >= 20 })
	last := tail.Stop()
	if err != nil || last.Failed != 0 || last.Seen("web v2 ") != last.Succeeded {
		t.Fatalf("after the update: %s (%v)", last, err)
	}
}
