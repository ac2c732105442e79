package scenarios

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/acceptance/workloads"
	"github.com/berth-io/berth/bench"
)

// The Swarm figures and their berth comparisons.
const (
	figSwarmReplicas   = "swarm.replicas100.seconds"
	figSwarmRolling10  = "swarm.rollingupdate10.seconds"
	figSwarmRolling100 = "swarm.rollingupdate100.seconds"
	figSwarmRouting    = "swarm.routing.throughput"
	figSwarmHostPort   = "swarm.hostport.throughput"
	figCmpReplicas     = "compare.replicas100"
	figCmpRolling10    = "compare.rollingupdate10"
	figCmpRolling100   = "compare.rollingupdate100"
	figCmpRouting      = "compare.routing.throughput"
)

// Descriptions of the figures, for the table.
var swarmDescs = map[string]string{
	figSwarmReplicas:   "Docker Swarm: 100 replicas of the test web app Running on one node",
	figSwarmRolling10:  "Docker Swarm: rolling update of 10 replicas to web:v2, one at a time",
	figSwarmRolling100: "Docker Swarm: rolling update of 100 replicas to web:v2, one at a time",
	figSwarmRouting:    "Docker Swarm: HTTP requests/s through the routing mesh (published port, 1 replica, 8 keep-alive connections)",
	figSwarmHostPort:   "Docker Swarm: HTTP requests/s through a host-mode published port, no routing mesh (1 replica, 8 keep-alive connections)",
	figCmpReplicas:     "berth: 100 pods Ready on one node, vs Docker Swarm",
	figCmpRolling10:    "berth: rolling update of 10 pods, vs Docker Swarm",
	figCmpRolling100:   "berth: rolling update of 100 pods, vs Docker Swarm",
	figCmpRouting:      "berth: HTTP requests/s through a NodePort service (1 pod, 8 keep-alive connections), vs Swarm's host-mode published port (its routing mesh needs IPVS)",
}

func init() {
	bench.Register(bench.Scenario{
		Name: "swarm",
		Figures: []string{figSwarmReplicas, figSwarmRolling10, figSwarmRolling100, figSwarmRouting, figSwarmHostPort,
			figCmpReplicas, figCmpRolling10, figCmpRolling100, figCmpRouting},
		Run: runSwarm,
	})
}

// swarmSkipped returns every figure of the scenario skipped for reason.
func swarmSkipped(reason string) []bench.Figure {
	var out []bench.Figure
	for _, n := range []string{figSwarmReplicas, figSwarmRolling10, figSwarmRolling100, figSwarmRouting, figSwarmHostPort,
		figCmpReplicas, figCmpRolling10, figCmpRolling100, figCmpRouting} {
		out = append(out, bench.SkippedFigure(n, swarmDescs[n], reason))
	}
	return out
}

// Addresses of the private dockerd: none of them leaves its namespace, and
// none overlaps berth's defaults (10.244/16 pods, 10.96/16 services) or the
// testbed's 198.18.0.0/15.
const (
	swarmNodeAddr    = "10.213.0.1"
	swarmNodeCIDR    = "10.213.0.1/24"
	swarmBridgeIP    = "10.213.1.1/24"
	swarmLocalPool   = "base=10.214.0.0/16,size=24"
	swarmOverlayPool = "10.215.0.0/16"
	swarmMeshPort    = 18080
	swarmHostPort    = 18081
)

// privateDockerd is a dockerd in a network and mount namespace of its own,
// with its own data root, exec root, socket and address pools, so that
// nothing it does to firewalls, bridges or sysctls reaches the machine.
type privateDockerd struct {
	netns  string // name under /run/netns
	dir    string
	cmd    *exec.Cmd
	done   chan error
	docker string // the docker CLI matching the daemon
}

