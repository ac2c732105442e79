package store

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/berth-io/berth/control/api"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// nextEvent receives one event, failing the test if the stream closes or
// the test's deadline passes first.
func nextEvent(ctx context.Context, t *testing.T, ch <-chan WatchEvent) WatchEvent {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed early")
		}
		return e
	case <-ctx.Done():
		t.Fatal("no watch event before the test deadline")
	}
	panic("unreachable")
}

// eventString is "TYPE ns/name@rev" for comparing event sequences.
func eventString(e WatchEvent) string {
	if e.Type == api.Error {
		return fmt.Sprintf("ERROR %v", e.Err)
	}
	return fmt.Sprintf("%s %s@%d", e.Type, api.Key(e.Object), e.Revision)
}

func TestIntegrationListAtOldRevisionSeesThePast(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	a := newPod("default", "a", map[string]string{"v": "1"})
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	var then api.PodList
	if err := s.List(ctx, &then, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if then.ResourceVersion != a.Metadata.ResourceVersion {
		t.Errorf("list resourceVersion = %d, want the last write's %d", then.ResourceVersion, a.Metadata.ResourceVersion)
	}
	a.Metadata.Labels["v"] = "2"
	if err := s.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, newPod("default", "b", nil)); err != nil {
		t.Fatal(err)
	}

	var old api.PodList
	if err := s.List(ctx, &old, ListOptions{ResourceVersion: then.ResourceVersion}); err != nil {
		t.Fatal(err)
	}
	if len(old.Items) != 1 || old.Items[0].Metadata.Labels["v"] != "1" || old.Items[0].Metadata.ResourceVersion != then.ResourceVersion {
		t.Errorf("list at %d = %+v, want only a with v=1", then.ResourceVersion, old.Items)
	}
	if old.ResourceVersion <= then.ResourceVersion {
		t.Errorf("list resourceVersion = %d, want the store's revision (above %d)", old.ResourceVersion, then.ResourceVersion)
	}
	var now api.PodList
	if err := s.List(ctx, &now, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(now.Items) != 2 || now.Items[0].Metadata.Labels["v"] != "2" {
		t.Errorf("latest list = %+v, want a (v=2) and b", now.Items)
	}
	future := now.ResourceVersion + 1000
	if err := s.List(ctx, &now, ListOptions{ResourceVersion: future}); api.ReasonOf(err) != api.ReasonTimeout {
		t.Errorf("list at a future revision: %v, want a Timeout error", err)
	}
}

func TestIntegrationListSelectsAndSortsByNamespaceAndName(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	// Namespace "a-b" sorts after "a" although its keys sort before.
	for _, p := range []*api.Pod{
		newPod("a-b", "x", map[string]string{"app": "web"}),
		newPod("a", "z", map[string]string{"app": "web", "tier": "front"}),
		newPod("a", "y", map[string]string{"app": "db"}),
		newPod("b", "w", map[string]string{"app": "web"}),
	} {
		if p.Metadata.Name == "w" {
			p.Spec.NodeName = "n1"
		}
		if err := s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		opts ListOptions
		want []string
	}{
		{"everything", ListOptions{}, []string{"a/y", "a/z", "a-b/x", "b/w"}},
		{"one namespace", ListOptions{Namespace: "a"}, []string{"a/y", "a/z"}},
		{"namespace that prefixes another", ListOptions{Namespace: "a-b"}, []string{"a-b/x"}},
		{"label", ListOptions{Labels: map[string]string{"app": "web"}}, []string{"a/z", "a-b/x", "b/w"}},
		{"all labels must match", ListOptions{Labels: map[string]string{"app": "web", "tier": "front"}}, []string{"a/z"}},
		{"filter", ListOptions{Filter: func(o api.Object) bool { return o.(*api.Pod).Spec.NodeName == "n1" }}, []string{"b/w"}},
		{"nothing matches", ListOptions{Labels: map[string]string{"app": "none"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var list api.PodList
			if err := s.List(ctx, &list, tc.opts); err != nil {
				t.Fatal(err)
			}
			var got []string
			for i := range list.Items {
				got = append(got, api.Key(&list.Items[i]))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("listed %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIntegrationWatchFromRevisionResumesWithoutGapOrDuplicate(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	pods, _ := api.LookupKind("pods")

	var revs []int64
	var want []string
	p1, p2 := newPod("default", "p1", nil), newPod("default", "p2", nil)
	for _, step := range []struct {
		typ api.EventType
		do  func() (api.Object, error)
	}{
		{api.Added, func() (api.Object, error) { return p1, s.Create(ctx, p1) }},
		{api.Added, func() (api.Object, error) { return p2, s.Create(ctx, p2) }},
		{api.Modified, func() (api.Object, error) {
			p1.Metadata.Labels = map[string]string{"x": "1"}
			return p1, s.Update(ctx, p1)
		}},
		{api.Deleted, func() (api.Object, error) {
			d := newPod("default", "p2", nil)
			return d, s.Delete(ctx, d, DeleteOptions{})
		}},
		{api.Modified, func() (api.Object, error) { p1.Status.Phase = "Running"; return p1, s.UpdateStatus(ctx, p1) }},
	} {
		obj, err := step.do()
		if err != nil {
			t.Fatal(err)
		}
		rev := obj.GetMeta().ResourceVersion
		revs = append(revs, rev)
		want = append(want, fmt.Sprintf("%s %s@%d", step.typ, api.Key(obj), rev))
	}

	// Each subtest writes a marker after the history it checks; later
	// subtests see the earlier markers as history too.
	for k := range len(revs) {
		t.Run(fmt.Sprintf("from revision of step %d", k), func(t *testing.T) {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			ch, err := s.Watch(wctx, pods, WatchOptions{FromRevision: revs[k]})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for range want[k+1:] {
				got = append(got, eventString(nextEvent(ctx, t, ch)))
			}
			if !slices.Equal(got, want[k+1:]) {
				t.Errorf("events %v, want %v", got, want[k+1:])
			}
			// A marker written now must be the very next event: nothing
			// was delivered twice.
			marker := newPod("default", fmt.Sprintf("marker-%d", k), nil)
			if err := s.Create(ctx, marker); err != nil {
				t.Fatal(err)
			}
			want = append(want, fmt.Sprintf("%s %s@%d", api.Added, api.Key(marker), marker.Metadata.ResourceVersion))
			if e := nextEvent(ctx, t, ch); eventString(e) != want[len(want)-1] {
				t.Errorf("next event %s, want %s", eventString(e), want[len(want)-1])
			}
		})
	}
}

func TestIntegrationWatchDeletedCarriesLastValueAtDeletionRevision(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	pods, _ := api.LookupKind("pods")
	p := newPod("default", "p", map[string]string{"app": "web"})
	if err := s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	ch, err := s.Watch(ctx, pods, WatchOptions{FromRevision: p.Metadata.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	d := newPod("default", "p", nil)
	if err := s.Delete(ctx, d, DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e := nextEvent(ctx, t, ch)
	got, ok := e.Object.(*api.Pod)
	if e.Type != api.Deleted || !ok {
		t.Fatalf("event %s, want Deleted of a *api.Pod", eventString(e))
	}
	if got.Metadata.UID != p.Metadata.UID || got.Metadata.Labels["app"] != "web" ||
		got.Metadata.ResourceVersion != d.Metadata.ResourceVersion || e.Revision != d.Metadata.ResourceVersion {
		t.Errorf("deleted event object = %+v at %d, want the last value at deletion revision %d", got.Metadata, e.Revision, d.Metadata.ResourceVersion)
	}
}

func TestIntegrationWatchSelectionTurnsLeavingIntoDeletedAndJoiningIntoAdded(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	pods, _ := api.LookupKind("pods")
	onN1 := func(o api.Object) bool { return o.(*api.Pod).Spec.NodeName == "n1" }

	for _, tc := range []struct {
		name string
		opts WatchOptions
		// steps change pods; want lists "TYPE name" of the events the
		// watch must deliver, in order.
		steps func(ns string) []func() error
		want  []string
	}{
		{
			name: "labels",
			opts: WatchOptions{Labels: map[string]string{"app": "web"}},
			steps: func(ns string) []func() error {
				p1, p2 := newPod(ns, "p1", map[string]string{"app": "web"}), newPod(ns, "p2", map[string]string{"app": "db"})
				return []func() error{
					func() error { return s.Create(ctx, p1) },                                                        // Added p1
					func() error { return s.Create(ctx, p2) },                                                        // not matching
					func() error { p1.Metadata.Labels["app"] = "db"; return s.Update(ctx, p1) },                      // Deleted p1
					func() error { p2.Metadata.Labels["app"] = "web"; return s.Update(ctx, p2) },                     // Added p2
					func() error { p2.Metadata.Annotations = map[string]string{"a": "b"}; return s.Update(ctx, p2) }, // Modified p2
					func() error { return s.Delete(ctx, newPod(ns, "p1", nil), DeleteOptions{}) },                    // not matching
					func() error { return s.Delete(ctx, newPod(ns, "p2", nil), DeleteOptions{}) },                    // Deleted p2
				}
			},
			want: []string{"ADDED p1", "DELETED p1", "ADDED p2", "MODIFIED p2", "DELETED p2"},
		},
		{
			name: "filter on the bound node",
			opts: WatchOptions{Filter: onN1},
			steps: func(ns string) []func() error {
				p := newPod(ns, "p", nil)
				return []func() error{
					func() error { return s.Create(ctx, p) },                                   // unbound: not matching
					func() error { p.Spec.NodeName = "n1"; return s.Update(ctx, p) },           // Added
					func() error { p.Status.Phase = "Running"; return s.UpdateStatus(ctx, p) }, // Modified
					func() error { p.Spec.NodeName = "n2"; return s.Update(ctx, p) },           // Deleted
				}
			},
			want: []string{"ADDED p", "MODIFIED p", "DELETED p"},
		},
		{
			name: "namespace",
			opts: WatchOptions{Namespace: "namespace"},
			steps: func(string) []func() error {
				return []func() error{
					func() error { return s.Create(ctx, newPod("namespace-2", "other", nil)) },
					func() error { return s.Create(ctx, newPod("namespace", "mine", nil)) },
				}
			},
			want: []string{"ADDED mine"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := "namespace"
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			ch, err := s.Watch(wctx, pods, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for i, step := range tc.steps(ns) {
				if err := step(); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			// A marker that matches every selection closes the sequence.
			marker := newPod(ns, "zz-marker-"+fmt.Sprint(len(tc.want)), map[string]string{"app": "web"})
			marker.Spec.NodeName = "n1"
			if err := s.Create(ctx, marker); err != nil {
				t.Fatal(err)
			}
			want := append(slices.Clone(tc.want), "ADDED "+marker.Metadata.Name)
			var got []string
			for range want {
				e := nextEvent(ctx, t, ch)
				got = append(got, fmt.Sprintf("%s %s", e.Type, e.Object.GetMeta().Name))
			}
			if !slices.Equal(got, want) {
				t.Errorf("events %v, want %v", got, want)
			}
		})
	}
}

func TestIntegrationWatchClosesWhenContextEnds(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	nodes, _ := api.LookupKind("nodes")
	wctx, cancel := context.WithCancel(ctx)
	ch, err := s.Watch(wctx, nodes, WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return
			}
			if e.Type == api.Error {
				t.Errorf("a cancelled watch delivered an error: %v", e.Err)
			}
		case <-ctx.Done():
			t.Fatal("watch channel still open at the test deadline")
		}
	}
}

func TestIntegrationCompactedRevisionIsGoneForListAndWatch(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	pods, _ := api.LookupKind("pods")
	p := newPod("default", "p", nil)
	if err := s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	old := p.Metadata.ResourceVersion
	for i := range 3 {
		p.Metadata.Labels = map[string]string{"i": fmt.Sprint(i)}
		if err := s.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Client().Compact(ctx, p.Metadata.ResourceVersion, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}

	var list api.PodList
	if err := s.List(ctx, &list, ListOptions{ResourceVersion: old}); !api.IsGone(err) {
		t.Errorf("list at compacted revision %d: %v, want Gone", old, err)
	}
	ch, err := s.Watch(ctx, pods, WatchOptions{FromRevision: old})
	if err != nil {
		t.Fatal(err)
	}
	e := nextEvent(ctx, t, ch)
	if e.Type != api.Error || !api.IsGone(e.Err) {
		t.Fatalf("first event of a watch from a compacted revision = %s, want an Error with Gone", eventString(e))
	}
	select {
	case e, ok := <-ch:
		if ok {
			t.Errorf("event after the Gone error: %s, want the channel closed", eventString(e))
		}
	case <-ctx.Done():
		t.Fatal("channel not closed after the Gone error")
	}

	// Relisting and watching from the list works again.
	if err := s.List(ctx, &list, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	ch, err = s.Watch(ctx, pods, WatchOptions{FromRevision: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, newPod("default", "q", nil)); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(ctx, t, ch); e.Type != api.Added || e.Object.GetMeta().Name != "q" {
		t.Errorf("after relist: %s, want Added q", eventString(e))
	}
}
