package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth-io/berth/control/api"
)

// DrainOptions tune Drain.
type DrainOptions struct {
	// Timeout bounds the whole drain (default 5 minutes).
	Timeout time.Duration
	// GracePeriodSeconds, when not nil, overrides the pods' termination
	// grace period.
	GracePeriodSeconds *int64
	// PollInterval is the wait between eviction retries and checks that
	// the pods are gone (default 1 s).
	PollInterval time.Duration
}

// ErrDrainTimeout is returned (wrapped) when pods are still on the node
// when the drain's timeout passes.
var ErrDrainTimeout = errors.New("drain timed out")

// Drain empties a node before maintenance or replacement: it cordons the
// node (spec.unschedulable, so nothing new lands on it), evicts every pod
// through the eviction API — retrying while the API answers
// TooManyRequests because a deployment cannot lose another pod yet — and
// waits until the pods are gone. Deployments re-create their pods on other
// nodes; a pod with no controller is re-created unbound, with the same name
// and spec, once it is gone, so a drain never loses a pod.
func Drain(ctx context.Context, c *Client, nodeName string, opts DrainOptions) error {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if err := Cordon(ctx, c, nodeName, true); err != nil {
		return fmt.Errorf("drain node %q: %w", nodeName, err)
	}
	var pods api.PodList
	if err := c.List(ctx, &pods, ListOptions{NodeName: nodeName}); err != nil {
		return fmt.Errorf("drain node %q: %w", nodeName, err)
	}
	bare := map[string]*api.Pod{}
	pending := map[string]*api.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		pending[ObjectKey(p)] = p
		if api.ControllerOf(&p.Metadata) == nil {
			bare[ObjectKey(p)] = p
		}
	}
	for len(pending) > 0 {
		for k, p := range pending {
			err := c.Evict(ctx, p.Metadata.Namespace, p.Metadata.Name, opts.GracePeriodSeconds)
			switch {
			case err == nil, api.IsNotFound(err):
				delete(pending, k)
			case api.ReasonOf(err) == api.ReasonTooManyRequests:
				// The deployment cannot lose another pod yet: retry.
			case ctx.Err() != nil:
				return drainTimeout(nodeName, pending, ctx.Err())
			default:
				return fmt.Errorf("drain node %q: %w", nodeName, err)
			}
		}
		if len(pending) > 0 && !sleep(ctx, opts.PollInterval) {
			return drainTimeout(nodeName, pending, ctx.Err())
		}
	}
	for {
		var left api.PodList
		if err := c.List(ctx, &left, ListOptions{NodeName: nodeName}); err != nil {
			if ctx.Err() != nil {
				return drainTimeout(nodeName, nil, ctx.Err())
			}
			return fmt.Errorf("drain node %q: %w", nodeName, err)
		}
		if len(left.Items) == 0 {
			break
		}
		still := map[string]*api.Pod{}
		for i := range left.Items {
			still[ObjectKey(&left.Items[i])] = &left.Items[i]
		}
		if !sleep(ctx, opts.PollInterval) {
			return drainTimeout(nodeName, still, ctx.Err())
		}
	}
	for _, p := range bare {
		if err := c.Create(ctx, RecreatedPod(p)); err != nil && !api.IsAlreadyExists(err) {
			return fmt.Errorf("drain node %q: re-create bare pod: %w", nodeName, err)
		}
	}
	return nil
}

// Cordon sets or clears a node's spec.unschedulable, retrying conflicts.
func Cordon(ctx context.Context, c *Client, nodeName string, unschedulable bool) error {
	for {
		var n api.Node
		if err := c.Get(ctx, "", nodeName, &n); err != nil {
			return err
		}
		if n.Spec.Unschedulable == unschedulable {
			return nil
		}
		n.Spec.Unschedulable = unschedulable
		err := c.Update(ctx, &n)
		if err == nil {
			return nil
		}
		if !api.IsConflict(err) {
			return err
		}
	}
}

// RecreatedPod returns a new, unbound pod with the same name, labels,
// annotations, owners and spec as p: what a pod without a controller
// becomes when its node is drained or lost.
func RecreatedPod(p *api.Pod) *api.Pod {
	cp := DeepCopy(p)
	out := &api.Pod{
		Metadata: api.ObjectMeta{
			Name: cp.Metadata.Name, Namespace: cp.Metadata.Namespace,
			Labels: cp.Metadata.Labels, Annotations: cp.Metadata.Annotations,
			OwnerReferences: cp.Metadata.OwnerReferences,
		},
		Spec: cp.Spec,
	}
	out.Spec.NodeName = ""
	return out
}

func drainTimeout(node string, left map[string]*api.Pod, cause error) error {
	names := make([]string, 0, len(left))
	for k := range left {
		names = append(names, k)
	}
	return fmt.Errorf("drain node %q: %w (%v) with pods still present: %v", node, ErrDrainTimeout, cause, names)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
