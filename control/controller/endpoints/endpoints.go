// Package endpoints keeps, for every service with a selector, an Endpoints
// object of the same name listing the pods behind it: Ready pods under
// addresses, the others under notReadyAddresses, each with its IP, node
// and name, and the service's target ports resolved per pod (a named
// target port may map to different numbers in different pods). A pod that
// starts terminating leaves the endpoints at once, before it gets SIGTERM.
// Addresses and subsets are sorted, so an update is written only when
// something really changed.
//
// It must never write endpoints of a service without a selector (those
// belong to whoever made them).
package endpoints

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// Name is the controller's name in logs.
const Name = "endpoints-controller"

// Options tune the controller.
type Options struct {
	// Logger receives failures.
	Logger *slog.Logger
	// Workers is the number of services synced at once (default 2).
	Workers int
}

// Controller keeps endpoints.
type Controller struct {
	cli       *client.Client
	services  *client.Informer
	pods      *client.Informer
	endpoints *client.Informer
	log       *slog.Logger
	workers   int
	q         *client.WorkQueue
}

// New makes the controller from informers of services, pods and endpoints
// (all namespaces) and registers its handlers and namespace indexes.
func New(cli *client.Client, services, pods, endpoints *client.Informer, opts Options) *Controller {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Controller{
		cli: cli, services: services, pods: pods, endpoints: endpoints,
		log: opts.Logger.With("component", Name), workers: max(opts.Workers, 2), q: client.NewWorkQueue(),
	}
	services.AddIndexer(client.IndexNamespace, client.IndexByNamespace)
	pods.AddIndexer(client.IndexNamespace, client.IndexByNamespace)
	enqueue := func(o api.Object) { c.q.Add(client.ObjectKey(o)) }
	services.AddHandler(client.Handler{OnAdd: enqueue, OnUpdate: func(_, o api.Object) { enqueue(o) }, OnDelete: enqueue})
	// Every change to an Endpoints object queues its service, its arrival
	// in the cache included: a sync that ran before the cache showed this
	// controller's own create compared against nothing, and must run again.
	endpoints.AddHandler(client.Handler{OnAdd: enqueue, OnUpdate: func(_, o api.Object) { enqueue(o) }, OnDelete: enqueue})
	pods.AddHandler(client.Handler{
		OnAdd:    func(o api.Object) { c.podChanged(nil, o.(*api.Pod)) },
		OnUpdate: func(old, o api.Object) { c.podChanged(old.(*api.Pod), o.(*api.Pod)) },
		OnDelete: func(o api.Object) { c.podChanged(nil, o.(*api.Pod)) },
	})
	return c
}

// podChanged queues the services selecting the pod, before or after.
func (c *Controller) podChanged(old, p *api.Pod) {
	for _, o := range c.services.ByIndex(client.IndexNamespace, p.Metadata.Namespace) {
		svc := o.(*api.Service)
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		if api.SelectorMatches(svc.Spec.Selector, p.Metadata.Labels) || old != nil && api.SelectorMatches(svc.Spec.Selector, old.Metadata.Labels) {
			c.q.Add(client.ObjectKey(svc))
		}
	}
}

// Run syncs endpoints until ctx ends; the informers must be running.
func (c *Controller) Run(ctx context.Context) error {
	for _, inf := range []*client.Informer{c.services, c.pods, c.endpoints} {
		if err := inf.WaitForSync(ctx); err != nil {
			return nil
		}
	}
	for _, o := range c.services.List() {
		c.q.Add(client.ObjectKey(o))
	}
	c.q.Run(ctx, c.workers, c.log, c.sync)
	return nil
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, _ := strings.Cut(key, "/")
	obj, ok := c.services.Get(ns, name)
	cur, have := c.endpoints.Get(ns, name)
	if !ok {
		if have && ownedByService(cur) {
			if err := c.cli.Delete(ctx, cur); err != nil && !api.IsNotFound(err) {
				return fmt.Errorf("delete endpoints of removed service %s: %w", key, err)
			}
		}
		return nil
	}
	svc := obj.(*api.Service)
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	var pods []*api.Pod
	for _, o := range c.pods.ByIndex(client.IndexNamespace, ns) {
		p := o.(*api.Pod)
		if api.SelectorMatches(svc.Spec.Selector, p.Metadata.Labels) {
			pods = append(pods, p)
		}
	}
	subsets := Subsets(svc, pods)
	if have {
		ep := client.DeepCopy(cur.(*api.Endpoints))
		if reflect.DeepEqual(normalize(ep.Subsets), normalize(subsets)) && api.IsControlledBy(&ep.Metadata, &svc.Metadata) {
			return nil
		}
		ep.Subsets = subsets
		ep.Metadata.OwnerReferences = []api.OwnerReference{ownerRef(svc)}
		if err := c.cli.Update(ctx, ep); err != nil {
			if api.IsConflict(err) {
				c.q.AddAfter(key, 10*time.Millisecond)
				return nil
			}
			return fmt.Errorf("update endpoints %s: %w", key, err)
		}
		return nil
	}
	ep := &api.Endpoints{
		Metadata: api.ObjectMeta{Name: name, Namespace: ns, Labels: svc.Metadata.Labels, OwnerReferences: []api.OwnerReference{ownerRef(svc)}},
		Subsets:  subsets,
	}
	if err := c.cli.Create(ctx, ep); err != nil {
		// AlreadyExists means the cache has not shown an earlier create
		// yet: what this sync computed is not written, so it must fail
		// and be retried, never be dropped.
		return fmt.Errorf("create endpoints %s: %w", key, err)
	}
	return nil
}

