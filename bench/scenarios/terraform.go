package scenarios

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/berth-io/berth/bench"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// The Terraform figures.
const (
	figTFPlanNoop = "terraform.plan.noop.seconds"
	figTFApply100 = "terraform.apply100.seconds"
)

var tfDescs = map[string]string{
	figTFPlanNoop: "`terraform plan` with nothing to change over 100 `berth_deployment` resources (refresh reads each from a dev control plane on loopback), " +
		"beside the same plan over 100 `terraform_data` resources, same terraform binary, same run",
	figTFApply100: "`terraform apply` creating 100 `berth_deployment` resources (wait_for_rollout = false, no nodes; default parallelism 10) " +
		"against a dev control plane on loopback, beside applying 100 `terraform_data` resources, same terraform binary, same run",
}

func init() {
	bench.Register(bench.Scenario{
		Name:    "terraform",
		Figures: tfFigures,
		Run:     runTerraform,
	})
}

var tfFigures = []string{figTFPlanNoop, figTFApply100}

func tfSkipped(reason string) []bench.Figure {
	return skipAll(tfFigures, tfDescs, reason)
}

// tfProviderVersion is the version the provider is built and mirrored as.
const tfProviderVersion = "0.0.1"

// tfWorkspace is one Terraform working directory with the environment
// every command in it runs with.
type tfWorkspace struct {
	bin string
	dir string
	env []string
}

func (t *tfWorkspace) run(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, t.bin, args...)
	cmd.Dir = t.dir
	cmd.Env = t.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("terraform %s in %s: %w\n%s", strings.Join(args, " "), t.dir, err, lastLines(string(out), 15))
	}
	return string(out), nil
}

// timed runs a terraform command and returns its wall-clock seconds.
func (t *tfWorkspace) timed(ctx context.Context, args ...string) (float64, error) {
	start := time.Now()
	if _, err := t.run(ctx, 5*time.Minute, args...); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

// planNoop times a plan that must find nothing to change (-detailed-exitcode
// exits 2 when it would change something).
func (t *tfWorkspace) planNoop(ctx context.Context) (float64, error) {
	secs, err := t.timed(ctx, "plan", "-input=false", "-lock=false", "-detailed-exitcode")
	if err != nil {
		return 0, fmt.Errorf("plan with nothing to change: %w", err)
	}
	return secs, nil
}

// tfBerthHeader is the provider set-up of the berth configuration.
const tfBerthHeader = `terraform {
  required_providers {
    berth = {
      source  = "berth-io/berth"
      version = "%[1]s"
    }
  }
}

provider "berth" {
  config_path = "%[2]s"
}
`

// The resources are written out one block each rather than with count:
// the provider validates the configuration before count.index is known and
// refuses template labels that are unknown then ("must select pods by
// label"), so literal labels are needed. Both sides are written the same way.
const tfBerthResource = `
resource "berth_deployment" "d%[1]d" {
  name             = "tf-%[1]d"
  replicas         = 1
  wait_for_rollout = false
  template = {
    labels = { app = "tf-%[1]d" }
    containers = [{
      name  = "web"
      image = "registry.bench.invalid/web:v1"
    }]
  }
}
`

const tfDataResource = `
resource "terraform_data" "d%[1]d" {
  input = {
    name     = "tf-%[1]d"
    replicas = 1
    labels   = { app = "tf-%[1]d" }
    image    = "registry.bench.invalid/web:v1"
  }
}
`

// tfConfig is header followed by n copies of resource.
func tfConfig(header, resource string, n int) string {
	var b strings.Builder
	b.WriteString(header)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, resource, i)
	}
	return b.String()
}

