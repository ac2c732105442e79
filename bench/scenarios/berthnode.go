package scenarios

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"time"

	"github.com/berth-io/berth/acceptance/testbed"
	"github.com/berth-io/berth/acceptance/workloads"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// berthSamples are berth's side of the Swarm comparisons.
type berthSamples struct {
	replicas100, rolling10, rolling100, serviceRPS []float64
}

// berthCluster is a dev control plane on one testbed host and a node
// (containerd + berth agent) on another, as acceptance/agent sets them up.
type berthCluster struct {
	tb    *testbed.Testbed
	admin *client.Client
	refs  workloads.Refs
	node  testbed.Host
}

// measureBerth brings up a two-host testbed (a control plane and one
// node), runs the same workloads as the Swarm side and tears it down.
func measureBerth(ctx context.Context, w io.Writer, set *workloads.Set) (berthSamples, error) {
	var bs berthSamples
	for _, bin := range []string{"containerd", "ctr", "go"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bs, fmt.Errorf("%s not installed", bin)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 25*time.Minute)
	defer cancel()
	c, _, down, err := upBerthBed(ctx, w, set, nil)
	if err != nil {
		return bs, err
	}
	defer down()

	// Swarm's images were imported before it was timed; pull berth's onto
	// the node first the same way, with one pod of v1 and then v2.
	warm := map[string]string{"app": "warm"}
	if _, err := c.createDeployment(ctx, "warm", warm, 1); err != nil {
		return bs, fmt.Errorf("warm-up: %w", err)
	}
	if _, err := c.rollingUpdate(ctx, "warm", c.refs.V2); err != nil {
		return bs, fmt.Errorf("warm-up: %w", err)
	}
	if err := c.deleteDeployment(ctx, "warm", warm); err != nil {
		return bs, err
	}

	labels := map[string]string{"app": "web100"}
	for run := 1; run <= 2; run++ {
		secs, err := c.createDeployment(ctx, "web100", labels, 100)
		if err != nil {
			return bs, fmt.Errorf("100 pods, run %d: %w", run, err)
		}
		fmt.Fprintf(w, "    berth run %d: 100 pods Ready in %.1f s\n", run, secs)
		bs.replicas100 = append(bs.replicas100, secs)
		if run < 2 {
			if err := c.deleteDeployment(ctx, "web100", labels); err != nil {
				return bs, err
			}
		}
	}
	secs, err := c.rollingUpdate(ctx, "web100", c.refs.V2)
	if err != nil {
		return bs, fmt.Errorf("rolling update of 100: %w", err)
	}
	fmt.Fprintf(w, "    berth run 1: 100 pods updated to v2 in %.1f s\n", secs)
	bs.rolling100 = append(bs.rolling100, secs)
	if err := c.deleteDeployment(ctx, "web100", labels); err != nil {
		return bs, err
	}

	l10 := map[string]string{"app": "web10"}
	if _, err := c.createDeployment(ctx, "web10", l10, 10); err != nil {
		return bs, fmt.Errorf("10 pods: %w", err)
	}
	for run, img := range []string{c.refs.V2, c.refs.V1, c.refs.V2} {
		secs, err := c.rollingUpdate(ctx, "web10", img)
		if err != nil {
			return bs, fmt.Errorf("rolling update of 10, run %d: %w", run+1, err)
		}
		fmt.Fprintf(w, "    berth run %d: 10 pods updated in %.1f s\n", run+1, secs)
		bs.rolling10 = append(bs.rolling10, secs)
	}
	if err := c.deleteDeployment(ctx, "web10", l10); err != nil {
		return bs, err
	}

	rps, err := c.serviceThroughput(ctx, w)
	if err != nil {
		return bs, fmt.Errorf("service throughput: %w", err)
	}
	bs.serviceRPS = rps
	return bs, nil
}