// startPrivateDockerd creates the namespace (loopback plus a veth pair
// carrying swarmNodeAddr) and starts dockerd in it. In the new mount
// namespace /sys is mounted afresh (so it shows the namespace's devices) and
// the machine's cgroup hierarchies are bound back under it.
func startPrivateDockerd(ctx context.Context, dockerd, docker string) (*privateDockerd, error) {
	dir, err := os.MkdirTemp("", "berth-bench-swarm-")
	if err != nil {
		return nil, err
	}
	d := &privateDockerd{netns: fmt.Sprintf("berth-bench-swarm-%d", os.Getpid()), dir: dir, docker: docker}
	setup := [][]string{
		{"ip", "netns", "add", d.netns},
		{"ip", "-n", d.netns, "link", "set", "lo", "up"},
		{"ip", "-n", d.netns, "link", "add", "sw0", "type", "veth", "peer", "name", "sw1"},
		{"ip", "-n", d.netns, "addr", "add", swarmNodeCIDR, "dev", "sw0"},
		{"ip", "-n", d.netns, "link", "set", "sw0", "up"},
		{"ip", "-n", d.netns, "link", "set", "sw1", "up"},
	}
	for i, args := range setup {
		if _, err := runCmd(ctx, 10*time.Second, args[0], args[1:]...); err != nil {
			if i > 0 {
				_, _ = runCmd(context.Background(), 10*time.Second, "ip", "netns", "del", d.netns)
			}
			os.RemoveAll(dir)
			return nil, fmt.Errorf("private dockerd namespace: %w", err)
		}
	}
	script := fmt.Sprintf(`#!/bin/sh
set -e
mkdir -p %[1]s/cg
mount --rbind /sys/fs/cgroup %[1]s/cg
mount -t sysfs sysfs /sys
mount --rbind %[1]s/cg /sys/fs/cgroup
exec %[2]s --data-root %[1]s/data --exec-root %[1]s/exec -H unix://%[1]s/docker.sock \
  --pidfile %[1]s/docker.pid --bip %[3]s --default-address-pool %[4]s \
  --cgroup-parent berth-bench-docker --log-level warn
`, dir, dockerd, swarmBridgeIP, swarmLocalPool)
	if err := os.WriteFile(filepath.Join(dir, "start.sh"), []byte(script), 0o755); err != nil {
		d.cleanupNamespace()
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		d.cleanupNamespace()
		return nil, err
	}
	defer logf.Close()
	// nsenter and unshare exec (no fork), so the PID is dockerd's.
	d.cmd = exec.Command("nsenter", "--net=/run/netns/"+d.netns, "unshare", "--mount", "--propagation", "private", "--", filepath.Join(dir, "start.sh"))
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		d.cleanupNamespace()
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	d.done = make(chan error, 1)
	go func() { d.done <- d.cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := d.run(ctx, 10*time.Second, "info", "--format", "{{.ServerVersion}}"); err == nil {
			return d, nil
		}
		select {
		case err := <-d.done:
			d.done <- err
			log, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
			d.Close(io.Discard)
			return nil, fmt.Errorf("dockerd exited while starting: %v\n%s", err, lastLines(string(log), 10))
		case <-ctx.Done():
			d.Close(io.Discard)
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.Close(io.Discard)
			return nil, errors.New("dockerd not answering after 1m")
		}
	}
}

// run runs the docker CLI against the private daemon.
func (d *privateDockerd) run(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	return runCmd(ctx, timeout, d.docker, append([]string{"-H", "unix://" + filepath.Join(d.dir, "docker.sock")}, args...)...)
}

// Close leaves the swarm, stops dockerd by its PID (and then every process
// left in its namespace, all of them its children), and removes the
// namespace and the directory. Mounts die with the mount namespace.
func (d *privateDockerd) Close(w io.Writer) {
	ctx := context.Background()
	if d.cmd != nil && d.cmd.Process != nil {
		_, _ = d.run(ctx, 60*time.Second, "swarm", "leave", "--force")
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(45 * time.Second):
			fmt.Fprintln(w, "    dockerd did not stop in 45s; killing it")
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	}
	// Stragglers (containerd-shim, docker-proxy) live in our namespace only.
	if out, err := runCmd(ctx, 10*time.Second, "ip", "netns", "pids", d.netns); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	d.cleanupNamespace()
}

