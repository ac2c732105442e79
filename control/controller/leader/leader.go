// Package leader elects one leader among control-plane instances through a
// Lease object, so that of several `berth control` processes on one etcd
// only one runs the scheduler and the controllers at a time.
//
// Acquiring and renewing the lease are compare-and-swap updates on its
// resourceVersion, so two instances can never both believe they took it.
// Expiry is judged on the local clock of the observer — the time it first
// saw the current lease record, plus the lease duration — so clock skew
// between hosts cannot shorten a lease. A leader that cannot renew stops
// leading once RenewDeadline has passed since it sent its last successful
// renewal; because RenewDeadline is shorter than LeaseDuration and others
// count from when they saw that renewal, it has stopped before anyone else
// may take over.
//
// This package must never act on the cluster itself: it only decides who
// leads and runs the leader's work under a context that ends when
// leadership does.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/berth-io/berth/control/api"
)

// LeaseClient is the part of the API client the elector uses;
// *client.Client implements it.
type LeaseClient interface {
	// Get reads an object.
	Get(ctx context.Context, ns, name string, obj api.Object) error
	// Create stores a new object.
	Create(ctx context.Context, obj api.Object) error
	// Update writes an object, compare-and-swap on its resourceVersion.
	Update(ctx context.Context, obj api.Object) error
}

// Config describes one candidate.
type Config struct {
	// Namespace and Name of the Lease (default berth-system/berth-controller).
	Namespace, Name string
	// Identity names this candidate uniquely (host name plus process).
	Identity string
	// LeaseDuration is how long others wait, from when they saw the last
	// renewal, before taking over (default 15 s).
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader keeps leading without a
	// successful renewal; it must be shorter than LeaseDuration (default
	// 2/3 of it).
	RenewDeadline time.Duration
	// RetryPeriod is the wait between attempts (default 1/5 of
	// LeaseDuration).
	RetryPeriod time.Duration
	// Logger receives leadership changes.
	Logger *slog.Logger
}

// Default lease location.
const (
	DefaultLeaseName = "berth-controller"
)

// Elector campaigns for a lease and runs the leader's work while it holds
// it.
type Elector struct {
	c   LeaseClient
	cfg Config
	log *slog.Logger
	now func() time.Time

	leading atomic.Bool

	// The last lease record seen and when it was first seen locally.
	observed   record
	observedAt time.Time
}

type record struct {
	holder string
	renew  time.Time
	rv     int64
}

// New checks cfg and makes an Elector.
func New(c LeaseClient, cfg Config) (*Elector, error) {
	if cfg.Identity == "" {
		return nil, errors.New("leader election: identity is empty")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = api.SystemNamespace
	}
	if cfg.Name == "" {
		cfg.Name = DefaultLeaseName
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = time.Duration(api.DefaultLeaseDurationSeconds) * time.Second
	}
	if cfg.RenewDeadline <= 0 {
		cfg.RenewDeadline = cfg.LeaseDuration * 2 / 3
	}
	if cfg.RetryPeriod <= 0 {
		cfg.RetryPeriod = cfg.LeaseDuration / 5
	}
	if cfg.RenewDeadline >= cfg.LeaseDuration {
		return nil, fmt.Errorf("leader election: renew deadline %s must be shorter than the lease duration %s", cfg.RenewDeadline, cfg.LeaseDuration)
	}
	if cfg.RetryPeriod >= cfg.RenewDeadline {
		return nil, fmt.Errorf("leader election: retry period %s must be shorter than the renew deadline %s", cfg.RetryPeriod, cfg.RenewDeadline)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Elector{c: c, cfg: cfg, log: log.With("identity", cfg.Identity), now: time.Now}, nil
}

// IsLeader reports whether this candidate leads right now.
func (e *Elector) IsLeader() bool { return e.leading.Load() }

// Run campaigns until ctx ends. Each time it wins, it calls lead with a
// context that ends when leadership is lost (or ctx ends) and waits for
// lead to return before campaigning again. On the way out a leader
// releases the lease so another candidate takes over at once.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) {
	for ctx.Err() == nil {
		lastRenew, ok := e.campaign(ctx)
		if !ok {
			return
		}
		e.lead(ctx, lastRenew, lead)
		if !sleep(ctx, e.cfg.RetryPeriod) {
			return
		}
	}
}

// campaign tries to acquire the lease every RetryPeriod; it returns when
// it did (with when the winning request was sent) or ctx ended.
func (e *Elector) campaign(ctx context.Context) (time.Time, bool) {
	for {
		sent := e.now()
		rctx, cancel := context.WithTimeout(ctx, e.cfg.RenewDeadline)
		ok, err := e.tryAcquireOrRenew(rctx)
		cancel()
		if ok {
			return sent, true
		}
		if err != nil && ctx.Err() == nil {
			e.log.Debug("could not acquire the lease", "err", err)
		}
		if !sleep(ctx, e.cfg.RetryPeriod) {
			return time.Time{}, false
		}
	}
}

