// Package scheduler binds pending pods to nodes. It keeps a per-node
// account of requested resources, fed incrementally by informers and by
// its own bindings, so each decision costs work in proportion to the
// number of nodes and not to the number of pods; it filters nodes (Ready,
// not cordoned, node selector, pod count, cpu, memory), prefers the node
// with the fewest pods of the same controller and then the least loaded,
// and binds with a compare-and-swap update of the pod so a pod is never
// bound twice. A pod that fits nowhere gets PodScheduled=False with the
// reason per filter and an Event, and is retried when nodes or bound pods
// change.
//
// The scheduler must only ever set spec.nodeName of unbound pods and their
// PodScheduled condition; it never creates, deletes or moves pods.
package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// Options tune the scheduler.
type Options struct {
	// Logger receives bindings and failures.
	Logger *slog.Logger
	// Recorder, when set, records FailedScheduling events.
	Recorder *client.EventRecorder
	// RetryInterval is how often unschedulable pods are tried again even
	// when nothing seems to have changed (default 30 s).
	RetryInterval time.Duration
	// Binders is how many bindings may be in flight at once (default 16):
	// decisions are made one at a time, the API writes that carry them
	// out overlap.
	Binders int
}

// Name is the scheduler's name in events and conditions.
const Name = "berth-scheduler"

// Scheduler binds pods to nodes.
type Scheduler struct {
	cli   *client.Client
	pods  *client.Informer
	nodes *client.Informer
	opts  Options
	log   *slog.Logger
	queue *client.WorkQueue

	mu            sync.Mutex
	cache         *Cache
	unschedulable map[string]bool

	binders  chan struct{}
	inFlight sync.WaitGroup
}

// New makes a scheduler fed by a pod informer and a node informer (of all
// namespaces, unfiltered), registering its handlers: call it before the
// informers run, then Run.
func New(cli *client.Client, pods, nodes *client.Informer, opts Options) *Scheduler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 30 * time.Second
	}
	if opts.Binders <= 0 {
		opts.Binders = 16
	}
	s := &Scheduler{
		cli: cli, pods: pods, nodes: nodes, opts: opts,
		log:   opts.Logger.With("component", "scheduler"),
		queue: client.NewWorkQueue(), cache: NewCache(),
		unschedulable: map[string]bool{},
		binders:       make(chan struct{}, opts.Binders),
	}
	pods.AddHandler(client.Handler{
		OnAdd:    func(o api.Object) { s.podChanged(nil, o.(*api.Pod)) },
		OnUpdate: func(old, o api.Object) { s.podChanged(old.(*api.Pod), o.(*api.Pod)) },
		OnDelete: func(o api.Object) { s.podDeleted(o.(*api.Pod)) },
	})
	nodes.AddHandler(client.Handler{
		OnAdd:    func(o api.Object) { s.nodeChanged(nil, o.(*api.Node)) },
		OnUpdate: func(old, o api.Object) { s.nodeChanged(old.(*api.Node), o.(*api.Node)) },
		OnDelete: func(o api.Object) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.cache.RemoveNode(o.GetMeta().Name)
		},
	})
	return s
}

// needsScheduling reports whether p waits for a node.
func needsScheduling(p *api.Pod) bool {
	return p.Spec.NodeName == "" && !api.IsPodTerminating(p) && !api.IsPodFinished(p)
}

func (s *Scheduler) podChanged(_, p *api.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache.SetPod(p)
	k := client.ObjectKey(p)
	if needsScheduling(p) {
		if !s.unschedulable[k] {
			s.queue.Add(k)
		}
		return
	}
	delete(s.unschedulable, k)
}

func (s *Scheduler) podDeleted(p *api.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := client.ObjectKey(p)
	s.cache.RemovePod(k)
	delete(s.unschedulable, k)
	if p.Spec.NodeName != "" {
		s.retryUnschedulableLocked() // resources were freed
	}
}

func (s *Scheduler) nodeChanged(old, n *api.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache.SetNode(n)
	if old == nil || api.IsNodeReady(old) != api.IsNodeReady(n) || old.Spec.Unschedulable != n.Spec.Unschedulable ||
		!sameLabels(old.Metadata.Labels, n.Metadata.Labels) || !sameResources(old, n) {
		s.retryUnschedulableLocked()
	}
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func sameResources(a, b *api.Node) bool {
	eq := func(x, y api.ResourceList) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if y[k] != v {
				return false
			}
		}
		return true
	}
	return eq(a.Status.Allocatable, b.Status.Allocatable) && eq(a.Status.Capacity, b.Status.Capacity)
}

// retryUnschedulableLocked moves every unschedulable pod back to the queue.
func (s *Scheduler) retryUnschedulableLocked() {
	for k := range s.unschedulable {
		s.queue.Add(k)
	}
	clear(s.unschedulable)
}

