package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// LabelStandInFor marks a stand-in pod the engine made while draining the
// node it names. A stand-in is a copy of a deployment's pod, without an
// owner, so the deployment controller never counts it while the service
// and the eviction budget do; it is deleted once the deployment has its
// pods back.
const LabelStandInFor = "berth.io/stand-in-for"

// drainNode empties a node before its replacement without ever taking a
// deployment below the availability its strategy promises. A deployment
// that may lose no pod (maxUnavailable 0, or fewer allowed than it has on
// the node) would refuse every eviction forever, so stand-ins for its pods
// on the node are started elsewhere first and are removed once the
// deployment's own replacements are Ready.
func (e *engine) drainNode(ctx context.Context, node string, timeout time.Duration) error {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := client.Cordon(dctx, e.admin, node, true); err != nil {
		if api.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("cordon host %q: %w", node, err)
	}
	var pods api.PodList
	if err := e.admin.List(dctx, &pods, client.ListOptions{NodeName: node}); err != nil {
		return fmt.Errorf("list pods on host %q: %w", node, err)
	}
	deps, err := e.blockingDeployments(dctx, pods.Items)
	if err != nil {
		return fmt.Errorf("drain host %q: %w", node, err)
	}
	defer func() {
		// Stand-ins never outlive the drain, whatever happened.
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer ccancel()
		_ = e.deleteStandIns(cctx, node)
	}()
	if len(deps) > 0 {
		if err := e.startStandIns(dctx, node, pods.Items, deps); err != nil {
			return fmt.Errorf("drain host %q: %w", node, err)
		}
	}
	e.progress(node, "drain")
	if err := client.Drain(dctx, e.admin, node, client.DrainOptions{Timeout: timeout}); err != nil {
		return err
	}
	if len(deps) > 0 {
		e.progress(node, "wait for deployments to replace drained pods")
		if err := e.waitDeploymentsAvailable(dctx, deps); err != nil {
			return fmt.Errorf("drain host %q: %w", node, err)
		}
	}
	return nil
}

// standInNeed returns how many of a deployment's pods on a node need a
// stand-in before they can be evicted: those beyond what its
// maxUnavailable allows it to lose.
func standInNeed(d *api.Deployment, onNode int) (int, error) {
	replicas := api.DefaultReplicas
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	mu := api.FromString(api.DefaultMaxUnavailable)
	if d.Spec.Strategy.MaxUnavailable != nil {
		mu = *d.Spec.Strategy.MaxUnavailable
	}
	allowed, err := api.ResolveIntOrPercent(mu, replicas, false)
	if err != nil {
		return 0, fmt.Errorf("deployment %s maxUnavailable: %w", api.Key(d), err)
	}
	return max(0, onNode-int(allowed)), nil
}

// standInPod is a copy of p that belongs to no one, bound to no node and
// labelled as standing in during the drain of node.
func standInPod(p *api.Pod, node string) *api.Pod {
	labels := map[string]string{}
	for k, v := range p.Metadata.Labels {
		labels[k] = v
	}
	labels[LabelStandInFor] = node
	spec := p.Spec
	spec.NodeName = ""
	return &api.Pod{
		Metadata: api.ObjectMeta{
			Namespace:    p.Metadata.Namespace,
			GenerateName: "stand-in-",
			Labels:       labels,
			Annotations:  p.Metadata.Annotations,
		},
		Spec: spec,
	}
}

// blockingDeployments returns the deployments whose pods on the node need
// stand-ins, with how many, keyed by namespace/name.
func (e *engine) blockingDeployments(ctx context.Context, pods []api.Pod) (map[string]*standIns, error) {
	byDep := map[string][]*api.Pod{}
	for i := range pods {
		p := &pods[i]
		owner := api.ControllerOf(&p.Metadata)
		if owner == nil || owner.Kind != "Deployment" || api.IsPodTerminating(p) || !api.IsPodReady(p) {
			continue
		}
		k := p.Metadata.Namespace + "/" + owner.Name
		byDep[k] = append(byDep[k], p)
	}
	out := map[string]*standIns{}
	for k, ps := range byDep {
		ns, name, _ := strings.Cut(k, "/")
		d := &api.Deployment{}
		if err := e.admin.Get(ctx, ns, name, d); err != nil {
			if api.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("read deployment %s: %w", k, err)
		}
		n, err := standInNeed(d, len(ps))
		if err != nil {
			return nil, err
		}
		if n > 0 {
			sort.Slice(ps, func(i, j int) bool { return ps[i].Metadata.Name < ps[j].Metadata.Name })
			out[k] = &standIns{deployment: d, pods: ps[:n]}
		}
	}
	return out, nil
}

type standIns struct {
	deployment *api.Deployment
	pods       []*api.Pod
}

// startStandIns creates the stand-ins and waits until each is Ready.
func (e *engine) startStandIns(ctx context.Context, node string, pods []api.Pod, deps map[string]*standIns) error {
	var names []string
	for _, k := range sortedNames(deps) {
		for _, p := range deps[k].pods {
			sp := standInPod(p, node)
			if err := e.admin.Create(ctx, sp); err != nil {
				return fmt.Errorf("start stand-in for pod %s: %w", api.Key(p), err)
			}
			names = append(names, sp.Metadata.Namespace+"/"+sp.Metadata.Name)
		}
	}
	e.progress(node, fmt.Sprintf("wait for %d stand-in pods to be Ready", len(names)))
	for {
		var list api.PodList
		if err := e.admin.List(ctx, &list, client.ListOptions{Labels: map[string]string{LabelStandInFor: node}}); err != nil {
			return fmt.Errorf("list stand-in pods: %w", err)
		}
		ready := 0
		for i := range list.Items {
			if api.IsPodReady(&list.Items[i]) && !api.IsPodTerminating(&list.Items[i]) {
				ready++
			}
		}
		if ready >= len(names) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stand-in pods %s not Ready: %w", strings.Join(names, ", "), ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// waitDeploymentsAvailable waits until each deployment has as many Ready
// pods of its own (not terminating) as it has replicas.
func (e *engine) waitDeploymentsAvailable(ctx context.Context, deps map[string]*standIns) error {
	for _, k := range sortedNames(deps) {
		d := deps[k].deployment
		replicas := api.DefaultReplicas
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		for {
			var list api.PodList
			if err := e.admin.List(ctx, &list, client.ListOptions{Namespace: d.Metadata.Namespace, Labels: d.Spec.Selector}); err != nil {
				return fmt.Errorf("list pods of deployment %s: %w", k, err)
			}
			ready := int32(0)
			for i := range list.Items {
				p := &list.Items[i]
				if o := api.ControllerOf(&p.Metadata); o != nil && o.UID == d.Metadata.UID && api.IsPodReady(p) && !api.IsPodTerminating(p) {
					ready++
				}
			}
			if ready >= replicas {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("deployment %s has %d of %d pods Ready: %w", k, ready, replicas, ctx.Err())
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// deleteStandIns removes every stand-in made for node (also those a run
// cut short left behind).
func (e *engine) deleteStandIns(ctx context.Context, node string) error {
	var list api.PodList
	if err := e.admin.List(ctx, &list, client.ListOptions{Labels: map[string]string{LabelStandInFor: node}}); err != nil {
		return fmt.Errorf("list stand-in pods of host %q: %w", node, err)
	}
	for i := range list.Items {
		if err := e.admin.Delete(ctx, &list.Items[i]); err != nil && !api.IsNotFound(err) {
			return fmt.Errorf("delete stand-in pod %s: %w", api.Key(&list.Items[i]), err)
		}
	}
	return nil
}
