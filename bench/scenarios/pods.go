package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/berth-io/berth/acceptance/workloads"
	"github.com/berth-io/berth/bench"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// The node figures.
const (
	figPodStartP50  = "pod.start.p50"
	figPodStartP99  = "pod.start.p99"
	figPodBurst100  = "pod.burst100.seconds"
	figAgentRSSIdle = "agent.rss.idle"
	figAgentRSS100  = "agent.rss.pods100"
)

var podDescs = map[string]string{
	figPodStartP50: "one pod at a time, 100 pods on one testbed node: from the create request to the API until the pod is Ready " +
		"(HTTP readiness probe on /healthz, period 1 s, seen on a watch), beside raw `ctr run -d --net-host` of the same image on the node's containerd " +
		"until GET /healthz answers 200 (polled every 5 ms on the node); median",
	figPodStartP99: "as pod.start.p50, 99th percentile over the 100 pods (and over the 100 raw `ctr run`s)",
	figPodBurst100: "100 pods created through the API at once on one testbed node until all are Ready, beside 100 parallel raw `ctr run -d --net-host` " +
		"on the node's containerd until all 100 answer GET /healthz",
	figAgentRSSIdle: "RSS of the `berth agent` process on the node with no pods, beside the RSS of the node's containerd daemon (the runtime it drives; shims not counted) read at the same time",
	figAgentRSS100:  "RSS of the `berth agent` process with 100 Ready pods, beside the node's containerd daemon RSS read at the same time",
}

var podFigures = []string{figPodStartP50, figPodStartP99, figPodBurst100, figAgentRSSIdle, figAgentRSS100}

func init() {
	bench.Register(bench.Scenario{Name: "pods", Figures: podFigures, Run: runPods})
}

func skipAll(names []string, descs map[string]string, reason string) []bench.Figure {
	var out []bench.Figure
	for _, n := range names {
		out = append(out, bench.SkippedFigure(n, descs[n], reason))
	}
	return out
}

// nodePrereqs returns "" when a testbed node can be brought up here, or
// what is missing.
func nodePrereqs() string {
	if os.Geteuid() != 0 {
		return "needs root for testbed hosts"
	}
	for _, bin := range []string{"containerd", "ctr", "go", "nsenter", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " not installed"
		}
	}
	return ""
}

// readyWatch records when each pod matching a label selector was first
// seen Ready on a watch stream.
type readyWatch struct {
	mu     sync.Mutex
	ready  map[string]time.Time
	gone   map[string]bool
	notify chan struct{}
	err    error
	stop   context.CancelFunc
}

func (c *berthCluster) watchReady(ctx context.Context, labels map[string]string) (*readyWatch, error) {
	wctx, cancel := context.WithCancel(ctx)
	rw := &readyWatch{ready: map[string]time.Time{}, gone: map[string]bool{}, notify: make(chan struct{}, 1), stop: cancel}
	var list api.PodList
	if err := c.admin.List(ctx, &list, client.ListOptions{Namespace: "default", Labels: labels}); err != nil {
		cancel()
		return nil, err
	}
	rv := list.ResourceVersion
	go func() {
		for wctx.Err() == nil {
			wt, err := c.admin.Watch(wctx, api.KindOf(&api.Pod{}), client.WatchOptions{Namespace: "default", Labels: labels, ResourceVersion: rv})
			if err != nil {
				if wctx.Err() == nil {
					time.Sleep(200 * time.Millisecond)
				}
				continue
			}
			for ev := range wt.Events() {
				now := time.Now()
				if ev.ResourceVersion > 0 {
					rv = ev.ResourceVersion
				}
				p, ok := ev.Object.(*api.Pod)
				if !ok {
					continue
				}
				rw.mu.Lock()
				if ev.Type == api.Deleted {
					delete(rw.ready, p.Metadata.Name)
					rw.gone[p.Metadata.Name] = true
				} else if _, seen := rw.ready[p.Metadata.Name]; !seen && api.IsPodReady(p) {
					rw.ready[p.Metadata.Name] = now
				}
				rw.mu.Unlock()
				select {
				case rw.notify <- struct{}{}:
				default:
				}
			}
			wt.Stop()
		}
	}()
	return rw, nil
}

