// Package lb is the testbed's TCP load balancer, standing where a cloud load
// balancer stands in front of a real cluster: clients connect to one
// address, and each new connection goes to the next healthy backend (a
// node's service node port), round-robin.
//
// Backends are host:port addresses that can be replaced at run time with
// SetBackends, as an operator (or the testbed, following Ready nodes) would.
// Active health checks decide which of them take traffic: a TCP connect, or
// an HTTP GET of a path that must answer 2xx or 3xx. A backend that is added
// is checked at once and takes traffic after its first passing check; a
// backend in service is taken out after HealthCheck.UnhealthyThreshold
// failed checks in a row, and returns after HealthyThreshold passes in a row.
// The balancer never retries: if the chosen backend refuses the connection,
// the client's connection is closed, exactly as a client of a cloud load
// balancer would see it. With no healthy backend a new connection is
// accepted and closed at once, and counted as refused.
//
// A test uses it like this:
//
//	b, err := lb.New(lb.Config{Backends: []string{"198.18.0.2:30080", "198.18.1.2:30080"}})
//	l, _ := net.Listen("tcp", "127.0.0.1:0")
//	go b.Serve(ctx, l)                 // returns when ctx ends
//	b.Wait(ctx, lb.AllHealthy)         // before sending traffic
//	b.SetBackends([]string{"198.18.1.2:30080", "198.18.2.2:30080"})
//	for _, s := range b.Backends() { ... s.Connections ... }
//
// Connections to a backend removed by SetBackends are left to finish (Drain
// waits for them); all connections are closed when Serve's context ends. The balancer only dials
// the backends it is given and never logs.
package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of HealthCheck and Config.
const (
	DefaultInterval           = time.Second
	DefaultTimeout            = time.Second
	DefaultHealthyThreshold   = 2
	DefaultUnhealthyThreshold = 2
	DefaultDialTimeout        = 2 * time.Second
)

// HealthCheck says how backends are probed. Zero fields take the defaults
// above: a TCP connect every second with a one-second timeout, taken out
// after two failures in a row and back after two passes in a row.
type HealthCheck struct {
	// HTTPPath, when set, makes the check an HTTP GET of this path on a
	// fresh connection, passing on a 2xx or 3xx status; otherwise a check
	// passes when a TCP connection opens.
	HTTPPath string
	// Interval is the time between the starts of two checks of a backend.
	Interval time.Duration
	// Timeout bounds one check.
	Timeout time.Duration
	// HealthyThreshold is how many passes in a row bring a backend that was
	// taken out back into service.
	HealthyThreshold int
	// UnhealthyThreshold is how many failures in a row take a backend out.
	UnhealthyThreshold int
}

// Config is what New needs.
type Config struct {
	// Backends is the initial backend set, as host:port addresses.
	Backends []string
	// HealthCheck configures active health checks.
	HealthCheck HealthCheck
	// DialTimeout bounds the connection to a backend made for a client
	// (default 2 s).
	DialTimeout time.Duration
}

// BackendStatus is one backend as the balancer sees it.
type BackendStatus struct {
	// Addr is the backend's host:port.
	Addr string
	// Healthy reports whether new connections may go to it.
	Healthy bool
	// Connections counts client connections sent to it, including those
	// whose dial failed.
	Connections uint64
	// DialFailures counts client connections that could not reach it.
	DialFailures uint64
	// Active is the number of connections being dialled or proxied to it
	// now.
	Active int64
	// Checks counts health checks run against it, passed or failed.
	Checks uint64
}

// AllHealthy is a condition for Wait: every backend is in service.
func AllHealthy(s []BackendStatus) bool {
	for _, b := range s {
		if !b.Healthy {
			return false
		}
	}
	return true
}

// Balancer spreads TCP connections across healthy backends. Its methods are
// safe for concurrent use.
type Balancer struct {
	cfg Config

	mu       sync.Mutex
	order    []string            // the current backend set, in the order given
	backends map[string]*backend // every backend ever configured, by address
	next     uint64              // round-robin position
	runCtx   context.Context     // set while Serve runs
	changed  chan struct{}       // closed and replaced on every state change
	served   bool

	refused atomic.Uint64
	wg      sync.WaitGroup // checkers and proxied connections
}

