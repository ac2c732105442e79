package terraform_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// A cluster whose state was lost is adopted by `terraform import` with its
// admin configuration and the CA key from a control-plane host: the plan
// keeps the cluster and its CA, and the apply records the hosts without
// bootstrapping again, so the cluster, its CA and its workloads stay.
func TestIntegrationImportAdoptsTheRunningClusterWithItsCAWithoutBootstrappingAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c := newFullCluster(t, ctx)
	c.must(ctx, "apply", "-auto-approve", "-no-color")

	before := c.resourceValues(ctx, "berth_cluster.this")
	admin := c.admin(ctx)
	cp, err := admin.ControlPlane(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.ClusterID != before["cluster_id"] {
		t.Fatalf("control plane reports cluster %q, state has %v", cp.ClusterID, before["cluster_id"])
	}
	podsBefore := podUIDs(ctx, t, admin)

	// What an operator who lost the state has: the admin configuration
	// and the CA key copied from the control-plane host.
	adminPath := c.adminConfig(ctx)
	key, err := c.tb.Exec(ctx, c.hosts[0].Name, "cat /etc/berth/pki/ca.key")
	if err != nil {
		t.Fatalf("read the CA key on %s: %v\n%s", c.hosts[0].Name, err, key)
	}
	keyPath := filepath.Join(t.TempDir(), "ca.key")
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
	// Until the adopting apply has passed, a failure puts the state back,
	// so the cleanup can destroy the cluster.
	statePath := filepath.Join(c.dir, "terraform.tfstate")
	saved, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	adopted := false
	t.Cleanup(func() {
		if !adopted {
			if err := os.WriteFile(statePath, saved, 0o600); err != nil {
				t.Errorf("put the state back: %v", err)
			}
		}
	})
	c.must(ctx, "state", "rm", "-no-color", "berth_cluster.this")
	out := c.must(ctx, "import", "-no-color", "berth_cluster.this", adminPath+","+keyPath)
	t.Logf("import:\n%s", out)
	imported := c.resourceValues(ctx, "berth_cluster.this")
	for _, a := range []string{"cluster_id", "ca_certificate", "ca_key", "client_certificate"} {
		if imported[a] != before[a] {
			t.Errorf("imported %s differs from the cluster's", a)
		}
	}

	out = c.must(ctx, "plan", "-no-color", "-out=adopt.tfplan")
	t.Logf("plan after import:\n%s", out)
	if strings.Contains(out, "must be replaced") || strings.Contains(out, "will be created") || strings.Contains(out, "will be destroyed") {
		t.Errorf("plan after import creates, destroys or replaces a resource:\n%s", out)
	}
	words := strings.Join(strings.Fields(out), " ")
	if strings.Contains(words, "bootstrap") {
		t.Errorf("plan after import says a cluster will be bootstrapped:\n%s", out)
	}
	if want := "Warning: berth_cluster: 1 host(s) of the imported cluster will be adopted"; !strings.Contains(words, want) {
		t.Errorf("plan after import does not say %q:\n%s", want, out)
	}
	plan := c.showJSON(ctx, "adopt.tfplan")
	changes, _ := plan["resource_changes"].([]any)
	for _, rc := range changes {
		rc, _ := rc.(map[string]any)
		addr, _ := rc["address"].(string)
		ch, _ := rc["change"].(map[string]any)
		actions := ch["actions"]
		switch {
		case addr == "berth_cluster.this":
			if !oneActionOf(actions, "no-op", "update") {
				t.Errorf("plan after import does %v to the cluster, want an in-place update or nothing", actions)
			}
			after, _ := ch["after"].(map[string]any)
			for _, a := range []string{"cluster_id", "ca_certificate", "ca_key"} {
				if after[a] != before[a] {
					t.Errorf("plan after import changes the cluster's %s", a)
				}
			}
		case !oneActionOf(actions, "no-op", "read"):
			t.Errorf("plan after import does %v to %s, want nothing", actions, addr)
		}
	}

	// The engine's progress (TF_LOG=INFO) shows what it did to the host.
	logPath := filepath.Join(t.TempDir(), "adopt.log")
	env := c.env
	c.env = append(slices.Clone(env), "TF_LOG=INFO", "TF_LOG_PATH="+logPath)
	c.must(ctx, "apply", "-no-color", "adopt.tfplan")
	c.env = env
	adopted = true
	progress, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cpHost := c.hosts[0].Name
	if !strings.Contains(string(progress), "berth_cluster: "+cpHost+": up to date") {
		t.Errorf("the adopting apply did not find %s up to date", cpHost)
	}
	for _, step := range []string{"preflight", "add etcd learner", "restart services", "switch to image"} {
		if strings.Contains(string(progress), "berth_cluster: "+cpHost+": "+step) {
			t.Errorf("the adopting apply went through %q on %s: it should only record the host", step, cpHost)
		}
	}
	after := c.resourceValues(ctx, "berth_cluster.this")
	for _, a := range []string{"cluster_id", "ca_certificate", "ca_key", "endpoints"} {
		if !equalJSON(after[a], before[a]) {
			t.Errorf("apply after import changed the cluster's %s: %v, was %v", a, after[a], before[a])
		}
	}
	cp, err = admin.ControlPlane(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.ClusterID != before["cluster_id"] {
		t.Errorf("control plane reports cluster %q after the adopting apply, was %v", cp.ClusterID, before["cluster_id"])
	}
	if got := podUIDs(ctx, t, admin); !slices.Equal(got, podsBefore) {
		t.Errorf("pods after the adopting apply %v, were %v: the workloads were disturbed", got, podsBefore)
	}
	c.planEmpty(ctx, "after the adopting apply")

	c.must(ctx, "destroy", "-auto-approve", "-no-color")
	c.destroyed = true
}

// podUIDs lists the UIDs of every pod, sorted.
func podUIDs(ctx context.Context, t *testing.T, cli *client.Client) []string {
	t.Helper()
	var pods api.PodList
	if err := cli.List(ctx, &pods, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		out = append(out, p.Metadata.Namespace+"/"+p.Metadata.Name+" "+p.Metadata.UID)
	}
	slices.Sort(out)
	return out
}

// oneActionOf says whether a plan's actions (resource_changes[].change.actions)
// are a single one of want.
func oneActionOf(actions any, want ...string) bool {
	l, _ := actions.([]any)
	if len(l) != 1 {
		return false
	}
	s, _ := l[0].(string)
	return slices.Contains(want, s)
}

func equalJSON(a, b any) bool {
	la, okA := a.([]any)
	lb, okB := b.([]any)
	if okA && okB {
		return slices.Equal(la, lb)
	}
	return a == b
}