// waitReady waits until every name has been seen Ready and returns the
// latest of their Ready times.
func (rw *readyWatch) waitReady(ctx context.Context, names []string, limit time.Duration) (time.Time, error) {
	deadline := time.After(limit)
	for {
		rw.mu.Lock()
		var last time.Time
		missing := 0
		for _, n := range names {
			t, ok := rw.ready[n]
			if !ok {
				missing++
			} else if t.After(last) {
				last = t
			}
		}
		rw.mu.Unlock()
		if missing == 0 {
			return last, nil
		}
		select {
		case <-rw.notify:
		case <-time.After(time.Second):
		case <-deadline:
			return time.Time{}, fmt.Errorf("%d of %d pods not Ready after %s", missing, len(names), limit)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// benchWebPod is a pod of the test web app with an HTTP readiness probe on
// /healthz every second (the shortest period the API allows).
func benchWebPod(name, image string, labels map[string]string) *api.Pod {
	grace := int64(1)
	return &api.Pod{
		Metadata: api.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
		Spec: api.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []api.Container{{
				Name: "web", Image: image,
				Ports: []api.ContainerPort{{Name: "http", ContainerPort: int32(workloads.Port)}},
				ReadinessProbe: &api.Probe{
					HTTPGet:       &api.HTTPGetAction{Path: "/healthz", Port: api.FromInt(int32(workloads.Port))},
					PeriodSeconds: 1,
				},
			}},
		},
	}
}

// deletePods deletes every pod carrying labels and waits until they are
// gone from the API.
func (c *berthCluster) deletePods(ctx context.Context, labels map[string]string) error {
	var list api.PodList
	if err := c.admin.List(ctx, &list, client.ListOptions{Namespace: "default", Labels: labels}); err != nil {
		return err
	}
	if err := parallel(ctx, len(list.Items), 16, func(ctx context.Context, i int) error {
		err := c.admin.Delete(ctx, &list.Items[i])
		if err != nil && !api.IsNotFound(err) {
			return fmt.Errorf("delete pod %s: %w", list.Items[i].Metadata.Name, err)
		}
		return nil
	}); err != nil {
		return err
	}
	return c.poll(ctx, "pods gone", 5*time.Minute, func() bool {
		var l api.PodList
		return c.admin.List(ctx, &l, client.ListOptions{Namespace: "default", Labels: labels}) == nil && len(l.Items) == 0
	})
}

// rawCtr runs nodebench's ctr subcommands on the node against the node's
// own containerd, in a namespace of the benchmark's own.
type rawCtr struct {
	c     *berthCluster
	bin   string // nodebench on the node
	image string
}

const rawNamespace = "berth-bench-raw"

func (r rawCtr) run(ctx context.Context, sub, prefix string, n int, out any) error {
	cmd := fmt.Sprintf("%s %s -address %s -namespace %s -image %s -prefix %s -n %d -port-base 20000",
		r.bin, sub, nodeContainerdSock, rawNamespace, r.image, prefix, n)
	s, err := r.c.nodeExec(ctx, 10*time.Minute, cmd)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal([]byte(lastLines(s, 1)), out); err != nil {
			return fmt.Errorf("nodebench %s: %w: %q", sub, err, s)
		}
	}
	return nil
}

func (r rawCtr) clean(ctx context.Context, prefix string) error {
	return r.run(ctx, "ctr-clean", prefix, 0, nil)
}

// rssPair reads the agent's and containerd's RSS three times, 2 s apart.
func (c *berthCluster) rssPair(ctx context.Context) (agent, ctrd []float64, err error) {
	for i := 0; i < 3; i++ {
		if i > 0 {
			if err := sleepCtx(ctx, 2*time.Second); err != nil {
				return nil, nil, err
			}
		}
		a, err := c.nodeRSS(ctx, nodeAgentPID)
		if err != nil {
			return nil, nil, err
		}
		d, err := c.nodeRSS(ctx, nodeContainerdPID)
		if err != nil {
			return nil, nil, err
		}
		agent, ctrd = append(agent, a), append(ctrd, d)
	}
	return agent, ctrd, nil
}

func runPods(ctx context.Context, w io.Writer) ([]bench.Figure, error) {
	if reason := nodePrereqs(); reason != "" {
		return skipAll(podFigures, podDescs, reason), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	c, nb, down, err := upNodebenchBed(ctx, w)
	if err != nil {
		return nil, err
	}
	defer down()
	raw := rawCtr{c: c, bin: nb, image: c.refs.V1}
	if v, err := c.nodeExec(ctx, time.Minute, "containerd --version"); err == nil {
		fmt.Fprintf(w, "    node runtime: %s", v)
	}

	// Images pulled before anything is timed: into the agent's namespace by
	// a few warm-up pods, into the raw namespace by ctr.
	if _, err := c.nodeExec(ctx, 5*time.Minute, fmt.Sprintf("ctr -a %s -n %s images pull --plain-http %s >/dev/null", nodeContainerdSock, rawNamespace, raw.image)); err != nil {
		return nil, err
	}
	defer func() {
		_ = raw.clean(context.Background(), "")
	}()
	labels := map[string]string{"bench": "pods"}
	rw, err := c.watchReady(ctx, labels)
	if err != nil {
		return nil, err
	}
	defer rw.stop()
	startOne := func(name string) (float64, error) {
		t0 := time.Now()
		if err := c.admin.Create(ctx, benchWebPod(name, c.refs.V1, labels)); err != nil {
			return 0, fmt.Errorf("create pod %s: %w", name, err)
		}
		t, err := rw.waitReady(ctx, []string{name}, 2*time.Minute)
		if err != nil {
			return 0, fmt.Errorf("pod %s: %w", name, err)
		}
		return float64(t.Sub(t0).Microseconds()) / 1000, nil
	}
	fmt.Fprintln(w, "    warm-up: 3 pods and 3 raw containers")
	for i := 0; i < 3; i++ {
		if _, err := startOne(fmt.Sprintf("warm-%d", i)); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	if err := c.deletePods(ctx, labels); err != nil {
		return nil, err
	}
	if err := raw.run(ctx, "ctr-seq", "warm", 3, nil); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	if err := raw.clean(ctx, "warm"); err != nil {
		return nil, err
	}

	if err := sleepCtx(ctx, settle); err != nil {
		return nil, err
	}
	agentIdle, ctrdIdle, err := c.rssPair(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "    idle: agent %.1f MiB, containerd %.1f MiB\n", bench.Summarize(agentIdle).Median, bench.Summarize(ctrdIdle).Median)

	// 100 pods one at a time; they stay, for the RSS with 100 pods.
	seq := make([]float64, 0, 100)
	for i := 0; i < 100; i++ {
		ms, err := startOne(fmt.Sprintf("seq-%d", i))
		if err != nil {
			return nil, err
		}
		seq = append(seq, ms)
	}
	fmt.Fprintf(w, "    berth: 100 pods one at a time, create→Ready p50 %.0f ms, p99 %.0f ms\n", bench.Percentile(seq, 50), bench.Percentile(seq, 99))
	if err := sleepCtx(ctx, settle); err != nil {
		return nil, err
	}
	agent100, ctrd100, err := c.rssPair(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "    100 pods: agent %.1f MiB, containerd %.1f MiB\n", bench.Summarize(agent100).Median, bench.Summarize(ctrd100).Median)
	if err := c.deletePods(ctx, labels); err != nil {
		return nil, err
	}

	var rawSeq struct{ MS []float64 }
	if err := raw.run(ctx, "ctr-seq", "seq", 100, &rawSeq); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "    raw ctr: 100 containers one at a time, run→answering p50 %.0f ms, p99 %.0f ms\n", bench.Percentile(rawSeq.MS, 50), bench.Percentile(rawSeq.MS, 99))
	if err := raw.clean(ctx, "seq"); err != nil {
		return nil, err
	}

	// Bursts of 100, berth and raw alternating; the sequential phase above
	// was their warm-up.
	const burstRuns = 3
	var burst, rawBurst []float64
	for run := 1; run <= burstRuns; run++ {
		names := make([]string, 100)
		for i := range names {
			names[i] = fmt.Sprintf("burst%d-%d", run, i)
		}
		t0 := time.Now()
		if err := parallel(ctx, 100, 100, func(ctx context.Context, i int) error {
			return c.admin.Create(ctx, benchWebPod(names[i], c.refs.V1, labels))
		}); err != nil {
			return nil, fmt.Errorf("burst run %d: %w", run, err)
		}
		last, err := rw.waitReady(ctx, names, 10*time.Minute)
		if err != nil {
			return nil, fmt.Errorf("burst run %d: %w", run, err)
		}
		secs := last.Sub(t0).Seconds()
		if err := c.deletePods(ctx, labels); err != nil {
			return nil, err
		}
		var rb struct{ Seconds float64 }
		prefix := fmt.Sprintf("burst%d", run)
		if err := raw.run(ctx, "ctr-burst", prefix, 100, &rb); err != nil {
			return nil, fmt.Errorf("raw burst run %d: %w", run, err)
		}
		if err := raw.clean(ctx, prefix); err != nil {
			return nil, err
		}
		fmt.Fprintf(w, "    burst run %d: 100 pods Ready in %.1f s; 100 raw ctr run answering in %.1f s\n", run, secs, rb.Seconds)
		burst, rawBurst = append(burst, secs), append(rawBurst, rb.Seconds)
	}

	p99 := bench.NewFigure(figPodStartP99, podDescs[figPodStartP99], "ms", bench.LowerIsBetter, seq, "ctr.run.p99", rawSeq.MS)
	p99.Value, p99.BaselineValue = bench.Percentile(seq, 99), bench.Percentile(rawSeq.MS, 99)
	p99.Ratio = p99.Value / p99.BaselineValue
	p99.WideSpread = false
	return []bench.Figure{
		bench.NewFigure(figPodStartP50, podDescs[figPodStartP50], "ms", bench.LowerIsBetter, seq, "ctr.run.p50", rawSeq.MS),
		p99,
		bench.NewFigure(figPodBurst100, podDescs[figPodBurst100], "s", bench.LowerIsBetter, burst, "ctr.run.burst100", rawBurst),
		bench.NewFigure(figAgentRSSIdle, podDescs[figAgentRSSIdle], "MiB", bench.LowerIsBetter, agentIdle, "containerd.rss.idle", ctrdIdle),
		bench.NewFigure(figAgentRSS100, podDescs[figAgentRSS100], "MiB", bench.LowerIsBetter, agent100, "containerd.rss.pods100", ctrd100),
	}, nil
}
