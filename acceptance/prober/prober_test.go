package prober

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is an HTTP server on a loopback port that the test can kill and
// bring back on the same address.
type backend struct {
	addr string
	srv  *http.Server
	done chan struct{}
}

func startBackend(t *testing.T, addr string, h http.Handler, configure ...func(*http.Server)) *backend {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: l.Addr().String(), srv: &http.Server{Handler: h}, done: make(chan struct{})}
	for _, c := range configure {
		c(b.srv)
	}
	go func() {
		defer close(b.done)
		b.srv.Serve(l)
	}()
	t.Cleanup(b.kill)
	return b
}

// kill closes the listener and every connection at once.
func (b *backend) kill() {
	b.srv.Close()
	<-b.done
}

func text(s string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, s) })
}

func atLeast(field func(Result) int, n int) func(Result) bool {
	return func(r Result) bool { return field(r) >= n }
}

func succeeded(r Result) int { return r.Succeeded }
func failed(r Result) int    { return r.Failed }

func TestHealthyServerGivesZeroFailuresAndEveryRequestIsCounted(t *testing.T) {
	var conns atomic.Int64
	b := startBackend(t, "127.0.0.1:0", text("web v1 pod=a"), func(s *http.Server) {
		s.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
	})
	p, err := Start(t.Context(), Config{URL: "http://" + b.addr + "/", Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(t.Context(), atLeast(succeeded, 20)); err != nil {
		t.Fatal(err)
	}
	r := p.Stop()
	if r.Failed != 0 || r.Succeeded != r.Sent {
		t.Fatalf("against a healthy server: %s; want every request to succeed", r)
	}
	if r.Bodies["web v1 pod=a"] != r.Succeeded {
		t.Fatalf("bodies %v, want all %d answers to read web v1 pod=a", r.Bodies, r.Succeeded)
	}
	if got := conns.Load(); got != int64(r.Sent) {
		t.Fatalf("server saw %d connections for %d requests, want one connection per request", got, r.Sent)
	}
	if again := p.Stop(); again.Sent != r.Sent || again.Stopped != r.Stopped {
		t.Fatalf("second Stop returned %s, want the same result as the first", again)
	}
}

func TestKilledBackendFailsEveryLaterRequestUntilItReturns(t *testing.T) {
	ctx := t.Context()
	b := startBackend(t, "127.0.0.1:0", text("web v1 pod=a"))
	p, err := Start(ctx, Config{URL: "http://" + b.addr + "/", Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if err := p.Wait(ctx, atLeast(succeeded, 5)); err != nil {
		t.Fatal(err)
	}

	b.kill()
	killed := time.Now()
	if err := p.Wait(ctx, atLeast(failed, 10)); err != nil {
		t.Fatal(err)
	}
	down := p.Snapshot()
	if !down.LastSuccess.Before(killed) {
		t.Fatalf("a request sent after the kill succeeded: %s", down)
	}
	// Requests sent after the kill are refused; one caught mid-connection
	// by the kill may instead see its connection reset or closed.
	for reason := range down.Reasons {
		if reason != "connection refused" && reason != "connection reset" && reason != "eof" {
			t.Fatalf("failure reasons %v, want refused, reset or eof", down.Reasons)
		}
	}
	if down.Reasons["connection refused"] == 0 {
		t.Fatalf("failure reasons %v, want connection refused among them", down.Reasons)
	}

	startBackend(t, b.addr, text("web v2 pod=b"))
	back := time.Now()
	if err := p.Wait(ctx, func(r Result) bool { return r.Seen("web v2 ") >= 10 }); err != nil {
		t.Fatal(err)
	}
	r := p.Stop()
	if !r.LastFailure.Before(back) {
		t.Fatalf("a request sent after the backend returned failed: %s", r)
	}
	if r.FirstFailure.Before(down.FirstFailure) || r.FirstFailure.After(down.LastFailure) {
		t.Fatalf("first failure moved from %v to %v", down.FirstFailure, r.FirstFailure)
	}
	if r.Sent != r.Succeeded+r.Failed {
		t.Fatalf("after Stop: %s; want every request sent counted once", r)
	}
	if r.Seen("web v1 ") == 0 || r.Seen("web v2 ") < 10 {
		t.Fatalf("bodies %v, want answers from both versions", r.Bodies)
	}
}

func TestHungServerFailsByTimeout(t *testing.T) {
	// A listener that accepts connections and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		l.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	p, err := Start(t.Context(), Config{URL: "http://" + l.Addr().String() + "/", Rate: 100, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(t.Context(), atLeast(failed, 3)); err != nil {
		t.Fatal(err)
	}
	r := p.Stop()
	if r.Succeeded != 0 || r.Reasons["timeout"] != r.Failed || r.Failed != r.Sent {
		t.Fatalf("against a server that never answers: %s; want every request to time out", r)
	}
}

func TestNonSuccessStatusIsAFailureNamedByStatus(t *testing.T) {
	for _, tc := range []struct {
		status int
		reason string
	}{
		{500, "http 500"},
		{503, "http 503"},
		{404, "http 404"},
		{301, "http 301"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			b := startBackend(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(tc.status)
			}))
			p, err := Start(t.Context(), Config{URL: "http://" + b.addr + "/", Rate: 100})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Wait(t.Context(), atLeast(failed, 2)); err != nil {
				t.Fatal(err)
			}
			r := p.Stop()
			if r.Succeeded != 0 || r.Reasons[tc.reason] != r.Failed {
				t.Fatalf("%s; want every request to fail as %q", r, tc.reason)
			}
		})
	}
}

func TestStartAppliesDefaultsAndRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"defaults", Config{URL: "http://127.0.0.1:1/"}, false},
		{"no url", Config{}, true},
		{"not http", Config{URL: "ftp://127.0.0.1/"}, true},
		{"negative rate", Config{URL: "http://127.0.0.1:1/", Rate: -1}, true},
		{"negative timeout", Config{URL: "http://127.0.0.1:1/", Timeout: -time.Second}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel() // send at most the first request
			p, err := Start(ctx, tc.cfg)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Start error %v, want error %t", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			p.Stop()
			if p.cfg.Rate != DefaultRate || p.cfg.Timeout != 2*time.Second {
				t.Fatalf("rate %v timeout %s, want %v and 2s", p.cfg.Rate, p.cfg.Timeout, DefaultRate)
			}
		})
	}
}

func TestSeenCountsBodiesContaining(t *testing.T) {
	r := Result{Bodies: map[string]int{"web v1 pod=a": 3, "web v1 pod=b": 2, "web v2 pod=c": 4}}
	for _, tc := range []struct {
		substr string
		want   int
	}{
		{"web v1 ", 5},
		{"web v2 ", 4},
		{"pod=b", 2},
		{"web v3 ", 0},
	} {
		if got := r.Seen(tc.substr); got != tc.want {
			t.Errorf("Seen(%q) = %d, want %d", tc.substr, got, tc.want)
		}
	}
}
