package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/provider/ssh"
)

// ErrUnhealthy marks an install whose host did not become healthy; the host
// was switched back to its previous image.
var ErrUnhealthy = errors.New("host did not become healthy")

// ErrRolledBack marks (beside ErrUnhealthy) a failed install whose host
// was switched back and is healthy again on its previous image.
var ErrRolledBack = errors.New("host switched back to its previous image")

// ErrPreflight marks a host that lacks what berth needs.
var ErrPreflight = errors.New("host failed preflight")

func (e *engine) files(h desiredHost, p probe, init etcdInit, digest string) hostFiles {
	if p.Control != nil && p.Control.Etcd.InitialClusterState != "" {
		// A member's first-start settings never change once written.
		init = etcdInit{Cluster: p.Control.Etcd.InitialCluster, State: p.Control.Etcd.InitialClusterState}
	}
	return renderHost(h, e.settings, e.state.CACertPEM, e.state.CAKeyPEM, e.endpoints(), digest, init)
}

func servicesRunning(p probe, h desiredHost) bool {
	if p.Init == "systemd" {
		return true
	}
	if !p.Running["containerd"] || !p.Running["agent"] {
		return false
	}
	return h.Role != RoleControlPlane || p.Running["control"]
}

// needsChange reports whether h differs from the spec: another image,
// another configuration, an unfinished operation or stopped services.
func (e *engine) needsChange(ctx context.Context, h desiredHost) (bool, error) {
	c, err := e.dial(ctx, h.Name, h.SSH)
	if err != nil {
		return false, err
	}
	p, err := probeHost(ctx, c)
	if err != nil {
		return false, err
	}
	f := e.files(h, p, etcdInit{}, e.digest)
	return p.Current != e.digest || p.ConfigHash != f.hash() || p.Journal != nil || !servicesRunning(p, h), nil
}

// install brings one host to the spec's image and configuration and waits
// until it is healthy, switching it back on failure. It touches nothing on
// a host that is already there.
func (e *engine) install(ctx context.Context, h desiredHost, init etcdInit, bootstrap bool) error {
	c, err := e.dial(ctx, h.Name, h.SSH)
	if err != nil {
		return err
	}
	p, err := probeHost(ctx, c)
	if err != nil {
		return err
	}
	if h.Role == RoleControlPlane && p.Control == nil && init.State == "" {
		return fmt.Errorf("install on host %q: no etcd membership settings for a new control-plane host", h.Name)
	}
	f := e.files(h, p, init, e.digest)
	hash := f.hash()
	rp := h.Rollout.or(defaultRollout)
	resume := p.Journal != nil && p.Journal.Operation == "install" && p.Journal.Target == e.digest && p.Journal.ConfigHash == hash
	if !resume && p.Journal == nil && p.Current == e.digest && p.ConfigHash == hash && servicesRunning(p, h) {
		e.progress(h.Name, "up to date")
		if err := e.waitHealthy(ctx, c, h, e.digest, rp.HealthTimeout); err != nil {
			return err
		}
		e.record(h, c, e.digest, hash)
		return nil
	}
	from := p.Current
	if p.Journal != nil {
		// An interrupted operation knows what the host ran before it.
		from = p.Journal.From
	}
	if from == e.digest {
		from = p.Previous
	}
	j := &journal{Operation: "install", Target: e.digest, From: from, ConfigHash: hash, Step: "started"}
	if !resume {
		e.progress(h.Name, "preflight")
		rep, err := ssh.Preflight(ctx, c)
		if err != nil {
			return fmt.Errorf("preflight of host %q: %w", h.Name, err)
		}
		if probs := rep.Problems(); len(probs) > 0 {
			return fmt.Errorf("%w: host %q: %s", ErrPreflight, h.Name, strings.Join(probs, "; "))
		}
		if p.Journal == nil {
			if err := backupConfig(ctx, c); err != nil {
				return err
			}
		}
		if err := writeJournal(ctx, c, j); err != nil {
			return err
		}
	} else {
		e.progress(h.Name, "resume interrupted install (step "+p.Journal.Step+")")
	}
	if err := ensureImage(ctx, c, e.spec.Image.Path, e.digest, func(s string) { e.progress(h.Name, s) }); err != nil {
		return err
	}
	files, err := f.files()
	if err != nil {
		return err
	}
	if !p.AgentCreds && !bootstrap {
		tok, err := e.joinToken(ctx, h.Name)
		if err != nil {
			return err
		}
		files[pathJoinToken] = []byte(tok)
	}
	e.progress(h.Name, "write configuration")
	if err := writeFiles(ctx, c, "write configuration", files); err != nil {
		return err
	}
	j.Step = "configured"
	if err := writeJournal(ctx, c, j); err != nil {
		return err
	}
	e.progress(h.Name, "switch to image "+short(e.digest))
	if err := switchImage(ctx, c, e.digest, from); err != nil {
		return err
	}
	e.progress(h.Name, "restart services")
	if err := restartServices(ctx, c); err != nil {
		return e.rollback(ctx, c, h, from, err)
	}
	j.Step = "switched"
	if err := writeJournal(ctx, c, j); err != nil {
		return err
	}
	if bootstrap && !p.AgentCreds {
		if err := e.bootstrapAgent(ctx, c, h, rp.HealthTimeout); err != nil {
			return e.rollback(ctx, c, h, from, err)
		}
	}
	e.progress(h.Name, "wait until healthy")
	if err := e.waitHealthy(ctx, c, h, e.digest, rp.HealthTimeout); err != nil {
		return e.rollback(ctx, c, h, from, err)
	}
	if err := pruneImages(ctx, c); err != nil {
		return err
	}
	if err := writeJournal(ctx, c, nil); err != nil {
		return err
	}
	e.record(h, c, e.digest, hash)
	e.progress(h.Name, "healthy on image "+short(e.digest))
	return nil
}

