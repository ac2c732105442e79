package client_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/client/clienttest"
)

// proxyMode is what a tcpProxy does with traffic.
type proxyMode int

const (
	// forward copies bytes both ways.
	forward proxyMode = iota
	// blackhole keeps every connection open but lets nothing through, as
	// a peer that lost power (no FIN, no RST, no answer) looks to TCP
	// until it gives up.
	blackhole
	// dead closes every connection (a host whose processes died) and
	// accepts new ones without ever answering, as a powered-off host on
	// the same network swallows SYNs.
	dead
)

// tcpProxy is a loopback TCP proxy in front of a server, so a test can cut
// the network under a client without the server noticing.
type tcpProxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	mode  proxyMode
	conns []net.Conn
}

func newProxy(t *testing.T, targetURL string) *tcpProxy {
	t.Helper()
	u, err := url.Parse(targetURL)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{l: l, target: u.Host}
	t.Cleanup(p.close)
	go p.accept()
	return p
}

// URL is the proxy's https:// endpoint.
func (p *tcpProxy) URL() string { return "https://" + p.l.Addr().String() }

func (p *tcpProxy) set(m proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	if m == dead {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func (p *tcpProxy) current() proxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

func (p *tcpProxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, c)
}

func (p *tcpProxy) close() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) accept() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		p.track(in)
		if p.current() != forward {
			continue // held open, never answered
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.track(out)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

// pipe copies src to dst while the proxy forwards, and swallows what src
// sends once it does not.
func (p *tcpProxy) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.current() == forward {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if p.current() == forward {
				dst.Close()
			}
			return
		}
	}
}

func podKindInfo() api.KindInfo {
	ki, _ := api.LookupKind("Pod")
	return ki
}

// nextAdded waits for the ADDED event of pod name on w, skipping
// bookmarks, and fails the test if the stream ends or deadline passes.
func nextAdded(t *testing.T, w client.Watcher, name string, deadline time.Time) {
	t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("the watch ended (%v) before pod %s was added", w.Err(), name)
			}
			if ev.Type == api.Added && ev.Object.GetMeta().Name == name {
				return
			}
		case <-timer.C:
			t.Fatalf("no ADDED event for pod %s in time", name)
		}
	}
}

