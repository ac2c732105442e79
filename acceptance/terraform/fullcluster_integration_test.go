package terraform_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/acceptance/testbed"
	"github.com/berth-io/berth/acceptance/workloads"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/internal/prereq"
)

// fullCluster is examples/full-cluster in its own workspace, on the first
// three hosts of the shared testbed: one control-plane host and two
// workers.
type fullCluster struct {
	*workspace
	tb     *testbed.Testbed
	root   string
	hosts  []testbed.Host // the cluster's hosts: control plane first
	tfvars map[string]any
	refs   workloads.Refs
	// destroyed is set once the test has destroyed the cluster itself;
	// otherwise the cleanup destroys it.
	destroyed bool
}

// newFullCluster copies the example into a workspace with its variables
// (the node image bin/node-image.tar.gz, web:v1 from the testbed registry)
// and runs terraform init. The cluster is destroyed when the test ends,
// whatever happened.
func newFullCluster(t *testing.T, ctx context.Context) *fullCluster {
	t.Helper()
	prereq.Integration(t)
	prereq.Root(t)
	tb := testbed.Shared(t)
	hosts := tb.Hosts()
	if len(hosts) < 3 {
		t.Fatalf("testbed has %d hosts, need 3", len(hosts))
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	script(t, root, "image.sh")
	w := &workspace{t: t, tf: script(t, root, "terraform.sh"), dir: t.TempDir()}
	rc := privateMirror(t, root, script(t, root, "terraform.sh", "install-provider"))
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
	hostVar := func(hs []testbed.Host) map[string]any {
		m := map[string]any{}
		for _, h := range hs {
			m[h.Name] = map[string]any{"address": h.Address, "port": h.SSHPort, "host_key": h.HostPublicKey}
		}
		return m
	}
	c := &fullCluster{workspace: w, tb: tb, root: root, hosts: hosts[:3], refs: refs}
	c.tfvars = map[string]any{
		"image_path":            filepath.Join(root, "bin", "node-image.tar.gz"),
		"private_key_path":      tb.PrivateKeyPath(),
		"control_plane_hosts":   hostVar(hosts[:1]),
		"worker_hosts":          hostVar(hosts[1:3]),
		"plain_http_registries": []string{tb.RegistryAddr()},
		"web_image":             refs.V1,
	}
	w.vars(c.tfvars)
	w.must(ctx, "init", "-no-color")
	t.Cleanup(func() {
		if c.destroyed {
			return
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer dcancel()
		if out, err := w.run(dctx, "destroy", "-auto-approve", "-no-color"); err != nil {
			t.Errorf("destroy after failure: %v\n%s", err, out)
		}
	})
	return c
}

// hostNames names the cluster's hosts.
func (c *fullCluster) hostNames() []string {
	var out []string
	for _, h := range c.hosts {
		out = append(out, h.Name)
	}
	return out
}

// nodePort is the web service's node port (output node_port).
func (c *fullCluster) nodePort(ctx context.Context) int {
	c.t.Helper()
	out := strings.TrimSpace(c.must(ctx, "output", "-raw", "node_port"))
	var p int
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		c.t.Fatalf("node_port output %q: %v", out, err)
	}
	return p
}

// adminConfig writes the admin_config output (the berth CLI's client
// configuration) to a file in the workspace and returns its path.
func (c *fullCluster) adminConfig(ctx context.Context) string {
	c.t.Helper()
	p := filepath.Join(c.dir, "admin.json")
	if err := os.WriteFile(p, []byte(c.must(ctx, "output", "-raw", "admin_config")), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// admin is a client of the cluster from its admin_config output.
func (c *fullCluster) admin(ctx context.Context) *client.Client {
	c.t.Helper()
	cfg, err := client.LoadConfig(c.adminConfig(ctx))
	if err != nil {
		c.t.Fatal(err)
	}
	cli, err := client.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// showJSON is `terraform show -json [plan]`: state or plan with its
// sensitive values, as the machine-readable format has them.
func (c *fullCluster) showJSON(ctx context.Context, args ...string) map[string]any {
	c.t.Helper()
	out := c.must(ctx, append([]string{"show", "-json", "-no-color"}, args...)...)
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		c.t.Fatalf("terraform show -json: %v\n%s", err, out)
	}
	return v
}

// resourceValues is the attribute values of the root-module resource addr
// in `terraform show -json` of the state.
func (c *fullCluster) resourceValues(ctx context.Context, addr string) map[string]any {
	c.t.Helper()
	st := c.showJSON(ctx)
	vals, _ := st["values"].(map[string]any)
	rm, _ := vals["root_module"].(map[string]any)
	rs, _ := rm["resources"].([]any)
	for _, r := range rs {
		r, _ := r.(map[string]any)
		if r["address"] == addr {
			v, _ := r["values"].(map[string]any)
			return v
		}
	}
	c.t.Fatalf("state has no %s", addr)
	return nil
}

// planEmpty fails the test unless `terraform plan` has nothing to do.
func (c *fullCluster) planEmpty(ctx context.Context, when string) {
	c.t.Helper()
	if out, err := c.run(ctx, "plan", "-detailed-exitcode", "-no-color"); err != nil {
		c.t.Fatalf("plan %s is not empty (%v):\n%s", when, err, out)
	}
}

// followReadyNodes keeps the testbed load balancer on the node port of
// the cluster's nodes that can take traffic — Ready and not cordoned — as
// a cloud load balancer's target group following the cluster's nodes
// would: a node the engine cordons to replace it leaves at once (its node
// port still forwards for the seconds its new image takes to upload), and
// returns once it is Ready and uncordoned on its new image. While the API
// does not answer, the targets stay. It polls until ctx ends and reports
// the first error the load balancer gave, or nil. changed hears each new
// set of targets.
func followReadyNodes(ctx context.Context, tb *testbed.Testbed, cli *client.Client, port int, hosts []string, changed func(targets []string)) error {
	var current []string
	for {
		var nodes api.NodeList
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := cli.List(lctx, &nodes, client.ListOptions{})
		cancel()
		if err == nil {
			var want []string
			for i := range nodes.Items {
				n := &nodes.Items[i]
				if slices.Contains(hosts, n.Metadata.Name) && api.IsNodeReady(n) && !n.Spec.Unschedulable {
					want = append(want, n.Metadata.Name)
				}
			}
			sort.Strings(want)
			if len(want) > 0 && !slices.Equal(want, current) {
				if err := tb.SetLB(ctx, port, want...); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				changed(want)
				current = want
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}
