package prober_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-io/berth/acceptance/lb"
	"github.com/berth-io/berth/acceptance/prober"
	"github.com/berth-io/berth/acceptance/workloads"
)

// pod is a workload binary running as a plain process on loopback.
type pod struct {
	name  string
	addr  string
	cmd   *exec.Cmd
	lines *bufio.Scanner
}

func startPod(t *testing.T, set *workloads.Set, v workloads.Variant, name string) *pod {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "web")
	if err := set.WriteBinary(v, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{"PORT=0", "POD_NAME=" + name}
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	p := &pod{name: name, cmd: cmd, lines: bufio.NewScanner(out)}
	for p.lines.Scan() {
		if rest, ok := strings.CutPrefix(p.lines.Text(), "listening on "); ok {
			_, port, _ := net.SplitHostPort(rest)
			p.addr = "127.0.0.1:" + port
			return p
		}
	}
	t.Fatalf("pod %s exited before listening", name)
	return nil
}

// stop sends SIGTERM and checks the pod exits 0.
func (p *pod) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for p.lines.Scan() {
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("pod %s after SIGTERM: %v, want exit 0", p.name, err)
	}
}

// A rolling replacement behind the load balancer that takes each old pod
// out, drains it and only then stops it, is invisible to clients: the
// prober counts no failure, sees every pod answer, and sees v2 take over.
func TestRollingReplacementBehindBalancerHasZeroFailedRequests(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go toolchain is not on PATH")
	}
	ctx := t.Context()
	set, err := workloads.Build(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var pods []*pod
	for i := range 3 {
		pods = append(pods, startPod(t, set, workloads.V1, fmt.Sprintf("web-v1-%d", i)))
	}
	addrs := func() []string {
		var out []string
		for _, p := range pods {
			out = append(out, p.addr)
		}
		return out
	}
	bal, err := lb.New(lb.Config{
		Backends:    addrs(),
		HealthCheck: lb.HealthCheck{HTTPPath: "/healthz", Interval: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lbCtx, stopLB := context.WithCancel(ctx)
	lbDone := make(chan error, 1)
	go func() { lbDone <- bal.Serve(lbCtx, l) }()
	defer func() {
		stopLB()
		if err := <-lbDone; err != nil {
			t.Errorf("load balancer: %v", err)
		}
	}()
	if err := bal.Wait(ctx, lb.AllHealthy); err != nil {
		t.Fatal(err)
	}

	p, err := prober.Start(ctx, prober.Config{URL: "http://" + l.Addr().String() + "/", Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	allAnswered := func(r prober.Result) bool {
		for _, po := range pods {
			if r.Seen("pod="+po.name) == 0 {
				return false
			}
		}
		return true
	}
	if err := p.Wait(ctx, allAnswered); err != nil {
		t.Fatal(err)
	}

	for i := range 3 {
		old := pods[0]
		fresh := startPod(t, set, workloads.V2, fmt.Sprintf("web-v2-%d", i))
		pods = append(pods, fresh)
		if err := bal.SetBackends(addrs()); err != nil {
			t.Fatal(err)
		}
		if err := bal.Wait(ctx, lb.AllHealthy); err != nil {
			t.Fatal(err)
		}
		pods = pods[1:]
		if err := bal.SetBackends(addrs()); err != nil {
			t.Fatal(err)
		}
		if err := bal.Drain(ctx, old.addr); err != nil {
			t.Fatal(err)
		}
		old.stop(t)
		sent := p.Snapshot().Sent
		if err := p.Wait(ctx, func(r prober.Result) bool { return r.Succeeded+r.Failed >= sent+10 }); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Wait(ctx, allAnswered); err != nil {
		t.Fatal(err)
	}
	r := p.Stop()
	if r.Failed != 0 {
		t.Fatalf("clients saw failures during the rollout: %s", r)
	}
	if r.Seen("web v1 ") == 0 || r.Seen("web v2 ") == 0 {
		t.Fatalf("bodies %v, want answers from v1 and then v2", r.Bodies)
	}
	if got := bal.Backends(); len(got) != 3 || !slices.EqualFunc(got, pods, func(s lb.BackendStatus, p *pod) bool { return s.Addr == p.addr }) {
		t.Fatalf("backends after the rollout %+v, want the three v2 pods", got)
	}
}
