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

// heldWatch lists normally but holds every watch until release is closed,
// so the informer reading through it lags behind the API.
type heldWatch struct {
	*client.Client
	release chan struct{}
}

func (h heldWatch) Watch(ctx context.Context, ki api.KindInfo, opts client.WatchOptions) (client.Watcher, error) {
	select {
	case <-h.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.Client.Watch(ctx, ki, opts)
}

// A pod that turns ready while the endpoints cache has not yet shown the
// controller's own create must still reach the endpoints: the sync that
// meets AlreadyExists fails (the queue retries it), and the endpoints
// arriving in the cache queue the service again.
func TestEndpointsCreatedBeforeTheCacheShowsThemAreStillUpdated(t *testing.T) {
	srv, err := clienttest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli := srv.Client()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := cli.Create(ctx, svc(api.ServicePort{Name: "http", Port: 80, TargetPort: api.FromInt(8080)})); err != nil {
		t.Fatal(err)
	}
	a := pod("a", "10.0.0.1", false, "web", 8080)
	if err := cli.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	kind := func(n string) api.KindInfo { ki, _ := api.LookupKind(n); return ki }
	held := heldWatch{Client: cli, release: make(chan struct{})}
	svcs := client.NewInformer(cli, kind("Service"), client.InformerOptions{})
	pods := client.NewInformer(cli, kind("Pod"), client.InformerOptions{})
	eps := client.NewInformer(held, kind("Endpoints"), client.InformerOptions{})
	c := New(cli, svcs, pods, eps, Options{})
	// Registered after the controller's handlers, so they run after them.
	seen := make(chan struct{})
	eps.AddHandler(client.Handler{OnAdd: func(api.Object) { close(seen) }})
	podUpdated := make(chan struct{}, 1)
	pods.AddHandler(client.Handler{OnUpdate: func(_, _ api.Object) {
		select {
		case podUpdated <- struct{}{}:
		default:
		}
	}})
	for _, inf := range []*client.Informer{svcs, pods, eps} {
		go inf.Run(ctx)
		if err := inf.WaitForSync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.sync(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	// The pod turns ready; the endpoints cache still shows nothing.
	if err := cli.Get(ctx, "default", "a", a); err != nil {
		t.Fatal(err)
	}
	a.Status.Conditions = []api.Condition{{Type: api.PodReady, Status: api.ConditionTrue}}
	if err := cli.UpdateStatus(ctx, a); err != nil {
		t.Fatal(err)
	}
	<-podUpdated
	if err := c.sync(ctx, "default/web"); err == nil {
		t.Fatal("a sync whose create met existing endpoints reported success: its change would never be written")
	}
	// Once the cache shows the endpoints, the service is queued again and
	// the next sync writes the ready pod.
	for c.q.Len() > 0 {
		key, _ := c.q.Get()
		c.q.Done(key)
	}
	close(held.release)
	<-seen
	if n := c.q.Len(); n != 1 {
		t.Fatalf("endpoints arriving in the cache queued %d keys, want their service", n)
	}
	key, _ := c.q.Get()
	if err := c.sync(ctx, key); err != nil {
		t.Fatal(err)
	}
	c.q.Done(key)
	var ep api.Endpoints
	if err := cli.Get(ctx, "default", "web", &ep); err != nil {
		t.Fatal(err)
	}
	if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 1 || ep.Subsets[0].Addresses[0].PodName != "a" {
		t.Fatalf("endpoints %+v: the ready pod must be listed under addresses", ep.Subsets)
	}
}