// bootstrapAgent gives the first host's agent its join token once the new
// control plane answers.
func (e *engine) bootstrapAgent(ctx context.Context, c *ssh.Client, h desiredHost, timeout time.Duration) error {
	hc, err := e.adminClient([]string{apiURL(h.InternalIP, e.settings.APIPort)})
	if err != nil {
		return err
	}
	defer hc.Close()
	deadline := time.Now().Add(timeout)
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = hc.Readyz(rctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("control plane on host %q not ready within %s: %w", h.Name, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	tok, err := e.joinToken(ctx, h.Name)
	if err != nil {
		return err
	}
	return writeFiles(ctx, c, "write join token", map[string][]byte{pathJoinToken: []byte(tok)})
}

func (e *engine) joinToken(ctx context.Context, node string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	t, err := e.admin.CreateJoinToken(cctx, api.JoinTokenRequest{TTLSeconds: 1800, NodeName: node})
	if err != nil {
		return "", fmt.Errorf("mint join token for host %q: %w", node, err)
	}
	return t.Token, nil
}

// rollback switches h back to the image and configuration it ran before,
// restarts it and reports cause with the last lines of its logs.
func (e *engine) rollback(ctx context.Context, c *ssh.Client, h desiredHost, from string, cause error) error {
	// The rollback must run even when ctx was cancelled mid-install.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	logs := logTail(rctx, c, 20)
	if ctx.Err() != nil {
		// A cancelled run leaves the journal for the next run to finish.
		return fmt.Errorf("install image %s on host %q interrupted: %w", short(e.digest), h.Name, ctx.Err())
	}
	e.progress(h.Name, "roll back to image "+short(from))
	if from == "" {
		_, _ = hostRun(rctx, c, "stop berth services", hostBerth+" node stop --config "+pathNodeConfig, 2*time.Minute)
		_ = writeJournal(rctx, c, nil)
		return fmt.Errorf("%w: install image %s on host %q: %v\nlast log lines:\n%s", ErrUnhealthy, short(e.digest), h.Name, cause, logs)
	}
	var rbErr error
	if err := restoreConfig(rctx, c); err != nil {
		rbErr = err
	} else if err := switchImage(rctx, c, from, e.digest); err != nil {
		rbErr = err
	} else if err := restartServices(rctx, c); err != nil {
		rbErr = err
	} else {
		_ = writeJournal(rctx, c, nil)
		if err := e.waitHealthy(rctx, c, h, from, h.Rollout.or(defaultRollout).HealthTimeout); err != nil {
			rbErr = fmt.Errorf("after rollback: %w", err)
		}
	}
	msg := fmt.Sprintf("install image %s on host %q: %v; switched back to image %s", short(e.digest), h.Name, cause, short(from))
	if rbErr != nil {
		msg += fmt.Sprintf(" (rollback incomplete: %v)", rbErr)
		return fmt.Errorf("%w: %s\nlast log lines:\n%s", ErrUnhealthy, msg, logs)
	}
	return fmt.Errorf("%w (%w): %s\nlast log lines:\n%s", ErrUnhealthy, ErrRolledBack, msg, logs)
}

// waitHealthy waits until h is healthy as DESIGN.md defines it: its Node
// Ready on digest, its API answering /readyz and its etcd member started
// and voting (a learner is promoted once etcd agrees it caught up).
func (e *engine) waitHealthy(ctx context.Context, c *ssh.Client, h desiredHost, digest string, timeout time.Duration) error {
	var hc *client.Client
	if h.Role == RoleControlPlane {
		var err error
		hc, err = e.adminClient([]string{apiURL(h.InternalIP, e.settings.APIPort)})
		if err != nil {
			return err
		}
		defer hc.Close()
	}
	deadline := time.Now().Add(timeout)
	for {
		reason := e.healthProblem(ctx, hc, h, digest)
		if reason == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("host %q not healthy within %s: %s", h.Name, timeout, reason)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for host %q: %w (last: %s)", h.Name, ctx.Err(), reason)
		case <-time.After(time.Second):
		}
	}
}

func (e *engine) healthProblem(ctx context.Context, hc *client.Client, h desiredHost, digest string) string {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if hc != nil {
		// Membership first: a learner is promoted by the rest of the
		// cluster once it has caught up, and its own API may well wait
		// for that promotion before it answers /readyz.
		ms, err := e.admin.Members(cctx)
		if err != nil {
			return "list etcd members: " + err.Error()
		}
		want := peerURL(h.InternalIP, e.settings.EtcdPeerPort)
		var m *api.Member
		for i := range ms {
			if ms[i].Metadata.Name == h.Name || contains(ms[i].Status.PeerURLs, want) {
				m = &ms[i]
			}
		}
		switch {
		case m == nil:
			return "etcd member missing"
		case !m.Status.Started:
			return "etcd member not started"
		case m.Status.IsLearner:
			if err := e.admin.PromoteMember(cctx, m.Status.ID); err != nil {
				return "etcd learner not yet promoted: " + err.Error()
			}
			e.progress(h.Name, "etcd member promoted")
		}
		if err := hc.Readyz(cctx); err != nil {
			return "control plane /readyz: " + err.Error()
		}
	}
	var n api.Node
	if err := e.admin.Get(cctx, "", h.Name, &n); err != nil {
		return "read node: " + err.Error()
	}
	if !api.IsNodeReady(&n) {
		return "node not Ready"
	}
	if got := n.Status.NodeInfo.NodeImageDigest; got != digest {
		return fmt.Sprintf("node reports image %s, want %s", short(got), short(digest))
	}
	return ""
}

// replace cordons and drains an existing host, installs it and uncordons
// it; a host with nothing to change is left alone.
func (e *engine) replace(ctx context.Context, h desiredHost, init etcdInit) error {
	rp := h.Rollout.or(defaultRollout)
	e.progress(h.Name, "cordon")
	if err := e.drainNode(ctx, h.Name, rp.DrainTimeout); err != nil && !api.IsNotFound(err) {
		return fmt.Errorf("drain host %q: %w", h.Name, err)
	}
	if err := e.install(ctx, h, init, false); err != nil {
		if errors.Is(err, ErrRolledBack) {
			// Healthy again on its old image: it takes pods again while
			// the operator looks at the failed one.
			if uerr := client.Cordon(ctx, e.admin, h.Name, false); uerr != nil {
				return fmt.Errorf("%w (and uncordon host %q after the rollback: %v)", err, h.Name, uerr)
			}
		}
		return err
	}
	e.progress(h.Name, "uncordon")
	if err := client.Cordon(ctx, e.admin, h.Name, false); err != nil {
		return fmt.Errorf("uncordon host %q: %w", h.Name, err)
	}
	return nil
}

// joinControlPlane adds h as an etcd learner (unless an interrupted run did
// already) and installs it with initial-cluster-state "existing".
func (e *engine) joinControlPlane(ctx context.Context, h desiredHost) error {
	c, err := e.dial(ctx, h.Name, h.SSH)
	if err != nil {
		return err
	}
	p, err := probeHost(ctx, c)
	if err != nil {
		return err
	}
	init := etcdInit{}
	if p.Control == nil || p.Control.Etcd.InitialClusterState == "" {
		e.progress(h.Name, "add etcd learner")
		purl := peerURL(h.InternalIP, e.settings.EtcdPeerPort)
		ms, err := e.members(ctx)
		if err != nil {
			return err
		}
		var added bool
		for _, m := range ms {
			added = added || contains(m.Status.PeerURLs, purl)
		}
		if added {
			init = etcdInit{Cluster: initialCluster(ms, h.Name, purl), State: "existing"}
		} else {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			resp, err := e.admin.AddMember(cctx, api.MemberAddRequest{Name: h.Name, PeerURLs: []string{purl}})
			cancel()
			if err != nil {
				return fmt.Errorf("add etcd learner for host %q: %w", h.Name, err)
			}
			init = etcdInit{Cluster: resp.InitialCluster, State: "existing"}
		}
	}
	if err := e.install(ctx, h, init, false); err != nil {
		return fmt.Errorf("join control-plane host %q: %w", h.Name, err)
	}
	return nil
}

// initialCluster rebuilds etcd's --initial-cluster for a learner added by an
// interrupted run: every named member, plus this one under its name.
func initialCluster(ms []api.Member, name, purl string) string {
	var parts []string
	for _, m := range ms {
		n := m.Metadata.Name
		if contains(m.Status.PeerURLs, purl) {
			n = name
		}
		if n == "" {
			continue
		}
		for _, u := range m.Status.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ",")
}

func (e *engine) applyWorkers(ctx context.Context, workers []desiredHost) error {
	var fresh []desiredHost
	pools := map[string][]desiredHost{}
	var order []string
	for _, h := range workers {
		if _, known := e.state.Hosts[h.Name]; !known {
			fresh = append(fresh, h)
			continue
		}
		if _, ok := pools[h.Pool]; !ok {
			order = append(order, h.Pool)
		}
		pools[h.Pool] = append(pools[h.Pool], h)
	}
	if err := e.parallel(ctx, fresh, e.opts.Parallelism, func(ctx context.Context, h desiredHost) error {
		return e.install(ctx, h, etcdInit{}, false)
	}); err != nil {
		return err
	}
	for _, pool := range order {
		var changed []desiredHost
		for _, h := range pools[pool] {
			ch, err := e.needsChange(ctx, h)
			if err != nil {
				return err
			}
			if ch {
				changed = append(changed, h)
			} else {
				// Health of an untouched host is still checked.
				if err := e.install(ctx, h, etcdInit{}, false); err != nil {
					return err
				}
			}
		}
		if len(changed) == 0 {
			continue
		}
		batch := changed[0].Rollout.or(defaultRollout).MaxUnavailable
		for i := 0; i < len(changed); i += batch {
			end := min(i+batch, len(changed))
			if err := e.parallel(ctx, changed[i:end], batch, func(ctx context.Context, h desiredHost) error {
				return e.replace(ctx, h, etcdInit{})
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// parallel runs fn on hosts, at most limit at once, and returns every
// failure keyed by host.
func (e *engine) parallel(ctx context.Context, hosts []desiredHost, limit int, fn func(context.Context, desiredHost) error) error {
	if limit < 1 {
		limit = 1
	}
	sem := make(chan struct{}, limit)
	var mu sync.Mutex
	errs := ssh.HostErrors{}
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, h); err != nil {
				mu.Lock()
				errs[h.Name] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// removeLeavers drains, removes from etcd and wipes every host in state but
// not in the spec: workers first, then control-plane hosts one at a time.
func (e *engine) removeLeavers(ctx context.Context) error {
	want := map[string]bool{}
	for _, h := range e.hosts {
		want[h.Name] = true
	}
	var workers, cps []string
	for _, name := range sortedNames(e.state.Hosts) {
		if want[name] {
			continue
		}
		if e.state.Hosts[name].Role == RoleControlPlane {
			cps = append(cps, name)
		} else {
			workers = append(workers, name)
		}
	}
	for _, name := range append(workers, cps...) {
		if err := e.leave(ctx, name, e.state.Hosts[name]); err != nil {
			return err
		}
	}
	return nil
}

func (e *engine) leave(ctx context.Context, name string, hs HostState) error {
	if hs.Role == RoleControlPlane {
		// Ask the members that stay: a member that removes itself stops
		// before it can answer.
		gone := apiURL(hs.InternalIP, e.settings.APIPort)
		var eps []string
		for _, ep := range e.liveEndpoints() {
			if ep != gone {
				eps = append(eps, ep)
			}
		}
		if err := e.admin.SetEndpoints(eps); err != nil {
			return fmt.Errorf("turn the engine away from leaving host %q: %w", name, err)
		}
	}
	e.progress(name, "leave: cordon and drain")
	if err := e.drainNode(ctx, name, e.spec.Rollout.or(defaultRollout).DrainTimeout); err != nil && !api.IsNotFound(err) {
		return fmt.Errorf("drain leaving host %q: %w", name, err)
	}
	if hs.Role == RoleControlPlane {
		if err := e.checkQuorum(ctx, name); err != nil {
			return err
		}
		if err := e.removeMember(ctx, name, hs); err != nil {
			return err
		}
	}
	cfg := hs.SSH
	c, err := e.pool.Client(ctx, cfg)
	var unreachable *ssh.UnreachableError
	if errors.As(err, &unreachable) && ctx.Err() == nil {
		// It died while leaving: nothing can wipe it (see abandon).
		return e.abandon(ctx, name, hs)
	}
	if err != nil {
		return fmt.Errorf("reach leaving host %q: %w", name, err)
	}
	e.progress(name, "wipe")
	if err := wipeHost(ctx, c); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = e.admin.Delete(cctx, &api.Node{Metadata: api.ObjectMeta{Name: name}})
	cancel()
	if err != nil && !api.IsNotFound(err) {
		return fmt.Errorf("delete node %q: %w", name, err)
	}
	if hs.Role == RoleControlPlane {
		if err := e.checkQuorum(ctx, name); err != nil {
			return err
		}
	}
	e.mu.Lock()
	delete(e.state.Hosts, name)
	e.mu.Unlock()
	if hs.Role == RoleControlPlane {
		// Stop sending requests to the host that left.
		if err := e.admin.SetEndpoints(e.liveEndpoints()); err != nil {
			return fmt.Errorf("follow control plane after host %q left: %w", name, err)
		}
	}
	e.progress(name, "left the cluster")
	return nil
}

// memberGone reports whether the etcd member id is no longer listed: a
// removal whose answer was lost may still have been applied.
func (e *engine) memberGone(ctx context.Context, id string) bool {
	ms, err := e.members(ctx)
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.Status.ID == id {
			return false
		}
	}
	return true
}

// writeSnapshot streams an etcd snapshot to path through a temporary file.
func writeSnapshot(ctx context.Context, c *client.Client, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create snapshot directory: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return fmt.Errorf("create snapshot file: %w", err)
	}
	defer os.Remove(f.Name())
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if _, err := c.Snapshot(sctx, f); err != nil {
		f.Close()
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write snapshot %s: %w", path, err)
	}
	return os.Rename(f.Name(), path)
}

// Destroy stops the cluster's workloads gracefully where the control
// plane still answers, then wipes berth from every host, with the SSH
// settings recorded in state.
func Destroy(ctx context.Context, state State, opts Options) error {
	e := &engine{opts: opts, began: time.Now(), state: state, settings: Settings{}.withDefaults()}
	e.pool = ssh.NewPool(&ssh.Dialer{HostKeys: opts.HostKeys})
	defer e.pool.Close()
	if state.AdminCertPEM != "" && len(state.Endpoints) > 0 {
		if admin, err := e.adminClient(state.Endpoints); err == nil {
			e.admin = admin
			defer admin.Close()
			sctx, cancel := context.WithTimeout(ctx, time.Minute)
			_ = e.stopWorkloads(sctx, sortedNames(state.Hosts))
			cancel()
		}
	}
	var cfgs []ssh.HostConfig
	for _, name := range sortedNames(state.Hosts) {
		cfg := state.Hosts[name].SSH
		cfg.Name = name
		cfgs = append(cfgs, cfg)
	}
	limit := opts.Parallelism
	if limit < 1 {
		limit = 4
	}
	return e.pool.ForEach(ctx, cfgs, limit, func(ctx context.Context, c *ssh.Client) error {
		e.progress(c.Host(), "wipe")
		return wipeHost(ctx, c)
	})
}

// stopWorkloads cordons every node and deletes every pod bound to one, so
// each leaves the service rules before its SIGTERM, and waits until none
// is left on a node. A drain would not do: every node is going, and
// eviction budgets would hold pods of deployments that may lose none.
func (e *engine) stopWorkloads(ctx context.Context, nodes []string) error {
	for _, n := range nodes {
		e.progress(n, "cordon")
		if err := client.Cordon(ctx, e.admin, n, true); err != nil && !api.IsNotFound(err) {
			return fmt.Errorf("cordon host %q: %w", n, err)
		}
	}
	e.progress("", "stop workloads")
	deleted := map[string]bool{}
	for {
		var pods api.PodList
		if err := e.admin.List(ctx, &pods, client.ListOptions{}); err != nil {
			return fmt.Errorf("list pods: %w", err)
		}
		left := 0
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Spec.NodeName == "" {
				continue
			}
			left++
			if k := p.Metadata.UID; !deleted[k] {
				if err := e.admin.Delete(ctx, p); err != nil && !api.IsNotFound(err) {
					return fmt.Errorf("delete pod %s: %w", api.Key(p), err)
				}
				deleted[k] = true
			}
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d pods still on nodes: %w", left, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

func short(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	if d == "" {
		return "(none)"
	}
	return d
}
