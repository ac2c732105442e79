// Package probe runs a container's readiness and liveness checks (HTTP GET,
// TCP connect, or a command run inside the container through the runtime)
// and turns their raw outcomes into a verdict with the probe's thresholds.
//
// A Worker checks one probe of one container on its own goroutine: it waits
// InitialDelaySeconds, then checks every PeriodSeconds with a timeout of
// TimeoutSeconds, and calls its OnChange function only when the verdict
// flips (SuccessThreshold successes in a row make it pass, FailureThreshold
// failures in a row make it fail). The Thresholds type holds that arithmetic
// apart from any clock, so it is tested on its own.
//
// This package must never change a container or a pod: it only reports. It
// must never follow redirects off the pod or keep connections between
// checks, so a check measures what a fresh client would meet.
package probe

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
)

// Defaults of the api.Probe fields left zero, as the API documents them.
const (
	DefaultPeriod           = 10 * time.Second
	DefaultTimeout          = 1 * time.Second
	DefaultSuccessThreshold = 1
	DefaultFailureThreshold = 3
)

// Execer runs a command inside a container; the node agent passes its
// runtime, so exec probes need no process of their own.
type Execer interface {
	// Exec runs cmd inside container id and returns its exit code and
	// output, killing it after timeout.
	Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (exitCode int, output []byte, err error)
}

