package cluster

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/berth-io/berth/provider/ssh"
)

// ClusterAccess is how a worker pool reaches the cluster it joins: the
// control plane's endpoints, its CA certificate and an admin identity (the
// State of the Apply that made the cluster has all four). The CA key is
// not needed: workers receive their certificates through join tokens.
type ClusterAccess struct {
	Endpoints    []string
	CACertPEM    string
	AdminCertPEM string
	AdminKeyPEM  string
}

// PoolSpec is a worker pool managed apart from the control plane, so a
// Terraform node-pool resource can join, upgrade and remove workers of a
// cluster another resource owns.
type PoolSpec struct {
	// Cluster is the cluster the pool joins.
	Cluster ClusterAccess
	// Pool is the pool's hosts, labels and rollout policy.
	Pool WorkerPool
	// Image is the node image the pool's hosts run.
	Image Image
	// Settings must be the cluster's (CIDRs, API port, plain-HTTP
	// registries): they are written into each worker's configuration.
	Settings Settings
}

// poolEngine builds an engine for a pool: the pool's workers, and the
// control plane as endpoints only (never touched over SSH).
func poolEngine(spec PoolSpec, prior State, opts Options) (*engine, []desiredHost, error) {
	a := spec.Cluster
	if len(a.Endpoints) == 0 || a.CACertPEM == "" || a.AdminCertPEM == "" || a.AdminKeyPEM == "" {
		return nil, nil, fmt.Errorf("%w: worker pool %q needs the cluster's endpoints, CA certificate and admin credentials", ErrInvalidSpec, spec.Pool.Name)
	}
	full := Spec{Workers: []WorkerPool{spec.Pool}, Image: spec.Image, Settings: spec.Settings, Rollout: spec.Pool.Rollout}
	// The control plane appears as endpoint-only hosts so every worker's
	// configuration lists the endpoints.
	for i, ep := range a.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Hostname() == "" {
			return nil, nil, fmt.Errorf("%w: control-plane endpoint %q is not an https URL", ErrInvalidSpec, ep)
		}
		if p, err := strconv.Atoi(u.Port()); err == nil {
			full.Settings.APIPort = p
		}
		full.ControlPlane = append(full.ControlPlane, Host{Name: "endpoint-" + strconv.Itoa(i), SSH: ssh.HostConfig{Address: u.Hostname()}, InternalIP: u.Hostname()})
	}
	hosts, err := full.hosts()
	if err != nil {
		return nil, nil, err
	}
	e := &engine{spec: full, settings: full.Settings.withDefaults(), opts: opts, began: time.Now(), hosts: hosts}
	if e.opts.Parallelism < 1 {
		e.opts.Parallelism = 4
	}
	e.state = State{Endpoints: a.Endpoints, CACertPEM: a.CACertPEM, AdminCertPEM: a.AdminCertPEM, AdminKeyPEM: a.AdminKeyPEM, Hosts: map[string]HostState{}}
	for k, v := range prior.Hosts {
		e.state.Hosts[k] = v
	}
	var workers []desiredHost
	for _, h := range hosts {
		if h.Role == RoleWorker {
			workers = append(workers, h)
		}
	}
	return e, workers, nil
}

// poolState is what a pool's caller keeps: its hosts only (the cluster's
// credentials belong to the cluster's state).
func (e *engine) poolState() State {
	return State{ClusterID: e.state.ClusterID, Endpoints: e.state.Endpoints, Hosts: e.state.Hosts}
}