func (d *privateDockerd) cleanupNamespace() {
	_, _ = runCmd(context.Background(), 10*time.Second, "ip", "netns", "del", d.netns)
	for i := 0; i < 10; i++ {
		if err := os.RemoveAll(d.dir); err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// runCmd runs a command with a timeout and returns its trimmed stdout.
func runCmd(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(cctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// hostState is what dockerd is known to change on a machine, recorded
// before and compared after.
type hostState struct {
	sysctls       map[string]string
	forwardPolicy string
	links         map[string]bool
	haveIptables  bool
	natTable      string
}

var watchedSysctls = []string{
	"net/ipv4/ip_forward",
	"net/bridge/bridge-nf-call-iptables",
	"net/bridge/bridge-nf-call-ip6tables",
	"net/bridge/bridge-nf-call-arptables",
}

func recordHostState(ctx context.Context) hostState {
	st := hostState{sysctls: map[string]string{}, links: map[string]bool{}}
	for _, k := range watchedSysctls {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			st.sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	if out, err := runCmd(ctx, 10*time.Second, "iptables", "-S", "FORWARD"); err == nil {
		st.haveIptables = true
		line, _, _ := strings.Cut(out, "\n")
		st.forwardPolicy = strings.TrimPrefix(line, "-P FORWARD ")
		if out, err := runCmd(ctx, 10*time.Second, "iptables-save", "-t", "nat"); err == nil {
			st.natTable = out
		}
	}
	for _, l := range []string{"docker0", "docker_gwbridge"} {
		if _, err := os.Stat("/sys/class/net/" + l); err == nil {
			st.links[l] = true
		}
	}
	return st
}

// verifyHostState compares the machine with before and restores what
// differs (sysctls, the FORWARD policy, docker bridges that were not
// there), saying what it did.
func verifyHostState(ctx context.Context, w io.Writer, before hostState) {
	after := recordHostState(ctx)
	clean := true
	for k, v := range before.sysctls {
		if after.sysctls[k] != v {
			clean = false
			fmt.Fprintf(w, "    root namespace %s changed %s -> %s; restoring\n", k, v, after.sysctls[k])
			_ = os.WriteFile("/proc/sys/"+k, []byte(v), 0o644)
		}
	}
	if before.haveIptables && after.forwardPolicy != before.forwardPolicy {
		clean = false
		fmt.Fprintf(w, "    root namespace iptables FORWARD policy changed %s -> %s; restoring\n", before.forwardPolicy, after.forwardPolicy)
		_, _ = runCmd(ctx, 10*time.Second, "iptables", "-P", "FORWARD", before.forwardPolicy)
	}
	if before.haveIptables && strings.Contains(after.natTable, "DOCKER") && !strings.Contains(before.natTable, "DOCKER") {
		clean = false
		fmt.Fprintln(w, "    WARNING: DOCKER chains appeared in the root namespace's nat table; remove them by hand")
	}
	for l := range after.links {
		if !before.links[l] {
			clean = false
			fmt.Fprintf(w, "    %s appeared in the root namespace; deleting it\n", l)
			_, _ = runCmd(ctx, 10*time.Second, "ip", "link", "del", l)
		}
	}
	if clean {
		fmt.Fprintln(w, "    root namespace unchanged (sysctls, FORWARD policy, nat table, docker bridges)")
	}
}

// runSwarm measures Docker Swarm in a private dockerd (published-port
// throughput, 100 replicas, rolling updates of 100 and 10), checks that the
// machine is as it was, and then measures berth doing the same on testbed
// hosts; the comparisons take Swarm's numbers of this run as baselines.
func runSwarm(ctx context.Context, w io.Writer) ([]bench.Figure, error) {
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		return swarmSkipped("dockerd not installed (scripts/install-docker.sh installs Debian's docker.io)"), nil
	}
	docker := filepath.Join(filepath.Dir(dockerd), "docker")
	if _, err := os.Stat(docker); err != nil {
		if docker, err = exec.LookPath("docker"); err != nil {
			return swarmSkipped("no docker CLI next to dockerd"), nil
		}
	}
	if os.Geteuid() != 0 {
		return swarmSkipped("needs root to run dockerd in a network namespace of its own"), nil
	}
	for _, tool := range []string{"ip", "nsenter", "unshare", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return swarmSkipped(tool + " not installed"), nil
		}
	}

	fmt.Fprintln(w, "    building the test web app (v1, v2) as root filesystem tarballs")
	set, err := workloads.Build(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("build test workloads: %w", err)
	}

	// Swarm first, in a closure so dockerd is gone (and the machine checked)
	// before berth's side runs.
	var figs []bench.Figure
	var startSecs, roll10, roll100, direct []float64
	if err := func() error {
		before := recordHostState(ctx)
		defer verifyHostState(context.Background(), w, before)
		d, err := startPrivateDockerd(ctx, dockerd, docker)
		if err != nil {
			return err
		}
		defer d.Close(w)
		ver, _ := d.run(ctx, 10*time.Second, "version", "--format", "{{.Server.Version}}")
		fmt.Fprintf(w, "    dockerd %s in network namespace %s\n", ver, d.netns)
		if _, err := d.run(ctx, time.Minute, "swarm", "init", "--advertise-addr", swarmNodeAddr, "--default-addr-pool", swarmOverlayPool); err != nil {
			return err
		}
		for _, v := range []workloads.Variant{workloads.V1, workloads.V2} {
			tarPath := filepath.Join(d.dir, "web-"+string(v)+".tar")
			if err := set.WriteRootFSTar(v, tarPath); err != nil {
				return fmt.Errorf("write %s rootfs: %w", v, err)
			}
			if _, err := d.run(ctx, 2*time.Minute, "import",
				"--change", `ENTRYPOINT ["/web"]`, "--change", fmt.Sprintf("ENV PORT=%d", workloads.Port),
				tarPath, "web:"+string(v)); err != nil {
				return err
			}
		}

		// Routing first: it needs few containers. Swarm's routing mesh is IPVS
		// in the ingress sandbox; without IPVS in the kernel it cannot work, and
		// only the host-mode published port (no mesh) is measured.
		ipvs := ipvsAvailable()
		var mesh []float64
		var routeErr error
		mesh, direct, routeErr = swarmRouting(ctx, d, w, ipvs == "")
		switch {
		case routeErr != nil:
			fmt.Fprintf(w, "    routing: %v\n", routeErr)
			figs = append(figs, bench.SkippedFigure(figSwarmRouting, swarmDescs[figSwarmRouting], firstLineOf(routeErr.Error())),
				bench.SkippedFigure(figSwarmHostPort, swarmDescs[figSwarmHostPort], firstLineOf(routeErr.Error())))
		case ipvs != "":
			figs = append(figs, bench.SkippedFigure(figSwarmRouting, swarmDescs[figSwarmRouting], ipvs),
				bench.NewFigure(figSwarmHostPort, swarmDescs[figSwarmHostPort], "req/s", bench.HigherIsBetter, direct, "", nil))
		default:
			figs = append(figs, bench.NewFigure(figSwarmRouting, swarmDescs[figSwarmRouting], "req/s", bench.HigherIsBetter,
				mesh, figSwarmHostPort, direct),
				bench.NewFigure(figSwarmHostPort, swarmDescs[figSwarmHostPort], "req/s", bench.HigherIsBetter, direct, "", nil))
		}

		// 100 replicas on one node, two runs (removing 100 tasks takes Swarm
		// about 90 s here, so runs are few to keep `make bench` bounded); the
		// last service stays for the one 100-replica rolling update (about
		// 3.5 min).
		const replicaRuns = 2
		for run := 1; run <= replicaRuns; run++ {
			name := fmt.Sprintf("r%d", run)
			secs, err := swarmCreate(ctx, d, name, 100)
			if err != nil {
				return fmt.Errorf("100 replicas, run %d: %w", run, err)
			}
			fmt.Fprintf(w, "    run %d: 100 replicas Running in %.1f s\n", run, secs)
			startSecs = append(startSecs, secs)
			if run < replicaRuns {
				if err := swarmRemove(ctx, d, name); err != nil {
					return err
				}
			}
		}
		figs = append(figs, bench.NewFigure(figSwarmReplicas, swarmDescs[figSwarmReplicas], "s", bench.LowerIsBetter, startSecs, "", nil))

		for run, img := range []string{"web:v2"} {
			secs, err := swarmRollingUpdate(ctx, d, fmt.Sprintf("r%d", replicaRuns), img, 100)
			if err != nil {
				return fmt.Errorf("rolling update of 100, run %d: %w", run+1, err)
			}
			fmt.Fprintf(w, "    run %d: 100 replicas updated to %s in %.1f s\n", run+1, img, secs)
			roll100 = append(roll100, secs)
		}
		if err := swarmRemove(ctx, d, fmt.Sprintf("r%d", replicaRuns)); err != nil {
			return err
		}

		if _, err := swarmCreate(ctx, d, "u10", 10); err != nil {
			return fmt.Errorf("10 replicas: %w", err)
		}
		for run, img := range []string{"web:v2", "web:v1", "web:v2"} {
			secs, err := swarmRollingUpdate(ctx, d, "u10", img, 10)
			if err != nil {
				return fmt.Errorf("rolling update of 10, run %d: %w", run+1, err)
			}
			fmt.Fprintf(w, "    run %d: 10 replicas updated to %s in %.1f s\n", run+1, img, secs)
			roll10 = append(roll10, secs)
		}
		if err := swarmRemove(ctx, d, "u10"); err != nil {
			return err
		}
		figs = append(figs,
			bench.NewFigure(figSwarmRolling10, swarmDescs[figSwarmRolling10], "s", bench.LowerIsBetter, roll10, "", nil),
			bench.NewFigure(figSwarmRolling100, swarmDescs[figSwarmRolling100], "s", bench.LowerIsBetter, roll100, "", nil),
		)
		return nil
	}(); err != nil {
		return nil, err
	}

	bs, err := measureBerth(ctx, w, set)
	if err != nil {
		fmt.Fprintf(w, "    berth side: %v\n", err)
		for _, n := range []string{figCmpReplicas, figCmpRolling10, figCmpRolling100, figCmpRouting} {
			figs = append(figs, bench.SkippedFigure(n, swarmDescs[n], "berth side failed: "+firstLineOf(err.Error())))
		}
		return figs, nil
	}
	figs = append(figs,
		bench.NewFigure(figCmpReplicas, swarmDescs[figCmpReplicas], "s", bench.LowerIsBetter, bs.replicas100, figSwarmReplicas, startSecs),
		bench.NewFigure(figCmpRolling10, swarmDescs[figCmpRolling10], "s", bench.LowerIsBetter, bs.rolling10, figSwarmRolling10, roll10),
		bench.NewFigure(figCmpRolling100, swarmDescs[figCmpRolling100], "s", bench.LowerIsBetter, bs.rolling100, figSwarmRolling100, roll100),
		bench.NewFigure(figCmpRouting, swarmDescs[figCmpRouting], "req/s", bench.HigherIsBetter, bs.serviceRPS, figSwarmHostPort, direct),
	)
	return figs, nil
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// swarmCreate creates a service of n replicas of web:v1 and returns the
// seconds until all n tasks are Running.
func swarmCreate(ctx context.Context, d *privateDockerd, name string, n int) (float64, error) {
	start := time.Now()
	if _, err := d.run(ctx, time.Minute, "service", "create", "--detach", "--no-resolve-image", "--name", name, "--replicas", strconv.Itoa(n),
		"--update-parallelism", "1", "--stop-grace-period", "10s", "web:v1"); err != nil {
		return 0, err
	}
	if err := swarmWaitRunning(ctx, d, name, "", n, 5*time.Minute); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

// swarmWaitRunning polls `docker service ps` until n tasks that should run
// are Running (of image, when given).
func swarmWaitRunning(ctx context.Context, d *privateDockerd, name, image string, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	running := 0
	for time.Now().Before(deadline) {
		out, err := d.run(ctx, 30*time.Second, "service", "ps", name, "--filter", "desired-state=running", "--format", "{{.Image}} {{.CurrentState}}")
		if err != nil {
			return err
		}
		running = 0
		for _, line := range strings.Split(out, "\n") {
			img, state, _ := strings.Cut(line, " ")
			if strings.HasPrefix(state, "Running") && (image == "" || img == image) {
				running++
			}
		}
		if running >= n {
			return nil
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("service %s: %d of %d tasks Running after %s", name, running, n, limit)
}

// swarmRollingUpdate updates service name to image one task at a time and
// returns the seconds until Swarm reports the update completed and all n
// tasks run the new image.
func swarmRollingUpdate(ctx context.Context, d *privateDockerd, name, image string, n int) (float64, error) {
	start := time.Now()
	if _, err := d.run(ctx, time.Minute, "service", "update", "--detach", "--no-resolve-image", "--update-parallelism", "1", "--image", image, name); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		state, err := d.run(ctx, 30*time.Second, "service", "inspect", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", name)
		if err != nil {
			return 0, err
		}
		if state == "completed" {
			break
		}
		if strings.Contains(state, "paused") || strings.Contains(state, "rollback") {
			return 0, fmt.Errorf("service %s: update %s", name, state)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("service %s: update to %s not complete after 10m (state %q)", name, image, state)
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return 0, err
		}
	}
	if err := swarmWaitRunning(ctx, d, name, image, n, 2*time.Minute); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

// swarmRemove removes a service and waits until its containers are gone.
func swarmRemove(ctx context.Context, d *privateDockerd, name string) error {
	if _, err := d.run(ctx, time.Minute, "service", "rm", name); err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := d.run(ctx, 30*time.Second, "ps", "-aq", "--filter", "label=com.docker.swarm.service.name="+name)
		if err != nil {
			return err
		}
		if out == "" {
			return nil
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("service %s: containers still present 3m after removal", name)
}

// ipvsAvailable returns "" when the kernel has IPVS, which Swarm's routing
// mesh needs, or the reason it has not.
func ipvsAvailable() string {
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		return ""
	}
	reason := "this kernel has no IPVS (no /proc/net/ip_vs"
	if _, err := os.Stat("/lib/modules/" + kernelRelease()); err != nil {
		reason += ", and no modules directory to load ip_vs from"
	}
	return reason + "), which Swarm's ingress routing mesh needs: dockerd logs \"Could not get ipvs family information from the kernel\" and the published port refuses connections"
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// swarmRouting measures requests/s through the routing mesh (a published
// port in ingress mode, when withMesh) and, as the baseline, through a
// host-mode published port that bypasses it; one replica each, three runs
// after a warm-up.
func swarmRouting(ctx context.Context, d *privateDockerd, w io.Writer, withMesh bool) (mesh, direct []float64, err error) {
	services := []string{"hostport"}
	if withMesh {
		services = append(services, "mesh")
		if _, err := d.run(ctx, time.Minute, "service", "create", "--detach", "--no-resolve-image", "--name", "mesh", "--replicas", "1",
			"--publish", fmt.Sprintf("published=%d,target=%d", swarmMeshPort, workloads.Port), "web:v1"); err != nil {
			return nil, nil, err
		}
		defer swarmRemove(ctx, d, "mesh")
	}
	if _, err := d.run(ctx, time.Minute, "service", "create", "--detach", "--no-resolve-image", "--name", "hostport", "--replicas", "1",
		"--publish", fmt.Sprintf("mode=host,published=%d,target=%d", swarmHostPort, workloads.Port), "web:v1"); err != nil {
		return nil, nil, err
	}
	defer swarmRemove(ctx, d, "hostport")
	for _, s := range services {
		if err := swarmWaitRunning(ctx, d, s, "", 1, 2*time.Minute); err != nil {
			return nil, nil, err
		}
	}
	meshAddr := net.JoinHostPort(swarmNodeAddr, strconv.Itoa(swarmMeshPort))
	hostAddr := net.JoinHostPort(swarmNodeAddr, strconv.Itoa(swarmHostPort))
	nsPath := "/run/netns/" + d.netns
	addrs := []string{hostAddr}
	if withMesh {
		addrs = append(addrs, meshAddr)
	}
	// The app may take a moment to listen; the mesh a moment to program.
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range addrs {
		for {
			_, err := httpLoad(ctx, nsPath, addr, 1, 200*time.Millisecond)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("published port %s unreachable from the node's namespace: %w", addr, err)
			}
			if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
				return nil, nil, err
			}
		}
	}
	const runs, conns, dur = 3, 8, 5 * time.Second
	for run := 0; run <= runs; run++ { // run 0 is the warm-up
		var m float64
		if withMesh {
			if m, err = httpLoad(ctx, nsPath, meshAddr, conns, dur); err != nil {
				return nil, nil, fmt.Errorf("through the routing mesh: %w", err)
			}
		}
		h, err := httpLoad(ctx, nsPath, hostAddr, conns, dur)
		if err != nil {
			return nil, nil, fmt.Errorf("through a host-mode port: %w", err)
		}
		if withMesh {
			fmt.Fprintf(w, "    run %d: routing mesh %.0f req/s, host-mode port %.0f req/s\n", run, m, h)
		} else {
			fmt.Fprintf(w, "    run %d: host-mode port %.0f req/s (no routing mesh: no IPVS)\n", run, h)
		}
		if run > 0 {
			mesh, direct = append(mesh, m), append(direct, h)
		}
	}
	return mesh, direct, nil
}

// httpLoad sends GET / on conns keep-alive connections opened from inside
// the network namespace at nsPath ("" for this process's own) for dur and
// returns responses per second.
// Each connection is dialled from a goroutine locked to an OS thread that
// has joined the namespace; that thread is discarded afterwards (the
// goroutine exits still locked), so no other goroutine runs in it.
func httpLoad(ctx context.Context, nsPath, addr string, conns int, dur time.Duration) (float64, error) {
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	stop := start.Add(dur)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if nsPath != "" {
				runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
				f, err := os.Open(nsPath)
				if err != nil {
					errs <- err
					return
				}
				err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
				f.Close()
				if err != nil {
					errs <- fmt.Errorf("join %s: %w", nsPath, err)
					return
				}
			}
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
			cancel()
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			req := []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
			for time.Now().Before(stop) && ctx.Err() == nil {
				_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := conn.Write(req); err != nil {
					errs <- err
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("GET / from %s: %s", addr, resp.Status)
					return
				}
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(total.Load()) / time.Since(start).Seconds(), nil
}