// Target is where a probe checks: the pod's address, the container's ports
// (so probes may name them) and, for exec probes, the container.
type Target struct {
	// PodIP is the pod's address on the pod network.
	PodIP string
	// Ports are the container's declared ports, for named probe ports.
	Ports []api.ContainerPort
	// ContainerID is the runtime's ID of the container, for exec probes.
	ContainerID string
	// Exec runs exec probes; nil fails them.
	Exec Execer
	// Dial, when set, replaces net.Dialer for HTTP and TCP checks (tests,
	// or a node that must dial from inside a network namespace).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Result is one check's outcome.
type Result struct {
	// OK is true when the check passed.
	OK bool
	// Message says why a check failed, for Events and logs.
	Message string
}

// Check runs p once against t, bounded by the probe's timeout. It never
// returns an error: a check that cannot be made is a failed check.
func Check(ctx context.Context, p *api.Probe, t Target) Result {
	timeout := seconds(p.TimeoutSeconds, DefaultTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		return checkHTTP(ctx, p.HTTPGet, t)
	case p.TCPSocket != nil:
		return checkTCP(ctx, p.TCPSocket, t)
	case p.Exec != nil:
		return checkExec(ctx, p.Exec, t, timeout)
	}
	return Result{Message: "probe names no action (httpGet, tcpSocket or exec)"}
}

// ResolvePort turns a probe port (number or container port name) into a
// number.
func ResolvePort(port api.IntOrString, ports []api.ContainerPort) (int, error) {
	if !port.IsString {
		if port.IntVal < 1 || port.IntVal > 65535 {
			return 0, fmt.Errorf("port %d out of range 1-65535", port.IntVal)
		}
		return int(port.IntVal), nil
	}
	for _, cp := range ports {
		if cp.Name == port.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil && n > 0 && n < 65536 {
		return n, nil
	}
	return 0, fmt.Errorf("container has no port named %q", port.StrVal)
}

func dialer(t Target) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if t.Dial != nil {
		return t.Dial
	}
	var d net.Dialer
	return d.DialContext
}

func checkHTTP(ctx context.Context, h *api.HTTPGetAction, t Target) Result {
	port, err := ResolvePort(h.Port, t.Ports)
	if err != nil {
		return Result{Message: "http probe: " + err.Error()}
	}
	if t.PodIP == "" {
		return Result{Message: "http probe: pod has no IP yet"}
	}
	scheme := strings.ToLower(h.Scheme)
	if scheme == "" {
		scheme = "http"
	}
	path := h.Path
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := scheme + "://" + net.JoinHostPort(t.PodIP, strconv.Itoa(port)) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Result{Message: "http probe: " + err.Error()}
	}
	req.Header.Set("User-Agent", "berth-probe")
	tr := &http.Transport{
		DialContext:       dialer(t),
		DisableKeepAlives: true,
		// Probes check liveness, not identity: pods serve self-signed
		// certificates, as Kubernetes probes accept.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		Proxy:           nil,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := c.Do(req)
	if err != nil {
		return Result{Message: fmt.Sprintf("http probe GET %s: %v", url, err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return Result{OK: true}
	}
	return Result{Message: fmt.Sprintf("http probe GET %s: status %d", url, resp.StatusCode)}
}

func checkTCP(ctx context.Context, s *api.TCPSocketAction, t Target) Result {
	port, err := ResolvePort(s.Port, t.Ports)
	if err != nil {
		return Result{Message: "tcp probe: " + err.Error()}
	}
	if t.PodIP == "" {
		return Result{Message: "tcp probe: pod has no IP yet"}
	}
	addr := net.JoinHostPort(t.PodIP, strconv.Itoa(port))
	conn, err := dialer(t)(ctx, "tcp", addr)
	if err != nil {
		return Result{Message: fmt.Sprintf("tcp probe %s: %v", addr, err)}
	}
	_ = conn.Close()
	return Result{OK: true}
}

func checkExec(ctx context.Context, e *api.ExecAction, t Target, timeout time.Duration) Result {
	if t.Exec == nil || t.ContainerID == "" {
		return Result{Message: "exec probe: no container to run it in"}
	}
	if len(e.Command) == 0 {
		return Result{Message: "exec probe: empty command"}
	}
	code, out, err := t.Exec.Exec(ctx, t.ContainerID, e.Command, timeout)
	if err != nil {
		return Result{Message: fmt.Sprintf("exec probe %q: %v", strings.Join(e.Command, " "), err)}
	}
	if code != 0 {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 256 {
			msg = msg[len(msg)-256:]
		}
		return Result{Message: fmt.Sprintf("exec probe %q exited %d: %s", strings.Join(e.Command, " "), code, msg)}
	}
	return Result{OK: true}
}

func seconds(v int32, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return time.Duration(v) * time.Second
}

// Thresholds turns a stream of check outcomes into a verdict: the verdict
// flips to passing after SuccessThreshold passes in a row and to failing
// after FailureThreshold failures in a row. The zero value is unusable; use
// NewThresholds.
type Thresholds struct {
	success, failure int
	passing          bool
	run              int // consecutive outcomes opposite to the verdict
}

// NewThresholds starts with the verdict initial (readiness probes start
// failing, liveness probes passing, as in Kubernetes).
func NewThresholds(p *api.Probe, initial bool) *Thresholds {
	s, f := int(p.SuccessThreshold), int(p.FailureThreshold)
	if s <= 0 {
		s = DefaultSuccessThreshold
	}
	if f <= 0 {
		f = DefaultFailureThreshold
	}
	return &Thresholds{success: s, failure: f, passing: initial}
}

// Observe records one outcome and reports the verdict and whether this
// outcome changed it.
func (t *Thresholds) Observe(ok bool) (passing, changed bool) {
	if ok == t.passing {
		t.run = 0
		return t.passing, false
	}
	t.run++
	need := t.failure
	if ok {
		need = t.success
	}
	if t.run >= need {
		t.passing, t.run = ok, 0
		return t.passing, true
	}
	return t.passing, false
}

// Passing is the current verdict.
func (t *Thresholds) Passing() bool { return t.passing }

// Worker checks one probe periodically until stopped.
type Worker struct {
	probe    *api.Probe
	target   Target
	th       *Thresholds
	onChange func(passing bool, last Result)
	onResult func(r Result)

	mu      sync.Mutex
	passing bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// WorkerOptions are the callbacks of a Worker.
type WorkerOptions struct {
	// Initial is the verdict before the first check.
	Initial bool
	// OnChange is called (on the worker's goroutine) when the verdict
	// flips, with the check that flipped it.
	OnChange func(passing bool, last Result)
	// OnResult, when set, is called after every check (for metrics).
	OnResult func(r Result)
}

// NewWorker makes a worker for p against t; Start runs it.
func NewWorker(p *api.Probe, t Target, o WorkerOptions) *Worker {
	return &Worker{
		probe: p, target: t, th: NewThresholds(p, o.Initial), passing: o.Initial,
		onChange: o.OnChange, onResult: o.OnResult, done: make(chan struct{}),
	}
}

// Start runs checks until ctx ends or Stop is called.
func (w *Worker) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	w.cancel = cancel
	w.mu.Unlock()
	go w.run(ctx)
}

// Stop ends the worker and waits for its goroutine; Stop may be called twice.
func (w *Worker) Stop() {
	w.mu.Lock()
	cancel := w.cancel
	w.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-w.done
}

// Passing is the worker's current verdict.
func (w *Worker) Passing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.passing
}

func (w *Worker) run(ctx context.Context) {
	defer close(w.done)
	delay := seconds(w.probe.InitialDelaySeconds, 0)
	period := seconds(w.probe.PeriodSeconds, DefaultPeriod)
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		r := Check(ctx, w.probe, w.target)
		if ctx.Err() != nil {
			return
		}
		if w.onResult != nil {
			w.onResult(r)
		}
		passing, changed := w.th.Observe(r.OK)
		if changed {
			w.mu.Lock()
			w.passing = passing
			w.mu.Unlock()
			if w.onChange != nil {
				w.onChange(passing, r)
			}
		}
		timer.Reset(period)
	}
}
