package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// balancer spreads each accepted connection to the next backend in turn.
type balancer struct {
	l    net.Listener
	mu   sync.Mutex
	cfg  LBConfig
	next int
}

func newBalancer(l net.Listener) (*balancer, error) { return &balancer{l: l}, nil }

func (b *balancer) config() LBConfig {
	b.mu.Lock()
	defer b.mu.Unlock()
	return LBConfig{Port: b.cfg.Port, Backends: append([]string(nil), b.cfg.Backends...)}
}

func (b *balancer) set(cfg LBConfig) error {
	if cfg.Port < 1 || cfg.Port > 65535 {
		return fmt.Errorf("load balancer port %d out of range", cfg.Port)
	}
	for _, a := range cfg.Backends {
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("load balancer backend: %w", err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cfg = cfg
	return nil
}

func (b *balancer) pick() (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.cfg.Backends) == 0 {
		return "", false
	}
	b.next = (b.next + 1) % len(b.cfg.Backends)
	return net.JoinHostPort(b.cfg.Backends[b.next], strconv.Itoa(b.cfg.Port)), true
}

func (b *balancer) serve(ctx context.Context) error {
	go func() { <-ctx.Done(); b.l.Close() }()
	for {
		c, err := b.l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("load balancer: %w", err)
		}
		go b.proxy(ctx, c)
	}
}

func (b *balancer) proxy(ctx context.Context, c net.Conn) {
	defer c.Close()
	addr, ok := b.pick()
	if !ok {
		return
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	u, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, u); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}
