package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/berth-io/berth/acceptance/workloads"
	"github.com/berth-io/berth/bench"
	"github.com/berth-io/berth/control/api"
)

// The service figures. Every load runs on the node host (the agent's
// nftables rules there handle locally generated traffic too), against one
// pod of the test web app; the baseline is the same load straight to the
// pod's IP and port in the same run.
const (
	figSvcThroughput          = "service.throughput"
	figSvcThroughputFresh     = "service.throughput.fresh"
	figSvcThroughputNodePort  = "service.throughput.nodeport"
	figSvcThroughputNPFresh   = "service.throughput.nodeport.fresh"
	figSvcLatencyAdded        = "service.latency.added"
	figSvcLatencyAddedFresh   = "service.latency.added.fresh"
	figSvcLatencyAddedNPFresh = "service.latency.added.nodeport.fresh"
)

var svcDescs = map[string]string{
	figSvcThroughput:          "HTTP GET/s through the service's cluster IP from the node host, 8 keep-alive connections, 1 pod; baseline: the same load to the pod IP directly",
	figSvcThroughputFresh:     "HTTP GET/s through the cluster IP, 8 workers each opening a fresh TCP connection per request (closed by the client with a reset, so no TIME_WAIT piles up); baseline: the same to the pod IP",
	figSvcThroughputNodePort:  "HTTP GET/s through the node port (node address), 8 keep-alive connections; baseline: the same load to the pod IP",
	figSvcThroughputNPFresh:   "HTTP GET/s through the node port, a fresh connection per request, 8 workers; baseline: the same to the pod IP",
	figSvcLatencyAdded:        "per-request latency added by the cluster IP on one keep-alive connection, one request at a time: p50 through the service minus p50 direct (µs); baseline: the direct p50",
	figSvcLatencyAddedFresh:   "per-request latency added by the cluster IP with a fresh connection per request (dial + GET + answer), one at a time: p50 through the service minus p50 direct (µs); baseline: the direct p50",
	figSvcLatencyAddedNPFresh: "per-request latency added by the node port with a fresh connection per request, one at a time: p50 through it minus p50 direct (µs); baseline: the direct p50",
}

var svcFigures = []string{figSvcThroughput, figSvcThroughputFresh, figSvcThroughputNodePort, figSvcThroughputNPFresh,
	figSvcLatencyAdded, figSvcLatencyAddedFresh, figSvcLatencyAddedNPFresh}

func init() {
	bench.Register(bench.Scenario{Name: "service", Figures: svcFigures, Run: runService})
}

// loadRun is one http-load's outcome.
type loadRun struct {
	RPS        float64 `json:"rps"`
	P50us      float64 `json:"p50_us"`
	Requests   int     `json:"requests"`
	Failed     int     `json:"failed"`
	FirstError string  `json:"first_error"`
}

// nodeLoad runs nodebench (at bin on the node) http-load against addr on
// the node host.
func (c *berthCluster) nodeLoad(ctx context.Context, bin, addr string, conns int, dur time.Duration, fresh bool) (loadRun, error) {
	mode := "keepalive"
	if fresh {
		mode = "fresh"
	}
	out, err := c.nodeExec(ctx, dur+time.Minute, fmt.Sprintf("%s http-load -addr %s -conns %d -duration %s -mode %s", bin, addr, conns, dur, mode))
	if err != nil {
		return loadRun{}, err
	}
	var res loadRun
	if err := json.Unmarshal([]byte(lastLines(out, 1)), &res); err != nil {
		return loadRun{}, fmt.Errorf("http-load output %q: %w", out, err)
	}
	return res, nil
}

