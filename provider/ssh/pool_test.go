package ssh_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	berthssh "github.com/berth-io/berth/provider/ssh"
	"github.com/berth-io/berth/provider/ssh/sshtest"
)

func TestPoolReusesOneConnectionPerHostAndRedialsADeadOne(t *testing.T) {
	srv, cfg := newHost(t, "node-1", sshtest.Options{})
	pool := berthssh.NewPool(&berthssh.Dialer{})
	t.Cleanup(func() { pool.Close() })
	ctx := testContext(t)

	a, err := pool.Client(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pool.Client(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || srv.Connections() != 1 {
		t.Fatalf("two requests for one host gave distinct clients (%v) or %d connections; want one", a != b, srv.Connections())
	}
	if err := a.Close(); err != nil || !a.Alive() {
		t.Fatalf("Close of a pooled client ended it (alive=%v, err=%v); the pool owns it", a.Alive(), err)
	}

	srv.DropConnections()
	c, err := pool.Client(ctx, cfg)
	if err != nil {
		t.Fatalf("pool did not redial after the connection died: %v", err)
	}
	if _, _, _, err := c.Run(ctx, "true", berthssh.RunOptions{}); err != nil {
		t.Fatalf("redialled client does not work: %v", err)
	}
	if srv.Connections() != 2 {
		t.Errorf("server saw %d connections; want 2 (the first, then one redial)", srv.Connections())
	}
}

func TestPoolSharesAJumpHostAcrossTargets(t *testing.T) {
	jumpSrv, jumpCfg := newHost(t, "bastion", sshtest.Options{AllowForwarding: true})
	_, cfg1 := newHost(t, "node-1", sshtest.Options{})
	_, cfg2 := newHost(t, "node-2", sshtest.Options{})
	cfg1.Jump, cfg2.Jump = &jumpCfg, &jumpCfg
	pool := berthssh.NewPool(&berthssh.Dialer{})
	t.Cleanup(func() { pool.Close() })
	err := pool.ForEach(testContext(t), []berthssh.HostConfig{cfg1, cfg2}, 2, func(ctx context.Context, c *berthssh.Client) error {
		_, _, _, err := c.Run(ctx, "true", berthssh.RunOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if jumpSrv.Connections() != 1 || jumpSrv.Forwarded() != 2 {
		t.Errorf("bastion saw %d connections and %d tunnels; want 1 and 2", jumpSrv.Connections(), jumpSrv.Forwarded())
	}
}

func TestForEachNeverExceedsItsLimitAndReachesIt(t *testing.T) {
	_, base := newHost(t, "node", sshtest.Options{})
	var hosts []berthssh.HostConfig
	for i := range 9 {
		h := base
		h.Name = fmt.Sprintf("node-%d", i)
		hosts = append(hosts, h)
	}
	for _, limit := range []int{1, 3, 9} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			pool := berthssh.NewPool(&berthssh.Dialer{})
			t.Cleanup(func() { pool.Close() })
			var inFlight, peak, arrived atomic.Int64
			// The first `limit` calls wait for each other, so a correct
			// pool reaches its limit; a pool that let more in would be
			// caught by the in-flight counter.
			barrier := make(chan struct{})
			var once sync.Once
			err := pool.ForEach(testContext(t), hosts, limit, func(ctx context.Context, c *berthssh.Client) error {
				n := inFlight.Add(1)
				defer inFlight.Add(-1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				if arrived.Add(1) == int64(limit) {
					once.Do(func() { close(barrier) })
				}
				select {
				case <-barrier:
				case <-ctx.Done():
					return ctx.Err()
				}
				_, _, _, err := c.Run(ctx, "true", berthssh.RunOptions{})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := peak.Load(); got != int64(limit) {
				t.Errorf("peak parallelism = %d; want exactly the limit %d", got, limit)
			}
			if got := arrived.Load(); got != int64(len(hosts)) {
				t.Errorf("fn ran for %d hosts; want %d", got, len(hosts))
			}
		})
	}
}

func TestForEachCollectsErrorsPerHost(t *testing.T) {
	_, good := newHost(t, "good", sshtest.Options{})
	_, failing := newHost(t, "failing", sshtest.Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := good
	down.Name, down.Port = "down", l.Addr().(*net.TCPAddr).Port
	l.Close()

	pool := berthssh.NewPool(&berthssh.Dialer{})
	t.Cleanup(func() { pool.Close() })
	err = pool.ForEach(testContext(t), []berthssh.HostConfig{good, failing, down}, 2, func(ctx context.Context, c *berthssh.Client) error {
		cmd := "true"
		if c.Host() == "failing" {
			cmd = "exit 4"
		}
		_, _, _, err := c.Run(ctx, cmd, berthssh.RunOptions{})
		return err
	})
	var he berthssh.HostErrors
	if !errors.As(err, &he) {
		t.Fatalf("ForEach error = %v (%T); want HostErrors", err, err)
	}
	if got := fmt.Sprint(he.Hosts()); got != "[down failing]" {
		t.Fatalf("failed hosts = %s; want [down failing]", got)
	}
	var ce *berthssh.CommandError
	if !errors.As(he["failing"], &ce) || ce.ExitCode != 4 {
		t.Errorf("failing host error = %v; want *CommandError exit 4", he["failing"])
	}
	var ue *berthssh.UnreachableError
	if !errors.As(he["down"], &ue) {
		t.Errorf("down host error = %v; want *UnreachableError", he["down"])
	}
	if !errors.As(err, &ue) {
		t.Errorf("errors.As does not see through HostErrors to the host errors")
	}
}

func TestForEachRefusesDuplicateHostNames(t *testing.T) {
	_, cfg := newHost(t, "node-1", sshtest.Options{})
	pool := berthssh.NewPool(&berthssh.Dialer{})
	t.Cleanup(func() { pool.Close() })
	called := false
	err := pool.ForEach(testContext(t), []berthssh.HostConfig{cfg, cfg}, 2, func(ctx context.Context, c *berthssh.Client) error {
		called = true
		return nil
	})
	if err == nil || called {
		t.Fatalf("ForEach with a duplicated host = %v (fn called: %v); want an error before any work", err, called)
	}
}

func TestForEachReportsHostsNotStartedWhenTheContextEnds(t *testing.T) {
	_, base := newHost(t, "node", sshtest.Options{})
	var hosts []berthssh.HostConfig
	for i := range 4 {
		h := base
		h.Name = fmt.Sprintf("node-%d", i)
		hosts = append(hosts, h)
	}
	pool := berthssh.NewPool(&berthssh.Dialer{})
	t.Cleanup(func() { pool.Close() })
	ctx, cancel := context.WithCancel(testContext(t))
	var calls atomic.Int64
	err := pool.ForEach(ctx, hosts, 1, func(ctx context.Context, c *berthssh.Client) error {
		calls.Add(1)
		cancel() // the operator gives up during the first host
		return nil
	})
	var he berthssh.HostErrors
	if !errors.As(err, &he) || calls.Load() != 1 {
		t.Fatalf("ForEach = %v after %d calls; want HostErrors after exactly 1 call", err, calls.Load())
	}
	if got := fmt.Sprint(he.Hosts()); got != "[node-1 node-2 node-3]" {
		t.Errorf("failed hosts = %s; want the three never started", got)
	}
	if !errors.Is(he["node-3"], context.Canceled) {
		t.Errorf("node-3 error = %v; want context.Canceled", he["node-3"])
	}
}