// backend holds one backend's health and counters. Its health fields are
// guarded by Balancer.mu.
type backend struct {
	addr   string
	health health
	stop   context.CancelFunc // ends its checker; nil when none runs
	gen    uint64             // identifies the checker that may report

	connections  atomic.Uint64
	dialFailures atomic.Uint64
	active       atomic.Int64
	checks       atomic.Uint64
}

// health is the threshold state machine of one backend.
type health struct {
	healthy  bool
	served   bool // has been in service since it was added
	passes   int  // passes in a row
	failures int  // failures in a row
}

// observe records one check result and reports whether the backend's
// health changed. A backend never yet in service enters on its first pass.
func (h *health) observe(pass bool, hc HealthCheck) bool {
	was := h.healthy
	if pass {
		h.passes++
		h.failures = 0
		if !h.served || h.passes >= hc.HealthyThreshold {
			h.healthy = true
			h.served = true
		}
	} else {
		h.failures++
		h.passes = 0
		if h.failures >= hc.UnhealthyThreshold {
			h.healthy = false
		}
	}
	return h.healthy != was
}

// New returns a balancer for cfg; it does nothing until Serve.
func New(cfg Config) (*Balancer, error) {
	hc := &cfg.HealthCheck
	if hc.Interval <= 0 {
		hc.Interval = DefaultInterval
	}
	if hc.Timeout <= 0 {
		hc.Timeout = DefaultTimeout
	}
	if hc.HealthyThreshold <= 0 {
		hc.HealthyThreshold = DefaultHealthyThreshold
	}
	if hc.UnhealthyThreshold <= 0 {
		hc.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	b := &Balancer{cfg: cfg, backends: map[string]*backend{}, changed: make(chan struct{})}
	if err := b.SetBackends(cfg.Backends); err != nil {
		return nil, fmt.Errorf("new load balancer: %w", err)
	}
	return b, nil
}

// SetBackends replaces the backend set. Backends kept keep their health and
// counters; new ones are checked at once and take traffic after their first
// passing check; removed ones get no new connections, while their open
// connections are left to finish. Duplicate addresses count once.
func (b *Balancer) SetBackends(addrs []string) error {
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("set backends: %q is not host:port: %w", a, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var order []string
	for _, a := range addrs {
		if !slices.Contains(order, a) {
			order = append(order, a)
		}
	}
	for _, a := range b.order {
		if !slices.Contains(order, a) {
			be := b.backends[a]
			if be.stop != nil {
				be.stop()
				be.stop = nil
			}
			// A backend added again later starts from scratch.
			be.health = health{}
		}
	}
	b.order = order
	for _, a := range order {
		if _, ok := b.backends[a]; !ok {
			b.backends[a] = &backend{addr: a}
		}
		if b.runCtx != nil {
			b.startCheckerLocked(b.backends[a])
		}
	}
	b.notifyLocked()
	return nil
}

// Backends returns the current backend set in the order given, with health
// and counters.
func (b *Balancer) Backends() []BackendStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.statusLocked()
}

func (b *Balancer) statusLocked() []BackendStatus {
	out := make([]BackendStatus, 0, len(b.order))
	for _, a := range b.order {
		be := b.backends[a]
		out = append(out, BackendStatus{
			Addr:         a,
			Healthy:      be.health.healthy,
			Connections:  be.connections.Load(),
			DialFailures: be.dialFailures.Load(),
			Active:       be.active.Load(),
			Checks:       be.checks.Load(),
		})
	}
	return out
}

// Refused counts client connections closed because no backend was healthy.
func (b *Balancer) Refused() uint64 { return b.refused.Load() }

// Wait blocks until cond holds for the backend set (evaluated now, after
// every health check and after every SetBackends) or ctx ends. Tests use it instead of
// sleeping: Wait(ctx, AllHealthy) before traffic, or a condition naming a
// killed backend as unhealthy.
func (b *Balancer) Wait(ctx context.Context, cond func([]BackendStatus) bool) error {
	for {
		b.mu.Lock()
		ok := cond(b.statusLocked())
		ch := b.changed
		b.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for backends: %w", ctx.Err())
		}
	}
}