// Run schedules until ctx ends. The informers must be running; Run waits
// for them to sync first.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.pods.WaitForSync(ctx); err != nil {
		return nil
	}
	if err := s.nodes.WaitForSync(ctx); err != nil {
		return nil
	}
	go func() {
		t := time.NewTicker(s.opts.RetryInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.mu.Lock()
				s.retryUnschedulableLocked()
				s.mu.Unlock()
			}
		}
	}()
	// One worker: decisions are made one at a time against one cache, so
	// a decision always sees the bindings before it (they are assumed in
	// the cache before their writes are sent).
	s.queue.Run(ctx, 1, s.log, s.scheduleOne)
	s.inFlight.Wait()
	return nil
}

// scheduleOne decides and binds one pod.
func (s *Scheduler) scheduleOne(ctx context.Context, key string) error {
	obj, ok := s.pods.Get(splitKey(key))
	if !ok {
		return nil
	}
	pod := obj.(*api.Pod)
	if !needsScheduling(pod) {
		return nil
	}
	s.mu.Lock()
	if acc, ok := s.cache.pods[key]; ok && acc.assumed {
		s.mu.Unlock()
		return nil // bound already; waiting for the watch to show it
	}
	node, fitErr := s.cache.Schedule(pod)
	if fitErr == nil {
		s.cache.Assume(pod, node)
	} else {
		// Parked under the same lock as the decision, so a node change
		// that arrives right after it still brings the pod back.
		s.unschedulable[key] = true
	}
	s.mu.Unlock()
	if fitErr != nil {
		return s.markUnschedulable(ctx, key, pod, fitErr)
	}
	select {
	case s.binders <- struct{}{}:
	case <-ctx.Done():
		s.forget(key)
		return nil
	}
	s.inFlight.Go(func() {
		defer func() { <-s.binders }()
		err := s.bind(ctx, pod, node)
		if err == nil {
			return
		}
		s.forget(key)
		switch {
		case api.IsNotFound(err) || ctx.Err() != nil:
			return
		case api.IsConflict(err):
			// Changed meanwhile (perhaps bound elsewhere): decide again
			// from the cache, which the change reaches first or next.
			s.queue.AddRateLimited(key)
			return
		}
		s.log.Warn("binding failed; retrying", "pod", key, "node", node, "err", err)
		s.queue.AddRateLimited(key)
	})
	return nil
}

// forget drops an assumed binding that did not happen.
func (s *Scheduler) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if acc, ok := s.cache.pods[key]; ok && acc.assumed {
		s.cache.RemovePod(key)
	}
}

// bind sets the pod's node (compare-and-swap on its resourceVersion) and
// then its PodScheduled condition.
func (s *Scheduler) bind(ctx context.Context, pod *api.Pod, node string) error {
	p := client.DeepCopy(pod)
	p.Spec.NodeName = node
	if err := s.cli.Update(ctx, p); err != nil {
		return fmt.Errorf("bind pod %s to node %s: %w", client.ObjectKey(pod), node, err)
	}
	s.log.Debug("bound pod", "pod", client.ObjectKey(pod), "node", node)
	for range 3 {
		if !api.SetCondition(&p.Status.Conditions, api.Condition{
			Type: api.PodScheduled, Status: api.ConditionTrue, Reason: "Scheduled",
			Message: "bound to node " + node,
		}, time.Now().UTC()) {
			return nil
		}
		err := s.cli.UpdateStatus(ctx, p)
		if err == nil || !api.IsConflict(err) {
			if err != nil {
				s.log.Warn("could not set PodScheduled", "pod", client.ObjectKey(pod), "err", err)
			}
			return nil
		}
		// The node's agent wrote the status meanwhile: read and retry.
		if err := s.cli.Get(ctx, p.Metadata.Namespace, p.Metadata.Name, p); err != nil {
			return nil
		}
	}
	return nil
}

// markUnschedulable records why the pod fits nowhere; scheduleOne has
// parked it until the cluster changes.
func (s *Scheduler) markUnschedulable(ctx context.Context, key string, pod *api.Pod, fitErr *FitError) error {
	p := client.DeepCopy(pod)
	msg := fitErr.Error()
	if !api.SetCondition(&p.Status.Conditions, api.Condition{
		Type: api.PodScheduled, Status: api.ConditionFalse, Reason: "Unschedulable", Message: msg,
	}, time.Now().UTC()) {
		return nil
	}
	s.log.Info("pod is unschedulable", "pod", key, "reason", msg)
	if s.opts.Recorder != nil {
		s.opts.Recorder.Event(ctx, pod, api.EventWarning, "FailedScheduling", msg)
	}
	if err := s.cli.UpdateStatus(ctx, p); err != nil && !api.IsConflict(err) && !api.IsNotFound(err) {
		return fmt.Errorf("mark pod %s unschedulable: %w", key, err)
	}
	return nil
}

func splitKey(key string) (ns, name string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}