// runTerraform builds the provider into a private filesystem mirror (the
// layout scripts/terraform.sh install-provider writes, but in a temporary
// directory with a private CLI config, so no shared file is touched), starts
// a dev control plane in this process, and times apply and a no-op plan of
// 100 berth_deployment resources and of 100 terraform_data resources,
// alternating, with the same terraform binary.
func runTerraform(ctx context.Context, w io.Writer) ([]bench.Figure, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return tfSkipped("no go toolchain to build the provider"), nil
	}
	root, err := repoRoot()
	if err != nil {
		return tfSkipped(err.Error()), nil
	}
	tfBin, err := runCmd(ctx, 10*time.Minute, filepath.Join(root, "scripts", "terraform.sh"))
	if err != nil || tfBin == "" {
		return tfSkipped(fmt.Sprintf("scripts/terraform.sh found no terraform: %v", err)), nil
	}
	ver, _ := runCmd(ctx, 30*time.Second, tfBin, "version")
	ver, _, _ = strings.Cut(ver, "\n")
	fmt.Fprintf(w, "    %s (%s)\n", ver, tfBin)

	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	tmp, err := os.MkdirTemp("", "berth-bench-tf-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	mirror := filepath.Join(tmp, "mirror")
	provDir := filepath.Join(mirror, "registry.terraform.io", "berth-io", "berth", tfProviderVersion, runtime.GOOS+"_"+runtime.GOARCH)
	if err := os.MkdirAll(provDir, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintln(w, "    building terraform-provider-berth into a private filesystem mirror")
	if err := goBuild(ctx, "./provider/cmd/terraform-provider-berth", filepath.Join(provDir, "terraform-provider-berth_v"+tfProviderVersion),
		"CGO_ENABLED=0"); err != nil {
		return nil, err
	}
	// OpenTofu reads "berth-io/berth" as registry.opentofu.org/berth-io/berth.
	tofuDir := filepath.Join(mirror, "registry.opentofu.org", "berth-io", "berth", tfProviderVersion, runtime.GOOS+"_"+runtime.GOARCH)
	if err := os.MkdirAll(tofuDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Link(filepath.Join(provDir, "terraform-provider-berth_v"+tfProviderVersion), filepath.Join(tofuDir, "terraform-provider-berth_v"+tfProviderVersion)); err != nil {
		return nil, err
	}
	rc := filepath.Join(tmp, "terraformrc")
	if err := os.WriteFile(rc, []byte(fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["registry.terraform.io/berth-io/berth", "registry.opentofu.org/berth-io/berth"]
  }
}
disable_checkpoint = true
`, mirror)), 0o600); err != nil {
		return nil, err
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + tmp,
		"CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE=" + rc, "TF_IN_AUTOMATION=1", "TF_INPUT=0",
	}

	plane, err := startDevPlane(ctx, true)
	if err != nil {
		return nil, err
	}
	defer plane.Close()

	berthWS := &tfWorkspace{bin: tfBin, dir: filepath.Join(tmp, "berth"), env: env}
	dataWS := &tfWorkspace{bin: tfBin, dir: filepath.Join(tmp, "data"), env: env}
	for _, ws := range []struct {
		t   *tfWorkspace
		cfg string
	}{
		{berthWS, tfConfig(fmt.Sprintf(tfBerthHeader, tfProviderVersion, filepath.Join(plane.dir, "admin.json")), tfBerthResource, 100)},
		{dataWS, tfConfig("", tfDataResource, 100)},
	} {
		if err := os.MkdirAll(ws.t.dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(ws.t.dir, "main.tf"), []byte(ws.cfg), 0o644); err != nil {
			return nil, err
		}
		if _, err := ws.t.run(ctx, 5*time.Minute, "init", "-input=false", "-no-color"); err != nil {
			return nil, err
		}
	}

	// Run 0 is the warm-up. Each run: apply (100 creates), two no-op plans,
	// destroy (untimed); berth and terraform_data alternate so load on the
	// machine falls on both alike.
	const runs = 3
	var applyB, applyD, planB, planD []float64
	for run := 0; run <= runs; run++ {
		var aB, aD float64
		var pB, pD []float64
		for _, side := range []struct {
			ws    *tfWorkspace
			apply *float64
			plans *[]float64
		}{{berthWS, &aB, &pB}, {dataWS, &aD, &pD}} {
			secs, err := side.ws.timed(ctx, "apply", "-input=false", "-auto-approve", "-no-color")
			if err != nil {
				return nil, err
			}
			*side.apply = secs
			for i := 0; i < 2; i++ {
				secs, err := side.ws.planNoop(ctx)
				if err != nil {
					return nil, err
				}
				*side.plans = append(*side.plans, secs)
			}
			if _, err := side.ws.run(ctx, 5*time.Minute, "destroy", "-input=false", "-auto-approve", "-no-color"); err != nil {
				return nil, err
			}
		}
		if err := tfCheckNoDeployments(ctx, plane); err != nil {
			return nil, err
		}
		label := fmt.Sprintf("run %d", run)
		if run == 0 {
			label = "warm-up"
		}
		fmt.Fprintf(w, "    %s: apply 100 berth_deployment %.2f s, 100 terraform_data %.2f s; no-op plan %.2f/%.2f s vs %.2f/%.2f s\n",
			label, aB, aD, pB[0], pB[1], pD[0], pD[1])
		if run > 0 {
			applyB, applyD = append(applyB, aB), append(applyD, aD)
			planB, planD = append(planB, pB...), append(planD, pD...)
		}
	}
	return []bench.Figure{
		bench.NewFigure(figTFPlanNoop, tfDescs[figTFPlanNoop], "s", bench.LowerIsBetter, planB, "terraform_data.plan.noop", planD),
		bench.NewFigure(figTFApply100, tfDescs[figTFApply100], "s", bench.LowerIsBetter, applyB, "terraform_data.apply100", applyD),
	}, nil
}

// tfCheckNoDeployments makes sure destroy left nothing behind, so every
// apply creates all 100 again.
func tfCheckNoDeployments(ctx context.Context, p *devPlane) error {
	deadline := time.Now().Add(time.Minute)
	for {
		var list api.DeploymentList
		if err := p.cli.List(ctx, &list, client.ListOptions{Namespace: "default"}); err != nil {
			return fmt.Errorf("list deployments: %w", err)
		}
		if len(list.Items) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d deployments remain a minute after terraform destroy", len(list.Items))
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}
