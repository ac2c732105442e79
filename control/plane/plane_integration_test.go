package plane_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/pki"
	"github.com/berth-io/berth/control/plane"
	"github.com/berth-io/berth/internal/prereq"
)

// running is a control plane started by startDev.
type running struct {
	stop func()
	done chan error
}

// startDev runs a Dev control plane on dir and waits until admin.json is
// written and the API is ready. controllers receives the client config the
// controllers were given.
func startDev(t *testing.T, dir string, controllers chan<- client.Config) (*running, client.Config) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	cfg := plane.Config{Name: "cp1", DataDir: dir, ListenAddress: "127.0.0.1:0", Dev: true}
	if controllers != nil {
		cfg.RunControllers = func(ctx context.Context, cc client.Config) error {
			controllers <- cc
			<-ctx.Done()
			return nil
		}
	}
	r := &running{stop: stop, done: make(chan error, 1)}
	ready := make(chan struct{})
	adminPath := filepath.Join(dir, "admin.json")
	before, _ := os.Stat(adminPath)
	go func() { r.done <- plane.Run(ctx, cfg, nil) }()
	// Run writes admin.json once every component runs; poll for a fresh one.
	go func() {
		defer close(ready)
		for {
			if st, err := os.Stat(adminPath); err == nil && (before == nil || st.ModTime() != before.ModTime()) {
				return
			}
			select {
			case <-r.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	<-ready
	select {
	case err := <-r.done:
		t.Fatalf("control plane stopped while starting: %v", err)
	default:
	}
	cc, err := client.LoadConfig(adminPath)
	if err != nil {
		t.Fatal(err)
	}
	return r, cc
}

func (r *running) shutdown(t *testing.T) {
	t.Helper()
	r.stop()
	if err := <-r.done; err != nil {
		t.Fatalf("control plane stopped with %v", err)
	}
}

func httpClient(t *testing.T, cc client.Config) *http.Client {
	t.Helper()
	cert, err := tls.X509KeyPair([]byte(cc.ClientCertificate), []byte(cc.ClientKey))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCert([]byte(cc.CACertificate))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	tr := &http.Transport{TLSClientConfig: pki.ClientTLSConfig(roots, pki.NewCertStore(cert), "")}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func call(t *testing.T, cli *http.Client, method, url string, body, out any) int {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, url, &buf)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestIntegrationDevControlPlaneKeepsEverythingAcrossRestarts(t *testing.T) {
	prereq.Integration(t)
	dir := t.TempDir()
	controllers := make(chan client.Config, 1)
	r, cc := startDev(t, dir, controllers)
	if st, err := os.Stat(filepath.Join(dir, "admin.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.json: %v, mode %v; want 0600", err, st.Mode())
	}
	var raw map[string]any
	data, _ := os.ReadFile(filepath.Join(dir, "admin.json"))
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"endpoints", "caCertificate", "clientCertificate", "clientKey"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("admin.json lacks %q", k)
		}
	}
	cli := httpClient(t, cc)
	base := cc.Endpoints[0]
	if code := call(t, cli, http.MethodPost, base+"/v1/namespaces", &api.Namespace{Metadata: api.ObjectMeta{Name: "team"}}, nil); code != http.StatusCreated {
		t.Fatalf("create namespace: %d", code)
	}
	pod := &api.Pod{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.PodSpec{Containers: []api.Container{{Name: "web", Image: "registry.test/web:v1"}}}}
	var created api.Pod
	if code := call(t, cli, http.MethodPost, base+"/v1/namespaces/team/pods", pod, &created); code != http.StatusCreated {
		t.Fatalf("create pod: %d", code)
	}
	var cp api.ControlPlane
	if code := call(t, cli, http.MethodGet, base+"/v1/controlplane", nil, &cp); code != http.StatusOK || cp.ClusterID == "" {
		t.Fatalf("controlplane: %d %+v", code, cp)
	}
	// The controllers got a working admin-level identity.
	ctrl := httpClient(t, <-controllers)
	if code := call(t, ctrl, http.MethodGet, base+"/v1/namespaces/team/deployments", nil, nil); code != http.StatusOK {
		t.Fatalf("controllers' client listing deployments: %d", code)
	}
	r.shutdown(t)

	r2, cc2 := startDev(t, dir, nil)
	defer r2.shutdown(t)
	if cc2.CACertificate != cc.CACertificate {
		t.Fatal("the CA changed across a restart")
	}
	cli2 := httpClient(t, cc2)
	var got api.Pod
	if code := call(t, cli2, http.MethodGet, cc2.Endpoints[0]+"/v1/namespaces/team/pods/web", nil, &got); code != http.StatusOK {
		t.Fatalf("get the pod after a restart: %d", code)
	}
	if got.Metadata.UID != created.Metadata.UID {
		t.Fatalf("pod uid %s after restart, want %s", got.Metadata.UID, created.Metadata.UID)
	}
	var cp2 api.ControlPlane
	if code := call(t, cli2, http.MethodGet, cc2.Endpoints[0]+"/v1/controlplane", nil, &cp2); code != http.StatusOK || cp2.ClusterID != cp.ClusterID {
		t.Fatalf("cluster id %q after restart, want %q", cp2.ClusterID, cp.ClusterID)
	}
}

func TestIntegrationDevControlPlaneRunsTheControllers(t *testing.T) {
	prereq.Integration(t)
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- plane.Run(ctx, plane.Config{Name: "cp1", DataDir: dir, ListenAddress: "127.0.0.1:0", Dev: true,
			LeaderElection: plane.LeaderElectionConfig{LeaseDurationSeconds: 3, RenewDeadlineSeconds: 2, RetryPeriodSeconds: 1}}, nil)
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("control plane stopped with %v", err)
		}
	}()
	adminPath := filepath.Join(dir, "admin.json")
	for {
		if _, err := os.Stat(adminPath); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("control plane stopped while starting: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cc, err := client.LoadConfig(adminPath)
	if err != nil {
		t.Fatal(err)
	}
	cli := httpClient(t, cc)
	base := cc.Endpoints[0]
	var node api.Node
	if code := call(t, cli, http.MethodPost, base+"/v1/nodes", &api.Node{Metadata: api.ObjectMeta{Name: "n1"}}, &node); code != http.StatusCreated {
		t.Fatalf("create node: %d", code)
	}
	now := time.Now()
	node.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue, LastTransitionTime: now}}
	node.Status.LastHeartbeatTime = &now
	node.Status.Allocatable = api.ResourceList{api.ResourceCPU: api.Quantity("4"), api.ResourceMemory: api.Quantity("8Gi"), api.ResourcePods: api.Quantity("110")}
	node.Status.Capacity = node.Status.Allocatable
	if code := call(t, cli, http.MethodPut, base+"/v1/nodes/n1/status", &node, nil); code != http.StatusOK {
		t.Fatalf("node status: %d", code)
	}
	pod := &api.Pod{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.PodSpec{Containers: []api.Container{{Name: "web", Image: "registry.test/web:v1"}}}}
	if code := call(t, cli, http.MethodPost, base+"/v1/namespaces/default/pods", pod, nil); code != http.StatusCreated {
		t.Fatalf("create pod: %d", code)
	}
	// The scheduler, run by the control plane, binds the pod.
	for {
		var got api.Pod
		if code := call(t, cli, http.MethodGet, base+"/v1/namespaces/default/pods/web", nil, &got); code != http.StatusOK {
			t.Fatalf("get pod: %d", code)
		}
		if got.Spec.NodeName == "n1" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
