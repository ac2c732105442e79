package lb

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fastChecks makes health checks quick enough for unit tests.
var fastChecks = HealthCheck{Interval: 10 * time.Millisecond, Timeout: time.Second}

// echoBackend answers each connection with its name on one line, then
// echoes what it reads until the client half-closes.
type echoBackend struct {
	name  string
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newEchoBackend(t *testing.T, name string) *echoBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoBackend{name: name, l: l}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				io.WriteString(c, e.name+"\n")
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(e.kill)
	return e
}

func (e *echoBackend) addr() string { return e.l.Addr().String() }

// kill closes the listener and every open connection, like a dead host.
func (e *echoBackend) kill() {
	e.l.Close()
	e.mu.Lock()
	for _, c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// serve runs b on a loopback port until the test ends.
func serve(t *testing.T, b *Balancer) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve returned %v after its context ended, want nil", err)
		}
	})
	return l.Addr().String()
}

// greet opens a connection through the balancer and returns the name of the
// backend that answered ("" if the connection was closed without an answer)
// and the open connection.
func greet(t *testing.T, addr string) (string, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return "", nil, nil
	}
	return strings.TrimSuffix(line, "\n"), c, r
}

func answeredBy(t *testing.T, addr string) string {
	t.Helper()
	name, c, _ := greet(t, addr)
	if c != nil {
		c.Close()
	}
	return name
}

func healthyIs(addr string, want bool) func([]BackendStatus) bool {
	return func(s []BackendStatus) bool {
		for _, b := range s {
			if b.Addr == addr {
				return b.Healthy == want
			}
		}
		return false
	}
}

func TestHealthStateMachineFollowsThresholds(t *testing.T) {
	hc := HealthCheck{HealthyThreshold: 2, UnhealthyThreshold: 3}
	for _, tc := range []struct {
		name    string
		results []bool
		want    bool
	}{
		{"never checked is out of service", nil, false},
		{"first pass brings a new backend in", []bool{true}, true},
		{"first failure keeps a new backend out", []bool{false}, false},
		{"fewer failures than the threshold keep it in", []bool{true, false, false}, true},
		{"threshold failures in a row take it out", []bool{true, false, false, false}, false},
		{"a pass resets the failure count", []bool{true, false, false, true, false, false}, true},
		{"one pass does not bring a removed backend back", []bool{true, false, false, false, true}, false},
		{"threshold passes in a row bring it back", []bool{true, false, false, false, true, true}, true},
		{"a new backend that failed at first enters on its first pass", []bool{false, false, false, true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h health
			for _, r := range tc.results {
				h.observe(r, hc)
			}
			if h.healthy != tc.want {
				t.Fatalf("healthy = %t after %v, want %t", h.healthy, tc.results, tc.want)
			}
		})
	}
}

func TestNewConnectionsGoRoundRobinAcrossHealthyBackends(t *testing.T) {
	a, b, c := newEchoBackend(t, "a"), newEchoBackend(t, "b"), newEchoBackend(t, "c")
	bal, err := New(Config{Backends: []string{a.addr(), b.addr(), c.addr()}, HealthCheck: fastChecks})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, bal)
	if err := bal.Wait(t.Context(), AllHealthy); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for range 30 {
		counts[answeredBy(t, addr)]++
	}
	if counts["a"] != 10 || counts["b"] != 10 || counts["c"] != 10 {
		t.Fatalf("30 connections went %v, want 10 to each backend", counts)
	}
	for _, s := range bal.Backends() {
		if s.Connections != 10 || s.DialFailures != 0 {
			t.Errorf("%s: %d connections, %d dial failures; want 10 and 0", s.Addr, s.Connections, s.DialFailures)
		}
	}
}

func TestBytesFlowBothWaysAndHalfCloseIsPassedOn(t *testing.T) {
	a := newEchoBackend(t, "a")
	bal, err := New(Config{Backends: []string{a.addr()}, HealthCheck: fastChecks})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, bal)
	if err := bal.Wait(t.Context(), AllHealthy); err != nil {
		t.Fatal(err)
	}
	name, c, r := greet(t, addr)
	if name != "a" {
		t.Fatalf("answered by %q, want a", name)
	}
	defer c.Close()
	payload := strings.Repeat("berth ", 50000)
	go func() {
		io.WriteString(c, payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != payload {
		t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(payload))
	}
}

func TestKilledBackendIsTakenOutAfterUnhealthyThreshold(t *testing.T) {
	a, b := newEchoBackend(t, "a"), newEchoBackend(t, "b")
	hc := fastChecks
	hc.UnhealthyThreshold = 3
	bal, err := New(Config{Backends: []string{a.addr(), b.addr()}, HealthCheck: hc})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, bal)
	ctx := t.Context()
	if err := bal.Wait(ctx, AllHealthy); err != nil {
		t.Fatal(err)
	}
	b.kill()
	checksAtKill := bal.Backends()[1].Checks
	if err := bal.Wait(ctx, healthyIs(b.addr(), false)); err != nil {
		t.Fatal(err)
	}
	if got := bal.Backends()[1].Checks - checksAtKill; got < 3 {
		t.Errorf("taken out after %d checks since the kill, want at least the threshold 3", got)
	}
	for i := range 6 {
		if name := answeredBy(t, addr); name != "a" {
			t.Fatalf("connection %d after b was taken out answered by %q, want a", i, name)
		}
	}
}

