// Package agent is berth's node agent: it joins the cluster with a token,
// registers and heartbeats its Node, makes the node's containerd run the
// pods bound to it (pod network, images, containers, restarts with
// back-off, probes, status), programs service rules and DNS, stops pods
// gracefully (only after every node has stopped routing to them), adopts
// its containers again after a restart, and serves container logs, health
// and metrics over mutually authenticated HTTPS.
//
// Run is the whole agent, as `berth agent --config /etc/berth/agent.json`
// runs it. New and (*Agent).Run are its core with every dependency
// injected (runtime, control-plane client, pod network, service rules), so
// the sync loop is unit-tested with nodeagent/runtime/fake and in-memory
// networks.
//
// The agent must never log a join token, a key or a registry password;
// never restart a running container because the agent itself restarted;
// never touch containers outside its runtime namespace; and never let one
// pod's trouble (an image that cannot be pulled, a crash loop) delay the
// others: every pod has its own worker and its own back-off.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/nodeagent/runtime"
)

// PodRef names a pod for the pod network.
type PodRef struct {
	// UID is the pod's metadata.uid.
	UID string
	// Namespace is the pod's namespace.
	Namespace string
	// Name is the pod's name.
	Name string
}

// PodAttachment is a pod already attached to the pod network, as found
// after an agent restart.
type PodAttachment struct {
	// UID of the pod.
	UID string
	// NetNSPath of the pod's network namespace.
	NetNSPath string
	// IP of the pod, when known.
	IP netip.Addr
}

// Network is the node's pod network and overlay (nodeagent/network in
// production, an in-memory fake in tests).
type Network interface {
	// Setup gives the pod a network namespace and an address; calling it
	// again for an attached pod returns the same.
	Setup(ctx context.Context, pod PodRef) (netnsPath string, ip netip.Addr, err error)
	// Teardown releases the pod's namespace and address; repeating it is
	// not an error.
	Teardown(ctx context.Context, podUID string) error
	// List reports the pods attached now, for re-adoption after a restart.
	List(ctx context.Context) ([]PodAttachment, error)
	// SyncOverlay makes the overlay reach the pods of every node listed.
	SyncOverlay(ctx context.Context, nodes []*api.Node) error
	// DNSAddress is where pods' resolv.conf points (the node's DNS server).
	DNSAddress() netip.Addr
}

// ServiceSnapshot is the cluster's services as one node's informers see
// them at Revision.
type ServiceSnapshot struct {
	// Services are every service of the cluster.
	Services []*api.Service
	// Endpoints are every service's ready addresses.
	Endpoints []*api.Endpoints
	// Nodes are every node (for node ports).
	Nodes []*api.Node
	// Revision is the endpoints revision the snapshot reflects.
	Revision int64
}

// ServiceProxy programs service rules and DNS (nodeagent/services in
// production).
type ServiceProxy interface {
	// Sync makes the node's rules and DNS match s and returns the
	// endpoints revision now programmed.
	Sync(ctx context.Context, s ServiceSnapshot) (int64, error)
}

// HostInfo describes the host for the Node's capacity and nodeInfo.
type HostInfo struct {
	// CPUs is the number of CPUs.
	CPUs int
	// MemoryBytes is the total memory.
	MemoryBytes int64
	// KernelVersion is the running kernel's release.
	KernelVersion string
	// Architecture is the Go name of the CPU architecture.
	Architecture string
}

