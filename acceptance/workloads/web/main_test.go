package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newTestServer(broken bool) *server {
	return &server{version: "v9", broken: broken, pod: "pod-a", draining: make(chan struct{}), log: io.Discard}
}

func do(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Code, rec.Body.String()
}

func TestEndpointsAnswerWithVersionAndPod(t *testing.T) {
	for _, tc := range []struct {
		name       string
		broken     bool
		method     string
		path       string
		wantStatus int
		wantBody   string
	}{
		{"root names version and pod", false, "GET", "/", 200, "web v9 pod=pod-a\n"},
		{"version", false, "GET", "/version", 200, "v9\n"},
		{"healthz ok", false, "GET", "/healthz", 200, "ok\n"},
		{"unknown path", false, "GET", "/nope", 404, "404 page not found\n"},
		{"slow needs ms", false, "GET", "/slow", 400, "want ms=<non-negative integer>\n"},
		{"slow zero answers at once", false, "GET", "/slow?ms=0", 200, "web v9 pod=pod-a slept 0ms\n"},
		{"broken root fails", true, "GET", "/", 500, "web v9 pod=pod-a: broken on purpose\n"},
		{"broken healthz fails", true, "GET", "/healthz", 503, "failing\n"},
		{"broken still reports version", true, "GET", "/version", 200, "v9\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(t, newTestServer(tc.broken).handler(), tc.method, tc.path)
			if status != tc.wantStatus || body != tc.wantBody {
				t.Fatalf("%s %s = %d %q, want %d %q", tc.method, tc.path, status, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestHealthzFailsAfterFailAndSucceedsAfterRecover(t *testing.T) {
	h := newTestServer(false).handler()
	steps := []struct {
		method, path string
		wantHealthz  int
	}{
		{"GET", "/healthz", 200},
		{"POST", "/fail", 503},
		{"POST", "/fail", 503},
		{"POST", "/recover", 200},
	}
	for _, st := range steps {
		if st.method == "POST" {
			if status, _ := do(t, h, st.method, st.path); status != 200 {
				t.Fatalf("%s %s = %d, want 200", st.method, st.path, status)
			}
		}
		if status, _ := do(t, h, "GET", "/healthz"); status != st.wantHealthz {
			t.Fatalf("after %s %s: /healthz = %d, want %d", st.method, st.path, status, st.wantHealthz)
		}
	}
}

func TestBrokenVariantCannotRecover(t *testing.T) {
	h := newTestServer(true).handler()
	do(t, h, "POST", "/recover")
	if status, _ := do(t, h, "GET", "/healthz"); status != 503 {
		t.Fatalf("/healthz of broken variant after /recover = %d, want 503", status)
	}
}

func TestCheckExitsZeroOnlyWhenHealthzAnswersOK(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		wantCode int // 0 means success
	}{
		{"healthy", 200, 0},
		{"unhealthy", 503, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/healthz" {
					t.Errorf("check asked for %s, want /healthz", r.URL.Path)
				}
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			err := run(t.Context(), []string{"check"}, env(map[string]string{"PORT": port}), io.Discard, io.Discard)
			if got := exitCode(err); got != tc.wantCode {
				t.Fatalf("check exit code %d (err %v), want %d", got, err, tc.wantCode)
			}
		})
	}
}

func TestCheckFailsWhenNothingListens(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	err = run(t.Context(), []string{"check"}, env(map[string]string{"PORT": port}), io.Discard, io.Discard)
	if got := exitCode(err); got != 1 {
		t.Fatalf("check exit code %d (err %v), want 1", got, err)
	}
}

func TestUnknownCommandExitsTwo(t *testing.T) {
	err := run(t.Context(), []string{"dance"}, env(nil), io.Discard, io.Discard)
	if got := exitCode(err); got != 2 {
		t.Fatalf("exit code %d (err %v), want 2", got, err)
	}
}

func TestServeFinishesHeldRequestAfterStopThenReturnsNil(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, env(map[string]string{"PORT": "0", "POD_NAME": "p1"}), io.Discard, pw)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	addr := waitLine(t, lines, "listening on ")
	_, port, _ := net.SplitHostPort(addr)

	resp := make(chan error, 1)
	go func() {
		r, err := http.Get("http://127.0.0.1:" + port + "/slow?ms=10&hold=1")
		if err == nil {
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if r.StatusCode != 200 || !strings.Contains(string(b), "pod=p1") {
				err = errors.New("held request answered " + r.Status + ": " + string(b))
			}
		}
		resp <- err
	}()
	waitLine(t, lines, "slow request started")
	stop()
	waitLine(t, lines, "shutting down")
	waitLine(t, lines, "slow request done")
	if err := <-resp; err != nil {
		t.Fatalf("request in flight at shutdown: %v", err)
	}
	waitLine(t, lines, "stopped")
	go io.Copy(io.Discard, pr)
	if err := <-done; err != nil {
		t.Fatalf("run returned %v after a clean shutdown, want nil", err)
	}
}

// waitLine reads lines until one starts with prefix and returns the rest.
func waitLine(t *testing.T, s *bufio.Scanner, prefix string) string {
	t.Helper()
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), prefix); ok {
			return rest
		}
	}
	t.Fatalf("output ended before a line starting with %q", prefix)
	return ""
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return -1
}
