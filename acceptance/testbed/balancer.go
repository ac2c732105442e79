package testbed

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"github.com/berth-io/berth/acceptance/lb"
)

// balancer is the keeper's load balancer: package lb, with backends given
// as one port on a list of host addresses.
type balancer struct {
	l   net.Listener
	b   *lb.Balancer
	mu  sync.Mutex
	cfg LBConfig
}

func newBalancer(l net.Listener) (*balancer, error) {
	b, err := lb.New(lb.Config{})
	if err != nil {
		return nil, fmt.Errorf("make load balancer: %w", err)
	}
	return &balancer{l: l, b: b}, nil
}

func (b *balancer) serve(ctx context.Context) error {
	if err := b.b.Serve(ctx, b.l); err != nil {
		return fmt.Errorf("load balancer: %w", err)
	}
	return nil
}

// status is the configuration and what the balancer sees of each backend.
func (b *balancer) status() LBStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	return LBStatus{
		LBConfig: LBConfig{Port: b.cfg.Port, Backends: append([]string(nil), b.cfg.Backends...)},
		Backends: b.b.Backends(),
		Refused:  b.b.Refused(),
	}
}

func (b *balancer) set(cfg LBConfig) error {
	if cfg.Port < 1 || cfg.Port > 65535 {
		return fmt.Errorf("load balancer port %d out of range", cfg.Port)
	}
	addrs := make([]string, 0, len(cfg.Backends))
	for _, a := range cfg.Backends {
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("load balancer backend: %w", err)
		}
		addrs = append(addrs, net.JoinHostPort(a, strconv.Itoa(cfg.Port)))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.b.SetBackends(addrs); err != nil {
		return fmt.Errorf("set load balancer backends: %w", err)
	}
	b.cfg = cfg
	return nil
}

// waitHealthy returns when every backend is in service.
func (b *balancer) waitHealthy(ctx context.Context) error {
	return b.b.Wait(ctx, lb.AllHealthy)
}