func TestSetBackendsSwitchesNewConnectionsAndDrainsOldOnes(t *testing.T) {
	a, b := newEchoBackend(t, "a"), newEchoBackend(t, "b")
	bal, err := New(Config{Backends: []string{a.addr()}, HealthCheck: fastChecks})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, bal)
	ctx := t.Context()
	if err := bal.Wait(ctx, AllHealthy); err != nil {
		t.Fatal(err)
	}
	name, old, oldR := greet(t, addr)
	if name != "a" {
		t.Fatalf("answered by %q, want a", name)
	}
	defer old.Close()

	if err := bal.SetBackends([]string{b.addr(), b.addr()}); err != nil {
		t.Fatal(err)
	}
	if got := bal.Backends(); len(got) != 1 || got[0].Addr != b.addr() {
		t.Fatalf("backends after SetBackends: %+v, want only b once", got)
	}
	if err := bal.Wait(ctx, AllHealthy); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if name := answeredBy(t, addr); name != "b" {
			t.Fatalf("connection %d after the switch answered by %q, want b", i, name)
		}
	}
	// The connection opened before the switch still reaches a, so a is not
	// drained until it closes.
	if _, err := io.WriteString(old, "still here\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := oldR.ReadString('\n'); err != nil || line != "still here\n" {
		t.Fatalf("old connection echoed %q (%v), want it still open to a", line, err)
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if err := bal.Drain(ended, a.addr()); err == nil {
		t.Fatal("Drain of a returned nil while a connection to a was open")
	}
	old.Close()
	if err := bal.Drain(ctx, a.addr()); err != nil {
		t.Fatalf("Drain of a after its last connection closed: %v", err)
	}
}

func TestConnectionIsClosedWhenNoBackendIsHealthy(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	for _, tc := range []struct {
		name     string
		backends []string
		check    HealthCheck
	}{
		{"empty backend set", nil, fastChecks},
		{"only backend fails its http check", []string{failing.Listener.Addr().String()},
			HealthCheck{HTTPPath: "/healthz", Interval: 10 * time.Millisecond, Timeout: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bal, err := New(Config{Backends: tc.backends, HealthCheck: tc.check})
			if err != nil {
				t.Fatal(err)
			}
			addr := serve(t, bal)
			// Let every backend be checked a few times first.
			if err := bal.Wait(t.Context(), func(s []BackendStatus) bool {
				for _, b := range s {
					if b.Checks < 3 {
						return false
					}
				}
				return true
			}); err != nil {
				t.Fatal(err)
			}
			if name := answeredBy(t, addr); name != "" {
				t.Fatalf("answered by %q, want the connection closed", name)
			}
			if got := bal.Refused(); got != 1 {
				t.Fatalf("Refused() = %d, want 1", got)
			}
		})
	}
}

func TestHTTPCheckPassesOnlyOnSuccessStatus(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   bool
	}{
		{200, true},
		{204, true},
		{302, true},
		{404, false},
		{503, false},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/ready" {
					w.WriteHeader(http.StatusTeapot)
					return
				}
				if tc.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			bal, err := New(Config{HealthCheck: HealthCheck{HTTPPath: "/ready", Timeout: time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			if got := bal.check(t.Context(), srv.Listener.Addr().String()); got != tc.want {
				t.Fatalf("check of a server answering %d = %t, want %t", tc.status, got, tc.want)
			}
		})
	}
}

func TestServeClosesProxiedConnectionsWhenContextEnds(t *testing.T) {
	a := newEchoBackend(t, "a")
	bal, err := New(Config{Backends: []string{a.addr()}, HealthCheck: fastChecks})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- bal.Serve(ctx, l) }()
	if err := bal.Wait(t.Context(), AllHealthy); err != nil {
		t.Fatal(err)
	}
	name, c, r := greet(t, l.Addr().String())
	if name != "a" {
		t.Fatalf("answered by %q, want a", name)
	}
	defer c.Close()
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Serve returned %v, want nil", err)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("proxied connection still open after Serve returned")
	}
	if c2, err := net.Dial("tcp", l.Addr().String()); err == nil {
		c2.Close()
		t.Fatal("balancer still accepts connections after Serve returned")
	}
	if err := bal.Serve(context.Background(), l); err == nil {
		t.Fatal("second Serve succeeded, want an error")
	}
}

func TestNewRejectsBackendsThatAreNotHostPort(t *testing.T) {
	if _, err := New(Config{Backends: []string{"no-port"}}); err == nil {
		t.Fatal("New accepted a backend without a port")
	}
}
