// Package cluster_test installs whole clusters with provider/cluster on
// testbed hosts: bootstrap, idempotent re-runs, pinned host keys, rolling
// upgrades under traffic, rollback, resume from the journal and control
// plane moves.
package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/acceptance/testbed"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/internal/prereq"
	"github.com/berth-io/berth/provider/cluster"
	"github.com/berth-io/berth/provider/ssh"
)

// TestMain shares one testbed of eight hosts: five at one vendor (three
// control-plane hosts and two workers), three at another (where the
// control plane moves).
func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// imageDir holds the node images this test binary builds: bin/ is shared
// with other builds of the tree, so the tests never read a bundle from it.
var imageDir string

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "berth-acceptance-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	imageDir = dir
	return testbed.MainWith(m, testbed.Options{Vendors: []testbed.Vendor{{Name: "vendor-a", Hosts: 5}, {Name: "vendor-b", Hosts: 3}}})
}

var (
	imageOnce   sync.Once
	imagePath   string
	imageDigest string
	imageErr    error
)

// nodeImage builds the node image of this tree once per test binary.
func nodeImage(t *testing.T) (string, string) {
	t.Helper()
	imageOnce.Do(func() {
		imagePath, imageDigest, imageErr = buildImage(imageDir, "./cmd/berth", "v0.0.0-acceptance-a")
	})
	if imageErr != nil {
		t.Fatalf("build node image: %v", imageErr)
	}
	return imagePath, imageDigest
}

