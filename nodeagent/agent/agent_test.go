package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/client/clienttest"
	"github.com/berth-io/berth/nodeagent/runtime"
	"github.com/berth-io/berth/nodeagent/runtime/fake"
)

const (
	nodeName = "node-a"
	webImage = "registry.test:5000/web:v1"
)

type harness struct {
	t     *testing.T
	srv   *clienttest.Server
	admin *client.Client
	rt    runtime.Runtime
	fake  *fake.Runtime
	net   *fakeNetwork
	proxy *fakeProxy
	cfg   Config
	log   *slog.Logger // the agent's logger; nil discards

	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	srv, err := clienttest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	h := &harness{t: t, srv: srv, admin: srv.Client(), fake: fake.New(), net: newFakeNetwork(), proxy: &fakeProxy{}}
	h.rt = h.fake
	h.fake.AddRegistryImage(webImage)
	h.cfg = Config{
		NodeName: nodeName, InternalIP: "198.18.1.11", ControlPlane: []string{srv.URL()}, CACertFile: "unused",
		StateDir: t.TempDir(), PreloadDir: t.TempDir(), ManifestFile: "/nonexistent",
		HeartbeatInterval: Duration(50 * time.Millisecond), RestartBackoff: Duration(time.Hour),
		StopGateTimeout: Duration(time.Hour),
	}
	if mutate != nil {
		mutate(&h.cfg)
	}
	ctx := h.ctx()
	if err := h.admin.Create(ctx, &api.Node{Metadata: api.ObjectMeta{Name: nodeName}, Spec: api.NodeSpec{PodCIDR: "10.244.1.0/24"}}); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

// start runs an agent over the harness's runtime until the test ends or
// stop is called.
func (h *harness) start() *Agent {
	h.t.Helper()
	a, err := New(h.cfg, Deps{
		Runtime: h.rt, Client: h.srv.Client(),
		NewNetwork:    func(context.Context, netip.Prefix) (Network, error) { return h.net, nil },
		NewServices:   func(context.Context, netip.Prefix, Network) (ServiceProxy, error) { return h.proxy, nil },
		Host:          HostInfo{CPUs: 2, MemoryBytes: 4 << 30, KernelVersion: "6.1.0-test", Architecture: "amd64"},
		AgentEndpoint: "https://198.18.1.11:10250",
	}, h.log)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- a.Run(ctx) }()
	h.t.Cleanup(h.stop)
	return a
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("agent Run: %v", err)
	}
	h.cancel = nil
}

