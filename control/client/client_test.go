package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/client/clienttest"
)

func newServer(t *testing.T) *clienttest.Server {
	t.Helper()
	s, err := clienttest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return ctx
}

func pod(name, node string, labels map[string]string) *api.Pod {
	return &api.Pod{
		Metadata: api.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
		Spec:     api.PodSpec{NodeName: node, Containers: []api.Container{{Name: "c", Image: "registry.example/web:1"}}},
	}
}

func TestCRUDMapsToPathsVerbsAndJSON(t *testing.T) {
	s := newServer(t)
	c := s.Client()
	ctx := testCtx(t)

	p := pod("web", "", map[string]string{"app": "web"})
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if n := s.Requests(http.MethodPost, "/v1/namespaces/default/pods"); n != 1 {
		t.Fatalf("create: POST /v1/namespaces/default/pods seen %d times, want 1", n)
	}
	if p.Metadata.UID == "" || p.Metadata.ResourceVersion == 0 || p.Spec.RestartPolicy != api.RestartAlways {
		t.Fatalf("create did not read the stored object back: %+v", p.Metadata)
	}

	var got api.Pod
	if err := c.Get(ctx, "default", "web", &got); err != nil {
		t.Fatal(err)
	}
	if s.Requests(http.MethodGet, "/v1/namespaces/default/pods/web") != 1 || got.Metadata.UID != p.Metadata.UID {
		t.Fatalf("get returned %+v", got.Metadata)
	}

	stale := client.DeepCopy(&got)
	got.Status.Phase = api.PodRunning
	if err := c.UpdateStatus(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if s.Requests(http.MethodPut, "/v1/namespaces/default/pods/web/status") != 1 {
		t.Fatal("update status did not PUT .../status")
	}
	stale.Spec.NodeName = "n1"
	if err := c.Update(ctx, stale); !api.IsConflict(err) {
		t.Fatalf("update with a stale resourceVersion: got %v, want a Conflict", err)
	}
	got.Spec.NodeName = "n1"
	if err := c.Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != api.PodRunning || got.Spec.NodeName != "n1" {
		t.Fatalf("update lost status or spec: %+v %+v", got.Spec, got.Status)
	}

	if err := c.Create(ctx, pod("other", "n2", map[string]string{"app": "db"})); err != nil {
		t.Fatal(err)
	}
	var byLabel, byNode, all api.PodList
	if err := c.List(ctx, &byLabel, client.ListOptions{Namespace: "default", Labels: map[string]string{"app": "web"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.List(ctx, &byNode, client.ListOptions{NodeName: "n2"}); err != nil {
		t.Fatal(err)
	}
	if err := c.List(ctx, &all, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(byLabel.Items) != 1 || byLabel.Items[0].Metadata.Name != "web" {
		t.Fatalf("label selector: got %d pods", len(byLabel.Items))
	}
	if len(byNode.Items) != 1 || byNode.Items[0].Metadata.Name != "other" {
		t.Fatalf("node selector: got %d pods", len(byNode.Items))
	}
	if len(all.Items) != 2 || all.ResourceVersion == 0 {
		t.Fatalf("list across namespaces: got %d pods at revision %d", len(all.Items), all.ResourceVersion)
	}

	if err := c.Delete(ctx, &got, client.GracePeriod(0)); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, "default", "web", &got); !api.IsNotFound(err) {
		t.Fatalf("get after delete: got %v, want NotFound", err)
	}
}

func TestFailedRequestsReturnTheAPIStatus(t *testing.T) {
	s := newServer(t)
	c := s.Client()
	ctx := testCtx(t)
	var p api.Pod
	err := c.Get(ctx, "default", "missing", &p)
	var st *api.Status
	if !errors.As(err, &st) || st.Reason != api.ReasonNotFound || st.Code != http.StatusNotFound {
		t.Fatalf("got %v (%T), want a NotFound *api.Status", err, err)
	}
	bad := pod("BAD_NAME", "", nil)
	if err := c.Create(ctx, bad); !api.IsInvalid(err) {
		t.Fatalf("invalid create: got %v, want Invalid", err)
	}
}

func TestWatchDecodesEventsBookmarksAndGone(t *testing.T) {
	s := newServer(t)
	c := s.Client()
	ctx := testCtx(t)
	pk, _ := api.LookupKind("Pod")
	w, err := c.Watch(ctx, pk, client.WatchOptions{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	p := pod("a", "", nil)
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Spec.NodeName = "n1"
	if err := c.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	s.Bookmark()
	if err := c.Delete(ctx, p, client.GracePeriod(0)); err != nil {
		t.Fatal(err)
	}
	want := []api.EventType{api.Added, api.Modified, api.Bookmark, api.Deleted}
	var lastRV int64
	for i, typ := range want {
		ev := <-w.Events()
		if ev.Type != typ {
			t.Fatalf("event %d: got %s, want %s", i, ev.Type, typ)
		}
		if typ != api.Bookmark {
			if ev.Object.(*api.Pod).Metadata.Name != "a" {
				t.Fatalf("event %d: wrong object %+v", i, ev.Object)
			}
		} else if ev.Object != nil {
			t.Fatal("a bookmark carries no object")
		}
		if ev.ResourceVersion < lastRV || ev.ResourceVersion == 0 {
			t.Fatalf("event %d: resourceVersion %d after %d", i, ev.ResourceVersion, lastRV)
		}
		lastRV = ev.ResourceVersion
	}

	s.Compact()
	old, err := c.Watch(ctx, pk, client.WatchOptions{ResourceVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range old.Events() {
		t.Fatal("a watch from a compacted revision delivered an event")
	}
	if !api.IsGone(old.Err()) {
		t.Fatalf("watch from a compacted revision ended with %v, want Gone", old.Err())
	}
}

func TestClientFailsOverOnConnectionErrorsOnly(t *testing.T) {
	a, b := newServer(t), newServer(t)
	ctx := testCtx(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + l.Addr().String()
	l.Close()

	cfg := a.Config()
	cfg.Endpoints = []string{dead, a.URL()}
	c, err := client.New(cfg, client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Healthz(ctx); err != nil {
		t.Fatalf("a dead first endpoint must fail over to the next: %v", err)
	}
	if got := c.Endpoints()[0]; got != a.URL() {
		t.Fatalf("the endpoint that answered should be tried first next time, got %s", got)
	}

	// An API error is an answer: the client must not ask another endpoint.
	cfg.Endpoints = []string{a.URL(), b.URL()}
	c2, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var p api.Pod
	if err := c2.Get(ctx, "default", "nope", &p); !api.IsNotFound(err) {
		t.Fatalf("got %v, want NotFound", err)
	}
	if n := b.Requests(http.MethodGet, "/v1/namespaces/default/pods/nope"); n != 0 {
		t.Fatalf("an API error was retried on another endpoint (%d requests)", n)
	}

	cfg.Endpoints = []string{dead}
	c3, err := client.New(cfg, client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	err = c3.Healthz(ctx)
	if err == nil || api.ReasonOf(err) != "" {
		t.Fatalf("no reachable endpoint: got %v, want a transport error", err)
	}
}

// A server error is an answer: the request is not sent again elsewhere
// (it may have been acted on). But an instance failing on its own side —
// its etcd member stopped while its host leaves — must not get the next
// request too.
func TestServerErrorsAreNotRetriedButMoveTheClientOn(t *testing.T) {
	a, b := newServer(t), newServer(t)
	ctx := testCtx(t)
	a.AddHook(func(*http.Request) error {
		return api.NewError(api.ReasonInternal, "etcdserver: server stopped")
	})
	cfg := a.Config()
	cfg.Endpoints = []string{a.URL(), b.URL()}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var p api.Pod
	if err := c.Get(ctx, "default", "web", &p); api.ReasonOf(err) != api.ReasonInternal {
		t.Fatalf("got %v, want the server's InternalError", err)
	}
	if n := b.Requests(http.MethodGet, "/v1/namespaces/default/pods/web"); n != 0 {
		t.Fatalf("a request the API answered was sent again elsewhere (%d times)", n)
	}
	if err := c.Get(ctx, "default", "web", &p); !api.IsNotFound(err) {
		t.Fatalf("the next request: got %v, want NotFound from %s", err, b.URL())
	}
	if n := b.Requests(http.MethodGet, "/v1/namespaces/default/pods/web"); n != 1 {
		t.Fatalf("the next request did not go to the other endpoint (%d requests there)", n)
	}
}

// A node agent's known endpoints can all go away between two syncs while
// a cluster moves to other hosts; the endpoints it was installed with are
// its way back to the control plane.
func TestFallbackEndpointsAreTriedWhenNoKnownEndpointAnswers(t *testing.T) {
	s := newServer(t)
	ctx := testCtx(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + l.Addr().String()
	l.Close()
	cfg := s.Config()
	cfg.Endpoints = []string{dead}
	c, err := client.New(cfg, client.WithFallbackEndpoints(s.URL()), client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Healthz(ctx); err != nil {
		t.Fatalf("the fallback endpoint was not tried: %v", err)
	}
	if got := c.Endpoints(); len(got) != 1 || got[0] != dead {
		t.Fatalf("fallback endpoints must not join the list: %v", got)
	}
	s.SetControlPlane([]string{s.URL()})
	if err := c.SyncEndpoints(ctx); err != nil {
		t.Fatalf("sync through the fallback: %v", err)
	}
	if got := c.Endpoints(); len(got) != 1 || got[0] != s.URL() {
		t.Fatalf("endpoints after the sync = %v, want the published %s", got, s.URL())
	}
	if _, err := client.New(cfg, client.WithFallbackEndpoints("http://plain:80")); err == nil {
		t.Fatal("a fallback endpoint that is not https:// was accepted")
	}
}

func TestSyncEndpointsFollowsThePublishedList(t *testing.T) {
	a, b := newServer(t), newServer(t)
	ctx := testCtx(t)
	a.SetControlPlane([]string{b.URL(), a.URL()})
	c := a.Client()
	if err := c.SyncEndpoints(ctx); err != nil {
		t.Fatal(err)
	}
	got := c.Endpoints()
	if len(got) != 2 || got[0] != a.URL() || got[1] != b.URL() {
		t.Fatalf("endpoints after sync: %v (the one in use stays first)", got)
	}
	a.SetControlPlane([]string{b.URL()})
	if err := c.SyncEndpoints(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.Endpoints(); len(got) != 1 || got[0] != b.URL() {
		t.Fatalf("a removed control-plane host must be dropped: %v", got)
	}
	if err := c.Healthz(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestConfigSavesPrivatelyAndLoadsBack(t *testing.T) {
	s := newServer(t)
	path := filepath.Join(t.TempDir(), "admin.json")
	if err := s.Config().Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v, want 0600 (it holds a private key)", fi.Mode().Perm())
	}
	cfg, err := client.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Readyz(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.LoadConfig(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Fatal("loading a missing file must fail")
	}
}
