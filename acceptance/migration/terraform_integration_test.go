package migration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/acceptance/migration"
	"github.com/berth-io/berth/acceptance/prober"
	"github.com/berth-io/berth/acceptance/testbed"
	"github.com/berth-io/berth/acceptance/workloads"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/internal/prereq"
)

const (
	vendorA = "vendor-a"
	vendorB = "vendor-b"
	// latency is added to every packet between the vendors.
	latency = 20 * time.Millisecond
	apiPort = 6443
)

func TestMain(m *testing.M) {
	os.Exit(testbed.MainWith(m, testbed.Options{
		Vendors: []testbed.Vendor{{Name: vendorA, Hosts: 6}, {Name: vendorB, Hosts: 6}},
		Latency: latency,
	}))
}

// workspace is a copy of examples/full-cluster with its variables, and the
// environment terraform runs in.
type workspace struct {
	t   *testing.T
	tf  string
	dir string
	env []string
}

func (w *workspace) command(ctx context.Context, out *syncBuffer, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, w.tf, append([]string{"-chdir=" + w.dir}, args...)...)
	cmd.Env = w.env
	cmd.Stdout, cmd.Stderr = out, out
	// SIGINT, not SIGKILL, when ctx ends: terraform then stops its
	// providers and writes the state it has.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 2 * time.Minute
	return cmd
}

func (w *workspace) run(ctx context.Context, args ...string) (string, error) {
	var out syncBuffer
	err := w.command(ctx, &out, args...).Run()
	return out.String(), err
}

func (w *workspace) must(ctx context.Context, args ...string) string {
	w.t.Helper()
	out, err := w.run(ctx, args...)
	if err != nil {
		w.t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (w *workspace) vars(v map[string]any) {
	w.t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "terraform.tfvars.json"), b, 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// syncBuffer collects a command's output while others read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func script(t *testing.T, root string, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(root, "scripts", args[0]), args[1:]...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s: %v\n%s", args[0], err, ee.Stderr)
		}
		t.Fatalf("%s: %v", args[0], err)
	}
	lines := strings.Fields(string(out))
	if len(lines) == 0 {
		t.Fatalf("%s printed nothing", args[0])
	}
	return lines[len(lines)-1]
}

// vendorHosts splits a vendor's hosts into three control-plane hosts and
// three workers.
func vendorHosts(t *testing.T, tb *testbed.Testbed, vendor string) (cps, workers []testbed.Host) {
	t.Helper()
	for i := 1; i <= 6; i++ {
		h, err := tb.Host(fmt.Sprintf("%s-%d", vendor, i))
		if err != nil {
			t.Fatal(err)
		}
		if i <= 3 {
			cps = append(cps, h)
		} else {
			workers = append(workers, h)
		}
	}
	return cps, workers
}

func hostVar(hs []testbed.Host) map[string]any {
	m := map[string]any{}
	for _, h := range hs {
		m[h.Name] = map[string]any{"address": h.Address, "port": h.SSHPort, "host_key": h.HostPublicKey}
	}
	return m
}

// objects is what must survive the move untouched.
type objects struct {
	ClusterID   string
	Deployments map[string]string // namespace/name → UID
	Revisions   map[string]string // namespace/name → deployment and number
	Services    map[string]string // namespace/name → UID and node ports
}

