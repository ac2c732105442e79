package scenarios

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-io/berth/bench"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

func init() {
	bench.Register(bench.Scenario{
		Name:    "control-memory",
		Figures: []string{"control.rss.idle", "control.rss.pods100"},
		Run:     runControlMemory,
	})
}

// settle is how long a process is left alone before its RSS is read, so
// start-up garbage has been collected and caches have filled.
const settle = 5 * time.Second

// repoRoot finds the module root (the directory holding go.mod) from the
// working directory, where `go build` must run.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// goBuild builds the package pkg (relative to the module root) into out,
// with env (KEY=value) added to the environment.
func goBuild(ctx context.Context, pkg, out string, env ...string) error {
	root, err := repoRoot()
	if err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// rssMiB reads a process's resident set size from /proc in MiB.
func rssMiB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read rss of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", rest, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("pid %d: no VmRSS", pid)
}

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// stopProcess sends SIGTERM and waits, killing after a grace period.
func stopProcess(cmd *exec.Cmd, done <-chan error) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// controlRSS runs `berth control --dev` and returns its RSS idle and after
// a deployment of 100 replicas has all its pods bound.
func controlRSS(ctx context.Context, berthBin string) (idle, loaded float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "berth-bench-rss-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	addr, err := freeLoopbackAddr()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(berthBin, "control", "--dev", "--data-dir", dir, "--listen", addr, "--log-level", "error")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("start berth control: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer stopProcess(cmd, done)

	var cli *client.Client
	for cli == nil {
		if cc, err := client.LoadConfig(filepath.Join(dir, "admin.json")); err == nil {
			if c, err := client.New(cc, client.WithTimeout(10*time.Second)); err == nil {
				if err := c.Readyz(ctx); err == nil {
					cli = c
					break
				}
				c.Close()
			}
		}
		select {
		case err := <-done:
			return 0, 0, fmt.Errorf("berth control exited while starting: %v", err)
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("berth control not ready: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer cli.Close()
	if err := sleepCtx(ctx, settle); err != nil {
		return 0, 0, err
	}
	if idle, err = rssMiB(cmd.Process.Pid); err != nil {
		return 0, 0, err
	}

	if err := registerNodes(ctx, cli, 4); err != nil {
		return 0, 0, err
	}
	replicas := int32(100)
	labels := map[string]string{"app": "rss"}
	dep := &api.Deployment{
		Metadata: api.ObjectMeta{Name: "rss", Namespace: "default"},
		Spec: api.DeploymentSpec{Replicas: &replicas, Selector: labels, Template: api.PodTemplate{
			Metadata: api.TemplateMeta{Labels: labels},
			Spec: api.PodSpec{Containers: []api.Container{{Name: "web", Image: "registry.bench.invalid/web:v1",
				Resources: api.ResourceRequirements{Requests: api.ResourceList{api.ResourceCPU: "10m"}}}}},
		}},
	}
	if err := cli.Create(ctx, dep); err != nil {
		return 0, 0, fmt.Errorf("create deployment: %w", err)
	}
	for {
		var pods api.PodList
		if err := cli.List(ctx, &pods, client.ListOptions{Namespace: "default", Labels: labels}); err != nil {
			return 0, 0, fmt.Errorf("list pods: %w", err)
		}
		n := 0
		for _, p := range pods.Items {
			if p.Spec.NodeName != "" {
				n++
			}
		}
		if n >= int(replicas) {
			break
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return 0, 0, fmt.Errorf("waiting for 100 bound pods (%d so far): %w", n, err)
		}
	}
	if err := sleepCtx(ctx, settle); err != nil {
		return 0, 0, err
	}
	loaded, err = rssMiB(cmd.Process.Pid)
	return idle, loaded, err
}

// etcdOnlyRSS runs bench/cmd/etcd-only writing puts values and returns its
// RSS once it is ready and has settled.
func etcdOnlyRSS(ctx context.Context, bin string, puts int) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "berth-bench-etcd-rss-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(bin, "-dir", dir, "-puts", strconv.Itoa(puts), "-size", "1024")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start etcd-only: %w", err)
	}
	done := make(chan error, 1)
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if sc.Text() == "ready" && !ok {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
		done <- cmd.Wait()
	}()
	defer stopProcess(cmd, done)
	select {
	case ok := <-ready:
		if !ok {
			return 0, errors.New("etcd-only exited before it was ready")
		}
	case <-ctx.Done():
		return 0, fmt.Errorf("etcd-only not ready: %w", ctx.Err())
	}
	if err := sleepCtx(ctx, settle); err != nil {
		return 0, err
	}
	return rssMiB(cmd.Process.Pid)
}

func runControlMemory(ctx context.Context, w io.Writer) ([]bench.Figure, error) {
	const descIdle, descLoaded = "RSS of an idle `berth control --dev` process", "RSS of `berth control --dev` with a 100-replica deployment bound on 4 nodes"
	if _, err := exec.LookPath("go"); err != nil {
		return []bench.Figure{
			bench.SkippedFigure("control.rss.idle", descIdle, "no go toolchain to build bin/berth"),
			bench.SkippedFigure("control.rss.pods100", descLoaded, "no go toolchain to build bin/berth"),
		}, nil
	}
	tmp, err := os.MkdirTemp("", "berth-bench-bin-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	berthBin, etcdBin := filepath.Join(tmp, "berth"), filepath.Join(tmp, "etcd-only")
	fmt.Fprintln(w, "    building berth and bench/cmd/etcd-only")
	if err := goBuild(ctx, "./cmd/berth", berthBin); err != nil {
		return nil, err
	}
	if err := goBuild(ctx, "./bench/cmd/etcd-only", etcdBin); err != nil {
		return nil, err
	}
	const runs = 3
	fmt.Fprintf(w, "    %d runs, each a fresh process read %s after it is ready and again after the pods exist\n", runs, settle)
	var idle, loaded, etcdIdle, etcdLoaded []float64
	for run := 1; run <= runs; run++ {
		i, l, err := controlRSS(ctx, berthBin)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", run, err)
		}
		ei, err := etcdOnlyRSS(ctx, etcdBin, 0)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", run, err)
		}
		// The deployment, its revision and 100 pods: about as many values
		// of about the size berth stores.
		el, err := etcdOnlyRSS(ctx, etcdBin, 102)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", run, err)
		}
		fmt.Fprintf(w, "    run %d: berth %.1f MiB idle, %.1f MiB with 100 pods; etcd alone %.1f MiB, %.1f MiB with 102 values\n", run, i, l, ei, el)
		idle, loaded = append(idle, i), append(loaded, l)
		etcdIdle, etcdLoaded = append(etcdIdle, ei), append(etcdLoaded, el)
	}
	return []bench.Figure{
		bench.NewFigure("control.rss.idle", descIdle, "MiB", bench.LowerIsBetter, idle, "etcd.rss.idle", etcdIdle),
		bench.NewFigure("control.rss.pods100", descLoaded, "MiB", bench.LowerIsBetter, loaded, "etcd.rss.values102", etcdLoaded),
	}, nil
}
