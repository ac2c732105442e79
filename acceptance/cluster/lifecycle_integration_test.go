package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/acceptance/prober"
	"github.com/berth-io/berth/acceptance/testbed"
	"github.com/berth-io/berth/acceptance/workloads"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/internal/prereq"
	"github.com/berth-io/berth/provider/cluster"
	"github.com/berth-io/berth/provider/nodeimage"
)

// buildImage builds a node image into dir around a berth binary compiled
// from pkg (a package of this module, or the directory of a main package
// of its own) with version stamped in, on the static runtime
// scripts/build-runtime.sh makes (cached).
func buildImage(dir, pkg, version string) (string, string, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(root, "scripts", "build-runtime.sh")).Output()
	if err != nil {
		return "", "", fmt.Errorf("build runtime: %w", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) == 0 {
		return "", "", errors.New("build runtime: build-runtime.sh printed no directory")
	}
	runtimeDir := lines[len(lines)-1]
	bin := filepath.Join(dir, "berth-"+version)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin,
		"-ldflags", "-s -w -X github.com/berth-io/berth/internal/version.Version="+version, ".")
	cmd.Dir = pkg
	if !filepath.IsAbs(pkg) {
		cmd.Dir = filepath.Join(root, pkg)
	}
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS=-buildvcs=false")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build berth %s: %w\n%s", version, err, msg)
	}
	path := filepath.Join(dir, "node-image-"+version+".tar.gz")
	_, d, err := nodeimage.BuildFile(ctx, nodeimage.BuildSpec{BerthBinary: bin, BerthVersion: version, RuntimeDir: runtimeDir}, path)
	if err != nil {
		return "", "", fmt.Errorf("build node image %s: %w", version, err)
	}
	return path, d.String(), nil
}

// brokenBerth is a berth that passes the image check on the host and then
// never starts anything: what a bad build looks like to the engine.
const brokenBerth = `package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "node" && os.Args[2] == "verify-image" {
		fmt.Println("ok")
		return
	}
	fmt.Fprintln(os.Stderr, "berth (broken test build): refusing to start")
	os.Exit(1)
}
`

// nodeDigests returns each Node's name → reported image digest and
// whether it is Ready.
func nodeDigests(ctx context.Context, t *testing.T, admin *client.Client) map[string]string {
	t.Helper()
	var nodes api.NodeList
	if err := admin.List(ctx, &nodes, client.ListOptions{}); err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	out := map[string]string{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		d := n.Status.NodeInfo.NodeImageDigest
		if !api.IsNodeReady(n) {
			d = "NotReady:" + d
		}
		out[n.Metadata.Name] = d
	}
	return out
}

// quorumProblem says what is wrong with etcd as the API reports it, or "".
func quorumProblem(ctx context.Context, admin *client.Client, voters int) string {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ms, err := admin.Members(cctx)
	if err != nil {
		return "list members: " + err.Error()
	}
	started, leader, v := 0, false, 0
	for _, m := range ms {
		if m.Status.IsLearner {
			continue
		}
		v++
		if m.Status.Started {
			started++
		}
		leader = leader || m.Status.IsLeader
	}
	switch {
	case voters > 0 && v != voters:
		return fmt.Sprintf("%d voters, want %d: %+v", v, voters, ms)
	case started != v:
		return fmt.Sprintf("%d of %d voters started", started, v)
	case !leader:
		return "no leader"
	}
	if err := admin.Readyz(cctx); err != nil {
		return "readyz: " + err.Error()
	}
	return ""
}