func readObjects(ctx context.Context, t *testing.T, cli *client.Client) objects {
	t.Helper()
	cp, err := cli.ControlPlane(ctx)
	if err != nil {
		t.Fatalf("read control plane: %v", err)
	}
	o := objects{ClusterID: cp.ClusterID, Deployments: map[string]string{}, Revisions: map[string]string{}, Services: map[string]string{}}
	var deps api.DeploymentList
	if err := cli.List(ctx, &deps, client.ListOptions{}); err != nil {
		t.Fatalf("list deployments: %v", err)
	}
	for _, d := range deps.Items {
		o.Deployments[d.Metadata.Namespace+"/"+d.Metadata.Name] = string(d.Metadata.UID)
	}
	var revs api.RevisionList
	if err := cli.List(ctx, &revs, client.ListOptions{}); err != nil {
		t.Fatalf("list revisions: %v", err)
	}
	for _, r := range revs.Items {
		o.Revisions[r.Metadata.Namespace+"/"+r.Metadata.Name] = fmt.Sprintf("%s #%d %s", r.Deployment, r.Number, r.Metadata.UID)
	}
	var svcs api.ServiceList
	if err := cli.List(ctx, &svcs, client.ListOptions{}); err != nil {
		t.Fatalf("list services: %v", err)
	}
	for _, s := range svcs.Items {
		var ports []string
		for _, p := range s.Spec.Ports {
			ports = append(ports, fmt.Sprintf("%d:%d", p.Port, p.NodePort))
		}
		o.Services[s.Metadata.Namespace+"/"+s.Metadata.Name] = fmt.Sprintf("%s %s", s.Metadata.UID, strings.Join(ports, ","))
	}
	return o
}

