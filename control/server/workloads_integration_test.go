package server_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/etcd"
	"github.com/berth-io/berth/control/server"
	"github.com/berth-io/berth/control/store"
)

func TestIntegrationGracefulPodDeleteThenNodeFinalises(t *testing.T) {
	c := newCluster(t)
	n1 := c.join("n1")
	p := newPod("web")
	p.Spec.NodeName = "n1"
	grace := int64(45)
	p.Spec.TerminationGracePeriodSeconds = &grace
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), p, nil)

	var terminating api.Pod
	c.must(c.admin, http.StatusOK, http.MethodDelete, objPath("pods", "default", "web"), nil, &terminating)
	if terminating.Metadata.DeletionTimestamp == nil || terminating.Metadata.DeletionGracePeriodSeconds == nil || *terminating.Metadata.DeletionGracePeriodSeconds != 45 {
		t.Fatalf("graceful delete: deletionTimestamp %v, grace %v; want set and 45", terminating.Metadata.DeletionTimestamp, terminating.Metadata.DeletionGracePeriodSeconds)
	}
	c.must(n1, http.StatusOK, http.MethodGet, objPath("pods", "default", "web"), nil, nil)
	// The node stops the pod, then finalises it.
	c.must(n1, http.StatusOK, http.MethodDelete, objPath("pods", "default", "web")+"?gracePeriodSeconds=0", nil, nil)
	c.expectError(c.admin, api.ReasonNotFound, http.MethodGet, objPath("pods", "default", "web"), nil)

	// Unbound and finished pods go at once.
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), newPod("pending"), nil)
	c.must(c.admin, http.StatusOK, http.MethodDelete, objPath("pods", "default", "pending"), nil, nil)
	c.expectError(c.admin, api.ReasonNotFound, http.MethodGet, objPath("pods", "default", "pending"), nil)
	done := newPod("done")
	done.Spec.NodeName = "n1"
	var stored api.Pod
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), done, &stored)
	stored.Status.Phase = api.PodSucceeded
	c.must(n1, http.StatusOK, http.MethodPut, objPath("pods", "default", "done")+"/status", &stored, nil)
	c.must(c.admin, http.StatusOK, http.MethodDelete, objPath("pods", "default", "done"), nil, nil)
	c.expectError(c.admin, api.ReasonNotFound, http.MethodGet, objPath("pods", "default", "done"), nil)
}

// deploymentWithPods makes a deployment of replicas pods, each Ready
// unless listed in notReady.
func (c *cluster) deploymentWithPods(name string, replicas int32, maxUnavailable int32, notReady ...int) {
	c.t.Helper()
	mu := api.FromInt(maxUnavailable)
	d := &api.Deployment{
		Metadata: api.ObjectMeta{Name: name},
		Spec: api.DeploymentSpec{
			Replicas: &replicas,
			Selector: map[string]string{"app": name},
			Template: api.PodTemplate{
				Metadata: api.TemplateMeta{Labels: map[string]string{"app": name}},
				Spec:     api.PodSpec{Containers: []api.Container{{Name: "web", Image: "registry.test/web:v1"}}},
			},
			Strategy: api.DeploymentStrategy{MaxUnavailable: &mu},
		},
	}
	var stored api.Deployment
	c.must(c.admin, http.StatusCreated, http.MethodPost, collPath("deployments", "default"), d, &stored)
	skip := map[int]bool{}
	for _, i := range notReady {
		skip[i] = true
	}
	for i := range int(replicas) {
		p := newPod(fmt.Sprintf("%s-%d", name, i))
		p.Metadata.Labels = map[string]string{"app": name}
		p.Metadata.OwnerReferences = []api.OwnerReference{{Kind: "Deployment", Name: name, UID: stored.Metadata.UID, Controller: true}}
		p.Spec.NodeName = "n1"
		var sp api.Pod
		c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), p, &sp)
		if !skip[i] {
			sp.Status.Phase = api.PodRunning
			sp.Status.Conditions = []api.Condition{{Type: api.PodReady, Status: api.ConditionTrue}}
			c.must(c.admin, http.StatusOK, http.MethodPut, objPath("pods", "default", sp.Metadata.Name)+"/status", &sp, nil)
		}
	}
}

