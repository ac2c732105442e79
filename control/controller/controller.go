// Package controller runs berth's control loops — the scheduler, the
// deployment, node lifecycle and endpoints controllers, and the garbage
// collector — under leader election, so that of several control-plane
// instances on one etcd exactly one acts at a time. control/plane calls
// [Run] from `berth control`.
//
// While this instance leads, Run builds one set of shared informers, hands
// them to every loop, and runs them; when leadership ends (lost, or ctx
// done) everything stops, the caches are dropped, and the instance
// campaigns again. This package must never talk to anything but the API
// through control/client.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/controller/deployment"
	"github.com/berth-io/berth/control/controller/endpoints"
	"github.com/berth-io/berth/control/controller/gc"
	"github.com/berth-io/berth/control/controller/leader"
	"github.com/berth-io/berth/control/controller/nodelifecycle"
	"github.com/berth-io/berth/control/scheduler"
)

// Options configure the control loops of one control-plane instance.
type Options struct {
	// Identity names this instance in the leader lease; default: host
	// name and process ID.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod time the leader
	// election (defaults 15 s, 10 s, 3 s); see package leader.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// NodeGracePeriod is how long a node may miss heartbeats before it is
	// marked Ready=Unknown (default 40 s).
	NodeGracePeriod time.Duration
	// PodEvictionTimeout is how long a silent node keeps its pods after
	// that (default 60 s).
	PodEvictionTimeout time.Duration
	// GCInterval is the garbage collector's full-pass interval (default 20 s).
	GCInterval time.Duration
	// Logger receives everything the loops report; nil discards it.
	Logger *slog.Logger
	// OnLeading, when set, is told each time this instance starts (true)
	// and stops (false) leading: for metrics and tests.
	OnLeading func(leading bool)
}

// Run campaigns for leadership and, while leading, runs the scheduler and
// every controller, until ctx ends. It returns an error only when the
// options are unusable.
func Run(ctx context.Context, cli *client.Client, opts Options) error {
	if cli == nil {
		return errors.New("run controllers: client is nil")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Identity == "" {
		host, _ := os.Hostname()
		opts.Identity = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	el, err := leader.New(cli, leader.Config{
		Identity: opts.Identity, LeaseDuration: opts.LeaseDuration,
		RenewDeadline: opts.RenewDeadline, RetryPeriod: opts.RetryPeriod,
		Logger: opts.Logger.With("component", "leader-election"),
	})
	if err != nil {
		return fmt.Errorf("run controllers: %w", err)
	}
	el.Run(ctx, func(ctx context.Context) {
		if opts.OnLeading != nil {
			opts.OnLeading(true)
			defer opts.OnLeading(false)
		}
		runLoops(ctx, cli, opts)
	})
	return nil
}

// runLoops runs every loop until ctx ends.
func runLoops(ctx context.Context, cli *client.Client, opts Options) {
	log := opts.Logger
	kind := func(name string) api.KindInfo {
		ki, ok := api.LookupKind(name)
		if !ok {
			panic("controller: unknown kind " + name)
		}
		return ki
	}
	informer := func(name string) *client.Informer {
		return client.NewInformer(cli, kind(name), client.InformerOptions{Logger: log.With("component", "informer")})
	}
	pods, nodes := informer("Pod"), informer("Node")
	deps, revs := informer("Deployment"), informer("Revision")
	svcs, eps := informer("Service"), informer("Endpoints")
	nss := informer("Namespace")

	rec := func(source string) *client.EventRecorder { return client.NewEventRecorder(cli, source, log) }
	loops := []interface{ Run(context.Context) error }{
		scheduler.New(cli, pods, nodes, scheduler.Options{Logger: log, Recorder: rec(scheduler.Name)}),
		deployment.New(cli, deps, pods, revs, deployment.Options{Logger: log, Recorder: rec(deployment.Name)}),
		nodelifecycle.New(cli, nodes, pods, nodelifecycle.Options{
			GracePeriod: opts.NodeGracePeriod, EvictionTimeout: opts.PodEvictionTimeout,
			Logger: log, Recorder: rec(nodelifecycle.Name),
		}),
		endpoints.New(cli, svcs, pods, eps, endpoints.Options{Logger: log}),
		gc.New(cli, []*client.Informer{pods, revs, eps}, []*client.Informer{deps, svcs}, nss, gc.Options{Interval: opts.GCInterval, Logger: log}),
	}
	var wg sync.WaitGroup
	for _, inf := range []*client.Informer{pods, nodes, deps, revs, svcs, eps, nss} {
		wg.Go(func() { inf.Run(ctx) })
	}
	for _, l := range loops {
		wg.Go(func() {
			if err := l.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("control loop stopped", "err", err)
			}
		})
	}
	wg.Wait()
}