func specFor(t *testing.T, tb *testbed.Testbed, cps, workers []string) cluster.Spec {
	t.Helper()
	img, digest := nodeImage(t)
	key, err := os.ReadFile(tb.PrivateKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	h := func(name string) cluster.Host {
		th, err := tb.Host(name)
		if err != nil {
			t.Fatal(err)
		}
		return cluster.Host{Name: name, SSH: ssh.HostConfig{Address: th.Address, Port: th.SSHPort, User: th.User, PrivateKey: key, HostKey: th.HostPublicKey}}
	}
	s := cluster.Spec{
		Image:    cluster.Image{Path: img, Digest: digest},
		Settings: cluster.Settings{EtcdHeartbeatMs: 300, EtcdElectionMs: 3000, PlainHTTPRegistries: []string{tb.RegistryAddr()}},
		Rollout:  cluster.RolloutPolicy{HealthTimeout: 3 * time.Minute, DrainTimeout: 2 * time.Minute},
	}
	for _, n := range cps {
		s.ControlPlane = append(s.ControlPlane, h(n))
	}
	p := cluster.WorkerPool{Name: "workers"}
	for _, n := range workers {
		p.Hosts = append(p.Hosts, h(n))
	}
	s.Workers = []cluster.WorkerPool{p}
	return s
}

// fingerprint is what a host shows of berth: the image symlinks, the
// configuration hash and each service's process start time.
func fingerprint(t *testing.T, tb *testbed.Testbed, hosts []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, h := range hosts {
		b, err := tb.Exec(ctx, h, "readlink /opt/berth/current /opt/berth/previous; cat /etc/berth/config.sha256; /opt/berth/current/bin/berth node status --config /etc/berth/node.json; ls /opt/berth/images")
		if err != nil {
			t.Fatalf("inspect %s: %v\n%s", h, err, b)
		}
		out[h] = string(b)
	}
	return out
}

func progress(t *testing.T) func(cluster.Event) {
	return func(e cluster.Event) { t.Logf("%8s %-12s %s", e.Elapsed.Round(time.Millisecond), e.Host, e.Step) }
}

func TestIntegrationBootstrapOneControlPlaneTwoWorkersThenNothingToDo(t *testing.T) {
	prereq.Integration(t)
	prereq.Root(t)
	tb := testbed.Shared(t)
	hosts := tb.Hosts()
	if len(hosts) < 3 {
		t.Fatalf("testbed has %d hosts, need 3", len(hosts))
	}
	names := []string{hosts[0].Name, hosts[1].Name, hosts[2].Name}
	spec := specFor(t, tb, names[:1], names[1:])
	spec.SnapshotPath = filepath.Join(t.TempDir(), "etcd.snapshot")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	began := time.Now()
	st, err := cluster.Apply(ctx, spec, cluster.State{}, cluster.Options{Progress: progress(t)})
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	t.Logf("bootstrap of 1 control-plane host and 2 workers took %s", time.Since(began).Round(time.Millisecond))
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer dcancel()
		if err := cluster.Destroy(dctx, st, cluster.Options{Progress: progress(t)}); err != nil {
			t.Errorf("destroy: %v", err)
		}
		for _, h := range names {
			b, _ := tb.Exec(dctx, h, "ls -d /opt/berth /etc/berth /var/lib/berth /run/berth 2>/dev/null; true")
			if strings.TrimSpace(string(b)) != "" {
				t.Errorf("host %s keeps berth files after Destroy: %s", h, b)
			}
		}
	}()
	if st.ClusterID == "" || len(st.Hosts) != 3 {
		t.Fatalf("state: cluster %q, %d hosts", st.ClusterID, len(st.Hosts))
	}
	admin, err := client.New(client.Config{Endpoints: st.Endpoints, CACertificate: st.CACertPEM, ClientCertificate: st.AdminCertPEM, ClientKey: st.AdminKeyPEM})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var nodes api.NodeList
	if err := admin.List(ctx, &nodes, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := 0
	for i := range nodes.Items {
		if api.IsNodeReady(&nodes.Items[i]) && nodes.Items[i].Status.NodeInfo.NodeImageDigest == spec.Image.Digest {
			ready++
		}
	}
	if ready != 3 {
		t.Fatalf("%d of 3 nodes Ready on %s", ready, spec.Image.Digest)
	}

	before := fingerprint(t, tb, names)
	plan, err := cluster.Plan(spec, st)
	if err != nil || !plan.NoChanges() {
		t.Fatalf("plan after apply: %v %v", plan.Actions, err)
	}
	st2, err := cluster.Apply(ctx, spec, st, cluster.Options{Progress: progress(t)})
	if err != nil {
		t.Fatalf("second apply: %v", err)
	}
	if st2.ClusterID != st.ClusterID {
		t.Fatalf("second apply changed the cluster ID %s → %s", st.ClusterID, st2.ClusterID)
	}
	after := fingerprint(t, tb, names)
	for _, h := range names {
		if before[h] != after[h] {
			t.Errorf("second apply changed host %s:\nbefore %s\nafter  %s", h, before[h], after[h])
		}
	}
	st = st2
}

func TestIntegrationChangedHostKeyStopsApplyNamingBothFingerprints(t *testing.T) {
	prereq.Integration(t)
	prereq.Root(t)
	tb := testbed.Shared(t)
	hosts := tb.Hosts()
	spec := specFor(t, tb, []string{hosts[len(hosts)-1].Name}, nil)
	// Pin another host's key: as if the host had been reinstalled.
	spec.ControlPlane[0].SSH.HostKey = hosts[0].HostPublicKey
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := cluster.Apply(ctx, spec, cluster.State{}, cluster.Options{})
	var mm *ssh.HostKeyMismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("Apply = %v, want a host key mismatch", err)
	}
	if mm.Host != hosts[len(hosts)-1].Name || mm.Got == "" || len(mm.Want) == 0 {
		t.Fatalf("mismatch error %+v lacks host or fingerprints", mm)
	}
	b, _ := tb.Exec(ctx, hosts[len(hosts)-1].Name, "ls /opt/berth 2>/dev/null; true")
	if strings.TrimSpace(string(b)) != "" {
		t.Fatalf("host with a changed key was touched: %s", b)
	}
}
