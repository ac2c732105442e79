package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/nodeagent/probe"
	"github.com/berth-io/berth/nodeagent/runtime"
)

// adoption is what an agent restart found of one pod: its containers and
// its network attachment.
type adoption struct {
	containers []runtime.ContainerInfo
	netns      string
	ip         netip.Addr
}

// ctrState is the agent's view of one container of a pod. Only the pod's
// worker goroutine touches it (probe callbacks only wake the worker).
type ctrState struct {
	name         string
	id           string // current runtime container, "" when none
	imageDigest  string
	running      bool
	startedAt    time.Time
	restartCount int32
	crashes      int // crashes in a row, for back-off
	restartAt    time.Time
	done         bool // exited and the policy says stay down
	lastTerm     *api.ContainerStateTerminated
	waiting      *api.ContainerStateWaiting
	pullRetryAt  time.Time
	pullFailures int
	killing      bool // stopped by the agent (liveness), exit expected
	// adoptedReady is the readiness the API last reported for a running
	// container an agent restart adopted: its readiness probe starts from
	// it, so restarting the agent never flaps Ready pods out of their
	// services. Cleared once used.
	adoptedReady bool

	readiness, liveness *probe.Worker
	livenessFailed      bool
	probeCancel         context.CancelFunc
}

// podWorker makes one pod's containers match its spec. It runs on its own
// goroutine so one pod's slow pull or crash loop never delays another.
type podWorker struct {
	a         *Agent
	uid       string
	namespace string
	name      string
	wake      chan struct{}

	mu     sync.Mutex
	exits  []runtime.ExitEvent
	probed bool // a probe verdict changed since the last sync

	// Worker goroutine only:
	spec      *api.Pod // last seen pod, kept after it leaves the node
	netns     string
	ip        netip.Addr
	netRetry  time.Time
	netFails  int
	netErr    error
	startTime time.Time
	ctrs      map[string]*ctrState
	retryAt   time.Time // a failed step wants another try
}

// podChanged is the pod informer's handler: make sure the pod has a worker
// and wake it.
func (a *Agent) podChanged(p *api.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.workers[p.Metadata.UID]
	if w == nil {
		if a.runCtx == nil || a.runCtx.Err() != nil {
			return
		}
		if api.IsPodFinished(p) && len(p.Status.ContainerStatuses) > 0 && a.adopt[p.Metadata.UID] == nil && !api.IsPodTerminating(p) {
			return // finished earlier and nothing of it left here
		}
		w = &podWorker{
			a: a, uid: p.Metadata.UID, namespace: p.Metadata.Namespace, name: p.Metadata.Name,
			wake: make(chan struct{}, 1), ctrs: map[string]*ctrState{},
		}
		if ad := a.adopt[p.Metadata.UID]; ad != nil {
			delete(a.adopt, p.Metadata.UID)
			w.adopt(ad, p)
		}
		a.workers[w.uid] = w
		a.workerWG.Add(1)
		go w.loop(a.runCtx)
	}
	w.poke()
}

