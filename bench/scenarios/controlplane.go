package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-io/berth/bench"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/plane"
	"github.com/berth-io/berth/control/scheduler"
)

func init() {
	bench.Register(bench.Scenario{
		Name:    "api-create",
		Figures: []string{"api.create.p50", "api.create.p99"},
		Run:     runAPICreate,
	})
	bench.Register(bench.Scenario{
		Name:    "scheduler-throughput",
		Figures: []string{"scheduler.throughput"},
		Run:     runSchedulerThroughput,
	})
}

// devPlane is an in-process dev-mode control plane on a temporary
// directory, with an admin client.
type devPlane struct {
	dir    string
	cancel context.CancelFunc
	done   chan error
	cli    *client.Client
	once   sync.Once
}

// startDevPlane runs control/plane in dev mode on loopback and waits until
// its admin client configuration is written and the API is ready.
// controllers false runs an API-only plane (no scheduler, no controllers).
// The cluster CIDR is a /12 so that a thousand simulated nodes each get
// their /24 (only allocated in the store: nothing is routed).
func startDevPlane(ctx context.Context, controllers bool) (*devPlane, error) {
	dir, err := os.MkdirTemp("", "berth-bench-plane-")
	if err != nil {
		return nil, fmt.Errorf("start dev control plane: %w", err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	p := &devPlane{dir: dir, cancel: cancel, done: make(chan error, 1)}
	cfg := plane.Config{Name: "bench", DataDir: dir, ListenAddress: "127.0.0.1:0", Dev: true, DisableControllers: !controllers,
		ClusterCIDR: "10.64.0.0/12"}
	go func() { p.done <- plane.Run(pctx, cfg, nil) }()

	adminPath := filepath.Join(dir, "admin.json")
	deadline := time.Now().Add(plane.StartTimeout)
	for {
		if _, err := os.Stat(adminPath); err == nil {
			break
		}
		select {
		case err := <-p.done:
			p.done <- err
			p.Close()
			return nil, fmt.Errorf("start dev control plane: stopped while starting: %v", err)
		case <-ctx.Done():
			p.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Close()
			return nil, fmt.Errorf("start dev control plane: no admin.json after %s", plane.StartTimeout)
		}
	}
	cc, err := client.LoadConfig(adminPath)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("start dev control plane: %w", err)
	}
	if p.cli, err = client.New(cc, client.WithTimeout(30*time.Second)); err != nil {
		p.Close()
		return nil, fmt.Errorf("start dev control plane: client: %w", err)
	}
	for {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		err := p.cli.Readyz(rctx)
		rcancel()
		if err == nil {
			return p, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			p.Close()
			return nil, fmt.Errorf("start dev control plane: not ready: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close stops the control plane and removes its directory.
func (p *devPlane) Close() {
	p.once.Do(func() {
		if p.cli != nil {
			p.cli.Close()
		}
		p.cancel()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
		}
		os.RemoveAll(p.dir)
	})
}

// benchPod is an unbound pod of the shape a deployment makes: one
// container with a CPU request.
func benchPod(name string) *api.Pod {
	return &api.Pod{
		Metadata: api.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "bench"}},
		Spec: api.PodSpec{Containers: []api.Container{{
			Name: "web", Image: "registry.bench.invalid/web:v1",
			Resources: api.ResourceRequirements{Requests: api.ResourceList{api.ResourceCPU: "100m", api.ResourceMemory: "32Mi"}},
		}}},
	}
}

// createPodLatencies creates n pods serially through the typed client and
// returns each request's latency in ms.
func createPodLatencies(ctx context.Context, cli *client.Client, prefix string, n int) ([]float64, error) {
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		p := benchPod(prefix + strconv.Itoa(i))
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := cli.Create(cctx, p)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("create pod %s: %w", p.Metadata.Name, err)
		}
		out = append(out, float64(time.Since(start).Microseconds())/1000)
	}
	return out, nil
}

