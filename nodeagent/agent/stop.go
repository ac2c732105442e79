package agent

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// terminate stops a pod that is being deleted or left the node: first the
// service-rules gate (no node routes new connections to it any more), then
// SIGTERM, SIGKILL after the grace period, then removal of its containers,
// snapshots and network, and last the final delete. It reports true once
// everything is gone; on a failure it schedules a retry and reports false.
func (w *podWorker) terminate(ctx context.Context, pod *api.Pod) bool {
	ref := pod
	if ref == nil {
		ref = w.spec
	}
	anyRunning := false
	for _, cs := range w.ctrs {
		if cs.running {
			anyRunning = true
		}
	}
	if anyRunning {
		if pod != nil {
			// Tell the endpoints controller first: a terminating pod is not Ready.
			w.writeStatus(ctx, pod)
		}
		if w.ip.IsValid() && ref != nil {
			w.a.waitRulesGate(ctx, ref.Metadata.Namespace, w.ip.String())
		}
		if ctx.Err() != nil {
			return false
		}
		grace := time.Duration(api.DefaultTerminationGracePeriodSeconds) * time.Second
		if ref != nil {
			grace = terminationGrace(ref)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		for _, cs := range w.ctrs {
			if !cs.running {
				continue
			}
			cs.killing = true
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				sctx, cancel := context.WithTimeout(ctx, grace+time.Minute)
				defer cancel()
				if err := w.a.rt.StopContainer(sctx, id, grace); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}(cs.id)
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			w.a.log.Warn("stop pod containers", "pod", w.namespace+"/"+w.name, "err", err)
			w.retryAt = w.a.now().Add(time.Second)
			return false
		}
		for _, cs := range w.ctrs {
			cs.running = false
		}
	}
	w.stopProbes()
	for name, cs := range w.ctrs {
		if cs.id == "" {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := w.a.rt.RemoveContainer(rctx, cs.id)
		cancel()
		if err != nil {
			w.a.log.Warn("remove container", "container", cs.id, "err", err)
			w.retryAt = w.a.now().Add(time.Second)
			return false
		}
		delete(w.ctrs, name)
	}
	nctx, cancel := context.WithTimeout(ctx, time.Minute)
	err := w.a.net.Teardown(nctx, w.uid)
	cancel()
	if err != nil {
		w.a.log.Warn("tear down pod network", "pod", w.namespace+"/"+w.name, "err", err)
		w.retryAt = w.a.now().Add(time.Second)
		return false
	}
	w.ip, w.netns = netip.Addr{}, ""
	_ = os.RemoveAll(w.podDir())
	if pod != nil {
		dctx, cancel := context.WithTimeout(ctx, w.a.cfg.APITimeout.or(DefaultAPITimeout))
		err := w.a.cli.Delete(dctx, pod, client.GracePeriod(0))
		cancel()
		if err != nil && !api.IsNotFound(err) {
			w.a.log.Warn("finalise pod deletion", "pod", w.namespace+"/"+w.name, "err", err)
			w.retryAt = w.a.now().Add(time.Second)
			return false
		}
		w.a.log.Info("pod stopped and removed", "pod", w.namespace+"/"+w.name)
	}
	return true
}

// waitRulesGate waits, at most StopGateTimeout, until no Endpoints object of
// namespace lists ip and every Ready node reports service rules at least as
// new as those Endpoints, so no node routes new connections to a stopping
// pod. A Ready node whose heartbeats have stopped reaching this agent for
// StopGateNodeGrace (it lost power, or its agent died) is not waited for:
// it cannot route, and it would hold every pod stop for the whole timeout
// until the control plane marks it NotReady. Each node given up is logged.
func (a *Agent) waitRulesGate(ctx context.Context, namespace, ip string) {
	limit := a.cfg.StopGateTimeout.or(DefaultStopGateTimeout)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	start := time.Now()
	gaveUp := map[string]bool{}
	for {
		changed := a.gateChanged()
		ok, why, silent := a.gateOpen(a.currentEndpoints(ctx, namespace), ip)
		for _, s := range silent {
			if !gaveUp[s.name] {
				gaveUp[s.name] = true
				a.log.Warn("stop gate: not waiting for a node that has gone silent", "ip", ip, "node", s.name,
					"silentFor", s.silentFor.Round(time.Second), "grace", a.nodeGrace())
			}
		}
		if ok {
			a.log.Debug("stop gate open", "ip", ip, "waited", time.Since(start))
			return
		}
		select {
		case <-ctx.Done():
			a.log.Warn("stopping pod before every node dropped it from service rules", "ip", ip, "waited", limit, "blocking", why)
			return
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}

// currentEndpoints reads namespace's Endpoints from the API rather than
// from the informer: the cache may not yet hold a change that added the
// pod (created just before its deletion began), and judging by it would
// send SIGTERM while other nodes still route to the pod. When the API
// cannot be reached the cache is the best there is.
func (a *Agent) currentEndpoints(ctx context.Context, namespace string) []*api.Endpoints {
	lctx, cancel := context.WithTimeout(ctx, a.cfg.APITimeout.or(DefaultAPITimeout))
	defer cancel()
	var list api.EndpointsList
	var out []*api.Endpoints
	err := a.cli.List(lctx, &list, client.ListOptions{Namespace: namespace})
	if err == nil {
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
		return out
	}
	a.log.Debug("stop gate: endpoints not readable from the API, judging by the cache", "namespace", namespace, "err", err)
	for _, o := range a.endpoints.List() {
		if ep := o.(*api.Endpoints); ep.Metadata.Namespace == namespace {
			out = append(out, ep)
		}
	}
	return out
}

// silentNode is a Ready node the stop gate did not wait for.
type silentNode struct {
	name      string
	silentFor time.Duration
}

// gateOpen reports whether a pod with ip may be sent SIGTERM, or why not,
// given its namespace's current Endpoints; silent lists the nodes that
// had not caught up but were not waited for, as their heartbeats stopped.
func (a *Agent) gateOpen(endpoints []*api.Endpoints, ip string) (ok bool, why string, silent []silentNode) {
	var need int64
	for _, ep := range endpoints {
		for _, s := range ep.Subsets {
			for _, addr := range s.Addresses {
				if addr.IP == ip {
					return false, "endpoints " + api.Key(ep) + " still list the pod", nil
				}
			}
		}
		need = max(need, ep.Metadata.ResourceVersion)
	}
	if need == 0 {
		return true, "", nil
	}
	now, grace := a.now(), a.nodeGrace()
	for _, o := range a.nodes.List() {
		n := o.(*api.Node)
		if !api.IsNodeReady(n) {
			continue
		}
		have := n.Status.ServiceRulesRevision
		if n.Metadata.Name == a.cfg.NodeName {
			have = max(have, a.rulesRevision.Load())
		}
		if have >= need {
			continue
		}
		if n.Metadata.Name != a.cfg.NodeName {
			if d, gone := a.heard.silent(n.Metadata.Name, a.cfg.NodeName, now, grace); gone {
				silent = append(silent, silentNode{name: n.Metadata.Name, silentFor: d})
				continue
			}
		}
		return false, "node " + n.Metadata.Name + " has not programmed the change yet", silent
	}
	return true, "", silent
}

// nodeGrace is how long a node may stay unheard before the stop gate stops
// waiting for it.
func (a *Agent) nodeGrace() time.Duration {
	return a.cfg.StopGateNodeGrace.or(3 * a.cfg.HeartbeatInterval.or(DefaultHeartbeat))
}

// nodeLiveness remembers, on this agent's own clock, when each node's
// heartbeat last reached it through the Node informer (clocks of other
// hosts are never compared). Its verdicts are trusted only while this
// node's own heartbeats come back through the same informer: if the
// informer itself is stale, every node would look silent, and then none
// is declared so.
type nodeLiveness struct {
	mu    sync.Mutex
	heard map[string]heartbeatSeen
}

// heartbeatSeen is a node's last heartbeat time as it reported it, and
// when this agent first saw that value.
type heartbeatSeen struct {
	reported time.Time
	at       time.Time
}

func newNodeLiveness() *nodeLiveness {
	return &nodeLiveness{heard: map[string]heartbeatSeen{}}
}

// observe records n as cached at now: a node seen for the first time, or
// with a new heartbeat, was heard from now.
func (l *nodeLiveness) observe(n *api.Node, now time.Time) {
	var reported time.Time
	if n.Status.LastHeartbeatTime != nil {
		reported = *n.Status.LastHeartbeatTime
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	prev, ok := l.heard[n.Metadata.Name]
	if ok && prev.reported.Equal(reported) {
		return
	}
	l.heard[n.Metadata.Name] = heartbeatSeen{reported: reported, at: now}
}

// forget drops a deleted node.
func (l *nodeLiveness) forget(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.heard, name)
}

// silent reports how long node has not been heard from and whether that
// exceeds grace, given that self (this agent's node) was heard from
// within grace, which shows the informer is current.
func (l *nodeLiveness) silent(node, self string, now time.Time, grace time.Duration) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	me, ok := l.heard[self]
	if !ok || now.Sub(me.at) > grace {
		return 0, false
	}
	seen, ok := l.heard[node]
	if !ok {
		return 0, false
	}
	d := now.Sub(seen.at)
	return d, d > grace
}
