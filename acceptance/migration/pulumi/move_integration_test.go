// Package pulumi_test moves a small cluster (one control-plane host, one
// worker) from one testbed vendor to another through the Pulumi Go SDK:
// the example program (examples/pulumi-go) run inline by the Automation
// API, its inventory switched from vendor-a's hosts to vendor-b's, `up`
// again. It is its own module because the Automation API pulls in the
// Pulumi SDK, which the product's module must not depend on.
//
// Run it with bin/pulumi built (scripts/pulumi.sh): cd into this directory
// and `go test -run Integration -v .` as root.
package pulumi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/berth-io/berth/acceptance/migration"
	"github.com/berth-io/berth/acceptance/prober"
	"github.com/berth-io/berth/acceptance/testbed"
	"github.com/berth-io/berth/acceptance/workloads"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/examples/pulumi-go/berthexample"
	"github.com/berth-io/berth/internal/prereq"
)

const (
	vendorA = "vendor-a"
	vendorB = "vendor-b"
	apiPort = 6443
)

func TestMain(m *testing.M) {
	os.Exit(testbed.MainWith(m, testbed.Options{
		Vendors: []testbed.Vendor{{Name: vendorA, Hosts: 2}, {Name: vendorB, Hosts: 2}},
		Latency: 20 * time.Millisecond,
	}))
}

