package store

import (
	"errors"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
)

func newPod(ns, name string, labels map[string]string) *api.Pod {
	return &api.Pod{
		Metadata: api.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:     api.PodSpec{Containers: []api.Container{{Name: "web", Image: "registry.test/web:1"}}},
	}
}

func TestIntegrationCreateGetUpdateDeleteRoundTrip(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)

	p := newPod("default", "web", map[string]string{"app": "web"})
	if err := s.Create(ctx, p); err != nil {
		t.Fatalf("create: %v", err)
	}
	m := p.Metadata
	if m.UID == "" || m.Generation != 1 || m.ResourceVersion <= 0 {
		t.Fatalf("created metadata = %+v, want uid set, generation 1, resourceVersion > 0", m)
	}
	if want := testNow.UTC().Truncate(time.Second); !m.CreationTimestamp.Equal(want) || m.CreationTimestamp.Location() != time.UTC {
		t.Errorf("creationTimestamp = %v, want %v in UTC", m.CreationTimestamp, want)
	}
	if p.Kind != "Pod" || p.APIVersion != "v1" {
		t.Errorf("typeMeta = %+v, want Pod v1", p.TypeMeta)
	}

	got := &api.Pod{Metadata: api.ObjectMeta{Namespace: "default", Name: "web"}}
	if err := s.Get(ctx, got); err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Metadata.UID != m.UID || got.Metadata.ResourceVersion != m.ResourceVersion ||
		!got.Metadata.CreationTimestamp.Equal(m.CreationTimestamp) || got.Spec.Containers[0].Image != "registry.test/web:1" {
		t.Errorf("get = %+v, want the created pod %+v", got, p)
	}

	got.Metadata.Labels["tier"] = "front"
	before := got.Metadata.ResourceVersion
	if err := s.Update(ctx, got); err != nil {
		t.Fatalf("update: %v", err)
	}
	if got.Metadata.ResourceVersion <= before || got.Metadata.Labels["tier"] != "front" {
		t.Errorf("after update resourceVersion = %d (was %d), labels = %v", got.Metadata.ResourceVersion, before, got.Metadata.Labels)
	}

	del := &api.Pod{Metadata: api.ObjectMeta{Namespace: "default", Name: "web"}}
	if err := s.Delete(ctx, del, DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if del.Metadata.UID != m.UID || del.Metadata.Labels["tier"] != "front" || del.Metadata.ResourceVersion <= got.Metadata.ResourceVersion {
		t.Errorf("delete returned %+v, want the last value with the deletion revision", del.Metadata)
	}
	if rev, err := s.Revision(ctx); err != nil || rev != del.Metadata.ResourceVersion {
		t.Errorf("revision after delete = %d, %v; want the deletion revision %d", rev, err, del.Metadata.ResourceVersion)
	}
	if err := s.Get(ctx, &api.Pod{Metadata: api.ObjectMeta{Namespace: "default", Name: "web"}}); !api.IsNotFound(err) {
		t.Errorf("get after delete: %v, want NotFound", err)
	}
	if err := s.Delete(ctx, del, DeleteOptions{}); !api.IsNotFound(err) {
		t.Errorf("second delete: %v, want NotFound", err)
	}
}

func TestIntegrationCreateRefusals(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	if err := s.Create(ctx, newPod("default", "taken", nil)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		obj    api.Object
		reason api.Reason
		field  string
	}{
		{"existing name", newPod("default", "taken", nil), api.ReasonAlreadyExists, ""},
		{"namespaced kind without namespace", newPod("", "p", nil), api.ReasonInvalid, "metadata.namespace"},
		{"cluster-scoped kind with namespace", &api.Node{Metadata: api.ObjectMeta{Namespace: "default", Name: "n1"}}, api.ReasonInvalid, "metadata.namespace"},
		{"no name and no generateName", newPod("default", "", nil), api.ReasonInvalid, "metadata.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := *tc.obj.GetMeta()
			err := s.Create(ctx, tc.obj)
			if api.ReasonOf(err) != tc.reason {
				t.Fatalf("create: %v, want reason %s", err, tc.reason)
			}
			if tc.field != "" {
				var st *api.Status
				errors.As(err, &st)
				if len(st.Causes) != 1 || st.Causes[0].Field != tc.field {
					t.Errorf("causes = %+v, want one naming %s", st.Causes, tc.field)
				}
			}
			if after := tc.obj.GetMeta(); after.UID != before.UID || after.ResourceVersion != before.ResourceVersion {
				t.Errorf("a refused create changed the caller's object: %+v", after)
			}
		})
	}
}