func (e *Elector) lead(ctx context.Context, lastRenew time.Time, lead func(ctx context.Context)) {
	e.leading.Store(true)
	e.log.Info("became the leader", "lease", e.cfg.Namespace+"/"+e.cfg.Name)
	leadCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lead(leadCtx)
	}()
	stop := func(reason string) {
		e.leading.Store(false)
		cancel()
		<-done
		e.log.Info("stopped leading", "reason", reason)
	}
	tick := time.NewTicker(e.cfg.RetryPeriod)
	defer tick.Stop()
	for {
		deadline := lastRenew.Add(e.cfg.RenewDeadline)
		wait := time.NewTimer(deadline.Sub(e.now()))
		select {
		case <-ctx.Done():
			wait.Stop()
			stop("shutting down")
			e.release()
			return
		case <-done:
			wait.Stop()
			// The work ended on its own: give the lease up so another
			// instance can do it.
			stop("the leader's work returned")
			e.release()
			return
		case <-wait.C:
			stop("could not renew the lease before the renew deadline")
			return
		case <-tick.C:
			wait.Stop()
			sent := e.now()
			if !sent.Before(deadline) {
				stop("could not renew the lease before the renew deadline")
				return
			}
			rctx, rcancel := context.WithDeadline(ctx, deadline)
			ok, err := e.tryAcquireOrRenew(rctx)
			rcancel()
			if ok {
				lastRenew = sent
			} else if err != nil && ctx.Err() == nil {
				e.log.Warn("could not renew the lease", "err", err)
			}
		}
	}
}

// release hands the lease back by clearing its holder, so others need not
// wait for it to expire.
func (e *Elector) release() {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.RetryPeriod)
	defer cancel()
	var l api.Lease
	if err := e.c.Get(ctx, e.cfg.Namespace, e.cfg.Name, &l); err != nil || l.Spec.HolderIdentity != e.cfg.Identity {
		return
	}
	l.Spec.HolderIdentity = ""
	if err := e.c.Update(ctx, &l); err != nil {
		e.log.Warn("could not release the lease; others take over once it expires", "err", err)
	}
}

// tryAcquireOrRenew makes one attempt to take or renew the lease.
func (e *Elector) tryAcquireOrRenew(ctx context.Context) (bool, error) {
	now := e.now()
	var l api.Lease
	err := e.c.Get(ctx, e.cfg.Namespace, e.cfg.Name, &l)
	if api.IsNotFound(err) {
		nl := &api.Lease{
			Metadata: api.ObjectMeta{Name: e.cfg.Name, Namespace: e.cfg.Namespace},
			Spec:     e.spec(nil, now),
		}
		if err := e.c.Create(ctx, nl); err != nil {
			return false, fmt.Errorf("create lease: %w", err)
		}
		e.observe(nl, now)
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read lease: %w", err)
	}
	e.observe(&l, now)
	if !CanAcquire(&l, e.cfg.Identity, now, e.observedAt, e.cfg.LeaseDuration) {
		return false, nil
	}
	l.Spec = e.spec(&l, now)
	if err := e.c.Update(ctx, &l); err != nil {
		return false, fmt.Errorf("update lease: %w", err)
	}
	e.observe(&l, now)
	return true, nil
}

// observe notes when a lease record was first seen.
func (e *Elector) observe(l *api.Lease, now time.Time) {
	r := record{holder: l.Spec.HolderIdentity, rv: l.Metadata.ResourceVersion}
	if l.Spec.RenewTime != nil {
		r.renew = *l.Spec.RenewTime
	}
	if r != e.observed {
		e.observed, e.observedAt = r, now
	}
}

// spec is the lease spec this candidate writes to take or renew old.
func (e *Elector) spec(old *api.Lease, now time.Time) api.LeaseSpec {
	t := now.UTC()
	s := api.LeaseSpec{
		HolderIdentity:       e.cfg.Identity,
		LeaseDurationSeconds: int32((e.cfg.LeaseDuration + time.Second - 1) / time.Second),
		AcquireTime:          &t,
		RenewTime:            &t,
	}
	if old != nil {
		s.LeaseTransitions = old.Spec.LeaseTransitions
		if old.Spec.HolderIdentity == e.cfg.Identity {
			s.AcquireTime = old.Spec.AcquireTime
		} else {
			s.LeaseTransitions++
		}
	}
	return s
}

// CanAcquire decides whether identity may write the lease l now: it holds
// it already, nobody holds it, or the holder has not renewed for a whole
// lease duration since observedAt — the local time the current record was
// first seen (never the holder's own clock). The longer of the lease's
// declared duration and leaseDuration applies.
func CanAcquire(l *api.Lease, identity string, now, observedAt time.Time, leaseDuration time.Duration) bool {
	if l == nil || l.Spec.HolderIdentity == "" || l.Spec.HolderIdentity == identity {
		return true
	}
	// The holder's declared duration counts when it is longer than ours.
	d := max(time.Duration(l.Spec.LeaseDurationSeconds)*time.Second, leaseDuration)
	return now.After(observedAt.Add(d))
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
