package berthexample_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/examples/pulumi-go/berthexample"
	"github.com/berth-io/berth/internal/prereq"
)

// repoBin is the repository's bin/, where scripts/pulumi.sh puts the
// Pulumi CLI and the provider plugin.
func repoBin(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pulumi", "pulumi-resource-berth"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			prereq.Missing(t, "bin/"+name+" is not built (run scripts/pulumi.sh)")
		}
	}
	return dir
}

// newStack creates a stack of the example program, run inline by this
// process, in a local file backend: no cloud, no network, no plugin
// downloads; the engine finds pulumi-resource-berth in bin/ on its PATH.
func newStack(t *testing.T, cluster *testCluster) auto.Stack {
	t.Helper()
	ctx := t.Context()
	bin := repoBin(t)
	cli, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: filepath.Dir(bin)})
	if err != nil {
		t.Fatalf("use bin/pulumi: %v", err)
	}
	state := t.TempDir()
	env := map[string]string{
		"PATH":                     bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"PULUMI_HOME":              filepath.Join(state, "home"),
		"PULUMI_BACKEND_URL":       "file://" + filepath.Join(state, "backend"),
		"PULUMI_CONFIG_PASSPHRASE": "test passphrase",
		"PULUMI_SKIP_UPDATE_CHECK": "true",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
	}
	for _, dir := range []string{"backend", "work"} {
		if err := os.MkdirAll(filepath.Join(state, dir), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	stack, err := auto.UpsertStackInlineSource(ctx, "test", "berth-example", berthexample.Program,
		auto.Pulumi(cli), auto.EnvVars(env), auto.WorkDir(filepath.Join(state, "work")))
	if err != nil {
		t.Fatalf("create the stack: %v", err)
	}
	t.Cleanup(func() {
		// Whatever a failed step left behind goes; a clean test has
		// destroyed everything already.
		ctx := context.WithoutCancel(ctx)
		_, _ = stack.Destroy(ctx)
		_ = stack.Workspace().RemoveStack(ctx, stack.Name())
	})
	for k, v := range cluster.StackConfig {
		setConfig(t, stack, k, v)
	}
	return stack
}

func setConfig(t *testing.T, stack auto.Stack, key, value string) {
	t.Helper()
	if err := stack.SetConfig(t.Context(), key, auto.ConfigValue{Value: value}); err != nil {
		t.Fatalf("set config %s: %v", key, err)
	}
}

// step runs one step of a scenario and stops the scenario when it fails:
// later steps build on earlier ones.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

// TestIntegrationProgramOnSimulatedCluster runs the example program against
// a Dev control plane with simulated nodes through the Automation API, the
// way a user runs `pulumi up`, `preview` and `destroy`.
func TestIntegrationProgramOnSimulatedCluster(t *testing.T) {
	prereq.Integration(t)
	repoBin(t)
	runProgramScenario(t, simulatedCluster(t, 2))
}

// runProgramScenario is the life of the example's stack on a cluster:
// create, no-op preview, image roll, failed roll with evidence, destroy.
func runProgramScenario(t *testing.T, cluster *testCluster) {
	stack := newStack(t, cluster)
	ctx := t.Context()
	imageV1, imageV2 := cluster.V1, cluster.V2
	setConfig(t, stack, "image", imageV1)
	setConfig(t, stack, "replicas", "2")
	if cluster.Serve == nil {
		// Simulated pods are ready at once; a short deadline keeps the
		// failed rollout short.
		setConfig(t, stack, "progressDeadlineSeconds", "10")
	}

	var (
		nodePort int
		failed   func(t *testing.T, answered string) int
	)
	step(t, "up creates the deployment and the NodePort service and exports the address", func(t *testing.T) {
		res, err := stack.Up(ctx)
		if err != nil {
			t.Fatalf("up: %v", err)
		}
		addr, _ := res.Outputs["address"].Value.(string)
		np, _ := res.Outputs["nodePort"].Value.(float64)
		nodePort = int(np)
		if nodePort < 30000 || nodePort > 32767 {
			t.Fatalf("nodePort output = %v, want a port in 30000-32767", res.Outputs["nodePort"].Value)
		}
		if !regexp.MustCompile(fmt.Sprintf(`^\d+\.\d+\.\d+\.\d+:%d$`, nodePort)).MatchString(addr) {
			t.Fatalf("address output = %q, want <node IP>:%d", addr, nodePort)
		}
		if rev, _ := res.Outputs["liveRevision"].Value.(float64); rev != 1 {
			t.Errorf("liveRevision output = %v, want 1", res.Outputs["liveRevision"].Value)
		}
		if cluster.Client == nil {
			cluster.Client = cluster.Connect(t, res.Outputs)
		}
		if cluster.Serve != nil {
			failed = cluster.Serve(t, nodePort)
		}
		var d api.Deployment
		if err := cluster.Client.Get(ctx, "default", "web", &d); err != nil {
			t.Fatalf("the deployment is not in the cluster: %v", err)
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; img != imageV1 || d.Status.ReadyReplicas != 2 {
			t.Errorf("deployment runs %s with %d ready replicas, want %s with 2", img, d.Status.ReadyReplicas, imageV1)
		}
		var svc api.Service
		if err := cluster.Client.Get(ctx, "default", "web", &svc); err != nil {
			t.Fatalf("the service is not in the cluster: %v", err)
		}
		if svc.Spec.Type != api.ServiceNodePort || len(svc.Spec.Ports) != 1 || int(svc.Spec.Ports[0].NodePort) != nodePort {
			t.Errorf("service spec %+v, want NodePort on %d", svc.Spec, nodePort)
		}
	})

	step(t, "preview right after up shows no changes", func(t *testing.T) {
		res, err := stack.Preview(ctx, optpreview.ExpectNoChanges(), optpreview.Diff())
		if err != nil {
			t.Fatalf("preview: %v", err)
		}
		assertOnlySame(t, res.ChangeSummary)
	})

	step(t, "changing the image and up rolls the deployment", func(t *testing.T) {
		setConfig(t, stack, "image", imageV2)
		res, err := stack.Up(ctx)
		if err != nil {
			t.Fatalf("up: %v", err)
		}
		if changes := res.Summary.ResourceChanges; changes == nil || (*changes)[string(apitype.OpUpdate)] != 1 {
			t.Errorf("up's changes %v, want 1 update (the deployment)", changes)
		}
		if rev, _ := res.Outputs["liveRevision"].Value.(float64); rev != 2 {
			t.Errorf("liveRevision output = %v, want 2", res.Outputs["liveRevision"].Value)
		}
		var d api.Deployment
		if err := cluster.Client.Get(ctx, "default", "web", &d); err != nil {
			t.Fatal(err)
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; img != imageV2 || d.Status.RolloutState != api.RolloutComplete {
			t.Errorf("deployment runs %s, rollout %s; want %s, Complete", img, d.Status.RolloutState, imageV2)
		}
		if np, _ := res.Outputs["nodePort"].Value.(float64); int(np) != nodePort {
			t.Errorf("the node port moved from %d to %v", nodePort, res.Outputs["nodePort"].Value)
		}
		if failed != nil {
			if n := failed(t, "v2"); n != 0 {
				t.Errorf("%d requests failed during the rolling update", n)
			}
		}
	})

	step(t, "a broken image fails up with the rollout's evidence and leaves the change pending", func(t *testing.T) {
		setConfig(t, stack, "image", cluster.Broken)
		_, err := stack.Up(ctx, optup.ErrorProgressStreams(&testWriter{t}))
		if err == nil {
			t.Fatal("up with an image whose pods never become ready succeeded")
		}
		msg := strings.Join(strings.Fields(err.Error()), " ")
		for _, want := range cluster.BrokenEvidence {
			if !strings.Contains(msg, want) {
				t.Errorf("up's error lacks %q:\n%s", want, err)
			}
		}
		var d api.Deployment
		if err := cluster.Client.Get(ctx, "default", "web", &d); err != nil {
			t.Fatal(err)
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; img != imageV2 || d.Status.RolloutState != api.RolloutRolledBack {
			t.Errorf("after the failed rollout the deployment runs %s, rollout %s; want %s, RolledBack", img, d.Status.RolloutState, imageV2)
		}
		if failed != nil {
			if n := failed(t, "v2"); n != 0 {
				t.Errorf("%d requests failed during the failed rollout", n)
			}
		}
		res, err := stack.Preview(ctx)
		if err != nil {
			t.Fatalf("preview: %v", err)
		}
		if res.ChangeSummary[apitype.OpUpdate] == 0 {
			t.Errorf("preview after the failed up shows no update (%v); the broken image was recorded as applied", res.ChangeSummary)
		}
	})

	step(t, "destroy removes everything", func(t *testing.T) {
		if _, err := stack.Destroy(ctx, optdestroy.ErrorProgressStreams(&testWriter{t})); err != nil {
			t.Fatalf("destroy: %v", err)
		}
		cluster.AfterDestroy(t)
		res, err := stack.Preview(ctx)
		if err != nil {
			t.Fatalf("preview after destroy: %v", err)
		}
		if res.ChangeSummary[apitype.OpCreate] == 0 {
			t.Errorf("preview after destroy plans no creations (%v)", res.ChangeSummary)
		}
	})
}

func assertOnlySame(t *testing.T, summary map[apitype.OpType]int) {
	t.Helper()
	for op, n := range summary {
		if op != apitype.OpSame && n != 0 {
			t.Errorf("preview plans %d %s operations, want none: %v", n, op, summary)
		}
	}
	if summary[apitype.OpSame] == 0 {
		t.Errorf("preview saw no resources: %v", summary)
	}
}

// testWriter sends the engine's error stream to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
