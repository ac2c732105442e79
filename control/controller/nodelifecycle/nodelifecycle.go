// Package nodelifecycle watches node heartbeats: a node whose agent has
// not posted status for a grace period is marked Ready=Unknown, and once it
// has stayed silent for a further eviction timeout its pods are deleted at
// once (grace period 0, since the node cannot act on a graceful deletion).
// As soon as a node is found silent its pods are marked not Ready, so
// services stop sending them traffic while the eviction timeout runs.
// Deployments re-create their pods elsewhere; a pod without a controller is
// re-created here, unbound, with the same name and spec, so losing a host
// never loses a pod. Pods bound to a node that no longer exists are treated
// the same way.
//
// Silence is measured on the controller's own clock — from when it last
// saw the heartbeat value change — never by comparing a node's timestamp
// with local time, so clock skew between hosts cannot evict a healthy
// node; a newly elected leader therefore starts every node's count afresh.
// This controller must never delete pods of a node that heartbeats.
package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// Name is the controller's name in events.
const Name = "node-lifecycle-controller"

// Defaults of Options.
const (
	DefaultGracePeriod     = 40 * time.Second
	DefaultEvictionTimeout = 60 * time.Second
)

// Options tune the controller.
type Options struct {
	// GracePeriod is how long a node may go without a heartbeat before it
	// is marked Ready=Unknown (default 40 s).
	GracePeriod time.Duration
	// EvictionTimeout is how long a node stays silent after that before
	// its pods are deleted and re-created elsewhere (default 60 s).
	EvictionTimeout time.Duration
	// MonitorPeriod is how often nodes are checked (default GracePeriod/8).
	MonitorPeriod time.Duration
	// Logger receives node state changes and evictions.
	Logger *slog.Logger
	// Recorder, when set, records events about nodes and evicted pods.
	Recorder *client.EventRecorder
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Controller watches node heartbeats.
type Controller struct {
	cli   *client.Client
	nodes *client.Informer
	pods  *client.Informer
	opts  Options
	log   *slog.Logger

	mu       sync.Mutex
	observed map[string]*observation
	orphans  map[string]time.Time // node name (absent) → first seen missing
	// evicted remembers the UIDs of pods already evicted, so a cache that
	// still shows one never gets its re-created namesake deleted.
	evicted map[string]time.Time
}

// evictedTTL is how long an evicted pod's UID is remembered.
const evictedTTL = 10 * time.Minute

type observation struct {
	heartbeat time.Time // the last heartbeat value seen
	seenAt    time.Time // local time it was first seen
	silentAt  time.Time // local time the node was first found silent
}

// New makes the controller from informers of nodes and pods (all
// namespaces); it registers the pod index by node.
func New(cli *client.Client, nodes, pods *client.Informer, opts Options) *Controller {
	if opts.GracePeriod <= 0 {
		opts.GracePeriod = DefaultGracePeriod
	}
	if opts.EvictionTimeout <= 0 {
		opts.EvictionTimeout = DefaultEvictionTimeout
	}
	if opts.MonitorPeriod <= 0 {
		opts.MonitorPeriod = max(opts.GracePeriod/8, 10*time.Millisecond)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	pods.AddIndexer(client.IndexNodeName, client.IndexByNodeName)
	return &Controller{
		cli: cli, nodes: nodes, pods: pods, opts: opts,
		log:      opts.Logger.With("component", Name),
		observed: map[string]*observation{}, orphans: map[string]time.Time{}, evicted: map[string]time.Time{},
	}
}

// Run checks nodes every MonitorPeriod until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.nodes.WaitForSync(ctx); err != nil {
		return nil
	}
	if err := c.pods.WaitForSync(ctx); err != nil {
		return nil
	}
	t := time.NewTicker(c.opts.MonitorPeriod)
	defer t.Stop()
	for {
		c.Monitor(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Verdict is what the controller decides about one node.
type Verdict int

// The verdicts.
const (
	// Healthy nodes heartbeat.
	Healthy Verdict = iota
	// Silent nodes missed the grace period: mark them Ready=Unknown.
	Silent
	// Lost nodes stayed silent past the eviction timeout: evict.
	Lost
)

// Judge decides a node's verdict from when its heartbeat last changed and
// when it was first found silent (zero if it was not), on the local clock.
func Judge(now, seenAt, silentAt time.Time, grace, eviction time.Duration) Verdict {
	if now.Sub(seenAt) <= grace {
		return Healthy
	}
	if !silentAt.IsZero() && now.Sub(silentAt) > eviction {
		return Lost
	}
	return Silent
}

// Monitor makes one pass over the nodes.
func (c *Controller) Monitor(ctx context.Context) {
	now := c.opts.Now()
	seen := map[string]bool{}
	for _, o := range c.nodes.List() {
		n := o.(*api.Node)
		seen[n.Metadata.Name] = true
		var hb time.Time
		if n.Status.LastHeartbeatTime != nil {
			hb = *n.Status.LastHeartbeatTime
		}
		c.mu.Lock()
		obs := c.observed[n.Metadata.Name]
		if obs == nil {
			obs = &observation{heartbeat: hb, seenAt: now}
			c.observed[n.Metadata.Name] = obs
		} else if !hb.Equal(obs.heartbeat) {
			obs.heartbeat, obs.seenAt, obs.silentAt = hb, now, time.Time{}
		}
		v := Judge(now, obs.seenAt, obs.silentAt, c.opts.GracePeriod, c.opts.EvictionTimeout)
		if v == Silent && obs.silentAt.IsZero() {
			obs.silentAt = now
		}
		c.mu.Unlock()
		switch v {
		case Silent:
			c.markUnknown(ctx, n, obs.heartbeat)
			c.markPodsNotReady(ctx, n.Metadata.Name)
		case Lost:
			c.markUnknown(ctx, n, obs.heartbeat)
			c.evictAll(ctx, n.Metadata.Name, fmt.Sprintf("node %s stopped heartbeating", n.Metadata.Name))
		}
	}
	c.mu.Lock()
	for name := range c.observed {
		if !seen[name] {
			delete(c.observed, name)
		}
	}
	c.mu.Unlock()
	c.evictOrphans(ctx, seen, now)
}

// markUnknown sets the node's Ready condition to Unknown.
func (c *Controller) markUnknown(ctx context.Context, n *api.Node, lastHeartbeat time.Time) {
	if cond := api.FindCondition(n.Status.Conditions, api.NodeReady); cond != nil && cond.Status == api.ConditionUnknown {
		return
	}
	cp := client.DeepCopy(n)
	msg := "the node's agent stopped posting status"
	if !lastHeartbeat.IsZero() {
		msg += "; last heartbeat " + lastHeartbeat.UTC().Format(time.RFC3339)
	}
	api.SetCondition(&cp.Status.Conditions, api.Condition{
		Type: api.NodeReady, Status: api.ConditionUnknown, Reason: "NodeStatusUnknown", Message: msg,
	}, c.opts.Now().UTC())
	if err := c.cli.UpdateStatus(ctx, cp); err != nil {
		if !api.IsConflict(err) && !api.IsNotFound(err) {
			c.log.Warn("could not mark node not ready", "node", n.Metadata.Name, "err", err)
		}
		return
	}
	c.log.Warn("node stopped heartbeating; marked Ready=Unknown", "node", n.Metadata.Name)
	if c.opts.Recorder != nil {
		c.opts.Recorder.Event(ctx, n, api.EventWarning, "NodeNotReady", msg)
	}
}

// markPodsNotReady takes the pods of a silent node out of service: their
// Ready condition becomes False, so endpoints stop sending them traffic
// while the node may be gone. The node's agent sets it again if it comes
// back.
func (c *Controller) markPodsNotReady(ctx context.Context, node string) {
	for _, o := range c.pods.ByIndex(client.IndexNodeName, node) {
		p := o.(*api.Pod)
		if !api.IsPodReady(p) {
			continue
		}
		cp := client.DeepCopy(p)
		api.SetCondition(&cp.Status.Conditions, api.Condition{
			Type: api.PodReady, Status: api.ConditionFalse, Reason: "NodeNotReady",
			Message: "node " + node + " stopped heartbeating",
		}, c.opts.Now().UTC())
		if err := c.cli.UpdateStatus(ctx, cp); err != nil && !api.IsConflict(err) && !api.IsNotFound(err) {
			c.log.Warn("could not mark pod not ready", "pod", client.ObjectKey(p), "err", err)
		}
	}
}

// evictOrphans evicts pods bound to nodes that do not exist, once they
// have been missing for the eviction timeout.
func (c *Controller) evictOrphans(ctx context.Context, nodes map[string]bool, now time.Time) {
	missing := map[string]bool{}
	for _, o := range c.pods.List() {
		p := o.(*api.Pod)
		if p.Spec.NodeName != "" && !nodes[p.Spec.NodeName] {
			missing[p.Spec.NodeName] = true
		}
	}
	c.mu.Lock()
	var lost []string
	for name := range c.orphans {
		if !missing[name] {
			delete(c.orphans, name)
		}
	}
	for name := range missing {
		first, ok := c.orphans[name]
		if !ok {
			c.orphans[name] = now
			continue
		}
		if now.Sub(first) > c.opts.GracePeriod+c.opts.EvictionTimeout {
			lost = append(lost, name)
		}
	}
	c.mu.Unlock()
	for _, name := range lost {
		c.evictAll(ctx, name, fmt.Sprintf("node %s no longer exists", name))
	}
}

// evictAll deletes every pod of a lost node at once, re-creating those
// without a controller.
func (c *Controller) evictAll(ctx context.Context, node, why string) {
	now := c.opts.Now()
	c.mu.Lock()
	for uid, at := range c.evicted {
		if now.Sub(at) > evictedTTL {
			delete(c.evicted, uid)
		}
	}
	c.mu.Unlock()
	for _, o := range c.pods.ByIndex(client.IndexNodeName, node) {
		p := o.(*api.Pod)
		c.mu.Lock()
		_, done := c.evicted[p.Metadata.UID]
		c.mu.Unlock()
		if done {
			continue
		}
		// Read the pod live: the name may belong to a re-created pod by now.
		var live api.Pod
		if err := c.cli.Get(ctx, p.Metadata.Namespace, p.Metadata.Name, &live); err != nil || live.Metadata.UID != p.Metadata.UID {
			continue
		}
		c.mu.Lock()
		c.evicted[p.Metadata.UID] = now
		c.mu.Unlock()
		if err := c.cli.Delete(ctx, p, client.GracePeriod(0)); err != nil && !api.IsNotFound(err) {
			c.log.Warn("could not evict pod from lost node", "pod", client.ObjectKey(p), "node", node, "err", err)
			continue
		}
		c.log.Info("evicted pod from lost node", "pod", client.ObjectKey(p), "node", node)
		if api.ControllerOf(&p.Metadata) == nil && !api.IsPodTerminating(p) && !api.IsPodFinished(p) {
			if err := c.cli.Create(ctx, client.RecreatedPod(p)); err != nil && !api.IsAlreadyExists(err) {
				c.log.Warn("could not re-create bare pod", "pod", client.ObjectKey(p), "err", err)
			}
		}
		if c.opts.Recorder != nil {
			c.opts.Recorder.Event(ctx, p, api.EventWarning, "NodeLost", why+": pod deleted so it can run elsewhere")
		}
	}
}