// moveLB points the load balancer at the new workers once their Nodes are
// Ready, as a cloud load balancer's target group would be updated: first
// old and new together, then, once the new ones pass their health checks,
// the new ones only. Meanwhile it reports an old worker that goes NotReady
// while still in service (its agent lost the control plane as it moved).
func moveLB(ctx context.Context, tb *testbed.Testbed, cli *client.Client, port int, from, to []string, logf func(string, ...any)) error {
	for {
		var nodes api.NodeList
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := cli.List(lctx, &nodes, client.ListOptions{})
		cancel()
		if err == nil {
			ready := map[string]bool{}
			for i := range nodes.Items {
				n := &nodes.Items[i]
				ready[n.Metadata.Name] = api.IsNodeReady(n)
				for _, f := range from {
					if n.Metadata.Name == f && !n.Spec.Unschedulable && !api.IsNodeReady(n) {
						return fmt.Errorf("worker %s went NotReady while it was still in service", f)
					}
				}
			}
			all := true
			for _, name := range to {
				all = all && ready[name]
			}
			if all {
				break
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("new workers %v never all Ready: %w (last list error: %v)", to, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	logf("new workers Ready: load balancer → %v and %v", from, to)
	if err := tb.SetLB(ctx, port, append(append([]string{}, from...), to...)...); err != nil {
		return err
	}
	if err := tb.WaitLB(ctx); err != nil {
		return err
	}
	logf("load balancer → %v only", to)
	if err := tb.SetLB(ctx, port, to...); err != nil {
		return err
	}
	return tb.WaitLB(ctx)
}

func TestIntegrationTerraformMovesClusterToAnotherVendorThroughInterruptionAndHostLoss(t *testing.T) {
	prereq.Integration(t)
	prereq.Root(t)
	tb := testbed.Shared(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	logf := func(format string, args ...any) {
		t.Helper()
		t.Logf("%s "+format, append([]any{time.Now().Format("15:04:05")}, args...)...)
	}

	script(t, root, "image.sh")
	w := &workspace{t: t, tf: script(t, root, "terraform.sh"), dir: t.TempDir()}
	rc := privateMirror(t, root)
	w.env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "TF_LOG=", "TF_INPUT=0")
	for _, f := range []string{"main.tf", "variables.tf", "outputs.tf"} {
		b, err := os.ReadFile(filepath.Join(root, "examples", "full-cluster", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(w.dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := workloads.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	refs, err := set.Push(ctx, tb.RegistryAddr())
	if err != nil {
		t.Fatal(err)
	}
	cpsA, workersA := vendorHosts(t, tb, vendorA)
	cpsB, workersB := vendorHosts(t, tb, vendorB)
	// A copy: other runs on this machine may rebuild bin/ while this one
	// uploads the image.
	image := filepath.Join(t.TempDir(), "node-image.tar.gz")
	if err := copyFile(filepath.Join(root, "bin", "node-image.tar.gz"), image); err != nil {
		t.Fatal(err)
	}
	vars := map[string]any{
		"image_path":            image,
		"private_key_path":      tb.PrivateKeyPath(),
		"control_plane_hosts":   hostVar(cpsA),
		"worker_hosts":          hostVar(workersA),
		"plain_http_registries": []string{tb.RegistryAddr()},
		"web_image":             refs.V1,
		"replicas":              6,
	}
	w.vars(vars)
	w.must(ctx, "init", "-no-color")
	killed := ""
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer dcancel()
		if out, err := w.run(dctx, "destroy", "-auto-approve", "-no-color"); err != nil {
			t.Errorf("destroy: %v\n%s", err, out)
		}
		if killed != "" {
			cleanKilledHost(dctx, t, tb, killed)
		}
	}()

	// The cluster on vendor-a, with a revision history: web v1, then v2.
	began := time.Now()
	w.must(ctx, "apply", "-auto-approve", "-no-color")
	logf("cluster on %s (3 control-plane hosts, 3 workers, 6 replicas of web v1) in %s", vendorA, time.Since(began).Round(time.Second))
	vars["web_image"] = refs.V2
	w.vars(vars)
	w.must(ctx, "apply", "-auto-approve", "-no-color")

	var cfg client.Config
	if err := json.Unmarshal([]byte(w.must(ctx, "output", "-raw", "admin_config")), &cfg); err != nil {
		t.Fatalf("admin_config output: %v", err)
	}
	// The admin credentials issued before the move, following the
	// endpoints the control plane publishes, as clients do.
	cli, err := client.New(cfg, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	go cli.RunEndpointSync(syncCtx, 2*time.Second)
	before := readObjects(ctx, t, cli)
	if len(before.Revisions) < 2 {
		t.Fatalf("web has %d revisions before the move, want 2 (v1 and v2): %v", len(before.Revisions), before.Revisions)
	}

	var port int
	if err := json.Unmarshal([]byte(strings.TrimSpace(w.must(ctx, "output", "-raw", "node_port"))), &port); err != nil {
		t.Fatalf("node_port output: %v", err)
	}
	if err := tb.SetLB(ctx, port, migration.HostNames(workersA)...); err != nil {
		t.Fatal(err)
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

	// Switch the configuration to vendor-b's hosts. The plan says the
	// move in words.
	vars["control_plane_hosts"] = hostVar(cpsB)
	vars["worker_hosts"] = hostVar(workersB)
	w.vars(vars)
	plan := w.must(ctx, "plan", "-no-color")
	for _, want := range []string{
		"add learner vendor-b-1, promote; remove member vendor-a-1",
		"add learner vendor-b-3, promote; remove member vendor-a-3",
		"workers vendor-b-4, vendor-b-5, vendor-b-6 join",
		"vendor-a-4, vendor-a-5, vendor-a-6 leave",
	} {
		if !strings.Contains(strings.Join(strings.Fields(plan), " "), want) {
			t.Errorf("plan does not say %q:\n%s", want, plan)
		}
	}

	lbDone := make(chan error, 1)
	go func() {
		lbDone <- moveLB(ctx, tb, cli, port, migration.HostNames(workersA), migration.HostNames(workersB), logf)
	}()

	// First apply: interrupted (SIGINT) once vendor-b-1 is a voting member.
	moveBegan := time.Now()
	applyCtx, interrupt := context.WithCancel(ctx)
	go func() {
		defer interrupt()
		for applyCtx.Err() == nil {
			ms, err := cli.Members(applyCtx)
			if err == nil {
				for _, m := range ms {
					if m.Metadata.Name == cpsB[0].Name && !m.Status.IsLearner && m.Status.Started {
						logf("%s is a voting member: interrupting terraform", m.Metadata.Name)
						return
					}
				}
			}
			select {
			case <-applyCtx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	out, err := w.run(applyCtx, "apply", "-auto-approve", "-no-color")
	firstRun := time.Since(moveBegan)
	interrupt()
	if err == nil {
		t.Fatalf("the interrupted apply succeeded, so the interruption came too late:\n%s", out)
	}
	if ctx.Err() != nil {
		t.Fatalf("test deadline during the first apply: %v\n%s", ctx.Err(), out)
	}
	logf("interrupted apply ended after %s: %v\n%s", firstRun.Round(time.Second), err, tail(out, 15))
	ms, err := cli.Members(ctx)
	if err != nil {
		t.Fatalf("the cluster does not answer after the interrupted apply: %v", err)
	}
	logf("members after the interruption: %s", memberNames(ms))
	if r := pr.Snapshot(); r.Failed != 0 {
		t.Errorf("requests failed before the second apply: %s", r)
	}

	// Apply again. Midway — once vendor-b-2 votes — the last vendor-a
	// control-plane host still a member dies; the apply completes all the
	// same. Meanwhile etcd never holds more than one extra member.
	victim := ""
	for _, m := range ms {
		if strings.HasPrefix(m.Metadata.Name, vendorA+"-") && m.Metadata.Name > victim {
			victim = m.Metadata.Name
		}
	}
	if victim == "" {
		t.Fatalf("no vendor-a member left after the interruption: %s", memberNames(ms))
	}
	type watched struct {
		killed     bool
		maxMembers int
		err        error
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan watched, 1)
	go func() {
		var w watched
		defer func() { watchDone <- w }()
		for watchCtx.Err() == nil {
			if ms, err := cli.Members(watchCtx); err == nil {
				w.maxMembers = max(w.maxMembers, len(ms))
				for _, m := range ms {
					if !w.killed && m.Metadata.Name == cpsB[1].Name && !m.Status.IsLearner && m.Status.Started {
						if w.err = tb.KillHost(watchCtx, victim); w.err != nil {
							return
						}
						w.killed = true
						logf("%s votes: killed %s", m.Metadata.Name, victim)
					}
				}
			}
			select {
			case <-watchCtx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	secondBegan := time.Now()
	out, err = w.run(ctx, "apply", "-auto-approve", "-no-color")
	stopWatch()
	seen := <-watchDone
	if seen.killed {
		killed = victim
	}
	if seen.err != nil {
		t.Fatalf("kill %s: %v", victim, seen.err)
	}
	if err != nil {
		t.Fatalf("apply after the interruption, %s killed midway (%v): %v\n%s", victim, seen.killed, err, out)
	}
	if !seen.killed {
		t.Fatalf("%s never became a voting member during the second apply, so %s was never killed", cpsB[1].Name, victim)
	}
	if seen.maxMembers > len(cpsB)+1 {
		t.Errorf("etcd held %d members during the second apply, want at most %d (one extra)", seen.maxMembers, len(cpsB)+1)
	}
	secondRun := time.Since(secondBegan)
	logf("move finished: first apply %s (interrupted), second apply %s (at most %d etcd members)\n%s", firstRun.Round(time.Second), secondRun.Round(time.Second), seen.maxMembers, tail(out, 10))
	if err := <-lbDone; err != nil {
		t.Errorf("load balancer move: %v", err)
	}

	// Everything on vendor-b; everything kept.
	ms, err = cli.Members(ctx)
	if err != nil {
		t.Fatalf("members after the move (admin credentials issued before it): %v", err)
	}
	if got, want := memberNames(ms), strings.Join(migration.HostNames(cpsB), ","); got != want {
		t.Errorf("etcd members after the move = %s, want %s", got, want)
	}
	for _, m := range ms {
		if m.Status.IsLearner || !m.Status.Started {
			t.Errorf("member %s: learner %v, started %v", m.Metadata.Name, m.Status.IsLearner, m.Status.Started)
		}
	}
	var nodes api.NodeList
	if err := cli.List(ctx, &nodes, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	var nodeNames []string
	for i := range nodes.Items {
		n := &nodes.Items[i]
		nodeNames = append(nodeNames, n.Metadata.Name)
		if !api.IsNodeReady(n) {
			t.Errorf("node %s is not Ready after the move", n.Metadata.Name)
		}
	}
	sort.Strings(nodeNames)
	if got, want := strings.Join(nodeNames, ","), strings.Join(append(migration.HostNames(cpsB), migration.HostNames(workersB)...), ","); got != want {
		t.Errorf("nodes after the move = %s, want %s", got, want)
	}
	after := readObjects(ctx, t, cli)
	if b, a := fmt.Sprint(before), fmt.Sprint(after); b != a {
		t.Errorf("objects changed in the move:\nbefore %s\nafter  %s", b, a)
	}
	if got := cli.Endpoints(); strings.Join(got, ",") != strings.Join(migration.Endpoints(cpsB, apiPort), ",") {
		t.Errorf("the client follows endpoints %v, want %v", got, migration.Endpoints(cpsB, apiPort))
	}
	var outEps []string
	if err := json.Unmarshal([]byte(w.must(ctx, "output", "-json", "endpoints")), &outEps); err != nil {
		t.Fatal(err)
	}
	sort.Strings(outEps)
	if strings.Join(outEps, ",") != strings.Join(migration.Endpoints(cpsB, apiPort), ",") {
		t.Errorf("endpoints output = %v, want %v", outEps, migration.Endpoints(cpsB, apiPort))
	}
	var cfgAfter client.Config
	if err := json.Unmarshal([]byte(w.must(ctx, "output", "-raw", "admin_config")), &cfgAfter); err != nil {
		t.Fatal(err)
	}
	if cfgAfter.CACertificate != cfg.CACertificate {
		t.Errorf("the cluster CA changed in the move")
	}
	if out, err := w.run(ctx, "plan", "-detailed-exitcode", "-no-color"); err != nil {
		t.Errorf("plan after the move is not empty (%v):\n%s", err, out)
	}
	for _, h := range append(append([]testbed.Host{}, cpsA...), workersA...) {
		if h.Name == killed {
			continue
		}
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

// privateMirror builds the provider of this tree into a filesystem mirror
// of the test's own (the layout scripts/terraform.sh install-provider
// writes, which other runs on the machine may rewrite meanwhile) and
// returns a CLI configuration that installs it from there.
func privateMirror(t *testing.T, root string) string {
	t.Helper()
	const version = "0.0.1"
	dir := t.TempDir()
	bin := filepath.Join(dir, "mirror", "registry.terraform.io", "berth-io", "berth", version, runtime.GOOS+"_"+runtime.GOARCH,
		"terraform-provider-berth_v"+version)
	build := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", bin, "./provider/cmd/terraform-provider-berth")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the provider: %v\n%s", err, out)
	}
	// OpenTofu reads "berth-io/berth" as registry.opentofu.org/berth-io/berth.
	tofuBin := filepath.Join(dir, "mirror", "registry.opentofu.org", "berth-io", "berth", version, runtime.GOOS+"_"+runtime.GOARCH,
		"terraform-provider-berth_v"+version)
	if err := os.MkdirAll(filepath.Dir(tofuBin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(bin, tofuBin); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(dir, "terraformrc")
	cfg := fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["registry.terraform.io/berth-io/berth", "registry.opentofu.org/berth-io/berth"]
  }
}
disable_checkpoint = true
`, filepath.Join(dir, "mirror"))
	if err := os.WriteFile(rc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return rc
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

func memberNames(ms []api.Member) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Metadata.Name)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cleanKilledHost boots the host that died during the move, shows what the
// engine could not wipe (it left the host out of state), and removes it,
// with the cgroups its containers had in the machine's shared tree.
func cleanKilledHost(ctx context.Context, t *testing.T, tb *testbed.Testbed, name string) {
	t.Helper()
	if err := tb.BootHost(ctx, name); err != nil {
		t.Errorf("boot %s: %v", name, err)
		return
	}
	b, _ := tb.Exec(ctx, name, "ls -d /opt/berth /etc/berth /var/lib/berth 2>/dev/null; true")
	t.Logf("the dead host %s, booted again, keeps (not wiped, out of state): %s", name, strings.Join(strings.Fields(string(b)), " "))
	script := fmt.Sprintf(`rm -rf /opt/berth /etc/berth /var/lib/berth
for cg in /sys/fs/cgroup/*/berth-%[1]s /sys/fs/cgroup/berth-%[1]s; do
  [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
done
true`, name)
	if out, err := tb.Exec(ctx, name, script); err != nil {
		t.Errorf("clean %s: %v: %s", name, err, out)
	}
}
