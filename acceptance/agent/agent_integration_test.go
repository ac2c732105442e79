package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/acceptance/testbed"
	"github.com/berth-io/berth/acceptance/workloads"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/internal/prereq"
)

func TestMain(m *testing.M) {
	os.Exit(testbed.MainWith(m, testbed.Options{Vendors: []testbed.Vendor{{Name: "va", Hosts: 2}, {Name: "vb", Hosts: 1}}}))
}

// cluster is a dev control plane on the first host and agents on the others.
type cluster struct {
	t     *testing.T
	tb    *testbed.Testbed
	admin *client.Client
	refs  workloads.Refs
	nodes []testbed.Host
}

func run(t *testing.T, tb *testbed.Testbed, host, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := tb.Exec(ctx, host, cmd)
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", host, cmd, err, out)
	}
	return string(out)
}

func poll(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func setUp(t *testing.T) *cluster {
	prereq.Integration(t)
	prereq.Root(t)
	prereq.Binary(t, "containerd", "ctr")
	tb := testbed.Shared(t)
	hosts := tb.Hosts()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// A host's /tmp is private: build into /var/tmp, which hosts share.
	binDir, err := os.MkdirTemp("/var/tmp", "berth-agent-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	bin := filepath.Join(binDir, "berth")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/berth-io/berth/cmd/berth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build berth: %v\n%s", err, out)
	}
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	set, err := workloads.Build(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	refs, err := set.Push(ctx, tb.RegistryAddr())
	if err != nil {
		t.Fatal(err)
	}

	cp := hosts[0]
	listen := cp.Address + ":7443"
	run(t, tb, cp.Name, fmt.Sprintf("mkdir -p /var/lib/berth/cp && nohup %s control --dev --data-dir /var/lib/berth/cp --listen %s >/var/lib/berth/cp.log 2>&1 & echo $! >/run/berth-cp.pid", bin, listen))
	t.Cleanup(func() { _, _ = tb.Exec(context.Background(), cp.Name, "kill $(cat /run/berth-cp.pid)") })
	var cfg client.Config
	poll(t, "control plane wrote admin.json", time.Minute, func() bool {
		out, err := tb.Exec(ctx, cp.Name, "cat /var/lib/berth/cp/admin.json")
		return err == nil && json.Unmarshal(out, &cfg) == nil && len(cfg.Endpoints) > 0
	})
	admin, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "control plane ready", time.Minute, func() bool { return admin.Readyz(ctx) == nil })

	c := &cluster{t: t, tb: tb, admin: admin, refs: refs, nodes: hosts[1:]}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	for i, h := range c.nodes {
		c.startNode(ctx, h, bin, cfg, i)
	}
	for _, h := range c.nodes {
		poll(t, "node "+h.Name+" Ready", 2*time.Minute, func() bool {
			n := &api.Node{}
			return admin.Get(ctx, "", h.Name, n) == nil && api.IsNodeReady(n)
		})
	}
	return c
}

func (c *cluster) startNode(ctx context.Context, h testbed.Host, bin string, cp client.Config, i int) {
	t := c.t
	run(t, c.tb, h.Name, `mkdir -p /var/lib/berth/containerd /run/berth/containerd /etc/berth &&
cat >/etc/berth/containerd.toml <<'EOF2'
version = 2
root = "/var/lib/berth/containerd"
state = "/run/berth/containerd"
[grpc]
  address = "/run/berth/containerd/containerd.sock"
EOF2
nohup containerd --config /etc/berth/containerd.toml >/var/lib/berth/containerd.log 2>&1 & echo $! >/run/berth-containerd.pid`)
	t.Cleanup(func() { _, _ = c.tb.Exec(context.Background(), h.Name, "kill $(cat /run/berth-containerd.pid)") })
	tok, err := c.admin.CreateJoinToken(ctx, api.JoinTokenRequest{NodeName: h.Name})
	if err != nil {
		t.Fatal(err)
	}
	agentCfg := map[string]any{
		"nodeName": h.Name, "internalIP": h.Address, "controlPlane": cp.Endpoints,
		"caCertFile": "/etc/berth/ca.crt", "joinTokenFile": "/etc/berth/join-token",
		"registries":        map[string]any{c.tbRegistry(): map[string]any{"plainHTTP": true}},
		"containerd":        map[string]any{"address": "/run/berth/containerd/containerd.sock", "cgroupParent": fmt.Sprintf("/btb-%s-%s", c.tb.Name(), h.Name)},
		"network":           map[string]any{"pluginDir": "/usr/lib/cni"},
		"heartbeatInterval": "2s", "restartBackoff": "2s", "maxRestartBackoff": "8s", "stopGateTimeout": "5s",
	}
	data, _ := json.Marshal(agentCfg)
	run(t, c.tb, h.Name, fmt.Sprintf("umask 077 && cat >/etc/berth/ca.crt <<'EOF2'\n%s\nEOF2\nprintf %%s %q >/etc/berth/join-token && cat >/etc/berth/agent.json <<'EOF2'\n%s\nEOF2", cp.CACertificate, tok.Token, data))
	c.startAgent(h, bin)
}