func runAPICreate(ctx context.Context, w io.Writer) ([]bench.Figure, error) {
	const runs, n = 5, 1000
	raw, err := startRawEtcd(ctx)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	p, err := startDevPlane(ctx, false)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	fmt.Fprintf(w, "    %d serial pod creates through the HTTPS API and %d raw etcd puts, 1 warm-up + %d runs\n", n, n, runs)
	var apiP50, apiP99, putP50, putP99 []float64
	for run := 0; run <= runs; run++ { // run 0 is the warm-up
		lat, err := createPodLatencies(ctx, p.cli, fmt.Sprintf("create-%d-", run), n)
		if err != nil {
			return nil, err
		}
		// Puts of the size berth stores a pod at, for the same-run baseline.
		put, err := putLatencies(ctx, raw.cli, fmt.Sprintf("/bench/put/%d/", run), n, 1024)
		if err != nil {
			return nil, fmt.Errorf("etcd puts: %w", err)
		}
		fmt.Fprintf(w, "    run %d: api p50 %.2f ms p99 %.2f ms, etcd p50 %.2f ms p99 %.2f ms\n", run,
			bench.Percentile(lat, 50), bench.Percentile(lat, 99), bench.Percentile(put, 50), bench.Percentile(put, 99))
		if run == 0 {
			continue
		}
		apiP50 = append(apiP50, bench.Percentile(lat, 50))
		apiP99 = append(apiP99, bench.Percentile(lat, 99))
		putP50 = append(putP50, bench.Percentile(put, 50))
		putP99 = append(putP99, bench.Percentile(put, 99))
	}
	return []bench.Figure{
		bench.NewFigure("api.create.p50", "pod create through the HTTPS API (typed client, serial), median", "ms", bench.LowerIsBetter, apiP50, "etcd.put.p50", putP50),
		bench.NewFigure("api.create.p99", "pod create through the HTTPS API (typed client, serial), p99", "ms", bench.LowerIsBetter, apiP99, "etcd.put.p99", putP99),
	}, nil
}

// parallel runs fn(i) for i in [0, n) on workers goroutines and returns
// the first error.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

// registerNodes creates n Ready nodes with capacity through the API, as
// agents would register them.
func registerNodes(ctx context.Context, cli *client.Client, n int) error {
	return parallel(ctx, n, 8, func(ctx context.Context, i int) error {
		node := &api.Node{Metadata: api.ObjectMeta{Name: fmt.Sprintf("node-%04d", i),
			Labels: map[string]string{"berth.io/hostname": fmt.Sprintf("node-%04d", i)}}}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := cli.Create(cctx, node); err != nil {
			return fmt.Errorf("create node %s: %w", node.Metadata.Name, err)
		}
		res := api.ResourceList{api.ResourceCPU: "4", api.ResourceMemory: "8Gi", api.ResourcePods: "110"}
		node.Status.Capacity, node.Status.Allocatable = res, res
		now := time.Now().UTC()
		node.Status.LastHeartbeatTime = &now
		api.SetCondition(&node.Status.Conditions, api.Condition{Type: api.NodeReady, Status: api.ConditionTrue, Reason: "AgentReady", Message: "simulated node"}, now)
		if err := cli.UpdateStatus(cctx, node); err != nil {
			return fmt.Errorf("mark node %s ready: %w", node.Metadata.Name, err)
		}
		return nil
	})
}