// startBerthCluster starts `berth control --dev` on the first host and
// containerd plus `berth agent` on the second, and waits for the node.
func startBerthCluster(ctx context.Context, tb *testbed.Testbed, set *workloads.Set, bin string) (*berthCluster, error) {
	hosts := tb.Hosts()
	if len(hosts) < 2 {
		return nil, fmt.Errorf("testbed has %d hosts, need 2", len(hosts))
	}
	refs, err := set.Push(ctx, tb.RegistryAddr())
	if err != nil {
		return nil, fmt.Errorf("push test workloads: %w", err)
	}
	sh := func(host, cmd string) error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if out, err := tb.Exec(cctx, host, cmd); err != nil {
			return fmt.Errorf("%s: %s: %w\n%s", host, cmd, err, out)
		}
		return nil
	}
	cp, node := hosts[0], hosts[1]
	if err := sh(cp.Name, fmt.Sprintf("mkdir -p /var/lib/berth/cp && nohup %s control --dev --data-dir /var/lib/berth/cp --listen %s:7443 --log-level warn >/var/lib/berth/cp.log 2>&1 &", bin, cp.Address)); err != nil {
		return nil, err
	}
	var cfg client.Config
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := tb.Exec(ctx, cp.Name, "cat /var/lib/berth/cp/admin.json")
		if err == nil && json.Unmarshal(out, &cfg) == nil && len(cfg.Endpoints) > 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("control plane wrote no admin.json in 1m")
		}
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return nil, err
		}
	}
	admin, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	c := &berthCluster{tb: tb, admin: admin, refs: refs, node: node}
	if err := c.poll(ctx, "control plane ready", time.Minute, func() bool { return admin.Readyz(ctx) == nil }); err != nil {
		admin.Close()
		return nil, err
	}
	if err := sh(node.Name, `mkdir -p /var/lib/berth/containerd /run/berth/containerd /etc/berth &&
cat >/etc/berth/containerd.toml <<'EOF2'
version = 2
root = "/var/lib/berth/containerd"
state = "/run/berth/containerd"
[grpc]
  address = "/run/berth/containerd/containerd.sock"
EOF2
nohup containerd --config /etc/berth/containerd.toml >/var/lib/berth/containerd.log 2>&1 &
echo $! >/var/lib/berth/containerd.pid`); err != nil {
		admin.Close()
		return nil, err
	}
	tok, err := admin.CreateJoinToken(ctx, api.JoinTokenRequest{NodeName: node.Name})
	if err != nil {
		admin.Close()
		return nil, fmt.Errorf("join token: %w", err)
	}
	agentCfg := map[string]any{
		"nodeName": node.Name, "internalIP": node.Address, "controlPlane": cfg.Endpoints,
		"caCertFile": "/etc/berth/ca.crt", "joinTokenFile": "/etc/berth/join-token",
		"registries": map[string]any{tb.RegistryAddr(): map[string]any{"plainHTTP": true}},
		"containerd": map[string]any{"address": "/run/berth/containerd/containerd.sock", "cgroupParent": fmt.Sprintf("/btb-%s-%s", tb.Name(), node.Name)},
		"network":    map[string]any{"pluginDir": "/usr/lib/cni"},
	}
	data, _ := json.Marshal(agentCfg)
	if err := sh(node.Name, fmt.Sprintf("umask 077 && cat >/etc/berth/ca.crt <<'EOF2'\n%s\nEOF2\nprintf %%s %q >/etc/berth/join-token && cat >/etc/berth/agent.json <<'EOF2'\n%s\nEOF2", cfg.CACertificate, tok.Token, data)); err != nil {
		admin.Close()
		return nil, err
	}
	if err := sh(node.Name, fmt.Sprintf("nohup %s agent --config /etc/berth/agent.json --log-level warn >>/var/lib/berth/agent.log 2>&1 & echo $! >/var/lib/berth/agent.pid", bin)); err != nil {
		admin.Close()
		return nil, err
	}
	if err := c.poll(ctx, "node "+node.Name+" Ready", 2*time.Minute, func() bool {
		n := &api.Node{}
		return admin.Get(ctx, "", node.Name, n) == nil && api.IsNodeReady(n)
	}); err != nil {
		out, _ := tb.Exec(ctx, node.Name, "tail -20 /var/lib/berth/agent.log")
		admin.Close()
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	return c, nil
}