func (h *harness) createPod(name string, mutate func(*api.Pod)) *api.Pod {
	h.t.Helper()
	p := &api.Pod{
		Metadata: api.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": name}},
		Spec: api.PodSpec{NodeName: nodeName, Containers: []api.Container{{Name: "web", Image: webImage,
			Ports: []api.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
	if mutate != nil {
		mutate(p)
	}
	if err := h.admin.Create(h.ctx(), p); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *harness) pod(name string) *api.Pod {
	p := &api.Pod{}
	if err := h.admin.Get(h.ctx(), "default", name, p); err != nil {
		if api.IsNotFound(err) {
			return nil
		}
		h.t.Fatal(err)
	}
	return p
}

// waitPod waits until cond holds for the pod and returns it.
func (h *harness) waitPod(name, what string, cond func(p *api.Pod) bool) *api.Pod {
	h.t.Helper()
	var last *api.Pod
	err := clienttest.WaitFor(h.ctx(), func() bool {
		last = h.pod(name)
		return last != nil && cond(last)
	})
	if err != nil {
		h.t.Fatalf("pod %s never %s; last status: %+v", name, what, last)
	}
	return last
}

func (h *harness) wait(what string, cond func() bool) {
	h.t.Helper()
	if err := clienttest.WaitFor(h.ctx(), cond); err != nil {
		h.t.Fatalf("never %s", what)
	}
}

func (h *harness) events(reason string) []api.Event {
	var l api.EventList
	if err := h.admin.List(h.ctx(), &l, client.ListOptions{Namespace: "default"}); err != nil {
		h.t.Fatal(err)
	}
	var out []api.Event
	for _, e := range l.Items {
		if e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func containerStatus(p *api.Pod) api.ContainerStatus {
	if len(p.Status.ContainerStatuses) == 0 {
		return api.ContainerStatus{}
	}
	return p.Status.ContainerStatuses[0]
}

func TestPodStartsAndBecomesReadyWithItsEnvironment(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	h.createPod("web-1", nil)
	p := h.waitPod("web-1", "became Ready", api.IsPodReady)
	if p.Status.Phase != api.PodRunning || p.Status.PodIP == "" || p.Status.HostIP != "198.18.1.11" || p.Status.StartTime == nil {
		t.Fatalf("status = %+v", p.Status)
	}
	cs := containerStatus(p)
	if cs.State.Running == nil || !cs.Ready || cs.ImageID == "" || cs.ContainerID == "" {
		t.Fatalf("container status = %+v", cs)
	}
	spec, ok := h.fake.Spec(cs.ContainerID)
	if !ok {
		t.Fatalf("runtime has no container %s", cs.ContainerID)
	}
	for _, want := range []string{"POD_NAME=web-1", "POD_NAMESPACE=default", "POD_IP=" + p.Status.PodIP} {
		if !slices.Contains(spec.Env, want) {
			t.Errorf("env %v lacks %s", spec.Env, want)
		}
	}
	resolv, err := os.ReadFile(spec.ResolvConfPath)
	if err != nil || !strings.Contains(string(resolv), "nameserver 10.244.1.1") || !strings.Contains(string(resolv), "search default.svc.berth") {
		t.Fatalf("resolv.conf = %q, %v", resolv, err)
	}
	if spec.NetNSPath == "" || spec.Meta.PodUID != p.Metadata.UID {
		t.Fatalf("spec = %+v", spec)
	}
	n := &api.Node{}
	if err := h.admin.Get(h.ctx(), "", nodeName, n); err != nil {
		t.Fatal(err)
	}
	if !api.IsNodeReady(n) || n.Metadata.Labels[HostnameLabel] != nodeName || n.Status.AgentEndpoint == "" ||
		n.Status.NodeInfo.KernelVersion != "6.1.0-test" || milli(t, n.Status.Capacity[api.ResourceCPU]) != 2000 {
		t.Fatalf("node = %+v", n)
	}
}

func TestCrashLoopReportsExitCodeAndLastLogLines(t *testing.T) {
	h := newHarness(t, nil) // back-off of an hour: the container stays down
	h.start()
	h.createPod("crash", nil)
	p := h.waitPod("crash", "ran", func(p *api.Pod) bool { return containerStatus(p).State.Running != nil })
	id := containerStatus(p).ContainerID
	spec, _ := h.fake.Spec(id)
	if err := os.WriteFile(spec.LogPath, []byte("starting\nloading config\nfatal: no config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.fake.Exit(id, 3); err != nil {
		t.Fatal(err)
	}
	p = h.waitPod("crash", "showed CrashLoopBackOff", func(p *api.Pod) bool {
		w := containerStatus(p).State.Waiting
		return w != nil && w.Reason == "CrashLoopBackOff"
	})
	last := containerStatus(p).LastState.Terminated
	if last == nil || last.ExitCode != 3 || last.Reason != "Error" || !strings.Contains(last.Message, "fatal: no config") {
		t.Fatalf("last termination = %+v", last)
	}
	if api.IsPodReady(p) {
		t.Fatal("a crash-looping pod must not be Ready")
	}
	if len(h.events("BackOff")) == 0 {
		t.Fatal("no BackOff event recorded")
	}
}

func TestRestartPolicyDecidesWhetherAnExitedContainerRuns(t *testing.T) {
	tests := []struct {
		name       string
		policy     api.RestartPolicy
		code       int32
		restarts   bool
		finalPhase api.PodPhase
	}{
		{"always restarts a clean exit", api.RestartAlways, 0, true, api.PodRunning},
		{"on-failure restarts a failure", api.RestartOnFailure, 1, true, api.PodRunning},
		{"on-failure leaves a clean exit Succeeded", api.RestartOnFailure, 0, false, api.PodSucceeded},
		{"never leaves a failure Failed", api.RestartNever, 2, false, api.PodFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.RestartBackoff = Duration(time.Millisecond) })
			h.start()
			h.createPod("p", func(p *api.Pod) { p.Spec.RestartPolicy = tc.policy })
			p := h.waitPod("p", "ran", func(p *api.Pod) bool { return containerStatus(p).State.Running != nil })
			first := containerStatus(p).ContainerID
			if err := h.fake.Exit(first, tc.code); err != nil {
				t.Fatal(err)
			}
			if tc.restarts {
				p = h.waitPod("p", "restarted", func(p *api.Pod) bool {
					cs := containerStatus(p)
					return cs.RestartCount == 1 && cs.State.Running != nil
				})
				if containerStatus(p).ContainerID == first {
					t.Fatal("a restart must run a new container")
				}
				if lt := containerStatus(p).LastState.Terminated; lt == nil || lt.ExitCode != tc.code {
					t.Fatalf("last state = %+v", lt)
				}
			} else {
				p = h.waitPod("p", "finished", func(p *api.Pod) bool { return p.Status.Phase == tc.finalPhase })
				if cs := containerStatus(p); cs.RestartCount != 0 || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != tc.code {
					t.Fatalf("container status = %+v", cs)
				}
			}
		})
	}
}

func TestBackoffDoublesToItsCapAndResetsAfterALongRun(t *testing.T) {
	b := restartBackoff{initial: 10 * time.Second, max: 5 * time.Minute, reset: 10 * time.Minute}
	for crashes, want := range map[int]time.Duration{
		0: 0, 1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 4: 80 * time.Second,
		5: 160 * time.Second, 6: 5 * time.Minute, 7: 5 * time.Minute, 60: 5 * time.Minute,
	} {
		if got := b.delay(crashes); got != want {
			t.Errorf("delay(%d) = %s, want %s", crashes, got, want)
		}
	}
	tests := []struct {
		before int
		ran    time.Duration
		want   int
	}{
		{0, time.Second, 1},
		{4, time.Minute, 5},
		{6, 10 * time.Minute, 1},
		{6, time.Hour, 1},
	}
	for _, tc := range tests {
		if got := b.crashesAfter(tc.before, tc.ran); got != tc.want {
			t.Errorf("crashesAfter(%d, %s) = %d, want %d", tc.before, tc.ran, got, tc.want)
		}
	}
	for _, tc := range []struct {
		policy api.RestartPolicy
		code   int32
		want   bool
	}{
		{api.RestartAlways, 0, true}, {"", 0, true}, {api.RestartOnFailure, 0, false},
		{api.RestartOnFailure, 137, true}, {api.RestartNever, 1, false},
	} {
		if got := shouldRestart(tc.policy, tc.code); got != tc.want {
			t.Errorf("shouldRestart(%q, %d) = %v, want %v", tc.policy, tc.code, got, tc.want)
		}
	}
}

func TestUnpullableImageIsReportedWhileAnotherPodStarts(t *testing.T) {
	h := newHarness(t, nil)
	const bad = "registry.test:5000/missing:v9"
	h.fake.FailPull(bad, fake.PullError(bad, runtime.ReasonImageNotFound))
	h.start()
	h.createPod("broken", func(p *api.Pod) { p.Spec.Containers[0].Image = bad })
	h.createPod("good", nil)
	h.waitPod("good", "became Ready", api.IsPodReady)
	p := h.waitPod("broken", "reported the pull failure", func(p *api.Pod) bool {
		w := containerStatus(p).State.Waiting
		return w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff")
	})
	if msg := containerStatus(p).State.Waiting.Message; p.Status.Phase != api.PodPending || !strings.Contains(msg, bad) ||
		!strings.HasPrefix(msg, string(runtime.ReasonImageNotFound)+": ") {
		t.Fatalf("status = %+v", p.Status)
	}
	h.wait("recorded a FailedPull event", func() bool { return len(h.events("FailedPull")) > 0 })
}

func TestLivenessFailureRestartsTheContainer(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RestartBackoff = Duration(time.Millisecond) })
	var mu sync.Mutex
	failing := map[string]bool{}
	h.fake.SetExec(func(id string, _ []string) (int, []byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if failing[id] {
			return 1, []byte("unhealthy"), nil
		}
		return 0, nil, nil
	})
	h.start()
	h.createPod("live", func(p *api.Pod) {
		p.Spec.Containers[0].LivenessProbe = &api.Probe{Exec: &api.ExecAction{Command: []string{"check"}}, PeriodSeconds: 1, FailureThreshold: 1}
	})
	p := h.waitPod("live", "ran", func(p *api.Pod) bool { return containerStatus(p).State.Running != nil })
	first := containerStatus(p).ContainerID
	mu.Lock()
	failing[first] = true
	mu.Unlock()
	p = h.waitPod("live", "was restarted", func(p *api.Pod) bool {
		cs := containerStatus(p)
		return cs.RestartCount == 1 && cs.State.Running != nil
	})
	if containerStatus(p).ContainerID == first {
		t.Fatal("restart reused the unhealthy container")
	}
	if len(h.events("Unhealthy")) == 0 || len(h.events("Killing")) == 0 {
		t.Fatal("liveness failure left no Unhealthy and Killing events")
	}
}

func TestReadinessProbeGatesPodReady(t *testing.T) {
	h := newHarness(t, nil)
	var mu sync.Mutex
	ready := false
	h.fake.SetExec(func(string, []string) (int, []byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if ready {
			return 0, nil, nil
		}
		return 1, nil, nil
	})
	h.start()
	h.createPod("r", func(p *api.Pod) {
		p.Spec.Containers[0].ReadinessProbe = &api.Probe{Exec: &api.ExecAction{Command: []string{"ready"}}, PeriodSeconds: 1}
	})
	p := h.waitPod("r", "ran", func(p *api.Pod) bool { return containerStatus(p).State.Running != nil })
	if api.IsPodReady(p) || containerStatus(p).Ready {
		t.Fatal("pod Ready before its readiness probe passed")
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	h.waitPod("r", "became Ready", api.IsPodReady)
}

func milli(t *testing.T, q api.Quantity) int64 {
	v, err := q.MilliValue()
	if err != nil {
		t.Fatalf("quantity %q: %v", q, err)
	}
	return v
}

func TestPullFailureWaitsAsErrImagePullThenImagePullBackOff(t *testing.T) {
	const ref = "registry.test:5000/web:v1"
	cases := []struct {
		name       string
		reason     runtime.Reason
		failures   int
		want       string
		wantPrefix string
	}{
		{"first failure", runtime.ReasonImageNotFound, 1, "ErrImagePull", "ImageNotFound: "},
		{"later failures back off", runtime.ReasonRegistryUnavailable, 3, "ImagePullBackOff", "RegistryUnavailable: "},
		{"no finer reason", "", 1, "ErrImagePull", "pull image "},
		{"invalid name never backs off", runtime.ReasonInvalidImageName, 4, "InvalidImageName", "pull image "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := runtime.Errorf("pull image", ref, runtime.ErrImagePull, tc.reason, "registry said no")
			w := pullWaiting(err, tc.failures, 4*time.Second)
			if w.Reason != tc.want || !strings.HasPrefix(w.Message, tc.wantPrefix) || !strings.Contains(w.Message, "next attempt in 4s") {
				t.Fatalf("waiting = %+v, want reason %s and a message starting %q", w, tc.want, tc.wantPrefix)
			}
		})
	}
}

func TestFailingReadinessProbeIsRecordedAsAnUnhealthyWarningNamingTheFailure(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.SetExec(func(string, []string) (int, []byte, error) { return 1, []byte("status 503"), nil })
	h.start()
	h.createPod("r", func(p *api.Pod) {
		p.Spec.Containers[0].ReadinessProbe = &api.Probe{Exec: &api.ExecAction{Command: []string{"ready"}}, PeriodSeconds: 1}
	})
	h.wait("an Unhealthy event", func() bool { return len(h.events("Unhealthy")) > 0 })
	e := h.events("Unhealthy")[0]
	if e.Type != api.EventWarning || e.InvolvedObject.Name != "r" {
		t.Fatalf("event %+v: want a Warning about pod r", e)
	}
	if !strings.HasPrefix(e.Message, "Readiness probe of container web failed: ") || !strings.Contains(e.Message, "503") {
		t.Fatalf("message %q does not say which probe failed and how", e.Message)
	}
}

func TestUnhealthyEventsAreLimitedWhileAProbeKeepsFailing(t *testing.T) {
	var l unhealthyLimiter
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var recorded []int
	for s := 0; s < 60; s++ { // a check every second for a minute
		ok := s >= 25 && s < 30 // passing for five seconds in the middle
		if l.record(ok, start.Add(time.Duration(s)*time.Second)) {
			recorded = append(recorded, s)
		}
	}
	want := []int{0, 10, 20, 30, 40, 50}
	if !slices.Equal(recorded, want) {
		t.Fatalf("events recorded at seconds %v, want %v (the first failure at once, and after a pass, then one per %s)", recorded, want, unhealthyEventInterval)
	}
}
