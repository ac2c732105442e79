package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	bin   string // the berth binary, on a path every host sees
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

	c := &cluster{t: t, tb: tb, admin: admin, refs: refs, nodes: hosts[1:], bin: bin}
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
	// Hosts share the machine's cgroup tree: leave no cgroup behind. This
	// runs last, after the containers below are gone.
	cgroupParent := fmt.Sprintf("btb-%s-%s", c.tb.Name(), h.Name)
	t.Cleanup(func() {
		_, _ = c.tb.Exec(context.Background(), h.Name,
			"for d in /sys/fs/cgroup/*/"+cgroupParent+"; do [ -d \"$d\" ] && find \"$d\" -depth -type d -exec rmdir {} +; done; true")
	})
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
	// Runs once the agent is stopped, before containerd is.
	t.Cleanup(func() {
		_, _ = c.tb.Exec(context.Background(), h.Name,
			"for id in $("+ctrCmd+"containers ls -q); do "+ctrCmd+"tasks delete -f $id; "+ctrCmd+"containers rm $id; done; true")
	})
	tok, err := c.admin.CreateJoinToken(ctx, api.JoinTokenRequest{NodeName: h.Name})
	if err != nil {
		t.Fatal(err)
	}
	agentCfg := map[string]any{
		"nodeName": h.Name, "internalIP": h.Address, "controlPlane": cp.Endpoints,
		"caCertFile": "/etc/berth/ca.crt", "joinTokenFile": "/etc/berth/join-token",
		"registries":        map[string]any{c.tbRegistry(): map[string]any{"plainHTTP": true}},
		"containerd":        map[string]any{"address": "/run/berth/containerd/containerd.sock", "cgroupParent": "/" + cgroupParent},
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

// ctrCmd is ctr talking to a node's containerd in berth's namespace.
const ctrCmd = "ctr -a /run/berth/containerd/containerd.sock -n berth "

// waitPod polls the pod until cond holds and returns it.
func (c *cluster) waitPod(t *testing.T, ctx context.Context, name, what string, limit time.Duration, cond func(*api.Pod) bool) *api.Pod {
	t.Helper()
	var last *api.Pod
	deadline := time.Now().Add(limit)
	for {
		last = c.pod(ctx, name)
		if last != nil && cond(last) {
			return last
		}
		if time.Now().After(deadline) {
			st := "gone"
			if last != nil {
				b, _ := json.Marshal(last.Status)
				st = string(b)
			}
			t.Fatalf("gave up waiting: %s %s; status %s", name, what, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readyPod waits for the pod to be Ready.
func (c *cluster) readyPod(t *testing.T, ctx context.Context, name string) *api.Pod {
	t.Helper()
	return c.waitPod(t, ctx, name, "Ready", 2*time.Minute, api.IsPodReady)
}

// deletePods deletes the pods and waits until the API no longer has them
// (the agent finalises a deletion only after the containers are gone).
func (c *cluster) deletePods(t *testing.T, ctx context.Context, names ...string) {
	t.Helper()
	for _, n := range names {
		if p := c.pod(ctx, n); p != nil {
			if err := c.admin.Delete(ctx, p); err != nil && !api.IsNotFound(err) {
				t.Fatalf("delete pod %s: %v", n, err)
			}
		}
	}
	for _, n := range names {
		poll(t, "pod "+n+" gone", 2*time.Minute, func() bool { return c.pod(ctx, n) == nil })
	}
}

// container returns the first container status of a pod.
func container(p *api.Pod) api.ContainerStatus {
	if len(p.Status.ContainerStatuses) == 0 {
		return api.ContainerStatus{}
	}
	return p.Status.ContainerStatuses[0]
}

// inPod runs a shell command on the pod's node inside the pod's network
// namespace, with the pod's resolv.conf as /etc/resolv.conf, as a process
// of the pod would see the network.
func (c *cluster) inPod(t *testing.T, p *api.Pod, cmd string) string {
	t.Helper()
	uid := p.Metadata.UID
	inner := fmt.Sprintf("mount --bind /var/lib/berth/agent/pods/%s/resolv.conf /etc/resolv.conf && exec nsenter --net=/run/berth/netns/%s sh -c %s",
		uid, uid, shellQuote(cmd))
	return run(t, c.tb, p.Spec.NodeName, "unshare -m sh -c "+shellQuote(inner))
}

// shellQuote quotes s as one word for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// answers counts the pod names in the web app's answers ("web v1
// pod=NAME"), one a line.
func answers(out string) map[string]int {
	seen := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if _, pod, ok := strings.Cut(strings.TrimSpace(line), "pod="); ok {
			seen[pod]++
		}
	}
	return seen
}

// curlLoop is a shell loop of n requests to url, one answer per line.
func curlLoop(n int, url string) string {
	return fmt.Sprintf("for i in $(seq %d); do curl -s -m 2 %s; echo; done", n, url)
}

// taskPID returns the PID of a container's task on a node.
func (c *cluster) taskPID(t *testing.T, node, id string) string {
	t.Helper()
	for _, line := range strings.Split(run(t, c.tb, node, ctrCmd+"tasks ls"), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id {
			return f[1]
		}
	}
	t.Fatalf("no task for container %s on %s", id, node)
	return ""
}

// waitRulesProgrammed waits until every node reports service rules at
// least as new as the endpoints revision rev.
func (c *cluster) waitRulesProgrammed(t *testing.T, ctx context.Context, rev int64) {
	t.Helper()
	for _, h := range c.nodes {
		poll(t, fmt.Sprintf("%s programs service rules of revision %d", h.Name, rev), time.Minute, func() bool {
			n := &api.Node{}
			return c.admin.Get(ctx, "", h.Name, n) == nil && n.Status.ServiceRulesRevision >= rev
		})
	}
}

// gateTimeouts counts, over every node, the pods an agent had to stop
// before every node had dropped them from its service rules.
func (c *cluster) gateTimeouts(t *testing.T) int {
	t.Helper()
	total := 0
	for _, h := range c.nodes {
		out := strings.TrimSpace(run(t, c.tb, h.Name, "grep -c 'stopping pod before every node dropped it' /var/lib/berth/agent.log || true"))
		n, err := strconv.Atoi(out)
		if err != nil {
			t.Fatalf("count stop-gate timeouts on %s: %q", h.Name, out)
		}
		total += n
	}
	return total
}

func readinessOnHealthz(p *api.Pod) {
	p.Spec.Containers[0].ReadinessProbe = &api.Probe{HTTPGet: &api.HTTPGetAction{Path: "/healthz", Port: api.FromString("http")},
		PeriodSeconds: 1, FailureThreshold: 1}
}

func onNode(node string) func(*api.Pod) { return func(p *api.Pod) { p.Spec.NodeName = node } }

func TestIntegrationAgentRunsPodsOnTestbedHosts(t *testing.T) {
	c := setUp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	node := c.nodes[0]

	t.Run("pod starts, becomes Ready and its logs are readable through the API", func(t *testing.T) {
		c.createPod(ctx, "web-1", c.refs.V1, node.Name, readinessOnHealthz)
		p := c.readyPod(t, ctx, "web-1")
		if ready := api.FindCondition(p.Status.Conditions, api.PodReady); ready != nil {
			t.Logf("web-1: created to Ready in %s", ready.LastTransitionTime.Sub(p.Metadata.CreationTimestamp).Round(time.Millisecond))
		}
		out := run(t, c.tb, node.Name, "curl -s -m 5 http://"+p.Status.PodIP+":8080/")
		if !strings.Contains(out, "web v1 pod=web-1") {
			t.Fatalf("pod answered %q", out)
		}
		rc, err := c.admin.Logs(ctx, "default", "web-1", client.LogOptions{TailLines: 50})
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
		logs, _ := io.ReadAll(rc)
		rc.Close()
		if !strings.Contains(string(logs), "listening on") {
			t.Fatalf("logs lack the server's first line:\n%s", logs)
		}
		c.deletePods(t, ctx, "web-1")
	})

	t.Run("crashing container is restarted with back-off and shows CrashLoopBackOff with exit code 3", func(t *testing.T) {
		c.createPod(ctx, "crash", c.refs.Crash, node.Name, nil)
		c.waitPod(t, ctx, "crash", "in CrashLoopBackOff after a restart", 2*time.Minute, func(p *api.Pod) bool {
			s := container(p)
			return s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff" && s.RestartCount >= 1 &&
				s.LastState.Terminated != nil && s.LastState.Terminated.ExitCode == 3
		})
		c.deletePods(t, ctx, "crash")
	})

	t.Run("failing liveness probe restarts the container", func(t *testing.T) {
		c.createPod(ctx, "live", c.refs.V1, node.Name, func(p *api.Pod) {
			p.Spec.Containers[0].LivenessProbe = &api.Probe{HTTPGet: &api.HTTPGetAction{Path: "/healthz", Port: api.FromString("http")},
				PeriodSeconds: 1, FailureThreshold: 2}
		})
		p := c.waitPod(t, ctx, "live", "running", 2*time.Minute, func(p *api.Pod) bool { return container(p).State.Running != nil })
		first := container(p).ContainerID
		run(t, c.tb, node.Name, "curl -s -m 5 -X POST http://"+p.Status.PodIP+":8080/fail")
		p = c.waitPod(t, ctx, "live", "restarted", 2*time.Minute, func(p *api.Pod) bool {
			s := container(p)
			return s.RestartCount >= 1 && s.State.Running != nil && s.ContainerID != first
		})
		// The new container is healthy again: it answers.
		if out := run(t, c.tb, node.Name, "curl -s -m 5 http://"+p.Status.PodIP+":8080/healthz"); !strings.Contains(out, "ok") {
			t.Fatalf("restarted container answered %q", out)
		}
		c.deletePods(t, ctx, "live")
	})

	t.Run("unpullable image is reported without blocking another pod", func(t *testing.T) {
		c.createPod(ctx, "missing", c.tbRegistry()+"/berth-test/nope:v0", node.Name, nil)
		c.createPod(ctx, "web-2", c.refs.V1, node.Name, readinessOnHealthz)
		c.readyPod(t, ctx, "web-2")
		c.waitPod(t, ctx, "missing", "reports its pull failure", 2*time.Minute, func(p *api.Pod) bool {
			w := container(p).State.Waiting
			return w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff")
		})
		poll(t, "a FailedPull event for missing", time.Minute, func() bool {
			var evs api.EventList
			if err := c.admin.List(ctx, &evs, client.ListOptions{Namespace: "default"}); err != nil {
				return false
			}
			for _, e := range evs.Items {
				if e.InvolvedObject.Name == "missing" && e.Reason == "FailedPull" && e.Type == api.EventWarning {
					return true
				}
			}
			return false
		})
		c.deletePods(t, ctx, "missing")
	})

	t.Run("deleting a pod removes its container and snapshot", func(t *testing.T) {
		p := c.pod(ctx, "web-2")
		if p == nil {
			t.Skip("web-2 was not created")
		}
		id := container(p).ContainerID
		if !strings.Contains(run(t, c.tb, node.Name, ctrCmd+"snapshots ls"), id) {
			t.Fatalf("no snapshot for running container %s", id)
		}
		c.deletePods(t, ctx, "web-2")
		if out := run(t, c.tb, node.Name, ctrCmd+"containers ls -q"); strings.Contains(out, id) {
			t.Fatalf("container %s still listed:\n%s", id, out)
		}
		if out := run(t, c.tb, node.Name, ctrCmd+"snapshots ls"); strings.Contains(out, id) {
			t.Fatalf("snapshot of %s still listed:\n%s", id, out)
		}
		if out := run(t, c.tb, node.Name, "ls /run/berth/netns"); strings.Contains(out, p.Metadata.UID) {
			t.Fatalf("network namespace of web-2 still there: %s", out)
		}
	})

	t.Run("restarting the agent keeps containers running and status flowing", func(t *testing.T) {
		c.createPod(ctx, "keep", c.refs.V1, node.Name, readinessOnHealthz)
		p := c.readyPod(t, ctx, "keep")
		id := container(p).ContainerID
		pid := c.taskPID(t, node.Name, id)
		readySince := api.FindCondition(p.Status.Conditions, api.PodReady).LastTransitionTime

		// SIGKILL: the agent gets no chance to tidy up, as in a crash.
		run(t, c.tb, node.Name, "kill -KILL $(cat /run/berth-agent.pid)")
		poll(t, "agent exited", time.Minute, func() bool {
			_, err := c.tb.Exec(ctx, node.Name, "kill -0 $(cat /run/berth-agent.pid)")
			return err != nil
		})
		if got := c.taskPID(t, node.Name, id); got != pid {
			t.Fatalf("task of keep has PID %s after the agent stopped, want %s", got, pid)
		}
		c.startAgent(node, c.bin)

		c.createPod(ctx, "after", c.refs.V1, node.Name, readinessOnHealthz)
		c.readyPod(t, ctx, "after")
		p = c.pod(ctx, "keep")
		if s := container(p); s.ContainerID != id || s.RestartCount != 0 || c.taskPID(t, node.Name, id) != pid {
			t.Fatalf("keep's container changed across the agent restart: %+v (was %s, PID %s)", s, id, pid)
		}
		// The new agent has adopted keep by now (it synced "after", bound
		// later); keep never left Ready, so its services never lost it.
		if got := api.FindCondition(p.Status.Conditions, api.PodReady).LastTransitionTime; !got.Equal(readySince) || !api.IsPodReady(p) {
			t.Fatalf("keep's Ready condition changed across the agent restart (at %s, Ready since %s)", got, readySince)
		}
		run(t, c.tb, node.Name, "curl -s -m 5 -X POST http://"+p.Status.PodIP+":8080/fail")
		c.waitPod(t, ctx, "keep", "not Ready after its readiness failed", time.Minute, func(p *api.Pod) bool { return !api.IsPodReady(p) })
		run(t, c.tb, node.Name, "curl -s -m 5 -X POST http://"+p.Status.PodIP+":8080/recover")
		c.readyPod(t, ctx, "keep")
		c.deletePods(t, ctx, "keep", "after")
	})

	t.Run("a pod reaches a pod on the other node through the overlay", func(t *testing.T) {
		c.createPod(ctx, "near", c.refs.V1, c.nodes[0].Name, readinessOnHealthz)
		c.createPod(ctx, "far", c.refs.V1, c.nodes[1].Name, readinessOnHealthz)
		near, far := c.readyPod(t, ctx, "near"), c.readyPod(t, ctx, "far")
		if out := c.inPod(t, near, "curl -s -m 5 http://"+far.Status.PodIP+":8080/"); !strings.Contains(out, "pod=far") {
			t.Fatalf("near → far (%s) answered %q", far.Status.PodIP, out)
		}
		if out := c.inPod(t, far, "curl -s -m 5 http://"+near.Status.PodIP+":8080/"); !strings.Contains(out, "pod=near") {
			t.Fatalf("far → near (%s) answered %q", near.Status.PodIP, out)
		}
		c.deletePods(t, ctx, "near", "far")
	})

	t.Run("service reaches endpoints on both nodes by cluster IP, DNS name and node port", func(t *testing.T) {
		names := []string{"echo-a", "echo-b", "echo-c"}
		for i, n := range names {
			c.createPod(ctx, n, c.refs.V1, c.nodes[i%2].Name, func(p *api.Pod) {
				readinessOnHealthz(p)
				p.Metadata.Labels = map[string]string{"app": "echo"}
			})
		}
		svc := &api.Service{Metadata: api.ObjectMeta{Namespace: "default", Name: "echo"},
			Spec: api.ServiceSpec{Type: api.ServiceNodePort, Selector: map[string]string{"app": "echo"},
				Ports: []api.ServicePort{{Name: "http", Port: 80, TargetPort: api.FromInt(8080)}}}}
		if err := c.admin.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.admin.Delete(ctx, svc) }()
		if err := c.admin.Get(ctx, "default", "echo", svc); err != nil {
			t.Fatal(err)
		}
		var pod *api.Pod
		for _, n := range names {
			pod = c.readyPod(t, ctx, n)
		}
		ep := &api.Endpoints{}
		poll(t, "echo endpoints list three ready addresses", time.Minute, func() bool {
			if c.admin.Get(ctx, "default", "echo", ep) != nil {
				return false
			}
			n := 0
			for _, s := range ep.Subsets {
				n += len(s.Addresses)
			}
			return n == 3
		})
		c.waitRulesProgrammed(t, ctx, ep.Metadata.ResourceVersion)
		want := func(t *testing.T, how string, out string) {
			t.Helper()
			seen := answers(out)
			for _, n := range names {
				if seen[n] == 0 {
					t.Fatalf("%s: no answer from %s; answers %v; output:\n%s", how, n, seen, out)
				}
			}
			t.Logf("%s: answers %v", how, seen)
		}
		clusterURL := "http://" + svc.Spec.ClusterIP + ":80/"
		want(t, "cluster IP from "+c.nodes[1].Name, run(t, c.tb, c.nodes[1].Name, curlLoop(40, clusterURL)))
		want(t, "cluster IP from pod "+pod.Metadata.Name, c.inPod(t, pod, curlLoop(40, clusterURL)))
		want(t, "DNS name from pod "+pod.Metadata.Name, c.inPod(t, pod, curlLoop(40, "http://echo.default.svc.berth/")))
		nodePort := svc.Spec.Ports[0].NodePort
		if nodePort == 0 {
			t.Fatal("service got no node port")
		}
		cp := c.tb.Hosts()[0].Name
		for _, n := range c.nodes {
			want(t, "node port of "+n.Name+" from "+cp, run(t, c.tb, cp, curlLoop(40, fmt.Sprintf("http://%s:%d/", n.Address, nodePort))))
		}
		c.deletePods(t, ctx, names...)
	})

	t.Run("rolling update behind a node port has zero failed requests", func(t *testing.T) {
		c.rollingUpdate(t, ctx)
	})
}