// ApplyPool makes a worker pool of an existing cluster match spec: new
// hosts join with join tokens minted for them, hosts whose image or
// configuration changed are replaced MaxUnavailable at a time (cordon,
// drain, install, wait healthy, uncordon), and hosts of prior that left the
// pool are drained, deleted and wiped. Like Apply it returns the State
// (hosts only) even on error, and the caller must keep it.
func ApplyPool(ctx context.Context, spec PoolSpec, prior State, opts Options) (State, error) {
	e, workers, err := poolEngine(spec, prior, opts)
	if err != nil {
		return prior, err
	}
	e.pool = ssh.NewPool(&ssh.Dialer{HostKeys: opts.HostKeys})
	defer e.pool.Close()
	if err := e.openImage(ctx); err != nil {
		return e.poolState(), err
	}
	admin, err := e.adminClient(spec.Cluster.Endpoints)
	if err != nil {
		return e.poolState(), fmt.Errorf("admin client: %w", err)
	}
	e.admin = admin
	defer admin.Close()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	cp, err := admin.ControlPlane(cctx)
	cancel()
	if err != nil {
		return e.poolState(), fmt.Errorf("worker pool %q: the control plane does not answer at %v: %w", spec.Pool.Name, spec.Cluster.Endpoints, err)
	}
	e.state.ClusterID = cp.ClusterID
	if err := e.settleLeavers(ctx); err != nil {
		return e.poolState(), err
	}
	if err := e.applyWorkers(ctx, workers); err != nil {
		return e.poolState(), err
	}
	if err := e.removeLeavers(ctx); err != nil {
		return e.poolState(), err
	}
	return e.poolState(), nil
}

// PlanPool describes what ApplyPool would do, from the spec and prior
// alone.
func PlanPool(spec PoolSpec, prior State) (PlanSummary, error) {
	e, _, err := poolEngine(spec, prior, Options{})
	if err != nil {
		return PlanSummary{}, err
	}
	// Plan sees the endpoint-only hosts as control-plane hosts to join;
	// give it a prior where they are already there.
	st := State{ClusterID: "existing", CACertPEM: spec.Cluster.CACertPEM, Hosts: map[string]HostState{}}
	for k, v := range prior.Hosts {
		st.Hosts[k] = v
	}
	for _, h := range e.hosts {
		if h.Role == RoleControlPlane {
			hash := renderHost(h, e.settings, spec.Cluster.CACertPEM, "", nil, "", etcdInit{}).hash()
			st.Hosts[h.Name] = HostState{Role: RoleControlPlane, Digest: spec.Image.Digest, ConfigHash: hash, InternalIP: h.InternalIP}
		}
	}
	p, err := Plan(e.spec, st)
	if err != nil {
		return PlanSummary{}, err
	}
	// The even-count warning is about endpoints here, not voters.
	var actions []string
	for _, a := range p.Actions {
		if len(a) > 8 && a[:8] == "warning:" {
			continue
		}
		actions = append(actions, a)
	}
	p.Actions = actions
	return p, nil
}

// DestroyPool removes every host of a pool's state from its cluster:
// cordoned, drained, its Node deleted and berth wiped, reached with the SSH
// settings recorded in state. When the control plane no longer answers the
// hosts are wiped all the same.
func DestroyPool(ctx context.Context, access ClusterAccess, state State, opts Options) error {
	e := &engine{opts: opts, began: time.Now(), state: state, settings: Settings{}.withDefaults()}
	e.state.CACertPEM, e.state.AdminCertPEM, e.state.AdminKeyPEM = access.CACertPEM, access.AdminCertPEM, access.AdminKeyPEM
	e.pool = ssh.NewPool(&ssh.Dialer{HostKeys: opts.HostKeys})
	defer e.pool.Close()
	var reachable bool
	if len(access.Endpoints) > 0 && access.AdminCertPEM != "" {
		if admin, err := e.adminClient(access.Endpoints); err == nil {
			defer admin.Close()
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			_, err = admin.ControlPlane(cctx)
			cancel()
			if err == nil {
				e.admin, reachable = admin, true
			}
		}
	}
	for _, name := range sortedNames(state.Hosts) {
		hs := state.Hosts[name]
		if reachable {
			if err := e.leave(ctx, name, hs); err != nil {
				return err
			}
			continue
		}
		cfg := hs.SSH
		cfg.Name = name
		c, err := e.pool.Client(ctx, cfg)
		if err != nil {
			return fmt.Errorf("reach host %q to wipe it: %w", name, err)
		}
		e.progress(name, "wipe (control plane unreachable)")
		if err := wipeHost(ctx, c); err != nil {
			return err
		}
	}
	return nil
}
