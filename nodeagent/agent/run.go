package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/pki"
	"github.com/berth-io/berth/internal/version"
	"github.com/berth-io/berth/nodeagent/network"
	"github.com/berth-io/berth/nodeagent/runtime"
	"github.com/berth-io/berth/nodeagent/runtime/containerd"
	"github.com/berth-io/berth/nodeagent/services"
)

// Run is the whole node agent: it joins (first start) or loads the node's
// credentials, connects to containerd, serves the agent API, and runs the
// core agent until ctx ends. A certificate renewal restarts only the core
// (which adopts every running container), never the containers.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("agent config: %w", err)
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	creds, err := ensureCredentials(ctx, cfg, log)
	if err != nil {
		return err
	}
	pullOpts, err := pullOptions(cfg)
	if err != nil {
		return err
	}
	rt, err := containerd.New(ctx, containerd.Config{
		Address: cfg.Containerd.Address, Namespace: cfg.Containerd.Namespace,
		CgroupParent: cfg.Containerd.CgroupParent, Snapshotter: cfg.Containerd.Snapshotter,
		Logger: log.With("component", "runtime"),
	})
	if err != nil {
		return fmt.Errorf("connect to containerd: %w", err)
	}
	defer rt.Close()

	var current atomic.Pointer[Agent]
	ln, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("agent api: listen on %s: %w", cfg.ListenAddress, err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := current.Load()
			if a == nil {
				http.Error(w, "agent starting", http.StatusServiceUnavailable)
				return
			}
			a.handler().ServeHTTP(w, r)
		}),
		TLSConfig:         pki.ServerTLSConfig(creds.roots, creds.serving, pki.RequireClientCert),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.ServeTLS(ln, "", "") }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	endpoint := "https://" + cfg.ListenAddress
	log.Info("agent api listening", "endpoint", endpoint, "version", version.Version)

	for {
		// The endpoints the host was installed with stay a fallback: the
		// published list the client follows can go entirely stale between
		// two syncs while the control plane moves to other hosts (seen
		// when the local control plane was restarting at the very sync
		// that dropped it, and every other host left before the next).
		cli, err := client.New(creds.clientConfig(), client.WithLogger(log.With("component", "client")),
			client.WithTimeout(cfg.APITimeout.or(DefaultAPITimeout)), client.WithUserAgent("berth-agent/"+version.Version),
			client.WithFallbackEndpoints(cfg.ControlPlane...))
		if err != nil {
			return fmt.Errorf("control-plane client: %w", err)
		}
		a, err := New(cfg, Deps{
			Runtime: rt, Client: cli, AgentEndpoint: endpoint, PullOptions: pullOpts,
			NewNetwork:  realNetwork(cfg, log),
			NewServices: realServices(cfg, log),
		}, log)
		if err != nil {
			return err
		}
		current.Store(a)
		renewed, err := runUntilRenewal(ctx, cfg, a, cli, creds, log)
		cli.Close()
		if err != nil || !renewed {
			return err
		}
		log.Info("certificates renewed; restarting the sync loop with them (containers keep running)")
		select {
		case err := <-srvDone:
			return fmt.Errorf("agent api: %w", err)
		default:
		}
	}
}

// runUntilRenewal runs the core agent, the endpoint sync and the renewal
// check; it returns true when certificates were renewed.
func runUntilRenewal(ctx context.Context, cfg Config, a *Agent, cli *client.Client, creds *credentials, log *slog.Logger) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var runErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		runErr = a.Run(ctx)
		cancel()
	}()
	go func() {
		defer wg.Done()
		interval := cfg.EndpointSyncInterval.or(DefaultEndpointSync)
		saved := loadEndpoints(cfg)
		for {
			sctx, scancel := context.WithTimeout(ctx, cfg.APITimeout.or(DefaultAPITimeout))
			err := cli.SyncEndpoints(sctx)
			scancel()
			next := interval
			if err == nil {
				a.markContact()
				if eps := cli.Endpoints(); !sameSet(eps, saved) {
					saveEndpoints(cfg, eps, log)
					saved = eps
				}
			} else if ctx.Err() == nil {
				log.Warn("refresh control-plane endpoints", "err", err)
				next = min(interval, client.MinEndpointSyncSpacing)
			}
			// Sync again soon when it failed or an endpoint fails: a host
			// may be leaving, and the hosts replacing it must be known
			// before the last known one goes too.
			if !cli.WaitEndpointSync(ctx, next) {
				return
			}
		}
	}()
	renewed := false
	check := time.NewTicker(cfg.CertificateCheckInterval.or(DefaultCertCheck))
	defer check.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-check.C:
			rctx, rcancel := context.WithTimeout(ctx, cfg.APITimeout.or(DefaultAPITimeout))
			ok, err := creds.renewIfDue(rctx, cli)
			rcancel()
			if err != nil {
				log.Warn("renew node certificates", "err", err)
				continue
			}
			if ok {
				renewed = true
				cancel()
				break loop
			}
		}
	}
	wg.Wait()
	return renewed, runErr
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// handler returns the agent API handler, built once.
func (a *Agent) handler() http.Handler {
	a.handlerOnce.Do(func() { a.apiHandler = a.Handler() })
	return a.apiHandler
}