func TestIntegrationGenerateNameMakesDistinctNamesWithThePrefix(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	re := regexp.MustCompile(`^web-[a-z0-9]{5}$`)
	names := map[string]bool{}
	for range 20 {
		p := newPod("default", "", nil)
		p.Metadata.GenerateName = "web-"
		if err := s.Create(ctx, p); err != nil {
			t.Fatalf("create: %v", err)
		}
		if !re.MatchString(p.Metadata.Name) {
			t.Errorf("generated name %q, want web- and 5 of [a-z0-9]", p.Metadata.Name)
		}
		names[p.Metadata.Name] = true
	}
	var list api.PodList
	if err := s.List(ctx, &list, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 20 || len(names) != 20 {
		t.Errorf("stored %d pods under %d names, want 20 distinct", len(list.Items), len(names))
	}
}

func TestIntegrationStaleUpdateGetsConflict(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	p := newPod("default", "web", nil)
	if err := s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	first, second := *p, *p
	first.Metadata.Labels = map[string]string{"writer": "first"}
	second.Metadata.Labels = map[string]string{"writer": "second"}
	if err := s.Update(ctx, &first); err != nil {
		t.Fatalf("first update: %v", err)
	}
	err := s.Update(ctx, &second)
	var st *api.Status
	if !errors.As(err, &st) || st.Reason != api.ReasonConflict || st.Code != http.StatusConflict {
		t.Fatalf("second update with the same resourceVersion: %v, want a 409 Conflict", err)
	}
	if second.Metadata.Labels["writer"] != "second" || second.Metadata.ResourceVersion != p.Metadata.ResourceVersion {
		t.Errorf("a refused update changed the caller's object: %+v", second.Metadata)
	}
	got := &api.Pod{Metadata: api.ObjectMeta{Namespace: "default", Name: "web"}}
	if err := s.Get(ctx, got); err != nil || got.Metadata.Labels["writer"] != "first" {
		t.Errorf("stored labels = %v (%v), want the first writer's", got.Metadata.Labels, err)
	}
	if err := s.UpdateStatus(ctx, &second); !api.IsConflict(err) {
		t.Errorf("stale status update: %v, want Conflict", err)
	}
}

func TestIntegrationUpdateRefusals(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	p := newPod("default", "web", nil)
	if err := s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	rev := &api.Revision{Metadata: api.ObjectMeta{Namespace: "default", Name: "r1"}, Number: 1}
	if err := s.Create(ctx, rev); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		update func() error
		reason api.Reason
	}{
		{"no resourceVersion", func() error {
			c := *p
			c.Metadata.ResourceVersion = 0
			return s.Update(ctx, &c)
		}, api.ReasonBadRequest},
		{"absent object", func() error {
			c := *p
			c.Metadata.Name = "absent"
			return s.Update(ctx, &c)
		}, api.ReasonNotFound},
		{"status of a kind without status", func() error {
			c := *rev
			return s.UpdateStatus(ctx, &c)
		}, api.ReasonBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.update(); api.ReasonOf(err) != tc.reason {
				t.Errorf("got %v, want reason %s", err, tc.reason)
			}
		})
	}
}

func TestIntegrationUpdateKeepsStatusAndUpdateStatusKeepsSpec(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	p := newPod("default", "web", nil)
	if err := s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}

	// A controller reports status...
	st := *p
	st.Status.Phase = "Running"
	st.Status.PodIP = "10.244.1.7"
	st.Spec.NodeName = "sneaky" // ignored by a status update
	if err := s.UpdateStatus(ctx, &st); err != nil {
		t.Fatalf("update status: %v", err)
	}
	if st.Spec.NodeName != "" || st.Status.PodIP != "10.244.1.7" || st.Metadata.Generation != 1 {
		t.Errorf("after status update spec.nodeName = %q, podIP = %q, generation = %d; want spec kept, status written, generation 1",
			st.Spec.NodeName, st.Status.PodIP, st.Metadata.Generation)
	}

	// ...and a user who read before it updates the spec: the status stays.
	user := st
	user.Status = api.PodStatus{}
	user.Spec.NodeName = "n1"
	if err := s.Update(ctx, &user); err != nil {
		t.Fatalf("update: %v", err)
	}
	got := &api.Pod{Metadata: api.ObjectMeta{Namespace: "default", Name: "web"}}
	if err := s.Get(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got.Status.PodIP != "10.244.1.7" || got.Status.Phase != "Running" || got.Spec.NodeName != "n1" {
		t.Errorf("stored status = %+v, spec.nodeName = %q; want the controller's status and the user's spec", got.Status, got.Spec.NodeName)
	}
	if user.Status.PodIP != "10.244.1.7" {
		t.Errorf("update did not write the stored result back: status = %+v", user.Status)
	}
}

