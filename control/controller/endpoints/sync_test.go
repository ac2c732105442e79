package endpoints

import (
	"context"
	"net/http"
	"testing"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/client/clienttest"
)

func TestSyncWritesOnlyOnRealChange(t *testing.T) {
	srv, err := clienttest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli := srv.Client()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := svc(api.ServicePort{Name: "http", Port: 80, TargetPort: api.FromInt(8080)})
	if err := cli.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	a := pod("a", "10.0.0.1", true, "web", 8080)
	if err := cli.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	kind := func(n string) api.KindInfo { ki, _ := api.LookupKind(n); return ki }
	svcs := client.NewInformer(cli, kind("Service"), client.InformerOptions{})
	pods := client.NewInformer(cli, kind("Pod"), client.InformerOptions{})
	eps := client.NewInformer(cli, kind("Endpoints"), client.InformerOptions{})
	c := New(cli, svcs, pods, eps, Options{})
	for _, inf := range []*client.Informer{svcs, pods, eps} {
		go inf.Run(ctx)
		if err := inf.WaitForSync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.sync(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	if n := srv.Requests(http.MethodPost, "/v1/namespaces/default/endpoints"); n != 1 {
		t.Fatalf("first sync created endpoints %d times, want 1", n)
	}
	rv := srv.ResourceVersion()
	if err := clienttest.WaitFor(ctx, func() bool { return eps.ResourceVersion() >= rv }); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.sync(ctx, "default/web"); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Requests(http.MethodPut, "/v1/namespaces/default/endpoints/web"); n != 0 {
		t.Fatalf("unchanged endpoints were written %d times", n)
	}
	// A readiness change is a real change.
	if err := cli.Get(ctx, "default", "a", a); err != nil {
		t.Fatal(err)
	}
	a.Status.Conditions = []api.Condition{{Type: api.PodReady, Status: api.ConditionFalse}}
	if err := cli.UpdateStatus(ctx, a); err != nil {
		t.Fatal(err)
	}
	rv = srv.ResourceVersion()
	if err := clienttest.WaitFor(ctx, func() bool { return pods.ResourceVersion() >= rv }); err != nil {
		t.Fatal(err)
	}
	if err := c.sync(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	if n := srv.Requests(http.MethodPut, "/v1/namespaces/default/endpoints/web"); n != 1 {
		t.Fatalf("a pod turning not ready wrote the endpoints %d times, want 1", n)
	}
	var ep api.Endpoints
	if err := cli.Get(ctx, "default", "web", &ep); err != nil {
		t.Fatal(err)
	}
	if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 0 || len(ep.Subsets[0].NotReadyAddresses) != 1 {
		t.Fatalf("endpoints %+v: the pod must move to notReadyAddresses", ep.Subsets)
	}
}
