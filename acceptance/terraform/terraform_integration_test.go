// Package terraform_test runs the real terraform binary (scripts/terraform.sh)
// on examples/full-cluster against testbed hosts, as a user would: the
// provider installed from the local filesystem mirror, no network.
package terraform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/acceptance/prober"
	"github.com/berth-io/berth/acceptance/testbed"
)

func TestMain(m *testing.M) { os.Exit(testbed.Main(m)) }

// workspace is a copy of examples/full-cluster with its variables, and the
// environment terraform runs in.
type workspace struct {
	t   *testing.T
	tf  string
	dir string
	env []string
}

func (w *workspace) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, w.tf, append([]string{"-chdir=" + w.dir}, args...)...)
	cmd.Env = w.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
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

// privateMirror copies the provider mirror that the CLI config rc names
// (shared by every run in this tree) into the test's own directory, and
// returns a CLI config naming the copy: terraform links the providers it
// installs from an unpacked mirror, so another run rebuilding the shared
// one would otherwise change this run's provider under its lock file.
func privateMirror(t *testing.T, root, rc string) string {
	t.Helper()
	shared := filepath.Join(root, ".cache", "tf-mirror")
	if b, err := os.ReadFile(rc); err != nil || !strings.Contains(string(b), shared) {
		t.Fatalf("CLI config %s does not name the mirror %s (%v)", rc, shared, err)
	}
	dir := t.TempDir()
	mirror := filepath.Join(dir, "tf-mirror")
	if err := os.CopyFS(mirror, os.DirFS(shared)); err != nil {
		t.Fatalf("copy the provider mirror: %v", err)
	}
	private := filepath.Join(dir, "terraformrc")
	conf := fmt.Sprintf("provider_installation {\n  filesystem_mirror {\n    path    = %q\n    include = [\"registry.terraform.io/berth-io/berth\", \"registry.opentofu.org/berth-io/berth\"]\n  }\n}\ndisable_checkpoint = true\n", mirror)
	if err := os.WriteFile(private, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return private
}

func TestIntegrationFullClusterExampleAppliesPlansEmptyRollsWithoutFailuresAndDestroys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	c := newFullCluster(t, ctx)
	w, tb, hosts, refs, vars := c.workspace, c.tb, c.hosts, c.refs, c.tfvars

	began := time.Now()
	w.must(ctx, "apply", "-auto-approve", "-no-color")
	t.Logf("apply from empty state (cluster, pool, deployment, service) took %s", time.Since(began).Round(time.Second))

	c.planEmpty(ctx, "after apply")

	// Only the cluster's hosts: a shared testbed may have more.
	if err := tb.SetLB(ctx, c.nodePort(ctx), c.hostNames()...); err != nil {
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

	// web:v2 rolls with zero failed requests.
	vars["web_image"] = refs.V2
	w.vars(vars)
	w.must(ctx, "apply", "-auto-approve", "-no-color")
	if err := pr.Wait(ctx, func(r prober.Result) bool { return r.Seen("v2") > 20 }); err != nil {
		t.Fatalf("v2 never answered: %v (%s)", err, pr.Snapshot())
	}
	if r := pr.Snapshot(); r.Failed != 0 {
		t.Fatalf("rolling update to v2 failed %d requests: %s", r.Failed, r)
	}

	// web:broken fails with evidence, v2 keeps serving, the next plan is not empty.
	vars["web_image"] = refs.Broken
	w.vars(vars)
	out, err := w.run(ctx, "apply", "-auto-approve", "-no-color")
	if err == nil {
		t.Fatalf("apply of web:broken succeeded:\n%s", out)
	}
	if !strings.Contains(out, "berth_deployment.web") {
		t.Errorf("failed apply does not name the deployment:\n%s", out)
	}
	t.Logf("apply of web:broken failed as it should:\n%s", out)
	// Terraform wraps the error's lines: compare with the words rejoined,
	// after the plan (which shows the images).
	_, errText, _ := strings.Cut(out, "Error:")
	words := strings.Join(strings.Fields(errText), " ")
	for _, want := range []string{"rolled deployment default/web back", "Readiness probe of container web failed", "/healthz: status 503"} {
		if !strings.Contains(words, want) {
			t.Errorf("failed apply of web:broken does not say %q", want)
		}
	}
	if strings.Contains(words, "Normal Pulled") || strings.Contains(words, "web:v2") {
		t.Errorf("failed apply of web:broken shows the serving revision's pods, which do not explain the failure")
	}
	r := pr.Stop()
	if r.Failed != 0 {
		t.Fatalf("requests failed during the v2 and broken rollouts: %s", r)
	}
	if out, err := w.run(ctx, "plan", "-detailed-exitcode", "-no-color"); err == nil {
		t.Fatalf("plan after a failed rollout is empty:\n%s", out)
	}

	w.must(ctx, "destroy", "-auto-approve", "-no-color")
	c.destroyed = true
	for _, h := range hosts {
		b, _ := tb.Exec(ctx, h.Name, "ls -d /opt/berth /etc/berth /var/lib/berth 2>/dev/null; true")
		if strings.TrimSpace(string(b)) != "" {
			t.Errorf("host %s keeps berth files after destroy: %s", h.Name, b)
		}
	}
}
