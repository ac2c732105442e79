package berthexample_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/berth-io/berth/acceptance/prober"
	"github.com/berth-io/berth/acceptance/testbed"
	"github.com/berth-io/berth/acceptance/workloads"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/internal/prereq"
)

func TestMain(m *testing.M) { os.Exit(testbed.Main(m)) }

// TestIntegrationProgramProvisionsTestbedHosts runs the same scenario with
// the program provisioning the cluster itself: the node image installed
// over SSH on three testbed hosts (one control plane, two workers), real
// agents running the test workloads from the testbed's registry, and a
// prober counting failed requests through the testbed's load balancer.
func TestIntegrationProgramProvisionsTestbedHosts(t *testing.T) {
	prereq.Integration(t)
	prereq.Root(t)
	repoBin(t)
	runProgramScenario(t, testbedCluster(t, 3))
}

// testbedCluster prepares n testbed hosts for the program: the node image
// (scripts/image.sh), the test workloads pushed to the testbed registry,
// and an inventory file listing the hosts.
func testbedCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	outer := t
	tb := testbed.Shared(t)
	hosts := tb.Hosts()
	if len(hosts) < n {
		t.Fatalf("testbed has %d hosts, need %d", len(hosts), n)
	}
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if out, err := exec.CommandContext(ctx, filepath.Join(root, "scripts", "image.sh")).CombinedOutput(); err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	// A private copy: other tests of the repository rebuild bin/'s bundle
	// while this one runs, and a new digest would be a real change.
	nodeImage := filepath.Join(t.TempDir(), "node-image.tar.gz")
	if b, err := os.ReadFile(filepath.Join(root, "bin", "node-image.tar.gz")); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(nodeImage, b, 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := workloads.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("build the test workloads: %v", err)
	}
	refs, err := set.Push(ctx, tb.RegistryAddr())
	if err != nil {
		t.Fatalf("push the test workloads: %v", err)
	}
	inv := tb.Inventory()
	inv.Hosts = hosts[:n]
	invPath := filepath.Join(t.TempDir(), "inventory.json")
	if err := inv.WriteFile(invPath); err != nil {
		t.Fatal(err)
	}
	return &testCluster{
		StackConfig: map[string]string{
			"inventory":     invPath,
			"nodeImage":     nodeImage,
			"readinessPath": "/healthz",
		},
		V1: refs.V1, V2: refs.V2, Broken: refs.Broken,
		BrokenEvidence: []string{"rolled deployment default/web back: revision 2 is live"},
		Connect: func(t *testing.T, outputs auto.OutputMap) *client.Client {
			t.Helper()
			var cfg client.Config
			b, err := json.Marshal(outputs["endpoints"].Value)
			if err == nil {
				err = json.Unmarshal(b, &cfg.Endpoints)
			}
			if err != nil || len(cfg.Endpoints) == 0 {
				t.Fatalf("endpoints output %v: %v", outputs["endpoints"].Value, err)
			}
			for _, kv := range []struct {
				key string
				dst *string
			}{{"caCertificate", &cfg.CACertificate}, {"clientCertificate", &cfg.ClientCertificate}, {"clientKey", &cfg.ClientKey}} {
				if !outputs[kv.key].Secret {
					t.Errorf("output %s is not a secret", kv.key)
				}
				*kv.dst, _ = outputs[kv.key].Value.(string)
			}
			cli, err := client.New(cfg, client.WithTimeout(30*time.Second))
			if err != nil {
				t.Fatalf("client from the stack's outputs: %v", err)
			}
			return cli
		},
		Serve: func(t *testing.T, nodePort int) func(*testing.T, string) int {
			// The prober outlives the step that starts it: it measures the
			// later rollouts.
			t.Helper()
			// Only the cluster's hosts open the node port; a host of the
			// testbed outside the cluster would never pass the health check.
			var names []string
			for _, h := range hosts[:n] {
				names = append(names, h.Name)
			}
			if err := tb.SetLB(ctx, nodePort, names...); err != nil {
				t.Fatal(err)
			}
			if err := tb.WaitLB(ctx); err != nil {
				t.Fatal(err)
			}
			pr, err := prober.Start(context.WithoutCancel(ctx), prober.Config{URL: "http://" + tb.LBAddr() + "/"})
			if err != nil {
				t.Fatal(err)
			}
			outer.Cleanup(func() { pr.Stop() })
			return func(t *testing.T, answered string) int {
				t.Helper()
				// A bound so that a version that never answers fails the
				// test instead of hanging it.
				wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
				defer cancel()
				if err := pr.Wait(wctx, func(r prober.Result) bool { return r.Seen(answered) > 20 }); err != nil {
					t.Fatalf("%s never answered: %v (%s)", answered, err, pr.Snapshot())
				}
				r := pr.Snapshot()
				t.Logf("prober: %s", r)
				return r.Failed
			}
		},
		AfterDestroy: func(t *testing.T) {
			for _, h := range hosts[:n] {
				b, _ := tb.Exec(ctx, h.Name, "ls -d /opt/berth /etc/berth /var/lib/berth 2>/dev/null; true")
				if strings.TrimSpace(string(b)) != "" {
					t.Errorf("host %s keeps berth files after destroy: %s", h.Name, b)
				}
			}
		},
	}
}
