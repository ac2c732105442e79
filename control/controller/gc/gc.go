// Package gc is the garbage collector: it deletes objects whose
// controller owner is gone — pods and revisions of deleted deployments,
// endpoints of deleted services, anything whose owner was re-created under
// the same name (owners are matched by UID) — and empties Terminating
// namespaces, then removes them. Events expire after a TTL.
//
// An owner missing from the cache is confirmed with a live read before
// anything is deleted, so a cache that lags behind a new owner never costs
// its objects. The collector must never delete an object whose controller
// owner exists with the same UID.
package gc

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// Name is the collector's name in logs.
const Name = "garbage-collector"

// Options tune the collector.
type Options struct {
	// Interval between full passes (default 20 s); owner deletions and
	// namespace changes trigger a pass at once.
	Interval time.Duration
	// EventTTL is how long Events are kept after they last happened
	// (default 1 h), so they never pile up in etcd.
	EventTTL time.Duration
	// Logger receives deletions.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Collector deletes orphans.
type Collector struct {
	cli        *client.Client
	dependents []*client.Informer
	owners     map[string]*client.Informer // kind → informer
	namespaces *client.Informer
	opts       Options
	log        *slog.Logger
	trigger    chan struct{}
}

// New makes the collector. dependents are informers of kinds whose objects
// may have a controller owner (pods, revisions, endpoints); owners are
// informers of kinds that own (deployments, services), used as a cache
// before a live read; namespaces is the namespace informer.
func New(cli *client.Client, dependents, owners []*client.Informer, namespaces *client.Informer, opts Options) *Collector {
	if opts.Interval <= 0 {
		opts.Interval = 20 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.EventTTL <= 0 {
		opts.EventTTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &Collector{
		cli: cli, dependents: dependents, owners: map[string]*client.Informer{}, namespaces: namespaces,
		opts: opts, log: opts.Logger.With("component", Name), trigger: make(chan struct{}, 1),
	}
	poke := func(api.Object) { g.poke() }
	for _, inf := range owners {
		g.owners[inf.Kind().Kind] = inf
		inf.AddHandler(client.Handler{OnDelete: poke})
	}
	for _, inf := range dependents {
		// A dependent created after its owner was deleted is collected too.
		inf.AddHandler(client.Handler{OnAdd: poke})
	}
	namespaces.AddHandler(client.Handler{OnAdd: poke, OnUpdate: func(_, o api.Object) { poke(o) }})
	return g
}

func (g *Collector) poke() {
	select {
	case g.trigger <- struct{}{}:
	default:
	}
}

// Run collects until ctx ends; the informers must be running.
func (g *Collector) Run(ctx context.Context) error {
	for _, inf := range append(append([]*client.Informer{g.namespaces}, g.dependents...), ownerList(g.owners)...) {
		if err := inf.WaitForSync(ctx); err != nil {
			return nil
		}
	}
	t := time.NewTicker(g.opts.Interval)
	defer t.Stop()
	events := time.NewTicker(max(g.opts.EventTTL/10, g.opts.Interval))
	defer events.Stop()
	g.ExpireEvents(ctx)
	for {
		g.Collect(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-g.trigger:
		case <-events.C:
			g.ExpireEvents(ctx)
		}
	}
}

// ExpireEvents deletes Events that last happened more than EventTTL ago.
func (g *Collector) ExpireEvents(ctx context.Context) {
	var l api.EventList
	if err := g.cli.List(ctx, &l, client.ListOptions{}); err != nil {
		if ctx.Err() == nil {
			g.log.Warn("could not list events to expire", "err", err)
		}
		return
	}
	cutoff := g.opts.Now().Add(-g.opts.EventTTL)
	for i := range l.Items {
		e := &l.Items[i]
		last := e.LastTimestamp
		if last.IsZero() {
			last = e.Metadata.CreationTimestamp
		}
		if !last.Before(cutoff) {
			continue
		}
		if err := g.cli.Delete(ctx, e); err != nil && !api.IsNotFound(err) {
			g.log.Warn("could not expire event", "event", api.Key(e), "err", err)
		}
	}
}

func ownerList(m map[string]*client.Informer) []*client.Informer {
	var out []*client.Informer
	for _, inf := range m {
		out = append(out, inf)
	}
	return out
}

// Collect makes one pass.
func (g *Collector) Collect(ctx context.Context) {
	for _, inf := range g.dependents {
		for _, o := range inf.List() {
			if ctx.Err() != nil {
				return
			}
			ref := api.ControllerOf(o.GetMeta())
			if ref == nil || o.GetMeta().DeletionTimestamp != nil {
				continue
			}
			gone, err := g.ownerGone(ctx, o.GetMeta().Namespace, ref)
			if err != nil {
				g.log.Warn("could not check owner", "object", api.Key(o), "owner", ref.Kind+"/"+ref.Name, "err", err)
				continue
			}
			if !gone || !g.stillOwnedBy(ctx, inf.Kind(), o, ref.UID) {
				continue
			}
			if err := g.cli.Delete(ctx, o); err != nil && !api.IsNotFound(err) {
				g.log.Warn("could not delete orphan", "kind", inf.Kind().Kind, "object", api.Key(o), "err", err)
				continue
			}
			g.log.Info("deleted orphan", "kind", inf.Kind().Kind, "object", api.Key(o), "owner", ref.Kind+"/"+ref.Name)
		}
	}
	for _, o := range g.namespaces.List() {
		ns := o.(*api.Namespace)
		if ns.Status.Phase == api.NamespaceTerminating || ns.Metadata.DeletionTimestamp != nil {
			if err := g.emptyNamespace(ctx, ns); err != nil && ctx.Err() == nil {
				g.log.Warn("could not empty terminating namespace", "namespace", ns.Metadata.Name, "err", err)
			}
		}
	}
}

// stillOwnedBy reads a dependent live and reports whether it is still the
// same incarnation, controlled by ownerUID: the cache may show an object
// whose name now belongs to a newer one.
func (g *Collector) stillOwnedBy(ctx context.Context, ki api.KindInfo, o api.Object, ownerUID string) bool {
	live := ki.New()
	if err := g.cli.Get(ctx, o.GetMeta().Namespace, o.GetMeta().Name, live); err != nil {
		return false
	}
	ref := api.ControllerOf(live.GetMeta())
	return live.GetMeta().UID == o.GetMeta().UID && ref != nil && ref.UID == ownerUID
}

// ownerGone reports whether the controller owner ref points at nothing:
// no object of that name, or one with another UID.
func (g *Collector) ownerGone(ctx context.Context, ns string, ref *api.OwnerReference) (bool, error) {
	ki, ok := api.LookupKind(ref.Kind)
	if !ok || ki.Kind != ref.Kind {
		return false, fmt.Errorf("unknown owner kind %q", ref.Kind)
	}
	if !ki.Namespaced {
		ns = ""
	}
	if inf := g.owners[ref.Kind]; inf != nil {
		if o, ok := inf.Get(ns, ref.Name); ok && o.GetMeta().UID == ref.UID {
			return false, nil
		}
	}
	// The cache may lag: ask the API before deleting anything.
	o := ki.New()
	err := g.cli.Get(ctx, ns, ref.Name, o)
	if api.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return o.GetMeta().UID != ref.UID, nil
}

// emptyNamespace deletes everything in a terminating namespace, and the
// namespace once nothing is left.
func (g *Collector) emptyNamespace(ctx context.Context, ns *api.Namespace) error {
	left := 0
	for _, ki := range api.Kinds() {
		if !ki.Namespaced || ki.ReadOnly {
			continue
		}
		list := ki.NewList()
		if err := g.cli.List(ctx, list, client.ListOptions{Namespace: ns.Metadata.Name}); err != nil {
			return err
		}
		for _, o := range list.ObjectItems() {
			left++
			if o.GetMeta().DeletionTimestamp != nil {
				continue // a pod its node is stopping
			}
			if err := g.cli.Delete(ctx, o); err != nil && !api.IsNotFound(err) {
				return err
			}
		}
	}
	if left > 0 {
		// Some deletions complete asynchronously: look again soon.
		time.AfterFunc(time.Second, g.poke)
		return nil
	}
	if err := g.cli.Delete(ctx, ns); err != nil && !api.IsNotFound(err) {
		return fmt.Errorf("remove empty namespace %s: %w", ns.Metadata.Name, err)
	}
	g.log.Info("removed terminating namespace", "namespace", ns.Metadata.Name)
	return nil
}