// Deps are what the core agent works through; New takes them so tests
// inject fakes.
type Deps struct {
	// Runtime runs containers. Required.
	Runtime runtime.Runtime
	// Client talks to the control plane with the node's identity. Required.
	Client *client.Client
	// NewNetwork builds the pod network once the node's pod CIDR is known.
	// Required.
	NewNetwork func(ctx context.Context, podCIDR netip.Prefix) (Network, error)
	// NewServices builds the service proxy once the pod network exists.
	// Nil programs no service rules.
	NewServices func(ctx context.Context, podCIDR netip.Prefix, net Network) (ServiceProxy, error)
	// Host describes the host; zero fields are read from the host.
	Host HostInfo
	// AgentEndpoint is the agent API's HTTPS URL reported on the Node.
	AgentEndpoint string
	// PullOptions say how to reach registries.
	PullOptions runtime.PullOptions
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Agent is the node agent's core. Make it with New, then Run it.
type Agent struct {
	cfg  Config
	deps Deps
	rt   runtime.Runtime
	cli  *client.Client
	log  *slog.Logger
	rec  *client.EventRecorder
	now  func() time.Time
	met  *metrics

	pods, nodes, services, endpoints *client.Informer

	net   Network
	proxy ServiceProxy

	mu       sync.Mutex
	workers  map[string]*podWorker // by pod UID
	adopt    map[string]*adoption  // by pod UID, until claimed
	runCtx   context.Context
	workerWG sync.WaitGroup

	podCIDR       netip.Prefix
	rulesRevision atomic.Int64
	lastContact   atomic.Int64 // unix nanos of the last successful API call
	servicesWake  chan struct{}
	nodeWake      chan struct{}
	gateWake      chan struct{} // closed and replaced when endpoints or nodes change
	gateMu        sync.Mutex
	heard         *nodeLiveness // when each node's heartbeat last reached us
	runtimeHealth atomic.Bool

	handlerOnce sync.Once
	apiHandler  http.Handler
}

// New checks deps and builds the core agent; nothing runs until Run.
func New(cfg Config, deps Deps, log *slog.Logger) (*Agent, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("new agent: node name is required")
	}
	if deps.Runtime == nil || deps.Client == nil || deps.NewNetwork == nil {
		return nil, errors.New("new agent: runtime, client and network are required")
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	a := &Agent{
		cfg: cfg, deps: deps, rt: deps.Runtime, cli: deps.Client, log: log, now: now,
		rec:          client.NewEventRecorder(deps.Client, cfg.NodeName, log),
		met:          newMetrics(),
		workers:      map[string]*podWorker{},
		adopt:        map[string]*adoption{},
		servicesWake: make(chan struct{}, 1),
		nodeWake:     make(chan struct{}, 1),
		gateWake:     make(chan struct{}),
		heard:        newNodeLiveness(),
	}
	a.runtimeHealth.Store(true)
	return a, nil
}

func kind(name string) api.KindInfo {
	ki, ok := api.LookupKind(name)
	if !ok {
		panic("agent: unknown kind " + name)
	}
	return ki
}

// Run registers the node, adopts what runs, and keeps the node in sync
// until ctx ends. Containers keep running when it returns.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.register(ctx); err != nil {
		return err
	}
	n, err := a.deps.NewNetwork(ctx, a.podCIDR)
	if err != nil {
		return fmt.Errorf("set up pod network for %s: %w", a.podCIDR, err)
	}
	a.net = n
	if a.deps.NewServices != nil {
		p, err := a.deps.NewServices(ctx, a.podCIDR, n)
		if err != nil {
			return fmt.Errorf("set up service rules: %w", err)
		}
		a.proxy = p
	}
	if err := a.collectAdoptions(ctx); err != nil {
		return err
	}
	a.importPreloaded(ctx)

	infOpts := client.InformerOptions{Logger: a.log, MaxBackoff: 5 * time.Second}
	a.nodes = client.NewInformer(a.cli, kind("Node"), infOpts)
	a.services = client.NewInformer(a.cli, kind("Service"), infOpts)
	a.endpoints = client.NewInformer(a.cli, kind("Endpoints"), infOpts)
	podOpts := infOpts
	podOpts.NodeName = a.cfg.NodeName
	a.pods = client.NewInformer(a.cli, kind("Pod"), podOpts)

	changed := client.Handler{
		OnAdd:    func(api.Object) { a.servicesChanged() },
		OnUpdate: func(_, _ api.Object) { a.servicesChanged() },
		OnDelete: func(api.Object) { a.servicesChanged() },
	}
	a.nodes.AddHandler(changed)
	a.nodes.AddHandler(client.Handler{
		OnAdd:    func(o api.Object) { a.heard.observe(o.(*api.Node), a.now()) },
		OnUpdate: func(_, o api.Object) { a.heard.observe(o.(*api.Node), a.now()) },
		OnDelete: func(o api.Object) { a.heard.forget(o.(*api.Node).Metadata.Name) },
	})
	a.services.AddHandler(changed)
	a.endpoints.AddHandler(changed)
	a.pods.AddHandler(client.Handler{
		OnAdd:    func(o api.Object) { a.podChanged(o.(*api.Pod)) },
		OnUpdate: func(_, o api.Object) { a.podChanged(o.(*api.Pod)) },
		OnDelete: func(o api.Object) { a.podChanged(o.(*api.Pod)) },
	})

	a.mu.Lock()
	a.runCtx = ctx
	a.mu.Unlock()

	var wg sync.WaitGroup
	goRun := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	for _, inf := range []*client.Informer{a.nodes, a.services, a.endpoints, a.pods} {
		goRun(inf.Run)
	}
	goRun(a.exitLoop)
	goRun(a.nodeStatusLoop)
	goRun(a.servicesLoop)
	goRun(a.runtimeHealthLoop)

	for _, inf := range []*client.Informer{a.nodes, a.services, a.endpoints, a.pods} {
		if err := inf.WaitForSync(ctx); err != nil {
			break
		}
	}
	if ctx.Err() == nil {
		a.markContact()
		a.removeOrphans(ctx)
	}
	<-ctx.Done()
	wg.Wait()
	a.workerWG.Wait()
	return nil
}

