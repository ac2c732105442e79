package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/provider/ssh"
)

// Moving a cluster to other hosts (another vendor) is a change of the host
// set: the hosts of the Spec join, the hosts of the prior State that left
// it are drained, removed and wiped. Two things can make a move stop
// halfway, and the next Apply must finish it:
//
//   - a run cut short (cancelled, or the engine's machine lost) leaves an
//     extra etcd member, or a leaving host whose member is already gone;
//   - a leaving host dies. It cannot be drained or wiped, and a dead voter
//     left in etcd lowers the failures the cluster can take while hosts
//     join.
//
// So before any host joins, leaving hosts that no longer answer SSH are
// given up (abandon), as is one that dies while the run is under way when
// its turn to leave comes; and control-plane joins are paired with
// removals by counting members rather than by position, so a resumed run
// never holds more than one extra member either.

// settleLeavers gives up every leaving host (in State, not in the Spec)
// that cannot be reached over SSH: its etcd member is removed by ID (the
// API refuses when that would cost quorum), its pods and Node are deleted,
// and it is dropped from State without a wipe, since nothing can reach it.
// Its disk keeps berth's files; its Node identity is revoked with the Node
// and its member is gone, so it cannot come back into the cluster by
// itself. Hosts that answer are left to the normal leave.
func (e *engine) settleLeavers(ctx context.Context) error {
	want := map[string]bool{}
	for _, h := range e.hosts {
		want[h.Name] = true
	}
	for _, name := range sortedNames(e.state.Hosts) {
		if want[name] {
			continue
		}
		hs := e.state.Hosts[name]
		cfg := hs.SSH
		if cfg.Name == "" {
			cfg.Name = name
		}
		_, err := e.pool.Client(ctx, cfg)
		if err == nil {
			continue
		}
		var unreachable *ssh.UnreachableError
		if !errors.As(err, &unreachable) || ctx.Err() != nil {
			return fmt.Errorf("reach leaving host %q: %w", name, err)
		}
		if err := e.abandon(ctx, name, hs); err != nil {
			return err
		}
	}
	return nil
}

// abandon removes an unreachable leaving host from the cluster and from
// State (see settleLeavers).
func (e *engine) abandon(ctx context.Context, name string, hs HostState) error {
	e.progress(name, "unreachable over SSH: removing it from the cluster without a wipe")
	if hs.Role == RoleControlPlane {
		if err := e.removeMember(ctx, name, hs); err != nil {
			return err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var pods api.PodList
	if err := e.admin.List(cctx, &pods, client.ListOptions{NodeName: name}); err != nil {
		return fmt.Errorf("list pods of unreachable host %q: %w", name, err)
	}
	// Nothing can stop them on a dead host; their controllers replace them.
	for i := range pods.Items {
		if err := e.admin.Delete(cctx, &pods.Items[i], client.GracePeriod(0)); err != nil && !api.IsNotFound(err) {
			return fmt.Errorf("delete pod %s of unreachable host %q: %w", api.Key(&pods.Items[i]), name, err)
		}
	}
	if err := e.admin.Delete(cctx, &api.Node{Metadata: api.ObjectMeta{Name: name}}); err != nil && !api.IsNotFound(err) {
		return fmt.Errorf("delete node %q: %w", name, err)
	}
	e.mu.Lock()
	delete(e.state.Hosts, name)
	e.mu.Unlock()
	if hs.Role == RoleControlPlane {
		if err := e.admin.SetEndpoints(e.liveEndpoints()); err != nil {
			return fmt.Errorf("follow control plane after host %q was given up: %w", name, err)
		}
	}
	e.progress(name, "left the cluster unreachable: etcd member removed, node deleted, not wiped")
	return nil
}

// removeMember removes the etcd member of a leaving control-plane host,
// found by name or peer URL, by ID; no member is not an error (an earlier
// run removed it), nor is a failed removal after which the member is gone
// (its answer was lost). leave and abandon both use it.
func (e *engine) removeMember(ctx context.Context, name string, hs HostState) error {
	ms, err := e.members(ctx)
	if err != nil {
		return err
	}
	purl := peerURL(hs.InternalIP, e.settings.EtcdPeerPort)
	for _, m := range ms {
		if m.Metadata.Name != name && !contains(m.Status.PeerURLs, purl) {
			continue
		}
		e.progress(name, "remove etcd member "+m.Status.ID)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := e.admin.RemoveMember(cctx, m.Status.ID)
		cancel()
		if err != nil && !e.memberGone(ctx, m.Status.ID) {
			return fmt.Errorf("remove etcd member %s of host %q: %w", m.Status.ID, name, err)
		}
	}
	return nil
}

// memberCount counts the etcd members (voters and learners).
func (e *engine) memberCount(ctx context.Context) (int, error) {
	ms, err := e.members(ctx)
	if err != nil {
		return 0, err
	}
	return len(ms), nil
}

// recordServingEndpoints puts the endpoints the control plane publishes now
// into State, after a run that stopped halfway (cancelled, or failed): the
// control-plane hosts that joined serve, those that left do not. When the
// control plane does not answer, State keeps what it had.
func (e *engine) recordServingEndpoints(ctx context.Context) {
	if e.state.ClusterID == "" {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cp, err := e.admin.ControlPlane(cctx)
	if err != nil || len(cp.Endpoints) == 0 || cp.ClusterID != e.state.ClusterID {
		return
	}
	e.state.Endpoints = cp.Endpoints
}
