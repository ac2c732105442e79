// Command web is the HTTP server that berth's acceptance tests run as a
// workload. It is compiled into tiny static OCI images by package workloads;
// tests use it to see which pod and which version answered, to make
// readiness fail on demand, and to prove that a pod finishes the requests it
// already accepted when it is told to stop.
//
// It must stay a single file that imports only the standard library: package
// workloads embeds this source and builds it in a throw-away module, so the
// images can be built from any directory by any binary that carries them.
//
// # Variants
//
// Two values are set at build time with -ldflags "-X main.version=v1 -X main.mode=serve":
//
//	version  the version string reported by / and /version (default "dev")
//	mode     serve   (default) a healthy server
//	         broken  starts and listens, but /healthz always answers 503 and /
//	                 answers 500: a pod that never becomes ready
//	         crash   never listens; exits with status 3 about one second after
//	                 starting: a pod for restart and back-off tests
//
// # Environment
//
//	PORT            port to listen on, on all addresses (default 8080; 0 picks a free one)
//	POD_NAME        name reported by / (default: the hostname)
//	SHUTDOWN_GRACE  how long requests in flight may run after SIGTERM, as a Go
//	                duration (default 20s); the process exits 0 when they are
//	                done, 1 if the grace ran out first
//
// # Endpoints
//
//	GET  /               "web <version> pod=<name>\n" (500 in the broken variant)
//	GET  /version        "<version>\n"
//	GET  /healthz        200 "ok\n", or 503 "failing\n" after POST /fail (always in broken)
//	POST /fail           make /healthz fail from now on
//	POST /recover        make /healthz succeed again
//	GET  /slow?ms=N      answer 200 after N milliseconds
//	GET  /slow?ms=N&hold=1
//	                     answer 200 N milliseconds after the server starts
//	                     shutting down (at most 10 minutes after the request):
//	                     a request guaranteed to be in flight during SIGTERM
//
// On stderr it writes one line when listening ("listening on ADDR"), when a
// slow request starts and ends, when shutdown begins and when it has stopped.
//
// # Subcommands
//
//	web [serve]  run the server (the image's entrypoint)
//	web check    exit 0 if this container's own /healthz answers 200 within
//	             2 s, else 1; the command for exec probes (the image has no shell)
//	web version  print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Set at build time with -ldflags -X.
var (
	version = "dev"
	mode    = "serve"
)

// exitError carries the process exit status out of run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "web:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(1)
}

// run is the whole program; ctx ends when the process is told to stop.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	port := getenv("PORT")
	if port == "" {
		port = "8080"
	}
	switch cmd {
	case "serve":
		return serve(ctx, port, getenv, stderr)
	case "check":
		return check(ctx, port, stdout)
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	default:
		return &exitError{code: 2, err: fmt.Errorf("unknown command %q (want serve, check or version)", cmd)}
	}
}

// check asks this container's own server whether it is healthy.
func check(ctx context.Context, port string, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort("127.0.0.1", port) + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("check %s: %w", url, err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("check %s: %w", url, err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return &exitError{code: 1, err: fmt.Errorf("check %s: status %d: %q", url, resp.StatusCode, body)}
	}
	fmt.Fprintf(stdout, "%s", body)
	return nil
}

// server holds the state the handlers share.
type server struct {
	version  string
	broken   bool
	pod      string
	failing  atomic.Bool
	draining chan struct{} // closed when shutdown begins
	logMu    sync.Mutex
	log      io.Writer
}

func (s *server) logf(format string, args ...any) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.log, format+"\n", args...)
}

func serve(ctx context.Context, port string, getenv func(string) string, stderr io.Writer) error {
	grace := 20 * time.Second
	if g := getenv("SHUTDOWN_GRACE"); g != "" {
		d, err := time.ParseDuration(g)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("parse SHUTDOWN_GRACE %q: %w", g, err)}
		}
		grace = d
	}
	if mode == "crash" {
		fmt.Fprintf(stderr, "web %s: crash variant, exiting with status 3 in 1s\n", version)
		time.Sleep(time.Second)
		return &exitError{code: 3, err: errors.New("crashed on purpose")}
	}
	pod := getenv("POD_NAME")
	if pod == "" {
		pod, _ = os.Hostname()
	}
	s := &server{
		version:  version,
		broken:   mode == "broken",
		pod:      pod,
		draining: make(chan struct{}),
		log:      stderr,
	}
	l, err := net.Listen("tcp", net.JoinHostPort("", port))
	if err != nil {
		return fmt.Errorf("listen on port %s: %w", port, err)
	}
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	s.logf("listening on %s", l.Addr())

	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	s.logf("shutting down: finishing requests in flight (grace %s)", grace)
	close(s.draining)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("finish requests in flight: %w", err)
	}
	s.logf("stopped")
	return nil
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if s.broken {
			http.Error(w, fmt.Sprintf("web %s pod=%s: broken on purpose", s.version, s.pod), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "web %s pod=%s\n", s.version, s.pod)
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, s.version)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if s.broken || s.failing.Load() {
			http.Error(w, "failing", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		s.failing.Store(true)
		fmt.Fprintln(w, "healthz now fails")
	})
	mux.HandleFunc("POST /recover", func(w http.ResponseWriter, r *http.Request) {
		s.failing.Store(false)
		fmt.Fprintln(w, "healthz now succeeds")
	})
	mux.HandleFunc("GET /slow", s.slow)
	return mux
}

func (s *server) slow(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 {
		http.Error(w, "want ms=<non-negative integer>", http.StatusBadRequest)
		return
	}
	hold := r.URL.Query().Get("hold") == "1"
	s.logf("slow request started: ms=%d hold=%t", ms, hold)
	if hold {
		select {
		case <-s.draining:
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Minute):
		}
	}
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
	case <-r.Context().Done():
		return
	}
	s.logf("slow request done: ms=%d hold=%t", ms, hold)
	fmt.Fprintf(w, "web %s pod=%s slept %dms\n", s.version, s.pod, ms)
}