// pullOptions reads registry settings (and password files) once.
func pullOptions(cfg Config) (runtime.PullOptions, error) {
	o := runtime.PullOptions{Credentials: map[string]runtime.Credential{}}
	for host, r := range cfg.Registries {
		if r.PlainHTTP {
			o.PlainHTTP = append(o.PlainHTTP, host)
		}
		if r.Username != "" || r.PasswordFile != "" {
			var pw []byte
			if r.PasswordFile != "" {
				b, err := os.ReadFile(r.PasswordFile)
				if err != nil {
					return o, fmt.Errorf("registry %s: read password file: %w", host, err)
				}
				pw = b
			}
			o.Credentials[host] = runtime.Credential{Username: r.Username, Password: strings.TrimSpace(string(pw))}
		}
	}
	return o, nil
}

func parsePrefixOr(s string, def netip.Prefix) (netip.Prefix, error) {
	if s == "" {
		return def, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("cidr %q: %w", s, err)
	}
	return p.Masked(), nil
}

// hostNetwork adapts nodeagent/network to Network.
type hostNetwork struct {
	node    string
	podCIDR netip.Prefix
	pods    *network.Pods
	overlay *network.Overlay
}

func realNetwork(cfg Config, log *slog.Logger) func(context.Context, netip.Prefix) (Network, error) {
	return func(ctx context.Context, podCIDR netip.Prefix) (Network, error) {
		cluster, err := parsePrefixOr(cfg.Network.ClusterCIDR, network.DefaultClusterCIDR)
		if err != nil {
			return nil, err
		}
		svc, err := parsePrefixOr(cfg.Network.ServiceCIDR, network.DefaultServiceCIDR)
		if err != nil {
			return nil, err
		}
		ncfg := network.Config{
			PodCIDR: podCIDR, ClusterCIDR: cluster, ServiceCIDR: svc, UnderlayMTU: cfg.Network.UnderlayMTU,
			PluginDir: cfg.Network.PluginDir, VXLANPort: cfg.Network.VXLANPort, Logger: log.With("component", "network"),
		}
		pods, err := network.NewPods(ncfg)
		if err != nil {
			return nil, err
		}
		ov, err := network.NewOverlay(ncfg)
		if err != nil {
			return nil, err
		}
		bctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := pods.EnsureBridge(bctx); err != nil {
			return nil, err
		}
		return &hostNetwork{node: cfg.NodeName, podCIDR: podCIDR, pods: pods, overlay: ov}, nil
	}
}

func (h *hostNetwork) Setup(ctx context.Context, pod PodRef) (string, netip.Addr, error) {
	return h.pods.Setup(ctx, network.PodNetwork{PodUID: pod.UID, Namespace: pod.Namespace, Name: pod.Name})
}

func (h *hostNetwork) Teardown(ctx context.Context, uid string) error {
	return h.pods.Teardown(ctx, uid)
}

func (h *hostNetwork) List(ctx context.Context) ([]PodAttachment, error) {
	atts, err := h.pods.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PodAttachment, 0, len(atts))
	for _, at := range atts {
		out = append(out, PodAttachment{UID: at.PodUID, NetNSPath: at.NetNSPath, IP: at.IP})
	}
	return out, nil
}

func (h *hostNetwork) SyncOverlay(ctx context.Context, nodes []*api.Node) error {
	return h.overlay.SyncNodes(ctx, h.node, nodes)
}

func (h *hostNetwork) DNSAddress() netip.Addr { return network.Gateway(h.podCIDR) }

// hostServices adapts nodeagent/services (rules and DNS) to ServiceProxy.
type hostServices struct {
	rules     *services.Rules
	dns       *services.DNS
	nodeAddrs []netip.Addr
}

func realServices(cfg Config, log *slog.Logger) func(context.Context, netip.Prefix, Network) (ServiceProxy, error) {
	return func(ctx context.Context, podCIDR netip.Prefix, n Network) (ServiceProxy, error) {
		rules, err := services.NewRules(services.Config{PodCIDR: podCIDR, Logger: log.With("component", "services")})
		if err != nil {
			return nil, err
		}
		d := services.NewDNS(services.DNSConfig{Domain: cfg.Network.DNSDomain, Logger: log.With("component", "dns")})
		addr := net.JoinHostPort(n.DNSAddress().String(), "53")
		go func() {
			if err := d.ListenAndServe(ctx, addr); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
				log.Error("dns server stopped", "addr", addr, "err", err)
			}
		}()
		var addrs []netip.Addr
		if ip, err := netip.ParseAddr(cfg.InternalIP); err == nil {
			addrs = append(addrs, ip)
		}
		return &hostServices{rules: rules, dns: d, nodeAddrs: addrs}, nil
	}
}

func (h *hostServices) Sync(ctx context.Context, s ServiceSnapshot) (int64, error) {
	svcs := make([]api.Service, 0, len(s.Services))
	for _, x := range s.Services {
		svcs = append(svcs, *x)
	}
	eps := make([]api.Endpoints, 0, len(s.Endpoints))
	for _, x := range s.Endpoints {
		eps = append(eps, *x)
	}
	h.dns.Update(svcs)
	rev, err := h.rules.Sync(ctx, svcs, eps, h.nodeAddrs)
	if err != nil {
		return 0, err
	}
	return max(rev, s.Revision), nil
}