func TestIntegrationEvictionRespectsDeploymentAvailability(t *testing.T) {
	c := newCluster(t)
	c.deploymentWithPods("web", 3, 1)
	var evicted api.Pod
	c.must(c.admin, http.StatusOK, http.MethodPost, objPath("pods", "default", "web-0")+"/eviction", &api.EvictionRequest{}, &evicted)
	if evicted.Metadata.DeletionTimestamp == nil {
		t.Fatal("evicted pod is not terminating")
	}
	st := c.expectError(c.admin, api.ReasonTooManyRequests, http.MethodPost, objPath("pods", "default", "web-1")+"/eviction", &api.EvictionRequest{})
	if st.Code != http.StatusTooManyRequests {
		t.Fatalf("code %d, want 429", st.Code)
	}

	// A pod that is not Ready costs no availability.
	c.deploymentWithPods("api", 2, 0, 1)
	c.must(c.admin, http.StatusOK, http.MethodPost, objPath("pods", "default", "api-1")+"/eviction", nil, nil)
	c.expectError(c.admin, api.ReasonTooManyRequests, http.MethodPost, objPath("pods", "default", "api-0")+"/eviction", nil)
}

func TestIntegrationServicesGetDistinctAddressesKeptAcrossUpdates(t *testing.T) {
	c := newCluster(t, func(cfg *server.Config) { cfg.ServiceCIDR = "10.96.0.0/28" })
	// A /28 has 13 assignable addresses (not network, DNS or broadcast).
	const n = 13
	ips := map[string]string{}
	ports := map[int32]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			svc := &api.Service{
				Metadata: api.ObjectMeta{Name: fmt.Sprintf("s%d", i)},
				Spec:     api.ServiceSpec{Type: api.ServiceNodePort, Ports: []api.ServicePort{{Port: 80}}},
			}
			var got api.Service
			c.must(c.admin, http.StatusCreated, http.MethodPost, collPath("services", "default"), svc, &got)
			mu.Lock()
			defer mu.Unlock()
			if prev, dup := ips[got.Spec.ClusterIP]; dup {
				t.Errorf("cluster ip %s given to %s and %s", got.Spec.ClusterIP, prev, got.Metadata.Name)
			}
			ips[got.Spec.ClusterIP] = got.Metadata.Name
			np := got.Spec.Ports[0].NodePort
			if prev, dup := ports[np]; dup || np < 30000 || np > 32767 {
				t.Errorf("node port %d given to %s (and %q)", np, got.Metadata.Name, prev)
			}
			ports[np] = got.Metadata.Name
		})
	}
	wg.Wait()
	if ips["10.96.0.1"] != "" || ips["10.96.0.0"] != "" || ips["10.96.0.15"] != "" {
		t.Fatalf("a reserved address was allocated: %v", ips)
	}
	full := &api.Service{Metadata: api.ObjectMeta{Name: "full"}, Spec: api.ServiceSpec{Ports: []api.ServicePort{{Port: 80}}}}
	c.expectError(c.admin, api.ReasonUnavailable, http.MethodPost, collPath("services", "default"), full)

	// An update that omits the allocations keeps them.
	var s0 api.Service
	c.must(c.admin, http.StatusOK, http.MethodGet, objPath("services", "default", "s0"), nil, &s0)
	edit := s0
	edit.Spec.ClusterIP = ""
	edit.Spec.Ports = []api.ServicePort{{Port: 80}}
	edit.Metadata.Labels = map[string]string{"edited": "yes"}
	var after api.Service
	c.must(c.admin, http.StatusOK, http.MethodPut, objPath("services", "default", "s0"), &edit, &after)
	if after.Spec.ClusterIP != s0.Spec.ClusterIP || after.Spec.Ports[0].NodePort != s0.Spec.Ports[0].NodePort {
		t.Fatalf("update moved the allocations: %s:%d -> %s:%d", s0.Spec.ClusterIP, s0.Spec.Ports[0].NodePort, after.Spec.ClusterIP, after.Spec.Ports[0].NodePort)
	}

	// Deleting releases: the freed address and port can be asked for.
	c.must(c.admin, http.StatusOK, http.MethodDelete, objPath("services", "default", "s0"), nil, nil)
	again := &api.Service{
		Metadata: api.ObjectMeta{Name: "again"},
		Spec:     api.ServiceSpec{Type: api.ServiceNodePort, ClusterIP: s0.Spec.ClusterIP, Ports: []api.ServicePort{{Port: 80, NodePort: s0.Spec.Ports[0].NodePort}}},
	}
	c.must(c.admin, http.StatusCreated, http.MethodPost, collPath("services", "default"), again, nil)
	// A taken node port or address is refused with the field named.
	c.must(c.admin, http.StatusOK, http.MethodDelete, objPath("services", "default", "s1"), nil, nil)
	taken := &api.Service{
		Metadata: api.ObjectMeta{Name: "taken"},
		Spec:     api.ServiceSpec{Type: api.ServiceNodePort, Ports: []api.ServicePort{{Port: 80, NodePort: s0.Spec.Ports[0].NodePort}}},
	}
	st := c.expectError(c.admin, api.ReasonInvalid, http.MethodPost, collPath("services", "default"), taken)
	if len(st.Causes) != 1 || st.Causes[0].Field != "spec.ports[0].nodePort" {
		t.Fatalf("causes %v, want spec.ports[0].nodePort", st.Causes)
	}
}

