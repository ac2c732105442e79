package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own so
// several servers in one process (tests) never collide.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	watches  prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_apiserver_requests_total",
			Help: "API requests by verb, resource and HTTP status code.",
		}, []string{"verb", "resource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_apiserver_request_duration_seconds",
			Help:    "API request latency by verb and resource (watches and log streams excluded).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"verb", "resource"}),
		watches: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_apiserver_open_watches",
			Help: "Watch streams currently open.",
		}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.watches,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// requestLabels is filled by the router so the metrics middleware can count
// a request by what it was, not by its path.
type requestLabels struct {
	verb, resource string
}

const labelsKey ctxKey = 100

func (s *Server) setLabels(r *http.Request, a attributes) {
	if l, ok := r.Context().Value(labelsKey).(*requestLabels); ok {
		l.verb, l.resource = a.verb, a.resource
	}
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// deadlines).
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts every request and times those that are not streams.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		labels := &requestLabels{verb: "other", resource: ""}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), labelsKey, labels)))
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(labels.verb, labels.resource, strconv.Itoa(code)).Inc()
		if labels.verb != verbWatch && labels.verb != verbLog && labels.verb != verbSnapshot {
			s.metrics.latency.WithLabelValues(labels.verb, labels.resource).Observe(time.Since(start).Seconds())
		}
	})
}