func (w *podWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// exited queues a container exit for the worker.
func (w *podWorker) exited(ev runtime.ExitEvent) {
	w.mu.Lock()
	w.exits = append(w.exits, ev)
	w.mu.Unlock()
	w.poke()
}

// current returns the pod as the informer has it, or nil when it no longer
// is bound here (or was replaced by a pod of the same name).
func (w *podWorker) current() *api.Pod {
	o, ok := w.a.pods.Get(w.namespace, w.name)
	if !ok {
		return nil
	}
	p := o.(*api.Pod)
	if p.Metadata.UID != w.uid || p.Spec.NodeName != w.a.cfg.NodeName {
		return nil
	}
	return client.DeepCopy(p)
}

func (w *podWorker) loop(ctx context.Context) {
	defer w.a.workerWG.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		start := time.Now()
		finished := w.sync(ctx)
		w.a.met.syncLatency.Observe(time.Since(start).Seconds())
		if finished {
			w.a.mu.Lock()
			delete(w.a.workers, w.uid)
			w.a.mu.Unlock()
			return
		}
		if ctx.Err() != nil {
			w.stopProbes()
			return
		}
		next := w.nextWake()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !next.IsZero() {
			timer.Reset(max(next.Sub(w.a.now()), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			w.stopProbes()
			return
		case <-w.wake:
		case <-timer.C:
		}
	}
}

// nextWake is the earliest time a back-off or retry ends.
func (w *podWorker) nextWake() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	consider(w.retryAt)
	if w.ip == (netip.Addr{}) {
		consider(w.netRetry)
	}
	for _, cs := range w.ctrs {
		if cs.id == "" && !cs.done {
			consider(cs.pullRetryAt)
		}
		if !cs.running && !cs.done && cs.id != "" {
			consider(cs.restartAt)
		}
	}
	return next
}

func (w *podWorker) podDir() string { return filepath.Join(w.a.cfg.StateDir, "pods", w.uid) }

func (w *podWorker) logPath(container string) string {
	return filepath.Join(w.a.cfg.StateDir, "logs", w.namespace+"_"+w.name+"_"+w.uid, container+".log")
}

func (a *Agent) backoff() restartBackoff {
	return restartBackoff{
		initial: a.cfg.RestartBackoff.or(DefaultRestartBackoff),
		max:     a.cfg.MaxRestartBackoff.or(DefaultMaxBackoff),
		reset:   a.cfg.BackoffReset.or(DefaultBackoffReset),
	}
}

// adopt takes over what a previous agent left running for p.
func (w *podWorker) adopt(ad *adoption, p *api.Pod) {
	w.netns, w.ip = ad.netns, ad.ip
	byName := map[string][]runtime.ContainerInfo{}
	for _, c := range ad.containers {
		byName[c.Meta.ContainerName] = append(byName[c.Meta.ContainerName], c)
	}
	for name, cs := range byName {
		sort.Slice(cs, func(i, j int) bool { return cs[i].Meta.RestartCount > cs[j].Meta.RestartCount })
		latest := cs[0]
		st := &ctrState{name: name, id: latest.ID, imageDigest: latest.ImageDigest, restartCount: latest.Meta.RestartCount}
		switch latest.State.Status {
		case runtime.StatusRunning:
			st.running, st.startedAt = true, latest.State.StartedAt
			st.adoptedReady = reportedReady(p, name, latest.ID)
		default:
			st.crashes = 1
			st.lastTerm = w.termination(latest.ID, name, latest.State.ExitCode, latest.State.OOMKilled, latest.State.StartedAt, latest.State.FinishedAt)
			st.restartAt = latest.State.FinishedAt.Add(w.a.backoff().delay(1))
		}
		if w.startTime.IsZero() || (!latest.CreatedAt.IsZero() && latest.CreatedAt.Before(w.startTime)) {
			w.startTime = latest.CreatedAt
		}
		w.ctrs[name] = st
		for _, old := range cs[1:] {
			if err := w.a.rt.RemoveContainer(context.Background(), old.ID); err != nil {
				w.a.log.Warn("remove superseded container", "container", old.ID, "err", err)
			}
		}
	}
	if p.Status.StartTime != nil {
		w.startTime = *p.Status.StartTime
	}
}

// reportedReady is whether the pod's status, as the API has it, says the
// container with that runtime ID is running and ready.
func reportedReady(p *api.Pod, container, id string) bool {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == container {
			return s.ContainerID == id && s.State.Running != nil && s.Ready
		}
	}
	return false
}