func TestIntegrationNodesGetDistinctPodCIDRs(t *testing.T) {
	c := newCluster(t)
	seen := map[string]bool{}
	for i := range 3 {
		var n api.Node
		c.must(c.admin, http.StatusCreated, http.MethodPost, collPath("nodes", ""), &api.Node{Metadata: api.ObjectMeta{Name: fmt.Sprintf("n%d", i)}}, &n)
		if n.Spec.PodCIDR == "" || seen[n.Spec.PodCIDR] {
			t.Fatalf("node n%d got pod CIDR %q (seen %v)", i, n.Spec.PodCIDR, seen)
		}
		seen[n.Spec.PodCIDR] = true
	}
	if !seen["10.244.0.0/24"] {
		t.Errorf("the first node did not get the first block: %v", seen)
	}
	// An update that omits the pod CIDR keeps it.
	var n0 api.Node
	c.must(c.admin, http.StatusOK, http.MethodGet, objPath("nodes", "", "n0"), nil, &n0)
	cidr := n0.Spec.PodCIDR
	n0.Spec.PodCIDR = ""
	n0.Spec.Unschedulable = true
	c.must(c.admin, http.StatusOK, http.MethodPut, objPath("nodes", "", "n0"), &n0, &n0)
	if n0.Spec.PodCIDR != cidr {
		t.Fatalf("update changed the pod CIDR from %s to %s", cidr, n0.Spec.PodCIDR)
	}
}

func TestIntegrationSnapshotRestoresWithEtcd(t *testing.T) {
	c := newCluster(t)
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), newPod("kept"), nil)
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, c.url+"/v1/snapshot", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.admin.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("snapshot: %d", resp.StatusCode)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "snap.db")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	purl, err := freeURL()
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := etcd.Restore(testCtx(t), file, etcd.RestoreConfig{Name: "restored", DataDir: data, PeerURL: purl.String()}); err != nil {
		t.Fatalf("restore the served snapshot: %v", err)
	}
	member, err := etcd.Start(testCtx(t), etcd.Config{
		Name: "restored", DataDir: data,
		ListenClientURLs: []string{"127.0.0.1:0"}, ListenPeerURLs: []string{purl.String()},
	})
	if err != nil {
		t.Fatalf("start etcd on the restored data: %v", err)
	}
	defer member.Close()
	cli := member.Client()
	restored := store.New(cli, store.Options{Prefix: c.prefix})
	if err := restored.Get(testCtx(t), &api.Pod{Metadata: api.ObjectMeta{Namespace: "default", Name: "kept"}}); err != nil {
		t.Fatalf("the restored snapshot lacks the pod: %v", err)
	}
}