func TestIntegrationGenerationCountsOnlySpecChanges(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	d := &api.Deployment{
		Metadata: api.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: api.DeploymentSpec{Template: api.PodTemplate{
			Spec: api.PodSpec{Containers: []api.Container{{Name: "web", Image: "web:1"}}},
		}},
	}
	if err := s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		change     func(d *api.Deployment)
		status     bool
		wantGen    int64
		wantNewRev bool
	}{
		{"label", func(d *api.Deployment) { d.Metadata.Labels = map[string]string{"a": "b"} }, false, 1, true},
		{"annotation", func(d *api.Deployment) { d.Metadata.Annotations = map[string]string{"note": "x"} }, false, 1, true},
		{"image", func(d *api.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "web:2" }, false, 2, true},
		{"status", func(d *api.Deployment) { d.Status.ObservedGeneration = 2 }, true, 2, true},
		{"caller's generation is ignored", func(d *api.Deployment) { d.Metadata.Generation = 40 }, false, 2, false},
		{"nothing", func(d *api.Deployment) {}, false, 2, false},
		{"replicas", func(d *api.Deployment) { r := int32(3); d.Spec.Replicas = &r }, false, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := d.Metadata.ResourceVersion
			tc.change(d)
			var err error
			if tc.status {
				err = s.UpdateStatus(ctx, d)
			} else {
				err = s.Update(ctx, d)
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Metadata.Generation != tc.wantGen {
				t.Errorf("generation = %d, want %d", d.Metadata.Generation, tc.wantGen)
			}
			if newRev := d.Metadata.ResourceVersion != before; newRev != tc.wantNewRev {
				t.Errorf("resourceVersion %d -> %d: written = %v, want %v", before, d.Metadata.ResourceVersion, newRev, tc.wantNewRev)
			}
		})
	}
}

func TestIntegrationUpdateKeepsServerOwnedMetadataAndUpdateMetaSetsDeletion(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	p := newPod("default", "web", nil)
	if err := s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	orig := p.Metadata

	forged := *p
	when := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	grace := int64(5)
	forged.Metadata.UID = "forged"
	forged.Metadata.CreationTimestamp = when
	forged.Metadata.DeletionTimestamp = &when
	forged.Metadata.DeletionGracePeriodSeconds = &grace
	if err := s.Update(ctx, &forged); err != nil {
		t.Fatal(err)
	}
	if m := forged.Metadata; m.UID != orig.UID || !m.CreationTimestamp.Equal(orig.CreationTimestamp) || m.DeletionTimestamp != nil || m.DeletionGracePeriodSeconds != nil {
		t.Errorf("update let the caller set server-owned metadata: %+v", m)
	}

	forged.Metadata.DeletionTimestamp = &when
	forged.Metadata.DeletionGracePeriodSeconds = &grace
	forged.Metadata.UID = "forged"
	if err := s.UpdateMeta(ctx, &forged); err != nil {
		t.Fatal(err)
	}
	got := &api.Pod{Metadata: api.ObjectMeta{Namespace: "default", Name: "web"}}
	if err := s.Get(ctx, got); err != nil {
		t.Fatal(err)
	}
	m := got.Metadata
	if m.DeletionTimestamp == nil || !m.DeletionTimestamp.Equal(when) || m.DeletionGracePeriodSeconds == nil || *m.DeletionGracePeriodSeconds != 5 {
		t.Errorf("after UpdateMeta deletion = %v/%v, want %v/5", m.DeletionTimestamp, m.DeletionGracePeriodSeconds, when)
	}
	if m.UID != orig.UID || m.Generation != 1 {
		t.Errorf("UpdateMeta changed uid to %q or generation to %d", m.UID, m.Generation)
	}
}