// markContact records a successful exchange with the control plane.
func (a *Agent) markContact() { a.lastContact.Store(a.now().UnixNano()) }

// servicesChanged wakes the services loop and anyone waiting on the stop
// gate.
func (a *Agent) servicesChanged() {
	select {
	case a.servicesWake <- struct{}{}:
	default:
	}
	a.notifyGate()
}

// notifyGate wakes everyone waiting on the stop gate.
func (a *Agent) notifyGate() {
	a.gateMu.Lock()
	close(a.gateWake)
	a.gateWake = make(chan struct{})
	a.gateMu.Unlock()
}

// gateChanged returns a channel closed at the next endpoints or node change.
func (a *Agent) gateChanged() <-chan struct{} {
	a.gateMu.Lock()
	defer a.gateMu.Unlock()
	return a.gateWake
}

// wakeNodeStatus asks for a Node status write soon.
func (a *Agent) wakeNodeStatus() {
	select {
	case a.nodeWake <- struct{}{}:
	default:
	}
}

// exitLoop hands each container exit to its pod's worker.
func (a *Agent) exitLoop(ctx context.Context) {
	events := a.rt.Events()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			a.mu.Lock()
			w := a.workers[ev.Meta.PodUID]
			a.mu.Unlock()
			if w != nil {
				w.exited(ev)
				continue
			}
			a.log.Info("container of a pod not on this node exited; removing it", "container", ev.ID, "pod", ev.Meta.PodNamespace+"/"+ev.Meta.PodName)
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			if err := a.rt.RemoveContainer(rctx, ev.ID); err != nil {
				a.log.Warn("remove orphan container", "container", ev.ID, "err", err)
			}
			cancel()
		}
	}
}

// runtimeHealthLoop checks containerd answers, for /healthz.
func (a *Agent) runtimeHealthLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := a.rt.Version(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		a.runtimeHealth.Store(err == nil)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Healthy reports whether the agent is fit: containerd answers and the
// control plane was reached within the health window.
func (a *Agent) Healthy() error {
	if !a.runtimeHealth.Load() {
		return errors.New("containerd is not reachable")
	}
	last := a.lastContact.Load()
	window := a.cfg.HealthSyncWindow.or(DefaultHealthWindow)
	if last == 0 {
		return errors.New("not yet synced with the control plane")
	}
	if since := a.now().Sub(time.Unix(0, last)); since > window {
		return fmt.Errorf("no contact with the control plane for %s (limit %s)", since.Round(time.Second), window)
	}
	return nil
}