func ownerRef(svc *api.Service) api.OwnerReference {
	return api.OwnerReference{Kind: "Service", Name: svc.Metadata.Name, UID: svc.Metadata.UID, Controller: true}
}

func ownedByService(o api.Object) bool {
	r := api.ControllerOf(o.GetMeta())
	return r != nil && r.Kind == "Service"
}

// normalize treats nil and empty lists alike.
func normalize(ss []api.EndpointSubset) []api.EndpointSubset {
	if len(ss) == 0 {
		return nil
	}
	out := make([]api.EndpointSubset, len(ss))
	for i, s := range ss {
		if len(s.Addresses) == 0 {
			s.Addresses = nil
		}
		if len(s.NotReadyAddresses) == 0 {
			s.NotReadyAddresses = nil
		}
		if len(s.Ports) == 0 {
			s.Ports = nil
		}
		out[i] = s
	}
	return out
}

// Subsets computes a service's endpoints from the pods its selector
// matches: pods with an IP that are not terminating or finished, grouped
// by their resolved ports, sorted.
func Subsets(svc *api.Service, pods []*api.Pod) []api.EndpointSubset {
	groups := map[string]*api.EndpointSubset{}
	for _, p := range pods {
		if p.Status.PodIP == "" || api.IsPodTerminating(p) || api.IsPodFinished(p) {
			continue
		}
		ports := resolvePorts(svc, p)
		if len(ports) == 0 {
			continue
		}
		k := portsKey(ports)
		g := groups[k]
		if g == nil {
			g = &api.EndpointSubset{Ports: ports}
			groups[k] = g
		}
		addr := api.EndpointAddress{IP: p.Status.PodIP, NodeName: p.Spec.NodeName, PodName: p.Metadata.Name}
		if api.IsPodReady(p) {
			g.Addresses = append(g.Addresses, addr)
		} else {
			g.NotReadyAddresses = append(g.NotReadyAddresses, addr)
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]api.EndpointSubset, 0, len(keys))
	for _, k := range keys {
		g := groups[k]
		sortAddrs(g.Addresses)
		sortAddrs(g.NotReadyAddresses)
		out = append(out, *g)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func sortAddrs(a []api.EndpointAddress) {
	sort.Slice(a, func(i, j int) bool {
		if a[i].IP != a[j].IP {
			return a[i].IP < a[j].IP
		}
		return a[i].PodName < a[j].PodName
	})
}

// resolvePorts maps each service port to the pod's port: a number as it
// is, a name through the pod's container ports (skipped when the pod has
// no such port).
func resolvePorts(svc *api.Service, p *api.Pod) []api.EndpointPort {
	var out []api.EndpointPort
	for _, sp := range svc.Spec.Ports {
		proto := sp.Protocol
		if proto == "" {
			proto = api.ProtocolTCP
		}
		tp := sp.TargetPort
		if tp.IsZero() {
			tp = api.FromInt(sp.Port)
		}
		port := int32(0)
		if !tp.IsString {
			port = tp.IntVal
		} else {
		search:
			for _, ctr := range p.Spec.Containers {
				for _, cp := range ctr.Ports {
					cproto := cp.Protocol
					if cproto == "" {
						cproto = api.ProtocolTCP
					}
					if cp.Name == tp.StrVal && cproto == proto {
						port = cp.ContainerPort
						break search
					}
				}
			}
		}
		if port == 0 {
			continue
		}
		out = append(out, api.EndpointPort{Name: sp.Name, Port: port, Protocol: proto})
	}
	return out
}

func portsKey(ports []api.EndpointPort) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = p.Name + ":" + strconv.Itoa(int(p.Port)) + "/" + string(p.Protocol)
	}
	return strings.Join(parts, ",")
}
