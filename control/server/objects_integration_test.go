package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/pki"
	"github.com/berth-io/berth/control/server"
)

func TestIntegrationPodCreateGetUpdateListDelete(t *testing.T) {
	c := newCluster(t)
	var created api.Pod
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), newPod("web-1"), &created)
	if created.Metadata.UID == "" || created.Metadata.ResourceVersion == 0 || created.Metadata.Namespace != "default" {
		t.Fatalf("created pod lacks server metadata: %+v", created.Metadata)
	}
	if created.Spec.RestartPolicy != api.RestartAlways {
		t.Errorf("defaults not applied: restartPolicy %q", created.Spec.RestartPolicy)
	}
	var got api.Pod
	c.must(c.admin, http.StatusOK, http.MethodGet, objPath("pods", "default", "web-1"), nil, &got)
	if got.Metadata.UID != created.Metadata.UID {
		t.Fatalf("get returned uid %s, want %s", got.Metadata.UID, created.Metadata.UID)
	}

	// Bind it (the one spec change a pod allows), then replay the stale copy.
	bound := got
	bound.Spec.NodeName = "n1"
	var updated api.Pod
	c.must(c.admin, http.StatusOK, http.MethodPut, objPath("pods", "default", "web-1"), &bound, &updated)
	if updated.Spec.NodeName != "n1" || updated.Metadata.ResourceVersion <= got.Metadata.ResourceVersion {
		t.Fatalf("update did not bind: %+v", updated)
	}
	stale := got
	stale.Metadata.Labels = map[string]string{"app": "other"}
	c.expectError(c.admin, api.ReasonConflict, http.MethodPut, objPath("pods", "default", "web-1"), &stale)

	var list api.PodList
	c.must(c.admin, http.StatusOK, http.MethodGet, podsPath("default")+"?labelSelector=app%3Dweb", nil, &list)
	if len(list.Items) != 1 || list.ResourceVersion == 0 {
		t.Fatalf("list by label: %d items at %d", len(list.Items), list.ResourceVersion)
	}
	c.must(c.admin, http.StatusOK, http.MethodGet, podsPath("")+"?fieldSelector=spec.nodeName%3Dn2", nil, &list)
	if len(list.Items) != 0 {
		t.Fatalf("field selector for another node listed %d pods", len(list.Items))
	}
	c.must(c.admin, http.StatusOK, http.MethodGet, podsPath("")+"?fieldSelector=spec.nodeName%3Dn1", nil, &list)
	if len(list.Items) != 1 {
		t.Fatalf("field selector for n1 listed %d pods, want 1", len(list.Items))
	}

	c.must(c.admin, http.StatusOK, http.MethodDelete, objPath("pods", "default", "web-1")+"?gracePeriodSeconds=0", nil, nil)
	c.expectError(c.admin, api.ReasonNotFound, http.MethodGet, objPath("pods", "default", "web-1"), nil)
	c.expectError(c.admin, api.ReasonNotFound, http.MethodDelete, objPath("pods", "default", "web-1"), nil)
}

func TestIntegrationInvalidObjectsAnswer422WithFieldPaths(t *testing.T) {
	c := newCluster(t)
	bad := newPod("Bad_Name")
	bad.Spec.Containers = append(bad.Spec.Containers, api.Container{Name: "side", Image: "x", Ports: []api.ContainerPort{{ContainerPort: 70000}}})
	st := c.expectError(c.admin, api.ReasonInvalid, http.MethodPost, podsPath("default"), bad)
	fields := map[string]bool{}
	for _, cause := range st.Causes {
		fields[cause.Field] = true
	}
	for _, want := range []string{"metadata.name", "spec.containers[1].ports[0].containerPort"} {
		if !fields[want] {
			t.Errorf("causes %v do not name %s", st.Causes, want)
		}
	}
	if st.Code != http.StatusUnprocessableEntity {
		t.Errorf("code %d, want 422", st.Code)
	}

	// An update that changes a pod's spec is refused the same way.
	var p api.Pod
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), newPod("web"), &p)
	p.Spec.Containers[0].Image = "registry.test/web:v2"
	st = c.expectError(c.admin, api.ReasonInvalid, http.MethodPut, objPath("pods", "default", "web"), &p)
	if len(st.Causes) == 0 || st.Causes[0].Field != "spec" {
		t.Errorf("causes %v, want spec", st.Causes)
	}
}