// sync makes the pod's containers match its spec once; it reports true
// when the pod is gone and the worker may end.
func (w *podWorker) sync(ctx context.Context) bool {
	pod := w.current()
	if pod != nil {
		w.spec = pod
	}
	w.retryAt = time.Time{}
	w.drainExits(ctx)
	if pod == nil || api.IsPodTerminating(pod) {
		return w.terminate(ctx, pod)
	}
	if w.startTime.IsZero() {
		w.startTime = w.a.now().UTC()
	}
	if !w.ip.IsValid() {
		if !w.setupNetwork(ctx, pod) {
			w.writeStatus(ctx, pod)
			return false
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := w.ctrs[c.Name]
		if cs == nil {
			cs = &ctrState{name: c.Name}
			w.ctrs[c.Name] = cs
		}
		w.syncContainer(ctx, pod, c, cs)
	}
	w.writeStatus(ctx, pod)
	return false
}

func (w *podWorker) setupNetwork(ctx context.Context, pod *api.Pod) bool {
	now := w.a.now()
	if now.Before(w.netRetry) {
		return false
	}
	nctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ns, ip, err := w.a.net.Setup(nctx, PodRef{UID: w.uid, Namespace: w.namespace, Name: w.name})
	if err == nil {
		err = w.writeResolvConf()
	}
	if err != nil {
		w.netFails++
		w.netErr = err
		w.netRetry = now.Add(w.a.backoff().delay(w.netFails))
		w.a.rec.Event(ctx, pod, api.EventWarning, "FailedCreatePodNetwork", fmt.Sprintf("set up pod network: %v", err))
		w.a.log.Warn("pod network setup failed", "pod", w.namespace+"/"+w.name, "err", err)
		return false
	}
	w.netns, w.ip, w.netErr, w.netFails = ns, ip, nil, 0
	return true
}

func (w *podWorker) resolvConfPath() string { return filepath.Join(w.podDir(), "resolv.conf") }

func (w *podWorker) writeResolvConf() error {
	if err := os.MkdirAll(w.podDir(), 0o755); err != nil {
		return fmt.Errorf("create pod directory: %w", err)
	}
	dom := "svc." + w.a.cfg.Network.DNSDomain
	var b strings.Builder
	if dns := w.a.net.DNSAddress(); dns.IsValid() {
		fmt.Fprintf(&b, "nameserver %s\n", dns)
	}
	fmt.Fprintf(&b, "search %s.%s %s\noptions ndots:5\n", w.namespace, dom, dom)
	if err := os.WriteFile(w.resolvConfPath(), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write resolv.conf: %w", err)
	}
	return nil
}

// drainExits applies queued container exits to the containers' state.
func (w *podWorker) drainExits(ctx context.Context) {
	w.mu.Lock()
	exits := w.exits
	w.exits = nil
	w.mu.Unlock()
	for _, ev := range exits {
		cs := w.ctrs[ev.Meta.ContainerName]
		if cs == nil || cs.id != ev.ID || !cs.running {
			continue
		}
		if ev.ExitCode == livenessMarker {
			cs.livenessFailed = true
			continue
		}
		w.onExit(ctx, cs, ev.ExitCode, ev.OOMKilled, ev.ExitedAt)
	}
}

// onExit records that cs's process ended and schedules what follows.
func (w *podWorker) onExit(ctx context.Context, cs *ctrState, code int32, oom bool, at time.Time) {
	if at.IsZero() {
		at = w.a.now()
	}
	w.stopContainerProbes(cs)
	cs.running = false
	cs.lastTerm = w.termination(cs.id, cs.name, code, oom, cs.startedAt, at)
	killed := cs.killing
	cs.killing = false
	w.a.met.exits.Inc()
	policy := api.RestartAlways
	if w.spec != nil && w.spec.Spec.RestartPolicy != "" {
		policy = w.spec.Spec.RestartPolicy
	}
	if w.spec != nil && api.IsPodTerminating(w.spec) {
		return
	}
	if !killed && !shouldRestart(policy, code) {
		cs.done = true
		return
	}
	b := w.a.backoff()
	cs.crashes = b.crashesAfter(cs.crashes, at.Sub(cs.startedAt))
	cs.restartAt = at.Add(b.delay(cs.crashes))
	if w.spec != nil {
		switch {
		case oom:
			w.a.rec.Event(ctx, w.spec, api.EventWarning, "OOMKilled", fmt.Sprintf("container %s exceeded its memory limit and was killed", cs.name))
		case !killed:
			w.a.rec.Event(ctx, w.spec, api.EventWarning, "BackOff", fmt.Sprintf("container %s exited with code %d; restarting in %s", cs.name, code, b.delay(cs.crashes)))
		}
	}
}

// termination describes an exit, with the last log lines of a failure.
func (w *podWorker) termination(id, name string, code int32, oom bool, started, finished time.Time) *api.ContainerStateTerminated {
	t := &api.ContainerStateTerminated{ExitCode: code, StartedAt: started.UTC(), FinishedAt: finished.UTC()}
	switch {
	case oom:
		t.Reason = "OOMKilled"
	case code == 0:
		t.Reason = "Completed"
	default:
		t.Reason = "Error"
	}
	if code > 128 && code < 160 {
		t.Signal = code - 128
	}
	if code != 0 {
		t.Message = lastLines(w.logPath(name), 10, 2048)
	}
	return t
}

// syncContainer moves one container a step toward running (or staying
// down, as its pod's restart policy says).
func (w *podWorker) syncContainer(ctx context.Context, pod *api.Pod, c *api.Container, cs *ctrState) {
	now := w.a.now()
	switch {
	case cs.done:
		return
	case cs.running:
		cs.waiting = nil
		if cs.livenessFailed && !cs.killing {
			cs.livenessFailed = false
			cs.killing = true
			w.a.rec.Event(ctx, pod, api.EventNormal, "Killing", fmt.Sprintf("container %s failed its liveness probe and will be restarted", c.Name))
			grace := terminationGrace(pod)
			sctx, cancel := context.WithTimeout(ctx, grace+30*time.Second)
			err := w.a.rt.StopContainer(sctx, cs.id, grace)
			cancel()
			if err != nil {
				w.a.log.Warn("stop unhealthy container", "container", cs.id, "err", err)
				cs.killing = false
				w.retryAt = now.Add(time.Second)
			}
			return
		}
		w.ensureProbes(ctx, pod, c, cs)
		return
	case cs.id != "":
		// Exited; the policy allows a restart (else done was set).
		if now.Before(cs.restartAt) {
			cs.waiting = &api.ContainerStateWaiting{Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %s restarting failed container %s", w.a.backoff().delay(cs.crashes), c.Name)}
			return
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := w.a.rt.RemoveContainer(rctx, cs.id)
		cancel()
		if err != nil {
			w.a.log.Warn("remove exited container", "container", cs.id, "err", err)
			w.retryAt = now.Add(time.Second)
			return
		}
		cs.id = ""
		cs.restartCount++
		w.a.met.restarts.Inc()
	}
	w.startContainer(ctx, pod, c, cs)
}

func terminationGrace(pod *api.Pod) time.Duration {
	if pod.Metadata.DeletionGracePeriodSeconds != nil {
		return time.Duration(*pod.Metadata.DeletionGracePeriodSeconds) * time.Second
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return time.Duration(api.DefaultTerminationGracePeriodSeconds) * time.Second
}

// ensureImage makes the container's image present, pulling with back-off.
func (w *podWorker) ensureImage(ctx context.Context, pod *api.Pod, c *api.Container, cs *ctrState) bool {
	now := w.a.now()
	if now.Before(cs.pullRetryAt) {
		return false
	}
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	img, err := w.a.rt.GetImage(gctx, c.Image)
	cancel()
	if err == nil {
		cs.imageDigest = img.Digest
		return true
	}
	w.a.rec.Event(ctx, pod, api.EventNormal, "Pulling", fmt.Sprintf("pulling image %s", c.Image))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	img, err = w.a.rt.PullImage(pctx, c.Image, w.a.deps.PullOptions)
	cancel()
	if err != nil {
		cs.pullFailures++
		delay := w.a.backoff().delay(cs.pullFailures)
		cs.pullRetryAt = now.Add(delay)
		cs.waiting = pullWaiting(err, cs.pullFailures, delay)
		w.a.rec.Event(ctx, pod, api.EventWarning, "FailedPull", fmt.Sprintf("pull image %s: %v", c.Image, err))
		w.a.log.Warn("image pull failed", "pod", w.namespace+"/"+w.name, "image", c.Image, "err", err)
		return false
	}
	cs.pullFailures, cs.pullRetryAt = 0, time.Time{}
	cs.imageDigest = img.Digest
	w.a.rec.Event(ctx, pod, api.EventNormal, "Pulled", fmt.Sprintf("pulled image %s (%s)", c.Image, img.Digest))
	return true
}

// pullWaiting is how a container whose image could not be pulled waits:
// ErrImagePull after the first failure and ImagePullBackOff after the
// next (InvalidImageName when no retry can help), the reasons users and
// the provider's wait recognise; the runtime's finer reason (ImageNotFound,
// RegistryUnauthorized, ...) leads the message.
func pullWaiting(err error, failures int, delay time.Duration) *api.ContainerStateWaiting {
	detail := runtime.ReasonOf(err)
	reason := string(runtime.ReasonImagePull)
	switch {
	case detail == runtime.ReasonInvalidImageName:
		reason = string(detail)
	case failures > 1:
		reason = "ImagePullBackOff"
	}
	msg := fmt.Sprintf("%v (next attempt in %s)", err, delay)
	if detail != "" && string(detail) != reason {
		msg = string(detail) + ": " + msg
	}
	return &api.ContainerStateWaiting{Reason: reason, Message: msg}
}

func (w *podWorker) startContainer(ctx context.Context, pod *api.Pod, c *api.Container, cs *ctrState) {
	if cs.waiting == nil {
		cs.waiting = &api.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	if !w.ensureImage(ctx, pod, c, cs) {
		return
	}
	spec, err := w.containerSpec(pod, c, cs)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(spec.LogPath), 0o755)
	}
	if err != nil {
		cs.waiting = &api.ContainerStateWaiting{Reason: string(runtime.ReasonCreateContainer), Message: err.Error()}
		w.retryAt = w.a.now().Add(w.a.backoff().delay(1))
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	id, err := w.a.rt.CreateContainer(cctx, spec)
	if err == nil {
		if err = w.a.rt.StartContainer(cctx, id); err != nil {
			if rerr := w.a.rt.RemoveContainer(context.WithoutCancel(cctx), id); rerr != nil {
				w.a.log.Warn("remove container that failed to start", "container", id, "err", rerr)
			}
		}
	}
	if err != nil {
		reason := string(runtime.ReasonOf(err))
		if reason == "" {
			reason = string(runtime.ReasonCreateContainer)
		}
		cs.crashes++
		delay := w.a.backoff().delay(cs.crashes)
		cs.pullRetryAt = w.a.now().Add(delay)
		cs.waiting = &api.ContainerStateWaiting{Reason: reason, Message: fmt.Sprintf("%v (next attempt in %s)", err, delay)}
		w.a.rec.Event(ctx, pod, api.EventWarning, "Failed", fmt.Sprintf("start container %s: %v", c.Name, err))
		return
	}
	cs.id, cs.running, cs.waiting = id, true, nil
	cs.startedAt = w.a.now().UTC()
	if st, err := w.a.rt.ContainerStatus(cctx, id); err == nil {
		if !st.StartedAt.IsZero() {
			cs.startedAt = st.StartedAt.UTC()
		}
		if st.Status == runtime.StatusExited {
			// It exited before we looked; its exit event is on its way.
			w.a.log.Debug("container exited right after start", "container", id)
		}
	}
	w.a.rec.Event(ctx, pod, api.EventNormal, "Started", fmt.Sprintf("started container %s", c.Name))
	w.ensureProbes(ctx, pod, c, cs)
}

// containerSpec turns an API container into a runtime spec.
func (w *podWorker) containerSpec(pod *api.Pod, c *api.Container, cs *ctrState) (runtime.ContainerSpec, error) {
	env := []string{
		"POD_NAME=" + pod.Metadata.Name,
		"POD_NAMESPACE=" + pod.Metadata.Namespace,
		"POD_IP=" + w.ip.String(),
		"NODE_NAME=" + w.a.cfg.NodeName,
	}
	for _, e := range c.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	var res runtime.Resources
	if q, ok := c.Resources.Limits[api.ResourceCPU]; ok {
		v, err := q.MilliValue()
		if err != nil {
			return runtime.ContainerSpec{}, fmt.Errorf("cpu limit %q: %w", q, err)
		}
		res.CPUMillis = v
	}
	if q, ok := c.Resources.Requests[api.ResourceCPU]; ok {
		v, err := q.MilliValue()
		if err != nil {
			return runtime.ContainerSpec{}, fmt.Errorf("cpu request %q: %w", q, err)
		}
		res.CPURequestMillis = v
	}
	if q, ok := c.Resources.Limits[api.ResourceMemory]; ok {
		v, err := q.Value()
		if err != nil {
			return runtime.ContainerSpec{}, fmt.Errorf("memory limit %q: %w", q, err)
		}
		res.MemoryBytes = v
	}
	return runtime.ContainerSpec{
		Meta: runtime.Meta{PodNamespace: pod.Metadata.Namespace, PodName: pod.Metadata.Name, PodUID: pod.Metadata.UID,
			ContainerName: c.Name, RestartCount: cs.restartCount},
		Image: c.Image, Command: c.Command, Args: c.Args, Env: env,
		Resources: res, NetNSPath: w.netns, Hostname: pod.Metadata.Name,
		ResolvConfPath: w.resolvConfPath(), LogPath: w.logPath(c.Name),
	}, nil
}

// ensureProbes starts the probe workers of a running container once.
func (w *podWorker) ensureProbes(ctx context.Context, pod *api.Pod, c *api.Container, cs *ctrState) {
	if cs.probeCancel != nil || (c.ReadinessProbe == nil && c.LivenessProbe == nil) {
		return
	}
	// Probe goroutines get their own copy: the worker's pod is decoded into
	// again by status writes.
	pod = client.DeepCopy(pod)
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == c.Name {
			c = &pod.Spec.Containers[i]
		}
	}
	pctx, cancel := context.WithCancel(ctx)
	cs.probeCancel = cancel
	defer func() { cs.adoptedReady = false }()
	target := probe.Target{PodIP: w.ip.String(), Ports: c.Ports, ContainerID: cs.id, Exec: w.a.rt}
	id := cs.id
	// result counts a check and records a failed one as an Unhealthy
	// event, rate-limited, off the probe's goroutine (a slow API must not
	// delay the checks).
	result := func(kind string, limit *unhealthyLimiter) func(probe.Result) {
		return func(r probe.Result) {
			w.a.met.probe(strings.ToLower(kind), r.OK)
			if limit.record(r.OK, time.Now()) {
				msg := fmt.Sprintf("%s probe of container %s failed: %s", kind, c.Name, r.Message)
				go w.a.rec.Event(context.WithoutCancel(pctx), pod, api.EventWarning, "Unhealthy", msg)
			}
		}
	}
	if c.ReadinessProbe != nil {
		cs.readiness = probe.NewWorker(c.ReadinessProbe, target, probe.WorkerOptions{
			Initial:  cs.adoptedReady,
			OnResult: result("Readiness", &unhealthyLimiter{}),
			OnChange: func(bool, probe.Result) { w.markProbed() },
		})
		cs.readiness.Start(pctx)
	}
	if c.LivenessProbe != nil {
		cs.liveness = probe.NewWorker(c.LivenessProbe, target, probe.WorkerOptions{
			Initial:  true,
			OnResult: result("Liveness", &unhealthyLimiter{}),
			OnChange: func(passing bool, r probe.Result) {
				if !passing {
					w.livenessFailedFor(c.Name, id)
				}
			},
		})
		cs.liveness.Start(pctx)
	}
}

// unhealthyEventInterval is the least time between two Unhealthy events
// of one probe while it keeps failing: the recorder counts repeats of an
// event, and a probe checked every second must not write every second.
const unhealthyEventInterval = 10 * time.Second

// unhealthyLimiter decides which failed checks of a probe become
// Unhealthy events: the first failure after a pass (or the probe's start)
// at once, then at most one every unhealthyEventInterval while the probe
// keeps failing. A probe's checks run one at a time, so it needs no lock.
type unhealthyLimiter struct {
	failing bool
	last    time.Time
}

// record reports whether a check with outcome ok, made at now, is
// recorded as an event.
func (l *unhealthyLimiter) record(ok bool, now time.Time) bool {
	if ok {
		l.failing = false
		return false
	}
	if l.failing && now.Sub(l.last) < unhealthyEventInterval {
		return false
	}
	l.failing, l.last = true, now
	return true
}

func (w *podWorker) markProbed() {
	w.mu.Lock()
	w.probed = true
	w.mu.Unlock()
	w.poke()
}

// livenessFailedFor is called from a probe goroutine: it queues the
// restart for the worker goroutine through a synthetic flag.
func (w *podWorker) livenessFailedFor(name, id string) {
	w.mu.Lock()
	w.exits = append(w.exits, runtime.ExitEvent{ID: id, Meta: runtime.Meta{ContainerName: name}, ExitCode: livenessMarker})
	w.mu.Unlock()
	w.poke()
}

// livenessMarker marks a queued liveness failure among exit events; real
// exit codes are 0-255.
const livenessMarker = -1

func (w *podWorker) stopContainerProbes(cs *ctrState) {
	if cs.probeCancel == nil {
		return
	}
	cs.probeCancel()
	if cs.readiness != nil {
		cs.readiness.Stop()
	}
	if cs.liveness != nil {
		cs.liveness.Stop()
	}
	cs.probeCancel, cs.readiness, cs.liveness = nil, nil, nil
}

func (w *podWorker) stopProbes() {
	for _, cs := range w.ctrs {
		w.stopContainerProbes(cs)
	}
}