func (b *Balancer) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// Serve accepts connections on l and proxies each to a healthy backend
// until ctx ends; it then closes l and every proxied connection, waits for
// its health checkers to stop, and returns nil. Serve may be called once.
func (b *Balancer) Serve(parent context.Context, l net.Listener) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	b.mu.Lock()
	if b.served {
		b.mu.Unlock()
		return errors.New("serve load balancer: already served")
	}
	b.served = true
	b.runCtx = ctx
	for _, a := range b.order {
		b.startCheckerLocked(b.backends[a])
	}
	b.mu.Unlock()

	go func() {
		<-ctx.Done()
		l.Close()
	}()
	var err error
	backoff := 5 * time.Millisecond
	for {
		var c net.Conn
		c, err = l.Accept()
		if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() && ctx.Err() == nil {
			// Out of file descriptors and the like: wait and try again,
			// as net/http does.
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		if err != nil {
			break
		}
		backoff = 5 * time.Millisecond
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.handle(ctx, c)
		}()
	}
	cancel()
	b.mu.Lock()
	b.runCtx = nil // no checker starts from now on
	for _, be := range b.backends {
		be.stop = nil
	}
	b.mu.Unlock()
	b.wg.Wait()
	if parent.Err() != nil {
		return nil
	}
	return fmt.Errorf("serve load balancer on %s: %w", l.Addr(), err)
}

// pick chooses the next healthy backend round-robin, or nil.
func (b *Balancer) pick() *backend {
	b.mu.Lock()
	defer b.mu.Unlock()
	var healthy []*backend
	for _, a := range b.order {
		if be := b.backends[a]; be.health.healthy {
			healthy = append(healthy, be)
		}
	}
	if len(healthy) == 0 {
		return nil
	}
	be := healthy[b.next%uint64(len(healthy))]
	b.next++
	be.connections.Add(1)
	be.active.Add(1)
	return be
}

// release ends a connection pick counted, and wakes Wait and Drain.
func (b *Balancer) release(be *backend) {
	b.mu.Lock()
	defer b.mu.Unlock()
	be.active.Add(-1)
	b.notifyLocked()
}

// Drain waits until no connection is being dialled or proxied to addr, or
// ctx ends. After SetBackends removes a backend, no new connection goes to
// it, but connections picked just before may still be connecting: Drain
// before stopping a removed backend, as a cloud load balancer's
// deregistration delay does, so that no client sees a refused connection.
// Clients that keep connections open (HTTP keep-alive) hold Drain until they
// close them or ctx ends.
func (b *Balancer) Drain(ctx context.Context, addr string) error {
	for {
		b.mu.Lock()
		be, ok := b.backends[addr]
		idle := !ok || be.active.Load() == 0
		ch := b.changed
		b.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("drain backend %s: %w", addr, ctx.Err())
		}
	}
}

// handle proxies one client connection.
func (b *Balancer) handle(ctx context.Context, client net.Conn) {
	defer client.Close()
	be := b.pick()
	if be == nil {
		b.refused.Add(1)
		return
	}
	defer b.release(be)
	d := net.Dialer{Timeout: b.cfg.DialTimeout}
	server, err := d.DialContext(ctx, "tcp", be.addr)
	if err != nil {
		be.dialFailures.Add(1)
		return
	}
	defer server.Close()

	stop := context.AfterFunc(ctx, func() {
		client.Close()
		server.Close()
	})
	defer stop()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Pass the end of one direction on, so half-closing clients (and
		// HTTP servers answering "Connection: close") work.
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	<-done
}

// startCheckerLocked starts be's health checker unless one runs.
func (b *Balancer) startCheckerLocked(be *backend) {
	if be.stop != nil {
		return
	}
	cctx, stop := context.WithCancel(b.runCtx)
	be.stop = stop
	be.gen++
	gen := be.gen
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.checkLoop(cctx, be, gen)
	}()
}

// checkLoop checks be at once and then every interval until ctx ends.
func (b *Balancer) checkLoop(ctx context.Context, be *backend, gen uint64) {
	hc := b.cfg.HealthCheck
	t := time.NewTicker(hc.Interval)
	defer t.Stop()
	for {
		pass := b.check(ctx, be.addr)
		if ctx.Err() != nil {
			return
		}
		b.mu.Lock()
		// The result counts only if this checker is still be's checker: be
		// may have been removed (and even added again) meanwhile.
		if be.stop != nil && be.gen == gen {
			be.checks.Add(1)
			be.health.observe(pass, hc)
			b.notifyLocked()
		}
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check runs one health check of addr.
func (b *Balancer) check(ctx context.Context, addr string) bool {
	hc := b.cfg.HealthCheck
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	if hc.HTTPPath == "" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+hc.HTTPPath, nil)
	if err != nil {
		return false
	}
	client := http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}