// A control-plane host can fail a watch in three ways: its API stops
// sending while the connection stays up, its network vanishes without a
// FIN (power cut), or its processes die and new connections to it hang.
// Each time the client must notice within a few seconds and the next watch
// must go to another endpoint, not back to the broken one: no agent may
// be stalled for long by one lost host.
func TestWatchOnABrokenEndpointIsNoticedAndResumesOnTheNext(t *testing.T) {
	const (
		pingAfter   = 200 * time.Millisecond
		pingTimeout = 300 * time.Millisecond
		// within bounds fault → watch re-established elsewhere and
		// delivering; generous for a loaded machine, yet below what each
		// case would take without its defence (the server's 3 min idle
		// limit, TCP's minutes, a 10 s TLS handshake timeout).
		within = 6 * time.Second
	)
	tests := []struct {
		name string
		// bookmarks is what the broken server advertises: short where the
		// idle limit must find the fault, a minute where it must not help.
		bookmarks time.Duration
		fault     func(srv *clienttest.Server, p *tcpProxy)
		// wantErr is part of the first watch's error ("" for any).
		wantErr string
	}{
		{
			name:      "server stops sending on a healthy connection",
			bookmarks: 100 * time.Millisecond, // idle limit: the 1 s floor
			fault:     func(srv *clienttest.Server, _ *tcpProxy) { srv.SilenceWatches() },
			wantErr:   "presumed dead",
		},
		{
			name:      "peer vanishes without closing the connection",
			bookmarks: time.Minute,
			fault:     func(_ *clienttest.Server, p *tcpProxy) { p.set(blackhole) },
		},
		{
			name:      "host dies: connection closed, new connections hang",
			bookmarks: time.Minute,
			fault:     func(_ *clienttest.Server, p *tcpProxy) { p.set(dead) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broken, good := newServer(t), newServer(t)
			broken.SetBookmarkInterval(tt.bookmarks)
			p := newProxy(t, broken.URL())
			cfg := broken.Config()
			cfg.Endpoints = []string{p.URL(), good.URL()}
			c, err := client.New(cfg, client.WithConnectionCheck(pingAfter, pingTimeout), client.WithTimeout(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := testCtx(t)

			// The first watch goes to the first endpoint and works.
			w1, err := c.Watch(ctx, podKindInfo(), client.WatchOptions{Namespace: "default"})
			if err != nil {
				t.Fatal(err)
			}
			defer w1.Stop()
			if err := broken.Client().Create(ctx, pod("before", "", nil)); err != nil {
				t.Fatal(err)
			}
			nextAdded(t, w1, "before", time.Now().Add(10*time.Second))

			// Give the idle connection a few PING rounds that succeed, so
			// the fault, not a slow start, is what fails it.
			time.Sleep(3 * pingAfter)
			began := time.Now()
			tt.fault(broken, p)
			ended := time.NewTimer(20 * time.Second)
			defer ended.Stop()
		drain:
			for {
				select {
				case _, ok := <-w1.Events():
					if !ok {
						break drain
					}
				case <-ended.C:
					t.Fatalf("the watch on the broken endpoint never ended (%s after the fault)", time.Since(began).Round(time.Millisecond))
				}
			}
			noticed := time.Since(began)
			if tt.wantErr != "" && (w1.Err() == nil || !strings.Contains(w1.Err().Error(), tt.wantErr)) {
				t.Errorf("the broken watch ended with %v, want an error saying %q", w1.Err(), tt.wantErr)
			}

			// Watching again, as an informer does, must reach the good
			// endpoint without waiting on the broken one first.
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			w2, err := c.Watch(wctx, podKindInfo(), client.WatchOptions{Namespace: "default"})
			if err != nil {
				t.Fatalf("watch again after the fault: %v", err)
			}
			defer w2.Stop()
			if err := good.Client().Create(ctx, pod("after", "", nil)); err != nil {
				t.Fatal(err)
			}
			nextAdded(t, w2, "after", time.Now().Add(20*time.Second))
			resumed := time.Since(began)
			t.Logf("fault noticed after %s, watch delivering from the next endpoint after %s (first watch: %v)",
				noticed.Round(time.Millisecond), resumed.Round(time.Millisecond), w1.Err())
			if resumed > within {
				t.Errorf("watch re-established %s after the fault, want within %s", resumed.Round(time.Millisecond), within)
			}
			if got := c.Endpoints()[0]; got != good.URL() {
				t.Errorf("endpoint in use after the fault = %s, want the good one %s", got, good.URL())
			}
		})
	}
}

// The idle limit must never end a watch that is merely quiet: bookmarks at
// the advertised interval keep it open, however long nothing changes.
func TestQuietWatchWithBookmarksStaysOpen(t *testing.T) {
	s := newServer(t)
	s.SetBookmarkInterval(100 * time.Millisecond) // idle limit: 1 s
	c := s.Client()
	defer c.Close()
	ctx := testCtx(t)
	w, err := c.Watch(ctx, podKindInfo(), client.WatchOptions{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	quiet := time.After(2500 * time.Millisecond)
	bookmarks := 0
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("a quiet watch with regular bookmarks ended: %v", w.Err())
			}
			if ev.Type == api.Bookmark {
				bookmarks++
			}
			continue
		case <-quiet:
		}
		break
	}
	if bookmarks == 0 {
		t.Fatal("no bookmark arrived: the test server does not send them")
	}
	if err := s.Client().Create(ctx, pod("late", "", nil)); err != nil {
		t.Fatal(err)
	}
	nextAdded(t, w, "late", time.Now().Add(10*time.Second))
}

// A client that follows the published endpoints must not wait for its next
// periodic sync when a control-plane host fails: the hosts replacing it
// have to be known before the last host it knows goes too.
func TestEndpointSyncRunsAtOnceWhenAnEndpointFails(t *testing.T) {
	a, b, c := newServer(t), newServer(t), newServer(t)
	for _, s := range []*clienttest.Server{a, b, c} {
		s.SetControlPlane([]string{a.URL(), b.URL()})
	}
	cfg := a.Config()
	cfg.Endpoints = []string{a.URL(), b.URL()}
	cl, err := client.New(cfg, client.WithConnectionCheck(200*time.Millisecond, 300*time.Millisecond), client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t)
	go cl.RunEndpointSync(ctx, time.Hour) // only failures can trigger a second sync
	w, err := cl.Watch(ctx, podKindInfo(), client.WatchOptions{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	// c replaces a: published everywhere, then a goes away.
	for _, s := range []*clienttest.Server{a, b, c} {
		s.SetControlPlane([]string{b.URL(), c.URL()})
	}
	began := time.Now()
	a.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(cl.Endpoints(), c.URL()) {
		if time.Now().After(deadline) {
			t.Fatalf("endpoints %v 10 s after %s failed: the new host was not learnt", cl.Endpoints(), a.URL())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("learnt the new control-plane host %s after the failure", time.Since(began).Round(time.Millisecond))
	// Now b goes too: c, learnt in time, answers.
	b.Close()
	if err := cl.Healthz(ctx); err != nil {
		t.Fatalf("after every host the client started with left: %v", err)
	}
}

func TestWaitEndpointSync(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		fail     bool // an endpoint fails right away
		cancel   bool
		want     bool
		atLeast  time.Duration
		atMost   time.Duration
	}{
		{name: "the interval passes", interval: 300 * time.Millisecond, want: true, atLeast: 300 * time.Millisecond, atMost: 5 * time.Second},
		{name: "a failure brings the sync forward, after the spacing", interval: 20 * time.Second, fail: true, want: true, atLeast: client.MinEndpointSyncSpacing, atMost: client.MinEndpointSyncSpacing + 5*time.Second},
		{name: "a short interval is not stretched by the spacing", interval: 200 * time.Millisecond, fail: true, want: true, atMost: 5 * time.Second},
		{name: "the context ends", interval: time.Hour, cancel: true, want: false, atMost: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			dead := "https://" + l.Addr().String()
			l.Close()
			cfg := newServer(t).Config()
			cfg.Endpoints = []string{dead}
			cl, err := client.New(cfg, client.WithTimeout(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			if tt.cancel {
				cancel()
			}
			began := time.Now()
			if tt.fail {
				go func() { _ = cl.Healthz(ctx) }() // refused: the endpoint fails
			}
			got := cl.WaitEndpointSync(ctx, tt.interval)
			took := time.Since(began)
			if got != tt.want || took < tt.atLeast || took > tt.atMost {
				t.Errorf("WaitEndpointSync = %v after %s, want %v after %s to %s", got, took.Round(time.Millisecond), tt.want, tt.atLeast, tt.atMost)
			}
		})
	}
}

// A sync that a leaving host's API answers with an error ("etcdserver:
// server stopped") is tried again within seconds, not an interval later.
func TestEndpointSyncRetriesSoonAfterAFailedSync(t *testing.T) {
	a, b := newServer(t), newServer(t)
	a.SetControlPlane([]string{a.URL(), b.URL()})
	var once sync.Once
	a.AddHook(func(r *http.Request) error {
		var err error
		if r.URL.Path == "/v1/controlplane" {
			once.Do(func() { err = api.NewError(api.ReasonInternal, "etcdserver: server stopped") })
		}
		return err
	})
	cl := a.Client()
	defer cl.Close()
	ctx := testCtx(t)
	go cl.RunEndpointSync(ctx, time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(cl.Endpoints(), b.URL()) {
		if time.Now().After(deadline) {
			t.Fatalf("endpoints %v 10 s after a failed sync: it was not retried", cl.Endpoints())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