func (c *berthCluster) poll(ctx context.Context, what string, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s waiting for %s", limit, what)
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// rolledOut reports whether d's latest template runs on every replica,
// all available.
func rolledOut(d *api.Deployment) bool {
	r := *d.Spec.Replicas
	return d.Status.ObservedGeneration == d.Metadata.Generation && d.Status.RolloutState == api.RolloutComplete &&
		d.Status.LiveRevision == d.Status.DesiredRevision && d.Status.UpdatedReplicas == r && d.Status.AvailableReplicas == r &&
		d.Status.Replicas == r
}

// createDeployment creates a deployment of the web app (v1), one pod at a
// time on updates, and returns the seconds until every replica is
// available.
func (c *berthCluster) createDeployment(ctx context.Context, name string, labels map[string]string, replicas int32) (float64, error) {
	surge, unavail := api.FromInt(1), api.FromInt(0)
	d := &api.Deployment{
		Metadata: api.ObjectMeta{Name: name, Namespace: "default"},
		Spec: api.DeploymentSpec{Replicas: &replicas, Selector: labels,
			Strategy: api.DeploymentStrategy{MaxSurge: &surge, MaxUnavailable: &unavail},
			Template: api.PodTemplate{Metadata: api.TemplateMeta{Labels: labels},
				Spec: api.PodSpec{Containers: []api.Container{{Name: "web", Image: c.refs.V1}}}}},
	}
	start := time.Now()
	if err := c.admin.Create(ctx, d); err != nil {
		return 0, fmt.Errorf("create deployment %s: %w", name, err)
	}
	if err := c.waitRolledOut(ctx, name); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

func (c *berthCluster) waitRolledOut(ctx context.Context, name string) error {
	var last api.Deployment
	err := c.poll(ctx, "deployment "+name+" rolled out", 10*time.Minute, func() bool {
		return c.admin.Get(ctx, "default", name, &last) == nil && rolledOut(&last)
	})
	if err != nil {
		return fmt.Errorf("%w (available %d/%d, updated %d, state %s: %s)", err, last.Status.AvailableReplicas,
			last.Status.Replicas, last.Status.UpdatedReplicas, last.Status.RolloutState, last.Status.Message)
	}
	return nil
}

// rollingUpdate changes the deployment's image and returns the seconds
// until the rollout is complete.
func (c *berthCluster) rollingUpdate(ctx context.Context, name, image string) (float64, error) {
	start := time.Now()
	for {
		var d api.Deployment
		if err := c.admin.Get(ctx, "default", name, &d); err != nil {
			return 0, fmt.Errorf("get deployment %s: %w", name, err)
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		err := c.admin.Update(ctx, &d)
		if err == nil {
			break
		}
		if !api.IsConflict(err) {
			return 0, fmt.Errorf("update deployment %s: %w", name, err)
		}
	}
	if err := c.waitRolledOut(ctx, name); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

// deleteDeployment deletes a deployment and waits until its pods are gone.
func (c *berthCluster) deleteDeployment(ctx context.Context, name string, labels map[string]string) error {
	if err := c.admin.Delete(ctx, &api.Deployment{Metadata: api.ObjectMeta{Name: name, Namespace: "default"}}); err != nil && !api.IsNotFound(err) {
		return fmt.Errorf("delete deployment %s: %w", name, err)
	}
	return c.poll(ctx, "pods of "+name+" gone", 5*time.Minute, func() bool {
		var pods api.PodList
		return c.admin.List(ctx, &pods, client.ListOptions{Namespace: "default", Labels: labels}) == nil && len(pods.Items) == 0
	})
}

// serviceThroughput runs one web pod behind a NodePort service and
// measures requests/s through the node port from the root namespace, the
// same load as the Swarm side's host-mode port.
func (c *berthCluster) serviceThroughput(ctx context.Context, w io.Writer) ([]float64, error) {
	labels := map[string]string{"app": "websvc"}
	if _, err := c.createDeployment(ctx, "websvc", labels, 1); err != nil {
		return nil, err
	}
	svc := &api.Service{
		Metadata: api.ObjectMeta{Name: "websvc", Namespace: "default"},
		Spec: api.ServiceSpec{Type: api.ServiceNodePort, Selector: labels,
			Ports: []api.ServicePort{{Port: 80, TargetPort: api.FromInt(int32(workloads.Port))}}},
	}
	if err := c.admin.Create(ctx, svc); err != nil {
		return nil, fmt.Errorf("create service: %w", err)
	}
	addr := net.JoinHostPort(c.node.Address, strconv.Itoa(int(svc.Spec.Ports[0].NodePort)))
	if err := c.poll(ctx, "node port "+addr+" answering", time.Minute, func() bool {
		_, err := httpLoad(ctx, "", addr, 1, 200*time.Millisecond)
		return err == nil
	}); err != nil {
		return nil, err
	}
	const runs, conns, dur = 3, 8, 5 * time.Second
	var out []float64
	for run := 0; run <= runs; run++ {
		rps, err := httpLoad(ctx, "", addr, conns, dur)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(w, "    berth run %d: %.0f req/s through node port %s\n", run, rps, addr)
		if run > 0 {
			out = append(out, rps)
		}
	}
	return out, nil
}