// schedulerRun is one measured scheduling run: a fresh API-only plane with
// nodes Ready nodes and pods unbound pods, then the scheduler alone, timed
// from its start until a watch has seen every pod bound. It returns pods
// bound per second.
func schedulerRun(ctx context.Context, w io.Writer, nodes, pods int) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()
	p, err := startDevPlane(ctx, false)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	setup := time.Now()
	if err := registerNodes(ctx, p.cli, nodes); err != nil {
		return 0, err
	}
	if err := parallel(ctx, pods, 8, func(ctx context.Context, i int) error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := p.cli.Create(cctx, benchPod("sched-"+strconv.Itoa(i))); err != nil {
			return fmt.Errorf("create pod: %w", err)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	var list api.PodList
	if err := p.cli.List(ctx, &list, client.ListOptions{Namespace: "default"}); err != nil {
		return 0, fmt.Errorf("list pods: %w", err)
	}
	fmt.Fprintf(w, "      %d nodes and %d pods created in %s\n", nodes, len(list.Items), time.Since(setup).Round(time.Millisecond))

	// Watch bindings from the list's revision: the measurement's clock.
	podKind, _ := api.LookupKind("Pod")
	nodeKind, _ := api.LookupKind("Node")
	watcher, err := p.cli.Watch(ctx, podKind, client.WatchOptions{Namespace: "default", ResourceVersion: list.ResourceVersion})
	if err != nil {
		return 0, fmt.Errorf("watch pods: %w", err)
	}
	defer watcher.Stop()

	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	podInf := client.NewInformer(p.cli, podKind, client.InformerOptions{})
	nodeInf := client.NewInformer(p.cli, nodeKind, client.InformerOptions{})
	sched := scheduler.New(p.cli, podInf, nodeInf, scheduler.Options{})
	go podInf.Run(sctx)
	go nodeInf.Run(sctx)
	if err := podInf.WaitForSync(ctx); err != nil {
		return 0, fmt.Errorf("pod informer: %w", err)
	}
	if err := nodeInf.WaitForSync(ctx); err != nil {
		return 0, fmt.Errorf("node informer: %w", err)
	}
	schedDone := make(chan error, 1)
	start := time.Now()
	go func() { schedDone <- sched.Run(sctx) }()

	bound := make(map[string]bool, pods)
	for len(bound) < pods {
		select {
		case ev, ok := <-watcher.Events():
			if !ok {
				return 0, fmt.Errorf("pod watch ended after %d of %d bindings: %v", len(bound), pods, watcher.Err())
			}
			if pod, isPod := ev.Object.(*api.Pod); isPod && ev.Type != api.Deleted && pod.Spec.NodeName != "" {
				bound[pod.Metadata.Name] = true
			}
		case err := <-schedDone:
			return 0, fmt.Errorf("scheduler stopped after %d of %d bindings: %v", len(bound), pods, err)
		case <-ctx.Done():
			return 0, fmt.Errorf("after %d of %d bindings: %w", len(bound), pods, ctx.Err())
		}
	}
	elapsed := time.Since(start)
	fmt.Fprintf(w, "      %d pods bound on %d nodes in %s\n", pods, nodes, elapsed.Round(time.Millisecond))
	return float64(pods) / elapsed.Seconds(), nil
}

func runSchedulerThroughput(ctx context.Context, w io.Writer) ([]bench.Figure, error) {
	const runs, nodes, pods = 3, 1000, 10000
	raw, err := startRawEtcd(ctx)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	fmt.Fprintf(w, "    scheduler alone binding %d pods on %d nodes; warm-up at 100 nodes/1,000 pods, then %d runs\n", pods, nodes, runs)
	if _, err := schedulerRun(ctx, w, 100, 1000); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	var tputs, base []float64
	for run := 1; run <= runs; run++ {
		fmt.Fprintf(w, "    run %d\n", run)
		tp, err := schedulerRun(ctx, w, nodes, pods)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", run, err)
		}
		// The scheduler binds with one worker (get from its cache, then a
		// CAS update): the baseline is one client doing get+CAS txns.
		bt, err := txnThroughput(ctx, raw.cli, fmt.Sprintf("/bench/sched/%d/", run), 5000, 1)
		if err != nil {
			return nil, fmt.Errorf("etcd txns: %w", err)
		}
		fmt.Fprintf(w, "      %.0f pods/s; raw etcd get+CAS, one client: %.0f txn/s\n", tp, bt)
		tputs, base = append(tputs, tp), append(base, bt)
	}
	if len(tputs) == 0 {
		return nil, errors.New("no runs")
	}
	return []bench.Figure{
		bench.NewFigure("scheduler.throughput", fmt.Sprintf("pods bound per second, %d nodes, %d pods, scheduler alone (one binding worker)", nodes, pods),
			"pods/s", bench.HigherIsBetter, tputs, "etcd.txn.serial", base),
	}, nil
}