func hostsOf(t *testing.T, tb *testbed.Testbed, vendor string) []testbed.Host {
	t.Helper()
	var out []testbed.Host
	for i := 1; i <= 2; i++ {
		h, err := tb.Host(fmt.Sprintf("%s-%d", vendor, i))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

// writeInventory writes the testbed's inventory with only hosts: the first
// runs the control plane, the second is the worker.
func writeInventory(t *testing.T, tb *testbed.Testbed, path string, hosts []testbed.Host) {
	t.Helper()
	inv := tb.Inventory()
	inv.Hosts = hosts
	if err := inv.WriteFile(path); err != nil {
		t.Fatal(err)
	}
}

func outputString(t *testing.T, outs auto.OutputMap, key string) string {
	t.Helper()
	s, ok := outs[key].Value.(string)
	if !ok {
		t.Fatalf("output %s = %v, not a string", key, outs[key].Value)
	}
	return s
}

func outputEndpoints(t *testing.T, outs auto.OutputMap) []string {
	t.Helper()
	var eps []string
	b, err := json.Marshal(outs["endpoints"].Value)
	if err == nil {
		err = json.Unmarshal(b, &eps)
	}
	if err != nil {
		t.Fatalf("endpoints output %v: %v", outs["endpoints"].Value, err)
	}
	sort.Strings(eps)
	return eps
}

type kept struct {
	ClusterID   string
	Deployments map[string]string
	Revisions   map[string]string
	Services    map[string]string
}

func readKept(ctx context.Context, t *testing.T, cli *client.Client) kept {
	t.Helper()
	cp, err := cli.ControlPlane(ctx)
	if err != nil {
		t.Fatalf("read control plane: %v", err)
	}
	k := kept{ClusterID: cp.ClusterID, Deployments: map[string]string{}, Revisions: map[string]string{}, Services: map[string]string{}}
	var deps api.DeploymentList
	var revs api.RevisionList
	var svcs api.ServiceList
	for _, l := range []api.ObjectList{&deps, &revs, &svcs} {
		if err := cli.List(ctx, l, client.ListOptions{}); err != nil {
			t.Fatalf("list: %v", err)
		}
	}
	for _, d := range deps.Items {
		k.Deployments[d.Metadata.Namespace+"/"+d.Metadata.Name] = string(d.Metadata.UID)
	}
	for _, r := range revs.Items {
		k.Revisions[r.Metadata.Namespace+"/"+r.Metadata.Name] = fmt.Sprintf("%s #%d %s", r.Deployment, r.Number, r.Metadata.UID)
	}
	for _, s := range svcs.Items {
		k.Services[s.Metadata.Namespace+"/"+s.Metadata.Name] = fmt.Sprintf("%s %v", s.Metadata.UID, s.Spec.Ports)
	}
	return k
}

func TestIntegrationPulumiMovesClusterToAnotherVendor(t *testing.T) {
	prereq.Integration(t)
	prereq.Root(t)
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "pulumi")); err != nil {
		prereq.Missing(t, "bin/pulumi is not built (run scripts/pulumi.sh)")
	}
	tb := testbed.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	logf := func(format string, args ...any) {
		t.Helper()
		t.Logf("%s "+format, append([]any{time.Now().Format("15:04:05")}, args...)...)
	}

	// The provider plugin of this tree, and a copy of the node image
	// (other runs on the machine may rebuild bin/ meanwhile).
	plugins := t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(plugins, "pulumi-resource-berth"), "./cmd/pulumi-resource-berth")
	build.Dir = filepath.Join(root, "provider", "bridge")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build pulumi-resource-berth: %v\n%s", err, out)
	}
	if out, err := exec.CommandContext(ctx, filepath.Join(root, "scripts", "image.sh")).CombinedOutput(); err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	image := filepath.Join(t.TempDir(), "node-image.tar.gz")
	b, err := os.ReadFile(filepath.Join(root, "bin", "node-image.tar.gz"))
	if err == nil {
		err = os.WriteFile(image, b, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
	set, err := workloads.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	refs, err := set.Push(ctx, tb.RegistryAddr())
	if err != nil {
		t.Fatal(err)
	}
	hostsA, hostsB := hostsOf(t, tb, vendorA), hostsOf(t, tb, vendorB)
	inventory := filepath.Join(t.TempDir(), "inventory.json")
	writeInventory(t, tb, inventory, hostsA)

	pulumiCLI, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: root})
	if err != nil {
		t.Fatalf("use bin/pulumi: %v", err)
	}
	state := t.TempDir()
	for _, dir := range []string{"backend", "work"} {
		if err := os.MkdirAll(filepath.Join(state, dir), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"PATH":                     plugins + string(os.PathListSeparator) + filepath.Join(root, "bin") + string(os.PathListSeparator) + os.Getenv("PATH"),
		"PULUMI_HOME":              filepath.Join(state, "home"),
		"PULUMI_BACKEND_URL":       "file://" + filepath.Join(state, "backend"),
		"PULUMI_CONFIG_PASSPHRASE": "test passphrase",
		"PULUMI_SKIP_UPDATE_CHECK": "true",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
	}
	stack, err := auto.UpsertStackInlineSource(ctx, "move", "berth-migration", berthexample.Program,
		auto.Pulumi(pulumiCLI), auto.EnvVars(env), auto.WorkDir(filepath.Join(state, "work")))
	if err != nil {
		t.Fatalf("create the stack: %v", err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer dcancel()
		if _, err := stack.Destroy(dctx); err != nil {
			t.Errorf("destroy: %v", err)
		}
		_ = stack.Workspace().RemoveStack(dctx, stack.Name())
	}()
	for k, v := range map[string]string{
		"inventory": inventory, "nodeImage": image, "readinessPath": "/healthz", "image": refs.V1, "replicas": "2",
	} {
		if err := stack.SetConfig(ctx, k, auto.ConfigValue{Value: v}); err != nil {
			t.Fatalf("set config %s: %v", k, err)
		}
	}

	began := time.Now()
	if _, err := stack.Up(ctx); err != nil {
		t.Fatalf("up on %s: %v", vendorA, err)
	}
	logf("cluster on %s (1 control-plane host, 1 worker) in %s", vendorA, time.Since(began).Round(time.Second))
	if err := stack.SetConfig(ctx, "image", auto.ConfigValue{Value: refs.V2}); err != nil {
		t.Fatal(err)
	}
	res, err := stack.Up(ctx)
	if err != nil {
		t.Fatalf("up with web v2: %v", err)
	}
	outs := res.Outputs
	cfg := client.Config{Endpoints: outputEndpoints(t, outs), CACertificate: outputString(t, outs, "caCertificate"),
		ClientCertificate: outputString(t, outs, "clientCertificate"), ClientKey: outputString(t, outs, "clientKey")}
	cli, err := client.New(cfg, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	go cli.RunEndpointSync(syncCtx, 2*time.Second)
	before := readKept(ctx, t, cli)
	if len(before.Revisions) < 2 {
		t.Fatalf("web has %d revisions, want 2 (v1 and v2)", len(before.Revisions))
	}
	port := int(outs["nodePort"].Value.(float64))

	// The load balancer follows the nodes that can take traffic.
	lbCtx, stopLB := context.WithCancel(ctx)
	lbDone := make(chan error, 1)
	all := append(migration.HostNames(hostsA), migration.HostNames(hostsB)...)
	go func() { lbDone <- migration.FollowNodes(lbCtx, tb, cli, port, all, 500*time.Millisecond, logf) }()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := tb.LB(ctx)
		if err == nil && len(st.LBConfig.Backends) == len(hostsA) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the load balancer never targeted %v: %+v %v", migration.HostNames(hostsA), st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := tb.WaitLB(ctx); err != nil {
		t.Fatal(err)
	}
	pr, err := prober.Start(ctx, prober.Config{URL: "http://" + tb.LBAddr() + "/"})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Stop()
	if err := pr.Wait(ctx, func(r prober.Result) bool { return r.Seen("v2") > 20 }); err != nil {
		t.Fatalf("web v2 does not answer through the load balancer: %v (%s)", err, pr.Snapshot())
	}

	// The move: the same program, vendor-b's hosts in the inventory.
	writeInventory(t, tb, inventory, hostsB)
	moveBegan := time.Now()
	res, err = stack.Up(ctx)
	if err != nil {
		t.Fatalf("up on %s's hosts: %v", vendorB, err)
	}
	logf("move took %s", time.Since(moveBegan).Round(time.Second))
	stopLB()
	if err := <-lbDone; err != nil {
		t.Errorf("load balancer: %v", err)
	}

	ms, err := cli.Members(ctx)
	if err != nil {
		t.Fatalf("members after the move (admin credentials issued before it): %v", err)
	}
	if len(ms) != 1 || ms[0].Metadata.Name != hostsB[0].Name || ms[0].Status.IsLearner {
		t.Errorf("etcd members after the move = %+v, want %s alone, voting", ms, hostsB[0].Name)
	}
	var nodes api.NodeList
	if err := cli.List(ctx, &nodes, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range nodes.Items {
		got = append(got, nodes.Items[i].Metadata.Name)
	}
	sort.Strings(got)
	if want := migration.HostNames(hostsB); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("nodes after the move = %v, want %v", got, want)
	}
	after := readKept(ctx, t, cli)
	if b, a := fmt.Sprint(before), fmt.Sprint(after); b != a {
		t.Errorf("objects changed in the move:\nbefore %s\nafter  %s", b, a)
	}
	if eps, want := outputEndpoints(t, res.Outputs), migration.Endpoints(hostsB[:1], apiPort); strings.Join(eps, ",") != strings.Join(want, ",") {
		t.Errorf("endpoints output = %v, want %v", eps, want)
	}
	if id := outputString(t, res.Outputs, "clusterId"); id != before.ClusterID {
		t.Errorf("clusterId output = %s, want %s", id, before.ClusterID)
	}
	if ca := outputString(t, res.Outputs, "caCertificate"); ca != cfg.CACertificate {
		t.Errorf("the cluster CA changed in the move")
	}
	for _, h := range hostsA {
		b, err := tb.Exec(ctx, h.Name, "ls -d /opt/berth /etc/berth /var/lib/berth /run/berth 2>/dev/null; true")
		if err != nil || strings.TrimSpace(string(b)) != "" {
			t.Errorf("vendor-a host %s is not clean after the move: %q %v", h.Name, b, err)
		}
	}
	r := pr.Stop()
	logf("prober through the load balancer during the move: %s", r)
	if r.Failed != 0 {
		t.Errorf("%d requests failed during the move: %s", r.Failed, r)
	}
}
