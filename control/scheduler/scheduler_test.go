package scheduler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/client/clienttest"
)

func TestSchedulerBindsSpreadsAndRetriesUnschedulablePods(t *testing.T) {
	srv, err := clienttest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli := srv.Client()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pk, _ := api.LookupKind("Pod")
	nk, _ := api.LookupKind("Node")
	pods := client.NewInformer(cli, pk, client.InformerOptions{})
	nodes := client.NewInformer(cli, nk, client.InformerOptions{})
	s := New(cli, pods, nodes, Options{Recorder: client.NewEventRecorder(cli, Name, nil)})
	go pods.Run(ctx)
	go nodes.Run(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	wait := func(what string, cond func() bool) {
		t.Helper()
		if err := clienttest.WaitFor(ctx, cond); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	for _, n := range []string{"a", "b", "c"} {
		if err := cli.Create(ctx, node(n, true, "4", "4Gi", "10", nil)); err != nil {
			t.Fatal(err)
		}
	}
	// Spreading is judged against all three nodes (a pod scheduled while
	// the scheduler knows only some of them rightly goes to one it knows),
	// and so is picky.
	wait("the scheduler to see every node", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.cache.names) == 3
	})
	for _, name := range []string{"web-1", "web-2", "web-3"} {
		if err := cli.Create(ctx, pod(name, "web", "100m", "")); err != nil {
			t.Fatal(err)
		}
	}
	picky := pod("picky", "", "", "")
	picky.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	if err := cli.Create(ctx, picky); err != nil {
		t.Fatal(err)
	}
	get := func(name string) *api.Pod {
		var p api.Pod
		if err := cli.Get(ctx, "default", name, &p); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	wait("web pods bound", func() bool {
		for _, n := range []string{"web-1", "web-2", "web-3"} {
			c := api.FindCondition(get(n).Status.Conditions, api.PodScheduled)
			if c == nil || c.Status != api.ConditionTrue {
				return false
			}
		}
		return true
	})
	used := map[string]bool{}
	for _, n := range []string{"web-1", "web-2", "web-3"} {
		used[get(n).Spec.NodeName] = true
	}
	if len(used) != 3 {
		t.Fatalf("3 replicas landed on %d nodes, want one per node", len(used))
	}
	wait("picky marked unschedulable", func() bool {
		c := api.FindCondition(get("picky").Status.Conditions, api.PodScheduled)
		return c != nil && c.Status == api.ConditionFalse
	})
	c := api.FindCondition(get("picky").Status.Conditions, api.PodScheduled)
	if c.Reason != "Unschedulable" || !strings.Contains(c.Message, "3 did not match the pod's node selector") {
		t.Fatalf("condition %+v must say why", c)
	}
	var evs api.EventList
	if err := cli.List(ctx, &evs, client.ListOptions{Namespace: "default"}); err != nil {
		t.Fatal(err)
	}
	// (Pods created before the scheduler saw the nodes may have events of
	// their own; only picky's matter here.)
	var pickyEvents []api.Event
	for _, e := range evs.Items {
		if e.InvolvedObject.Name == "picky" {
			pickyEvents = append(pickyEvents, e)
		}
	}
	if len(pickyEvents) != 1 || pickyEvents[0].Reason != "FailedScheduling" || pickyEvents[0].Type != api.EventWarning {
		t.Fatalf("want one FailedScheduling warning about picky, got %+v", pickyEvents)
	}
	// A node gains the label: the parked pod is tried again.
	var b api.Node
	if err := cli.Get(ctx, "", "b", &b); err != nil {
		t.Fatal(err)
	}
	b.Metadata.Labels = map[string]string{"disk": "ssd"}
	if err := cli.Update(ctx, &b); err != nil {
		t.Fatal(err)
	}
	wait("picky bound to b", func() bool { return get("picky").Spec.NodeName == "b" })
}

func TestTwoSchedulersNeverBindAPodTwice(t *testing.T) {
	srv, err := clienttest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli := srv.Client()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for _, n := range []string{"a", "b", "c"} {
		if err := cli.Create(ctx, node(n, true, "100", "100Gi", "200", nil)); err != nil {
			t.Fatal(err)
		}
	}
	pk, _ := api.LookupKind("Pod")
	nk, _ := api.LookupKind("Node")
	w, err := cli.Watch(ctx, pk, client.WatchOptions{ResourceVersion: srv.ResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for range 2 {
		pods := client.NewInformer(cli, pk, client.InformerOptions{})
		nodes := client.NewInformer(cli, nk, client.InformerOptions{})
		s := New(cli, pods, nodes, Options{})
		wg.Go(func() { pods.Run(ctx) })
		wg.Go(func() { nodes.Run(ctx) })
		wg.Go(func() { _ = s.Run(ctx) })
	}
	const n = 60
	for i := range n {
		if err := cli.Create(ctx, pod(fmt.Sprintf("p%02d", i), "web", "10m", "")); err != nil {
			t.Fatal(err)
		}
	}
	boundTo := map[string]string{}
	for len(boundTo) < n {
		ev, ok := <-w.Events()
		if !ok {
			t.Fatalf("watch ended: %v", w.Err())
		}
		p, isPod := ev.Object.(*api.Pod)
		if !isPod || p.Spec.NodeName == "" {
			continue
		}
		if prev, seen := boundTo[p.Metadata.Name]; seen && prev != p.Spec.NodeName {
			t.Fatalf("pod %s was bound to %s and then to %s", p.Metadata.Name, prev, p.Spec.NodeName)
		}
		boundTo[p.Metadata.Name] = p.Spec.NodeName
	}
	cancel()
}
