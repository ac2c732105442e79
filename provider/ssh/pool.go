package ssh

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Pool keeps one connection per host and hands it to every caller, so a
// provisioning run that touches a host many times pays for one handshake.
// A connection found dead (closed, or not answering a keepalive) is
// redialled. Jump hosts are shared by every host behind them.
type Pool struct {
	dialer *Dialer

	mu      sync.Mutex
	entries map[string]*poolEntry
	closed  bool
}

type poolEntry struct {
	mu     sync.Mutex // serialises dialling of this host
	client *Client
}

// NewPool returns a pool dialling with d.
func NewPool(d *Dialer) *Pool {
	return &Pool{dialer: d, entries: map[string]*poolEntry{}}
}

// keepaliveTimeout bounds the liveness probe of a cached connection.
const keepaliveTimeout = 10 * time.Second

// poolKey identifies a connection: the same host reached as the same user
// with the same pin and route.
func poolKey(cfg HostConfig) string {
	k := cfg.Name + "|" + cfg.User + "@" + cfg.addr() + "|" + cfg.HostKey
	if cfg.Jump != nil {
		k += "|via:" + poolKey(cfg.Jump.withDefaults())
	}
	return k
}

// Client returns the pool's connection to cfg's host, dialling it (and its
// jump host) when there is none or the old one has died. The returned
// Client belongs to the pool; its Close does nothing.
func (p *Pool) Client(ctx context.Context, cfg HostConfig) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("host %q: connection pool is closed", cfg.Name)
	}
	key := poolKey(cfg)
	e := p.entries[key]
	if e == nil {
		e = &poolEntry{}
		p.entries[key] = e
	}
	p.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client != nil {
		if e.client.probe(ctx) {
			return e.client, nil
		}
		e.client.close()
		e.client = nil
	}
	var jump *Client
	if cfg.Jump != nil {
		var err error
		if jump, err = p.Client(ctx, *cfg.Jump); err != nil {
			return nil, fmt.Errorf("host %q: dial jump host: %w", cfg.Name, err)
		}
	}
	c, err := p.dialer.dialVia(ctx, cfg, jump)
	if err != nil {
		return nil, err
	}
	c.pooled = true
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		c.close()
		return nil, fmt.Errorf("host %q: connection pool is closed", cfg.Name)
	}
	e.client = c
	return c, nil
}

// probe reports whether the connection still answers, bounded by ctx and
// keepaliveTimeout.
func (c *Client) probe(ctx context.Context) bool {
	if !c.Alive() {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, keepaliveTimeout)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
		res <- err
	}()
	select {
	case err := <-res:
		return err == nil
	case <-ctx.Done():
		return false
	}
}

// Close ends every connection of the pool; later calls to Client fail.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	entries := p.entries
	p.entries = map[string]*poolEntry{}
	p.mu.Unlock()
	// Close hosts behind jump hosts first: ordering is not required for
	// correctness (closing a jump host ends its tunnels), only tidier.
	for _, e := range entries {
		e.mu.Lock()
		if e.client != nil && e.client.cfg.Jump != nil {
			e.client.close()
			e.client = nil
		}
		e.mu.Unlock()
	}
	for _, e := range entries {
		e.mu.Lock()
		if e.client != nil {
			e.client.close()
			e.client = nil
		}
		e.mu.Unlock()
	}
	return nil
}

// HostErrors maps host names to what went wrong there, so a run over many
// hosts reports every failure, not just the first. It is returned as an
// error only when non-empty; errors.As finds it, and errors.Is/As also see
// through to each host's error.
type HostErrors map[string]error

// Error lists every failed host with its error, sorted by host name.
func (e HostErrors) Error() string {
	names := e.Hosts()
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, strconv.Quote(n)+": "+e[n].Error())
	}
	return fmt.Sprintf("%d host(s) failed: %s", len(names), strings.Join(parts, "; "))
}

// Unwrap exposes every host's error to errors.Is and errors.As.
func (e HostErrors) Unwrap() []error {
	out := make([]error, 0, len(e))
	for _, n := range e.Hosts() {
		out = append(out, e[n])
	}
	return out
}

// Hosts returns the names of the failed hosts, sorted.
func (e HostErrors) Hosts() []string {
	names := make([]string, 0, len(e))
	for n := range e {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ForEach connects to every host through the pool and calls fn with its
// client, running at most limit hosts at a time (limit < 1 means 1). It
// waits for all started calls and returns nil or HostErrors keyed by host
// name: connection failures, fn's errors, and ctx's error for hosts not
// started before ctx ended. Host names must be unique.
func (p *Pool) ForEach(ctx context.Context, hosts []HostConfig, limit int, fn func(ctx context.Context, c *Client) error) error {
	if limit < 1 {
		limit = 1
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		name := h.withDefaults().Name
		if seen[name] {
			return fmt.Errorf("host %q is listed twice; host names must be unique", name)
		}
		seen[name] = true
	}
	var mu sync.Mutex
	errs := HostErrors{}
	record := func(name string, err error) {
		mu.Lock()
		errs[name] = err
		mu.Unlock()
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for _, h := range hosts {
		name := h.withDefaults().Name
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			record(name, fmt.Errorf("host %q: not started: %w", name, ctx.Err()))
			continue
		}
		if ctx.Err() != nil {
			<-sem
			record(name, fmt.Errorf("host %q: not started: %w", name, ctx.Err()))
			continue
		}
		wg.Add(1)
		go func(h HostConfig) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := p.Client(ctx, h)
			if err == nil {
				err = fn(ctx, c)
			}
			if err != nil {
				record(name, err)
			}
		}(h)
	}
	wg.Wait()
	if len(errs) == 0 {
		return nil
	}
	return errs
}