func TestIntegrationDeletePreconditions(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name   string
		opts   func(stored api.ObjectMeta) DeleteOptions
		reason api.Reason
	}{
		{"none", func(api.ObjectMeta) DeleteOptions { return DeleteOptions{} }, ""},
		{"matching uid and resourceVersion", func(m api.ObjectMeta) DeleteOptions {
			return DeleteOptions{UID: m.UID, ResourceVersion: m.ResourceVersion}
		}, ""},
		{"stale resourceVersion", func(m api.ObjectMeta) DeleteOptions {
			return DeleteOptions{ResourceVersion: m.ResourceVersion - 1}
		}, api.ReasonConflict},
		{"uid of an earlier incarnation", func(api.ObjectMeta) DeleteOptions {
			return DeleteOptions{UID: "00000000-0000-4000-8000-000000000000"}
		}, api.ReasonConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPod("default", "victim", nil)
			if err := s.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Delete(ctx, newPod("default", "victim", nil), DeleteOptions{}) })
			err := s.Delete(ctx, newPod("default", "victim", nil), tc.opts(p.Metadata))
			if api.ReasonOf(err) != tc.reason || (tc.reason == "" && err != nil) {
				t.Fatalf("delete: %v, want reason %q", err, tc.reason)
			}
			err = s.Get(ctx, newPod("default", "victim", nil))
			if gone := api.IsNotFound(err); gone != (tc.reason == "") {
				t.Errorf("after delete get = %v; deleted = %v, want %v", err, gone, tc.reason == "")
			}
		})
	}
}

func TestIntegrationGuaranteedUpdateAppliesEveryConcurrentChange(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	n := &api.Node{Metadata: api.ObjectMeta{Name: "n1", Annotations: map[string]string{}}}
	if err := s.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	// 4 writers x 5 increments: a writer can lose at most 15 races (one per
	// other writer's success), so 16 attempts always suffice.
	const writers, each = 4, 5
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				node := &api.Node{Metadata: api.ObjectMeta{Name: "n1"}}
				errs <- s.GuaranteedUpdate(ctx, node, false, func() error {
					if node.Metadata.Annotations == nil {
						node.Metadata.Annotations = map[string]string{}
					}
					node.Metadata.Annotations[string(rune('a'+w))+string(rune('0'+i))] = "x"
					return nil
				})
			}
		}()
	}
	for range writers * each {
		if err := <-errs; err != nil {
			t.Fatalf("guaranteed update: %v", err)
		}
	}
	got := &api.Node{Metadata: api.ObjectMeta{Name: "n1"}}
	if err := s.Get(ctx, got); err != nil {
		t.Fatal(err)
	}
	if len(got.Metadata.Annotations) != writers*each {
		t.Errorf("%d annotations survived, want %d: %v", len(got.Metadata.Annotations), writers*each, got.Metadata.Annotations)
	}
}

func TestIntegrationGuaranteedUpdateStopsOnMutateErrorAndWritesStatus(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	if err := s.Create(ctx, &api.Node{Metadata: api.ObjectMeta{Name: "n1"}}); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("nothing to do")
	n := &api.Node{Metadata: api.ObjectMeta{Name: "n1"}}
	if err := s.GuaranteedUpdate(ctx, n, true, func() error { return stop }); err != stop {
		t.Errorf("mutate error: got %v, want it returned as is", err)
	}
	err := s.GuaranteedUpdate(ctx, n, true, func() error {
		n.Status.Addresses = []api.NodeAddress{{Type: api.NodeInternalIP, Address: "198.18.0.5"}}
		n.Spec.Unschedulable = true // a status write must not carry this
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Status.Addresses) != 1 || n.Spec.Unschedulable {
		t.Errorf("status update stored status %+v and unschedulable %v", n.Status, n.Spec.Unschedulable)
	}
	if err := s.GuaranteedUpdate(ctx, &api.Node{Metadata: api.ObjectMeta{Name: "absent"}}, false, func() error { return nil }); !api.IsNotFound(err) {
		t.Errorf("absent object: %v, want NotFound", err)
	}
}

func TestIntegrationUpdateOfClusterScopedAndUnstatusedKinds(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	ep := &api.Endpoints{Metadata: api.ObjectMeta{Namespace: "default", Name: "web"}}
	if err := s.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
	ep.Subsets = []api.EndpointSubset{{Addresses: []api.EndpointAddress{{IP: "10.244.0.9"}}}}
	if err := s.Update(ctx, ep); err != nil {
		t.Fatal(err)
	}
	got := &api.Endpoints{Metadata: api.ObjectMeta{Namespace: "default", Name: "web"}}
	if err := s.Get(ctx, got); err != nil {
		t.Fatal(err)
	}
	if len(got.Subsets) != 1 || got.Metadata.Generation != 2 {
		t.Errorf("endpoints after update = %+v, want one subset and generation 2", got)
	}
}