// TestIntegrationClusterLifecycle walks one cluster through its life on
// eight testbed hosts: bootstrap of three control-plane hosts and two
// workers, an upgrade of every node under traffic that is interrupted and
// finished by the next run, a broken image rolled back on the first host,
// and a move of the control plane to three other hosts.
func TestIntegrationClusterLifecycle(t *testing.T) {
	prereq.Integration(t)
	prereq.Root(t)
	tb := testbed.Shared(t)
	hosts := tb.Hosts()
	if len(hosts) < 8 {
		t.Fatalf("testbed has %d hosts, need 8", len(hosts))
	}
	var names []string
	for _, h := range hosts {
		names = append(names, h.Name)
	}
	cps, workers, movers := names[0:3], names[3:5], names[5:8]
	nodes := append(append([]string{}, cps...), workers...)
	tmp := t.TempDir()
	spec := specFor(t, tb, cps, workers)
	spec.SnapshotPath = filepath.Join(tmp, "etcd.snapshot")
	imageA := spec.Image
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	// Images: B is the same code with another version, so the agents of
	// upgraded nodes run one release ahead of (then behind) the rest.
	var pathB, digestB string
	var errB error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pathB, digestB, errB = buildImage(tmp, "./cmd/berth", "v0.0.0-lifecycle-b")
	}()
	badSrc := filepath.Join(tmp, "broken")
	if err := os.MkdirAll(badSrc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(badSrc, "go.mod"), []byte("module broken\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(badSrc, "main.go"), []byte(brokenBerth), 0o644); err != nil {
		t.Fatal(err)
	}
	pathBad, digestBad, err := buildImage(tmp, badSrc, "v0.0.0-broken")
	if err != nil {
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
	wg.Wait()
	if errB != nil {
		t.Fatal(errB)
	}

	var st cluster.State
	var admin *client.Client
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer dcancel()
		if admin != nil {
			admin.Close()
		}
		if err := cluster.Destroy(dctx, st, cluster.Options{Progress: progress(t)}); err != nil {
			t.Errorf("destroy: %v", err)
		}
	}()

	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}

	step("bootstrap 3 control-plane hosts and 2 workers, then a second apply changes nothing", func(t *testing.T) {
		began := time.Now()
		st, err = cluster.Apply(ctx, spec, cluster.State{}, cluster.Options{Progress: progress(t)})
		if err != nil {
			t.Fatalf("bootstrap: %v", err)
		}
		t.Logf("bootstrap of 3 control-plane hosts and 2 workers took %s", time.Since(began).Round(time.Millisecond))
		admin, err = client.New(client.Config{Endpoints: st.Endpoints, CACertificate: st.CACertPEM, ClientCertificate: st.AdminCertPEM, ClientKey: st.AdminKeyPEM})
		if err != nil {
			t.Fatal(err)
		}
		got := nodeDigests(ctx, t, admin)
		for _, n := range nodes {
			if got[n] != imageA.Digest {
				t.Errorf("node %s: %q, want Ready on %s", n, got[n], imageA.Digest)
			}
		}
		if p := quorumProblem(ctx, admin, 3); p != "" {
			t.Errorf("etcd after bootstrap: %s", p)
		}
		before := fingerprint(t, tb, nodes)
		st2, err := cluster.Apply(ctx, spec, st, cluster.Options{Progress: progress(t)})
		if err != nil {
			t.Fatalf("second apply: %v", err)
		}
		st = st2
		after := fingerprint(t, tb, nodes)
		for _, h := range nodes {
			if before[h] != after[h] {
				t.Errorf("second apply changed host %s:\nbefore %s\nafter  %s", h, before[h], after[h])
			}
		}
	})

	// A web deployment behind a NodePort, probed through the load balancer.
	replicas := int32(3)
	surge, unavailable := api.FromInt(1), api.FromInt(0)
	dep := &api.Deployment{
		Metadata: api.ObjectMeta{Name: "web"},
		Spec: api.DeploymentSpec{
			Replicas: &replicas,
			Template: api.PodTemplate{
				Metadata: api.TemplateMeta{Labels: map[string]string{"app": "web"}},
				Spec: api.PodSpec{Containers: []api.Container{{
					Name: "web", Image: refs.V1,
					Ports:          []api.ContainerPort{{Name: "http", ContainerPort: workloads.Port}},
					ReadinessProbe: &api.Probe{HTTPGet: &api.HTTPGetAction{Path: "/healthz", Port: api.FromInt(workloads.Port)}, PeriodSeconds: 1},
				}}},
			},
			Strategy: api.DeploymentStrategy{MaxSurge: &surge, MaxUnavailable: &unavailable},
		},
	}
	svc := &api.Service{
		Metadata: api.ObjectMeta{Name: "web"},
		Spec: api.ServiceSpec{Type: api.ServiceNodePort, Selector: map[string]string{"app": "web"},
			Ports: []api.ServicePort{{Port: 80, TargetPort: api.FromInt(workloads.Port)}}},
	}
	var probe *prober.Prober
	var nodePort int
	// The load balancer spreads over the nodes in service, as a cloud load
	// balancer following Ready, schedulable nodes would: a node leaves it
	// when the engine cordons it and returns once it is healthy again.
	var lbMu sync.Mutex
	out := map[string]bool{}
	followLB := func(t *testing.T, e cluster.Event) {
		lbMu.Lock()
		defer lbMu.Unlock()
		switch {
		case e.Step == "cordon":
			out[e.Host] = true
		case e.Step == "uncordon" || strings.HasPrefix(e.Step, "healthy on image") || e.Step == "up to date":
			if !out[e.Host] {
				return
			}
			delete(out, e.Host)
		default:
			return
		}
		var in []string
		for _, n := range nodes {
			if !out[n] {
				in = append(in, n)
			}
		}
		lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
		defer lcancel()
		if err := tb.SetLB(lctx, nodePort, in...); err != nil {
			t.Errorf("load balancer: %v", err)
		}
	}

	step("a web deployment answers through the load balancer", func(t *testing.T) {
		if err := admin.Create(ctx, dep); err != nil {
			t.Fatal(err)
		}
		if err := admin.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		nodePort = int(svc.Spec.Ports[0].NodePort)
		for {
			var d api.Deployment
			if err := admin.Get(ctx, "default", "web", &d); err != nil {
				t.Fatal(err)
			}
			if d.Status.ObservedGeneration == d.Metadata.Generation && d.Status.AvailableReplicas == replicas {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("deployment never available: %+v", d.Status)
			case <-time.After(time.Second):
			}
		}
		if err := tb.SetLB(ctx, nodePort, nodes...); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
		defer wcancel()
		if err := tb.WaitLB(wctx); err != nil {
			t.Fatal(err)
		}
		probe, err = prober.Start(ctx, prober.Config{URL: "http://" + tb.LBAddr() + "/"})
		if err != nil {
			t.Fatal(err)
		}
		if err := probe.Wait(wctx, func(r prober.Result) bool { return r.Succeeded >= 20 }); err != nil {
			t.Fatalf("prober: %v (%s)", err, probe.Snapshot())
		}
	})
	defer func() {
		if probe != nil {
			probe.Stop()
		}
	}()

	specB := spec
	specB.Image = cluster.Image{Path: pathB, Digest: digestB}
	step("an upgrade cut short on the second host leaves its journal", func(t *testing.T) {
		octx, ocancel := context.WithCancel(ctx)
		defer ocancel()
		var stopped string
		opts := cluster.Options{Progress: func(e cluster.Event) {
			progress(t)(e)
			followLB(t, e)
			if e.Host == nodes[1] && e.Step == "wait until healthy" && stopped == "" {
				stopped = e.Host
				ocancel()
			}
		}}
		s, err := cluster.Apply(octx, specB, st, opts)
		st = s
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted apply = %v, want context.Canceled", err)
		}
		if stopped != nodes[1] {
			t.Fatalf("apply never reached host %s", nodes[1])
		}
		b, err := tb.Exec(ctx, nodes[1], "cat /var/lib/berth/journal.json")
		if err != nil || !strings.Contains(string(b), digestB) {
			t.Fatalf("host %s has no journal of the interrupted install: %v %s", nodes[1], err, b)
		}
	})

	step("apply again finishes the upgrade of every node with zero failed requests", func(t *testing.T) {
		began := time.Now()
		s, err := cluster.Apply(ctx, specB, st, cluster.Options{Progress: func(e cluster.Event) { progress(t)(e); followLB(t, e) }})
		st = s
		if err != nil {
			t.Fatalf("resumed apply: %v", err)
		}
		t.Logf("resumed rolling upgrade of %d nodes took %s", len(nodes), time.Since(began).Round(time.Millisecond))
		// Traffic keeps flowing a little after the last node returned.
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		defer wcancel()
		n := probe.Snapshot().Sent
		if err := probe.Wait(wctx, func(r prober.Result) bool { return r.Sent >= n+20 }); err != nil {
			t.Fatal(err)
		}
		res := probe.Stop()
		probe = nil
		t.Logf("prober: %s", res)
		if res.Failed != 0 || res.Succeeded == 0 {
			t.Errorf("clients saw %d failed requests of %d during the upgrade: %v", res.Failed, res.Sent, res.Reasons)
		}
		got := nodeDigests(ctx, t, admin)
		for _, n := range nodes {
			if got[n] != digestB {
				t.Errorf("node %s: %q, want Ready on %s", n, got[n], digestB)
			}
			b, err := tb.Exec(ctx, n, "ls /var/lib/berth/journal.json 2>/dev/null; true")
			if err != nil || strings.TrimSpace(string(b)) != "" {
				t.Errorf("host %s keeps a journal after the upgrade finished: %v %s", n, err, b)
			}
		}
	})

	step("an image whose agent never starts is rolled back on the first host and stops the rollout", func(t *testing.T) {
		bad := specB
		bad.Image = cluster.Image{Path: pathBad, Digest: digestBad}
		bad.Rollout.HealthTimeout = time.Minute
		s, err := cluster.Apply(ctx, bad, st, cluster.Options{Progress: progress(t)})
		st = s
		if !errors.Is(err, cluster.ErrUnhealthy) || !errors.Is(err, cluster.ErrRolledBack) {
			t.Fatalf("apply of a broken image = %v, want a completed rollback", err)
		}
		msg := err.Error()
		for _, want := range []string{fmt.Sprintf("host %q", nodes[0]), "refusing to start", "last log lines"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error does not mention %q:\n%s", want, msg)
			}
		}
		for _, n := range nodes {
			b, err := tb.Exec(ctx, n, "readlink /opt/berth/current")
			if err != nil || filepath.Base(strings.TrimSpace(string(b))) != strings.TrimPrefix(digestB, "sha256:") {
				t.Errorf("host %s runs %s after the failed rollout, want %s: %v", n, b, digestB, err)
			}
		}
		if d := st.Hosts[nodes[0]].Digest; d != digestB {
			t.Errorf("state records host %s on %s, want %s", nodes[0], d, digestB)
		}
		got := nodeDigests(ctx, t, admin)
		for _, n := range nodes {
			if got[n] != digestB {
				t.Errorf("node %s: %q, want Ready on %s", n, got[n], digestB)
			}
		}
	})

	step("the control plane moves to three other hosts one at a time keeping quorum and every object", func(t *testing.T) {
		for i := range 3 {
			ns := &api.Namespace{Metadata: api.ObjectMeta{Name: fmt.Sprintf("keep-%d", i), Labels: map[string]string{"n": fmt.Sprint(i)}}}
			if err := admin.Create(ctx, ns); err != nil {
				t.Fatal(err)
			}
		}
		snapshot := func() map[string]string {
			out := map[string]string{}
			var nss api.NamespaceList
			if err := admin.List(ctx, &nss, client.ListOptions{}); err != nil {
				t.Fatalf("list namespaces: %v", err)
			}
			for _, n := range nss.Items {
				out["namespace/"+n.Metadata.Name] = n.Metadata.UID
			}
			var ds api.DeploymentList
			if err := admin.List(ctx, &ds, client.ListOptions{}); err != nil {
				t.Fatalf("list deployments: %v", err)
			}
			for _, d := range ds.Items {
				out["deployment/"+d.Metadata.Name] = d.Metadata.UID
			}
			var ss api.ServiceList
			if err := admin.List(ctx, &ss, client.ListOptions{}); err != nil {
				t.Fatalf("list services: %v", err)
			}
			for _, s := range ss.Items {
				out["service/"+s.Metadata.Name] = fmt.Sprintf("%s %s %d", s.Metadata.UID, s.Spec.ClusterIP, s.Spec.Ports[0].NodePort)
			}
			return out
		}
		before := snapshot()
		moved := specB
		moved.ControlPlane = nil
		for _, h := range specFor(t, tb, movers, nil).ControlPlane {
			moved.ControlPlane = append(moved.ControlPlane, h)
		}
		moved.Image = specB.Image
		var problems []string
		var steps []string
		opts := cluster.Options{Progress: func(e cluster.Event) {
			progress(t)(e)
			switch {
			case e.Step == "left the cluster", e.Step == "etcd member promoted":
				steps = append(steps, e.Host+": "+e.Step)
				// One extra voter between a promotion and the next removal.
				voters := 3
				if e.Step == "etcd member promoted" {
					voters = 4
				}
				if p := quorumProblem(ctx, admin, voters); p != "" {
					problems = append(problems, fmt.Sprintf("after %s %s: %s", e.Host, e.Step, p))
				}
			}
		}}
		// The test's client follows the control plane as it moves.
		if err := admin.SetEndpoints(append(append([]string{}, st.Endpoints...), endpointsOf(t, tb, movers)...)); err != nil {
			t.Fatal(err)
		}
		s, err := cluster.Apply(ctx, moved, st, opts)
		st = s
		if err != nil {
			t.Fatalf("move control plane: %v", err)
		}
		if err := admin.SetEndpoints(st.Endpoints); err != nil {
			t.Fatal(err)
		}
		t.Logf("steps: %s", strings.Join(steps, "; "))
		want := []string{movers[0] + ": etcd member promoted", cps[0] + ": left the cluster", movers[1] + ": etcd member promoted", cps[1] + ": left the cluster", movers[2] + ": etcd member promoted", cps[2] + ": left the cluster"}
		if !slices.Equal(steps, want) {
			t.Errorf("moves happened in order %v, want %v", steps, want)
		}
		for _, p := range problems {
			t.Error(p)
		}
		if p := quorumProblem(ctx, admin, 3); p != "" {
			t.Errorf("etcd after the move: %s", p)
		}
		after := snapshot()
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s was %q before the move and %q after", k, v, after[k])
			}
		}
		for _, h := range cps {
			if _, ok := st.Hosts[h]; ok {
				t.Errorf("state still records host %s", h)
			}
			b, err := tb.Exec(ctx, h, `ls -d /opt/berth /etc/berth /var/lib/berth /run/berth 2>/dev/null
for p in /proc/[0-9]*; do case "$(readlink $p/exe)" in /opt/berth/*) echo "process ${p#/proc/}";; esac; done
ip -o link show berth0 2>/dev/null; ip -o link show berth.vx 2>/dev/null
nft list table ip berth-net >/dev/null 2>&1 && echo "table berth-net"
nft list table ip berth-svc >/dev/null 2>&1 && echo "table berth-svc"
true`)
			if err != nil || strings.TrimSpace(string(b)) != "" {
				t.Errorf("host %s is not clean after leaving: %v\n%s", h, err, b)
			}
		}
		got := nodeDigests(ctx, t, admin)
		for _, n := range append(append([]string{}, movers...), workers...) {
			if got[n] != digestB {
				t.Errorf("node %s: %q, want Ready on %s", n, got[n], digestB)
			}
		}
		for _, h := range cps {
			if _, ok := got[h]; ok {
				t.Errorf("node %s still exists after its host left", h)
			}
		}
	})
}

func endpointsOf(t *testing.T, tb *testbed.Testbed, names []string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		h, err := tb.Host(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, "https://"+h.Address+":6443")
	}
	return out
}