func runService(ctx context.Context, w io.Writer) ([]bench.Figure, error) {
	if reason := nodePrereqs(); reason != "" {
		return skipAll(svcFigures, svcDescs, reason), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	c, nb, down, err := upNodebenchBed(ctx, w)
	if err != nil {
		return nil, err
	}
	defer down()

	labels := map[string]string{"bench": "service"}
	rw, err := c.watchReady(ctx, labels)
	if err != nil {
		return nil, err
	}
	defer rw.stop()
	if err := c.admin.Create(ctx, benchWebPod("svc-0", c.refs.V1, labels)); err != nil {
		return nil, err
	}
	if _, err := rw.waitReady(ctx, []string{"svc-0"}, 3*time.Minute); err != nil {
		return nil, err
	}
	var pod api.Pod
	if err := c.admin.Get(ctx, "default", "svc-0", &pod); err != nil {
		return nil, err
	}
	svc := &api.Service{
		Metadata: api.ObjectMeta{Name: "bench", Namespace: "default"},
		Spec: api.ServiceSpec{Type: api.ServiceNodePort, Selector: labels,
			Ports: []api.ServicePort{{Port: 80, TargetPort: api.FromInt(int32(workloads.Port))}}},
	}
	if err := c.admin.Create(ctx, svc); err != nil {
		return nil, fmt.Errorf("create service: %w", err)
	}
	direct := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(workloads.Port))
	clusterIP := net.JoinHostPort(svc.Spec.ClusterIP, "80")
	nodePort := net.JoinHostPort(c.node.Address, strconv.Itoa(int(svc.Spec.Ports[0].NodePort)))
	fmt.Fprintf(w, "    pod %s, cluster IP %s, node port %s (loads run on the node host)\n", direct, clusterIP, nodePort)
	for _, addr := range []string{direct, clusterIP, nodePort} {
		if err := c.poll(ctx, addr+" answering on the node", time.Minute, func() bool {
			r, err := c.nodeLoad(ctx, nb, addr, 1, 200*time.Millisecond, false)
			return err == nil && r.Failed == 0
		}); err != nil {
			return nil, err
		}
	}

	type key struct {
		target string
		fresh  bool
	}
	rps := map[key][]float64{}
	lat := map[key][]float64{}
	// Failed and total requests over the measured runs, and a first error.
	failed, total := map[key]int{}, map[key]int{}
	firstErr := map[key]string{}
	const runs = 3
	const loadDur, latDur = 3 * time.Second, 2 * time.Second
	for run := 0; run <= runs; run++ { // run 0 is the warm-up
		line := fmt.Sprintf("    run %d:", run)
		for _, fresh := range []bool{false, true} {
			for _, t := range []string{direct, clusterIP, nodePort} {
				ld, err := c.nodeLoad(ctx, nb, t, 8, loadDur, fresh)
				if err != nil {
					return nil, fmt.Errorf("load on %s (fresh %v): %w", t, fresh, err)
				}
				lt, err := c.nodeLoad(ctx, nb, t, 1, latDur, fresh)
				if err != nil {
					return nil, fmt.Errorf("latency on %s (fresh %v): %w", t, fresh, err)
				}
				line += fmt.Sprintf(" %s%s %.0f/s p50 %.0fµs", map[bool]string{false: "", true: "fresh "}[fresh], t, ld.RPS, lt.P50us)
				if n := ld.Failed + lt.Failed; n > 0 {
					line += fmt.Sprintf(" (%d failed: %s)", n, firstLineOf(ld.FirstError+lt.FirstError))
				}
				line += ";"
				if run > 0 {
					k := key{t, fresh}
					rps[k], lat[k] = append(rps[k], ld.RPS), append(lat[k], lt.P50us)
					failed[k] += ld.Failed + lt.Failed
					total[k] += ld.Requests + ld.Failed + lt.Requests + lt.Failed
					if firstErr[k] == "" {
						firstErr[k] = ld.FirstError + lt.FirstError
					}
				}
			}
		}
		fmt.Fprintln(w, line)
	}
	added := func(t string, fresh bool) []float64 {
		var out []float64
		for i := range lat[key{t, fresh}] {
			out = append(out, lat[key{t, fresh}][i]-lat[key{direct, fresh}][i])
		}
		return out
	}
	// A figure whose loads saw failed requests says how many, in its
	// description (the rates count successful answers only).
	desc := func(name, t string, fresh bool) string {
		d := svcDescs[name]
		for _, k := range []key{{t, fresh}, {direct, fresh}} {
			if failed[k] > 0 {
				what := "through it"
				if k.target == direct {
					what = "direct"
				}
				d += fmt.Sprintf("; %d of %d requests %s FAILED (%s)", failed[k], total[k], what, firstLineOf(firstErr[k]))
			}
		}
		return d
	}
	return []bench.Figure{
		bench.NewFigure(figSvcThroughput, desc(figSvcThroughput, clusterIP, false), "req/s", bench.HigherIsBetter, rps[key{clusterIP, false}], "podip.throughput", rps[key{direct, false}]),
		bench.NewFigure(figSvcThroughputFresh, desc(figSvcThroughputFresh, clusterIP, true), "req/s", bench.HigherIsBetter, rps[key{clusterIP, true}], "podip.throughput.fresh", rps[key{direct, true}]),
		bench.NewFigure(figSvcThroughputNodePort, desc(figSvcThroughputNodePort, nodePort, false), "req/s", bench.HigherIsBetter, rps[key{nodePort, false}], "podip.throughput", rps[key{direct, false}]),
		bench.NewFigure(figSvcThroughputNPFresh, desc(figSvcThroughputNPFresh, nodePort, true), "req/s", bench.HigherIsBetter, rps[key{nodePort, true}], "podip.throughput.fresh", rps[key{direct, true}]),
		bench.NewFigure(figSvcLatencyAdded, desc(figSvcLatencyAdded, clusterIP, false), "µs", bench.LowerIsBetter, added(clusterIP, false), "podip.latency.p50", lat[key{direct, false}]),
		bench.NewFigure(figSvcLatencyAddedFresh, desc(figSvcLatencyAddedFresh, clusterIP, true), "µs", bench.LowerIsBetter, added(clusterIP, true), "podip.latency.fresh.p50", lat[key{direct, true}]),
		bench.NewFigure(figSvcLatencyAddedNPFresh, desc(figSvcLatencyAddedNPFresh, nodePort, true), "µs", bench.LowerIsBetter, added(nodePort, true), "podip.latency.fresh.p50", lat[key{direct, true}]),
	}, nil
}
