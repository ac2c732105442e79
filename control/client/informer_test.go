package client_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/client/clienttest"
)

// recorder keeps what an informer's handlers saw.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) handler() client.Handler {
	add := func(s string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.events = append(r.events, s)
	}
	return client.Handler{
		OnAdd:    func(o api.Object) { add("add " + o.GetMeta().Name) },
		OnUpdate: func(_, o api.Object) { add("update " + o.GetMeta().Name) },
		OnDelete: func(o api.Object) { add("delete " + o.GetMeta().Name) },
	}
}

func (r *recorder) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e == s {
			return true
		}
	}
	return false
}

func startInformer(t *testing.T, c *client.Client, opts client.InformerOptions, setup func(*client.Informer)) (*client.Informer, *recorder) {
	t.Helper()
	pk, _ := api.LookupKind("Pod")
	inf := client.NewInformer(c, pk, opts)
	inf.AddIndexer("node", client.IndexByNodeName)
	rec := &recorder{}
	inf.AddHandler(rec.handler())
	if setup != nil {
		setup(inf)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); inf.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := inf.WaitForSync(t.Context()); err != nil {
		t.Fatal(err)
	}
	return inf, rec
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := clienttest.WaitFor(t.Context(), cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func TestInformerListsThenFollowsChangesWithIndexes(t *testing.T) {
	s := newServer(t)
	c := s.Client()
	ctx := testCtx(t)
	if err := c.Create(ctx, pod("before", "n1", nil)); err != nil {
		t.Fatal(err)
	}
	inf, rec := startInformer(t, c, client.InformerOptions{}, nil)
	if !inf.HasSynced() || !rec.has("add before") {
		t.Fatal("the first list must be applied and reported as adds before HasSynced")
	}
	p := pod("after", "", nil)
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "add after", func() bool { return rec.has("add after") })
	p.Spec.NodeName = "n1"
	if err := c.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "update after", func() bool { return rec.has("update after") })
	if got := inf.ByIndex("node", "n1"); len(got) != 2 {
		t.Fatalf("index node=n1 holds %d pods, want 2", len(got))
	}
	if err := c.Delete(ctx, p, client.GracePeriod(0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delete after", func() bool { return rec.has("delete after") })
	if _, ok := inf.Get("default", "after"); ok {
		t.Fatal("a deleted pod stays in the cache")
	}
	if got := inf.ByIndex("node", "n1"); len(got) != 1 {
		t.Fatalf("index node=n1 holds %d pods after the delete, want 1", len(got))
	}
}

func TestInformerRelistsWhenItsRevisionWasCompacted(t *testing.T) {
	s := newServer(t)
	c := s.Client()
	ctx := testCtx(t)
	for _, n := range []string{"keep", "gone"} {
		if err := c.Create(ctx, pod(n, "", nil)); err != nil {
			t.Fatal(err)
		}
	}
	var blockWatch atomic.Bool
	s.AddHook(func(r *http.Request) error {
		if blockWatch.Load() && r.URL.Query().Get(api.QueryWatch) == "true" {
			return api.NewError(api.ReasonUnavailable, "watches are down for this test")
		}
		return nil
	})
	var lists atomic.Int32
	s.AddHook(func(r *http.Request) error {
		if r.Method == http.MethodGet && r.URL.Query().Get(api.QueryWatch) == "" && strings.HasSuffix(r.URL.Path, "/pods") {
			lists.Add(1)
		}
		return nil
	})
	// The informer has a client of its own: dropping connections must not
	// break the test's own requests.
	inf, rec := startInformer(t, s.Client(), client.InformerOptions{MinBackoff: 1, MaxBackoff: 10_000_000}, nil)

	// The informer loses its watch, changes happen, and etcd compacts
	// them away: only a new list can reveal them.
	blockWatch.Store(true)
	s.DropConnections()
	c = s.Client() // a fresh client: the old one's connections were cut too
	gone := pod("gone", "", nil)
	if err := c.Delete(ctx, gone, client.GracePeriod(0)); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, pod("new", "", nil)); err != nil {
		t.Fatal(err)
	}
	s.Compact()
	blockWatch.Store(false)

	waitFor(t, "relist after Gone", func() bool { return rec.has("delete gone") && rec.has("add new") })
	if lists.Load() < 2 {
		t.Fatalf("the informer listed %d times, want a relist", lists.Load())
	}
	if _, ok := inf.Get("default", "keep"); !ok {
		t.Fatal("an unchanged pod was lost by the relist")
	}
	if rec.has("update keep") {
		t.Fatal("a relist reported an unchanged pod as updated")
	}
	// And the informer watches again from the relist's revision.
	if err := c.Create(ctx, pod("later", "", nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "add later", func() bool { return rec.has("add later") })
}

func TestInformerFiltersByNode(t *testing.T) {
	s := newServer(t)
	c := s.Client()
	ctx := testCtx(t)
	inf, rec := startInformer(t, c, client.InformerOptions{NodeName: "n2"}, nil)
	for _, p := range []*api.Pod{pod("on-n1", "n1", nil), pod("on-n2", "n2", nil)} {
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// A bookmark proves the informer has read past both creations.
	s.Bookmark()
	rv := s.ResourceVersion()
	waitFor(t, "bookmark", func() bool { return inf.ResourceVersion() >= rv })
	if rec.has("add on-n1") || !rec.has("add on-n2") || inf.Len() != 1 {
		t.Fatalf("node filter: saw %v", rec.events)
	}
}

func TestInformerResumesABrokenWatchWithoutListingAgain(t *testing.T) {
	s := newServer(t)
	c := s.Client()
	ctx := testCtx(t)
	var lists, watches atomic.Int32
	var blockWatch atomic.Bool
	s.AddHook(func(r *http.Request) error {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/pods") {
			return nil
		}
		if r.URL.Query().Get(api.QueryWatch) == "true" {
			if blockWatch.Load() {
				return api.NewError(api.ReasonUnavailable, "watches are down for this test")
			}
			watches.Add(1)
		} else {
			lists.Add(1)
		}
		return nil
	})
	inf, rec := startInformer(t, s.Client(), client.InformerOptions{MinBackoff: 1, MaxBackoff: 10_000_000}, nil)
	waitFor(t, "the first watch", func() bool { return watches.Load() == 1 })
	blockWatch.Store(true)
	s.DropConnections()
	c = s.Client() // a fresh client: the old one's connections were cut too
	if err := c.Create(ctx, pod("while-away", "", nil)); err != nil {
		t.Fatal(err)
	}
	blockWatch.Store(false)
	waitFor(t, "the change made while disconnected", func() bool { return rec.has("add while-away") })
	if lists.Load() != 1 {
		t.Fatalf("the informer listed %d times: a broken watch must resume from its revision", lists.Load())
	}
	if watches.Load() < 2 || inf.Len() != 1 {
		t.Fatalf("watches %d, cached %d", watches.Load(), inf.Len())
	}
}
