package agent

import (
	"github.com/berth-io/berth/control/api"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the agent's Prometheus series, served on /metrics.
type metrics struct {
	reg         *prometheus.Registry
	syncLatency prometheus.Histogram
	restarts    prometheus.Counter
	exits       prometheus.Counter
	probes      *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		syncLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_agent_pod_sync_duration_seconds", Help: "Time one pod sync took (pull, create, start, status).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_agent_container_restarts_total", Help: "Containers restarted after they exited or failed liveness.",
		}),
		exits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_agent_container_exits_total", Help: "Container processes that exited.",
		}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_agent_probe_results_total", Help: "Probe checks by kind and result.",
		}, []string{"kind", "result"}),
	}
	m.reg.MustRegister(m.syncLatency, m.restarts, m.exits, m.probes)
	return m
}

func (m *metrics) probe(kind string, ok bool) {
	r := "failure"
	if ok {
		r = "success"
	}
	m.probes.WithLabelValues(kind, r).Inc()
}

// registerGauges adds the series read from the agent's state at scrape time.
func (a *Agent) registerGauges() {
	a.met.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_agent_pods", Help: "Pods the agent runs (workers)."},
			func() float64 {
				a.mu.Lock()
				defer a.mu.Unlock()
				return float64(len(a.workers))
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_agent_containers_running", Help: "Containers whose pods' status says running."},
			func() float64 {
				if a.pods == nil {
					return 0
				}
				n := 0
				for _, o := range a.pods.List() {
					for _, s := range o.(*api.Pod).Status.ContainerStatuses {
						if s.State.Running != nil {
							n++
						}
					}
				}
				return float64(n)
			}),
	)
}
