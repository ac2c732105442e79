package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/pki"
	"github.com/berth-io/berth/provider/nodeimage"
	"github.com/berth-io/berth/provider/ssh"
)

// engine is one run of Apply or Destroy.
type engine struct {
	spec     Spec
	settings Settings
	opts     Options
	began    time.Time
	pool     *ssh.Pool
	ca       *pki.CA
	digest   string
	hosts    []desiredHost
	admin    *client.Client

	mu    sync.Mutex
	state State
}

func (e *engine) progress(host, step string) {
	if e.opts.Progress != nil {
		e.opts.Progress(Event{Host: host, Step: step, Elapsed: time.Since(e.began)})
	}
}

// dial connects to a host, pinning the key recorded in state when the spec
// pins none, and records the key it saw.
func (e *engine) dial(ctx context.Context, name string, cfg ssh.HostConfig) (*ssh.Client, error) {
	e.mu.Lock()
	if hs, ok := e.state.Hosts[name]; ok && cfg.HostKey == "" {
		cfg.HostKey = hs.SSH.HostKey
	}
	e.mu.Unlock()
	c, err := e.pool.Client(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (e *engine) record(h desiredHost, c *ssh.Client, digest, hash string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cfg := h.SSH
	if cfg.HostKey == "" {
		cfg.HostKey = ssh.FormatHostKey(c.HostKey())
	}
	e.state.Hosts[h.Name] = HostState{SSH: cfg, Role: h.Role, Pool: h.Pool, InternalIP: h.InternalIP, Digest: digest, ConfigHash: hash}
}

func (e *engine) endpoints() []string {
	var eps []string
	for _, h := range e.hosts {
		if h.Role == RoleControlPlane {
			eps = append(eps, apiURL(h.InternalIP, e.settings.APIPort))
		}
	}
	return eps
}

func (e *engine) adminClient(endpoints []string) (*client.Client, error) {
	return client.New(client.Config{
		Endpoints: endpoints, CACertificate: e.state.CACertPEM,
		ClientCertificate: e.state.AdminCertPEM, ClientKey: e.state.AdminKeyPEM,
	}, client.WithTimeout(15*time.Second), client.WithUserAgent("berth-provider"))
}

// setup validates the spec, opens the image, settles the CA and admin
// identity and connects nothing yet.
func setup(spec Spec, prior State, opts Options) (*engine, error) {
	e := &engine{spec: spec, settings: spec.Settings.withDefaults(), opts: opts, began: time.Now()}
	if e.opts.Parallelism < 1 {
		e.opts.Parallelism = 4
	}
	hosts, err := spec.hosts()
	if err != nil {
		return nil, err
	}
	e.hosts = hosts
	e.state = prior
	e.state.Hosts = map[string]HostState{}
	for k, v := range prior.Hosts {
		e.state.Hosts[k] = v
	}
	switch {
	case spec.CACertPEM != "" && prior.CACertPEM != "" && strings.TrimSpace(spec.CACertPEM) != strings.TrimSpace(prior.CACertPEM):
		return nil, fmt.Errorf("%w: the cluster CA differs from the one the cluster was built with; CA rotation is not supported", ErrInvalidSpec)
	case spec.CACertPEM != "":
		e.state.CACertPEM, e.state.CAKeyPEM = spec.CACertPEM, spec.CAKeyPEM
	case prior.CACertPEM == "":
		ca, err := pki.NewCA("berth cluster CA", 10*365*24*time.Hour)
		if err != nil {
			return nil, fmt.Errorf("create cluster CA: %w", err)
		}
		key, err := ca.KeyPEM()
		if err != nil {
			return nil, fmt.Errorf("encode cluster CA key: %w", err)
		}
		e.state.CACertPEM, e.state.CAKeyPEM = string(ca.CertPEM()), string(key)
	}
	e.ca, err = pki.LoadCA([]byte(e.state.CACertPEM), []byte(e.state.CAKeyPEM))
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	needAdmin := e.state.AdminCertPEM == ""
	if !needAdmin {
		cert, err := pki.ParseCert([]byte(e.state.AdminCertPEM))
		needAdmin = err != nil || pki.NeedsRenewal(cert, time.Now()) || cert.CheckSignatureFrom(e.ca.Certificate()) != nil
	}
	if needAdmin {
		kp, err := e.ca.Issue(pki.AdminIdentity("berth-provider"), 365*24*time.Hour)
		if err != nil {
			return nil, fmt.Errorf("issue admin certificate: %w", err)
		}
		e.state.AdminCertPEM, e.state.AdminKeyPEM = string(kp.CertPEM), string(kp.KeyPEM)
	}
	return e, nil
}

func (e *engine) openImage(ctx context.Context) error {
	if e.spec.Image.Path == "" {
		return fmt.Errorf("%w: no node image path", ErrInvalidSpec)
	}
	_, d, err := nodeimage.Open(ctx, e.spec.Image.Path)
	if err != nil {
		return fmt.Errorf("open node image %s: %w", e.spec.Image.Path, err)
	}
	if e.spec.Image.Digest != "" && e.spec.Image.Digest != d.String() {
		return fmt.Errorf("node image %s has digest %s, not %s as the spec says", e.spec.Image.Path, d, e.spec.Image.Digest)
	}
	e.digest = d.String()
	return nil
}

// Apply makes the cluster match spec, starting from what prior recorded,
// and returns the new State. On error the returned State still records
// every host changed so far (with the digest it runs), so the caller must
// keep it.
func Apply(ctx context.Context, spec Spec, prior State, opts Options) (State, error) {
	e, err := setup(spec, prior, opts)
	if err != nil {
		return prior, err
	}
	e.pool = ssh.NewPool(&ssh.Dialer{HostKeys: opts.HostKeys})
	defer e.pool.Close()
	if err := e.openImage(ctx); err != nil {
		return e.state, err
	}
	err = e.apply(ctx)
	if e.admin != nil {
		if err != nil {
			e.recordServingEndpoints(context.WithoutCancel(ctx))
		}
		e.admin.Close()
	}
	return e.state, err
}

func (e *engine) apply(ctx context.Context) error {
	var cps, workers []desiredHost
	for _, h := range e.hosts {
		if h.Role == RoleControlPlane {
			cps = append(cps, h)
		} else {
			workers = append(workers, h)
		}
	}
	// 1. Find the cluster, or bootstrap it on the first control-plane host.
	members, err := e.connect(ctx, cps)
	if err != nil {
		return err
	}
	// Leaving hosts that no longer answer are given up first (move.go).
	if err := e.settleLeavers(ctx); err != nil {
		return err
	}
	// 2. Control-plane hosts, one at a time: new ones join as learners,
	// existing ones are replaced when their image or configuration changed.
	// A move (hosts joining while others leave) pairs each join with the
	// removal of one leaving host, so etcd never has more than one extra
	// member and the control plane moves one host at a time.
	snapshotted := false
	for _, h := range cps {
		if _, isMember := members[h.Name]; isMember {
			changed, err := e.needsChange(ctx, h)
			if err != nil {
				return err
			}
			if !changed {
				// Still checked for health and recorded; nothing is written.
				if err := e.install(ctx, h, etcdInit{}, false); err != nil {
					return err
				}
				continue
			}
			if !snapshotted {
				if err := e.snapshot(ctx); err != nil {
					return err
				}
				snapshotted = true
			}
			if err := e.checkQuorum(ctx, h.Name); err != nil {
				return err
			}
			if err := e.replace(ctx, h, etcdInit{}); err != nil {
				return err
			}
			if err := e.checkQuorum(ctx, h.Name); err != nil {
				return err
			}
			continue
		}
		leaving := e.leavingControlPlane()
		if len(leaving) > 0 {
			// A leaving host that died since the run began would block
			// the join (etcd adds no member while a voter is
			// unreachable): it is given up first.
			if err := e.settleLeavers(ctx); err != nil {
				return err
			}
			leaving = e.leavingControlPlane()
		}
		if err := e.checkQuorum(ctx, h.Name); err != nil {
			return err
		}
		if len(leaving) > 0 {
			// A run cut short between a join and its removal left an
			// extra member: remove a leaving host before the next join.
			n, err := e.memberCount(ctx)
			if err != nil {
				return err
			}
			if n > len(cps) {
				if err := e.leave(ctx, leaving[0], e.state.Hosts[leaving[0]]); err != nil {
					return err
				}
				leaving = leaving[1:]
			}
		}
		if len(leaving) > 0 && !snapshotted {
			if err := e.snapshot(ctx); err != nil {
				return err
			}
			snapshotted = true
		}
		if err := e.joinControlPlane(ctx, h); err != nil {
			return err
		}
		members[h.Name] = true
		if len(leaving) > 0 {
			if err := e.leave(ctx, leaving[0], e.state.Hosts[leaving[0]]); err != nil {
				return err
			}
		}
	}
	// 3. Workers: new ones join (in parallel), existing ones roll in
	// batches of their pool's MaxUnavailable.
	if err := e.applyWorkers(ctx, workers); err != nil {
		return err
	}
	// 4. Hosts that left the spec.
	if err := e.removeLeavers(ctx); err != nil {
		return err
	}
	e.state.Endpoints = e.endpoints()
	return nil
}

// leavingControlPlane names the control-plane hosts in state but not in
// the spec, sorted.
func (e *engine) leavingControlPlane() []string {
	want := map[string]bool{}
	for _, h := range e.hosts {
		want[h.Name] = true
	}
	var out []string
	for _, name := range sortedNames(e.state.Hosts) {
		if !want[name] && e.state.Hosts[name].Role == RoleControlPlane {
			out = append(out, name)
		}
	}
	return out
}

// liveEndpoints are the API URLs of the control-plane hosts the engine
// knows to be members now: those recorded in state (joined or not yet
// removed) and those of the spec.
func (e *engine) liveEndpoints() []string {
	eps := e.endpoints()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, name := range sortedNames(e.state.Hosts) {
		hs := e.state.Hosts[name]
		if hs.Role != RoleControlPlane {
			continue
		}
		if ep := apiURL(hs.InternalIP, e.settings.APIPort); !contains(eps, ep) {
			eps = append(eps, ep)
		}
	}
	return eps
}

// connect finds the running cluster (or bootstraps one) and returns the
// names of its etcd members.
func (e *engine) connect(ctx context.Context, cps []desiredHost) (map[string]bool, error) {
	eps := append([]string{}, e.state.Endpoints...)
	for _, ep := range e.endpoints() {
		if !contains(eps, ep) {
			eps = append(eps, ep)
		}
	}
	admin, err := e.adminClient(eps)
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	e.admin = admin
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	cp, err := admin.ControlPlane(cctx)
	cancel()
	if err != nil {
		if e.state.ClusterID != "" {
			return nil, fmt.Errorf("cluster %s recorded in state does not answer at %s: %w (refusing to bootstrap a second cluster)", e.state.ClusterID, strings.Join(eps, ", "), err)
		}
		seed := cps[0]
		e.progress(seed.Name, "bootstrap cluster")
		init := etcdInit{Cluster: seed.Name + "=" + peerURL(seed.InternalIP, e.settings.EtcdPeerPort), State: "new"}
		if err := e.install(ctx, seed, init, true); err != nil {
			return nil, fmt.Errorf("bootstrap cluster on host %q: %w", seed.Name, err)
		}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		cp, err = admin.ControlPlane(cctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read control plane after bootstrap on host %q: %w", seed.Name, err)
		}
	}
	if e.state.ClusterID != "" && cp.ClusterID != e.state.ClusterID {
		return nil, fmt.Errorf("the control plane at %s belongs to cluster %s, not %s recorded in state", strings.Join(eps, ", "), cp.ClusterID, e.state.ClusterID)
	}
	e.state.ClusterID = cp.ClusterID
	// Until the run succeeds, State keeps the endpoints that serve now
	// (published by the running control-plane hosts), not those of the
	// spec: during a move the new hosts serve only once they have joined,
	// and a run cut short must not leave State (and providers configured
	// from it) pointing at hosts that never came up.
	e.state.Endpoints = e.endpoints()
	if len(cp.Endpoints) > 0 {
		e.state.Endpoints = cp.Endpoints
	}
	ms, err := e.members(ctx)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, m := range ms {
		if m.Metadata.Name != "" {
			names[m.Metadata.Name] = true
		}
	}
	return names, nil
}

func (e *engine) members(ctx context.Context) ([]api.Member, error) {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ms, err := e.admin.Members(cctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd members: %w", err)
	}
	return ms, nil
}

// checkQuorum fails unless every voting member has started and a leader
// exists, so no step begins (or is declared done) with etcd degraded.
func (e *engine) checkQuorum(ctx context.Context, host string) error {
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for {
		ms, err := e.members(ctx)
		if err == nil {
			err = quorumProblem(ms)
		}
		if err == nil {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd not healthy before changing host %q: %w", host, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("check etcd quorum for host %q: %w", host, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// quorumProblem describes what is wrong with a member list, or nil.
func quorumProblem(ms []api.Member) error {
	voters, started, leader := 0, 0, false
	var down []string
	for _, m := range ms {
		if m.Status.IsLearner {
			continue
		}
		voters++
		if m.Status.Started {
			started++
		} else {
			down = append(down, m.Status.ID)
		}
		leader = leader || m.Status.IsLeader
	}
	switch {
	case voters == 0:
		return errors.New("no voting etcd member")
	case started <= voters/2:
		return fmt.Errorf("only %d of %d etcd voters started: quorum lost", started, voters)
	case len(down) > 0:
		return fmt.Errorf("etcd members %s not started", strings.Join(down, ", "))
	case !leader:
		return errors.New("etcd has no leader")
	}
	return nil
}

func (e *engine) snapshot(ctx context.Context) error {
	if e.spec.SnapshotPath == "" {
		return nil
	}
	e.progress("", "etcd snapshot to "+e.spec.SnapshotPath)
	if err := writeSnapshot(ctx, e.admin, e.spec.SnapshotPath); err != nil {
		return fmt.Errorf("etcd snapshot before control-plane changes: %w", err)
	}
	return nil
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func sortedNames[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