func (c *cluster) tbRegistry() string { return c.tb.RegistryAddr() }

func (c *cluster) startAgent(h testbed.Host, bin string) {
	run(c.t, c.tb, h.Name, fmt.Sprintf("nohup %s agent --config /etc/berth/agent.json --log-level debug >>/var/lib/berth/agent.log 2>&1 & echo $! >/run/berth-agent.pid", bin))
	c.t.Cleanup(func() { _, _ = c.tb.Exec(context.Background(), h.Name, "kill $(cat /run/berth-agent.pid)") })
}

func (c *cluster) pod(ctx context.Context, name string) *api.Pod {
	p := &api.Pod{}
	if err := c.admin.Get(ctx, "default", name, p); err != nil {
		return nil
	}
	return p
}

func (c *cluster) createPod(ctx context.Context, name, image, node string, mutate func(*api.Pod)) {
	p := &api.Pod{Metadata: api.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": name}},
		Spec: api.PodSpec{NodeName: node, Containers: []api.Container{{Name: "web", Image: image,
			Ports: []api.ContainerPort{{Name: "http", ContainerPort: 8080}}}}}}
	if mutate != nil {
		mutate(p)
	}
	if err := c.admin.Create(ctx, p); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) dumpLogs() {
	for _, h := range c.nodes {
		out, _ := c.tb.Exec(context.Background(), h.Name, "tail -n 40 /var/lib/berth/agent.log; tail -n 10 /var/lib/berth/containerd.log")
		c.t.Logf("agent and containerd logs of %s:\n%s", h.Name, out)
	}
}

func TestIntegrationAgentRunsPodsOnTestbedHosts(t *testing.T) {
	c := setUp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	node := c.nodes[0]

	t.Run("pod starts, becomes Ready and its logs are readable through the API", func(t *testing.T) {
		c.createPod(ctx, "web-1", c.refs.V1, node.Name, func(p *api.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &api.Probe{HTTPGet: &api.HTTPGetAction{Path: "/healthz", Port: api.FromString("http")}, PeriodSeconds: 1}
		})
		poll(t, "web-1 Ready", 3*time.Minute, func() bool { p := c.pod(ctx, "web-1"); return p != nil && api.IsPodReady(p) })
		p := c.pod(ctx, "web-1")
		out := run(t, c.tb, node.Name, "wget -q -O - http://"+p.Status.PodIP+":8080/ || curl -s http://"+p.Status.PodIP+":8080/")
		if !strings.Contains(out, "web v1") {
			t.Fatalf("pod answered %q", out)
		}
		rc, err := c.admin.Logs(ctx, "default", "web-1", client.LogOptions{TailLines: 50})
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
		logs, _ := io.ReadAll(rc)
		rc.Close()
		if len(logs) == 0 {
			t.Fatal("logs are empty")
		}
	})

	t.Run("crashing container shows CrashLoopBackOff with exit code 3", func(t *testing.T) {
		c.createPod(ctx, "crash", c.refs.Crash, node.Name, nil)
		poll(t, "crash in CrashLoopBackOff after a restart", 3*time.Minute, func() bool {
			p := c.pod(ctx, "crash")
			if p == nil || len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			s := p.Status.ContainerStatuses[0]
			return s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff" && s.RestartCount >= 1 &&
				s.LastState.Terminated != nil && s.LastState.Terminated.ExitCode == 3
		})
	})

	t.Run("unpullable image is reported without blocking another pod", func(t *testing.T) {
		c.createPod(ctx, "missing", c.tbRegistry()+"/berth-test/nope:v0", node.Name, nil)
		c.createPod(ctx, "web-2", c.refs.V1, node.Name, nil)
		poll(t, "web-2 Ready", 3*time.Minute, func() bool { p := c.pod(ctx, "web-2"); return p != nil && api.IsPodReady(p) })
		poll(t, "missing reports its pull failure", 3*time.Minute, func() bool {
			p := c.pod(ctx, "missing")
			return p != nil && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
				p.Status.ContainerStatuses[0].State.Waiting.Reason != "ContainerCreating"
		})
	})

	t.Run("deleting a pod removes its container and snapshot", func(t *testing.T) {
		p := c.pod(ctx, "web-2")
		id := p.Status.ContainerStatuses[0].ContainerID
		if err := c.admin.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
		poll(t, "web-2 gone", 2*time.Minute, func() bool { return c.pod(ctx, "web-2") == nil })
		ctr := "ctr -a /run/berth/containerd/containerd.sock -n berth "
		if out := run(t, c.tb, node.Name, ctr+"containers ls -q"); strings.Contains(out, id) {
			t.Fatalf("container %s still listed:\n%s", id, out)
		}
		if out := run(t, c.tb, node.Name, ctr+"snapshots ls"); strings.Contains(out, id) {
			t.Fatalf("snapshot of %s still listed:\n%s", id, out)
		}
	})
}