func TestIntegrationRequestsAreRefusedWithAStatus(t *testing.T) {
	c := newCluster(t, func(cfg *server.Config) { cfg.MaxBodyBytes = 4096 })
	huge := newPod("huge")
	huge.Metadata.Annotations = map[string]string{"blob": strings.Repeat("x", 8192)}
	cases := []struct {
		name   string
		cli    *http.Client
		method string
		path   string
		body   any
		reason api.Reason
	}{
		{"body over the limit", c.admin, http.MethodPost, podsPath("default"), huge, api.ReasonTooLarge},
		{"unknown path", c.admin, http.MethodGet, "/v1/widgets", nil, api.ReasonNotFound},
		{"path outside the api", c.admin, http.MethodGet, "/nothing", nil, api.ReasonNotFound},
		{"no client certificate", c.noCert, http.MethodGet, podsPath("default"), nil, api.ReasonUnauthorized},
		{"namespace that does not exist", c.admin, http.MethodPost, podsPath("nowhere"), newPod("p"), api.ReasonNotFound},
		{"wrong kind in the body", c.admin, http.MethodPost, collPath("services", "default"), newPodWithKind("p"), api.ReasonBadRequest},
		{"unknown field", c.admin, http.MethodPost, podsPath("default"), map[string]any{"metadata": map[string]any{"name": "x"}, "spek": 1}, api.ReasonBadRequest},
		{"create of an existing namespace", c.admin, http.MethodPost, collPath("namespaces", ""), &api.Namespace{Metadata: api.ObjectMeta{Name: "default"}}, api.ReasonAlreadyExists},
		{"an etcd-peer identity", c.clientFor(pki.EtcdPeerIdentity("e1", nil, nil)), http.MethodGet, podsPath("default"), nil, api.ReasonForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.expectError(tc.cli, tc.reason, tc.method, tc.path, tc.body)
		})
	}
}

func newPodWithKind(name string) *api.Pod {
	p := newPod(name)
	api.SetTypeMeta(p)
	return p
}

func TestIntegrationNamespaceDeletionMarksTerminatingAndRefusesCreates(t *testing.T) {
	c := newCluster(t)
	c.must(c.admin, http.StatusCreated, http.MethodPost, collPath("namespaces", ""), &api.Namespace{Metadata: api.ObjectMeta{Name: "team"}}, nil)
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("team"), newPod("p"), nil)
	var ns api.Namespace
	c.must(c.admin, http.StatusOK, http.MethodDelete, objPath("namespaces", "", "team"), nil, &ns)
	if ns.Status.Phase != api.NamespaceTerminating || ns.Metadata.DeletionTimestamp == nil {
		t.Fatalf("deleted namespace is %q with deletionTimestamp %v, want Terminating", ns.Status.Phase, ns.Metadata.DeletionTimestamp)
	}
	c.expectError(c.admin, api.ReasonForbidden, http.MethodPost, podsPath("team"), newPod("q"))
	// Still holding a pod: a second delete refuses to remove it.
	c.expectError(c.admin, api.ReasonConflict, http.MethodDelete, objPath("namespaces", "", "team"), nil)
	c.must(c.admin, http.StatusOK, http.MethodDelete, objPath("pods", "team", "p"), nil, nil)
	c.must(c.admin, http.StatusOK, http.MethodDelete, objPath("namespaces", "", "team"), nil, nil)
	c.expectError(c.admin, api.ReasonNotFound, http.MethodGet, objPath("namespaces", "", "team"), nil)
	c.expectError(c.admin, api.ReasonForbidden, http.MethodDelete, objPath("namespaces", "", "default"), nil)
}
