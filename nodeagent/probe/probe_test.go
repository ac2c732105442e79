package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
)

func TestThresholdsFlipOnlyAfterEnoughOutcomesInARow(t *testing.T) {
	tests := []struct {
		name             string
		success, failure int32
		initial          bool
		outcomes         []bool
		want             []bool // verdict after each outcome
		flips            int
	}{
		{"readiness passes on first success by default", 0, 0, false,
			[]bool{true}, []bool{true}, 1},
		{"liveness fails only after three failures in a row by default", 0, 0, true,
			[]bool{false, false, false}, []bool{true, true, false}, 1},
		{"a success resets the failure run", 0, 3, true,
			[]bool{false, false, true, false, false, false}, []bool{true, true, true, true, true, false}, 1},
		{"success threshold two needs two passes in a row", 2, 1, false,
			[]bool{true, false, true, true}, []bool{false, false, false, true}, 1},
		{"failure threshold one fails at once and recovers", 1, 1, true,
			[]bool{false, true}, []bool{false, true}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			th := NewThresholds(&api.Probe{SuccessThreshold: tc.success, FailureThreshold: tc.failure}, tc.initial)
			flips := 0
			for i, ok := range tc.outcomes {
				got, changed := th.Observe(ok)
				if changed {
					flips++
				}
				if got != tc.want[i] {
					t.Fatalf("after outcome %d (%v): verdict %v, want %v", i, ok, got, tc.want[i])
				}
			}
			if flips != tc.flips {
				t.Fatalf("verdict flipped %d times, want %d", flips, tc.flips)
			}
		})
	}
}

type fakeExec struct {
	code int
	out  string
	err  error
}

func (f fakeExec) Exec(context.Context, string, []string, time.Duration) (int, []byte, error) {
	return f.code, []byte(f.out), f.err
}

func TestCheckReportsWhatAFreshClientMeets(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://192.0.2.1/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	ports := []api.ContainerPort{{Name: "http", ContainerPort: int32(port)}}

	tests := []struct {
		name   string
		probe  api.Probe
		target Target
		ok     bool
	}{
		{"http 200 passes", api.Probe{HTTPGet: &api.HTTPGetAction{Path: "/ok", Port: api.FromInt(int32(port))}}, Target{PodIP: host}, true},
		{"http named port resolves", api.Probe{HTTPGet: &api.HTTPGetAction{Path: "/ok", Port: api.FromString("http")}}, Target{PodIP: host, Ports: ports}, true},
		{"http redirect counts as success without following", api.Probe{HTTPGet: &api.HTTPGetAction{Path: "/redirect", Port: api.FromInt(int32(port))}}, Target{PodIP: host}, true},
		{"http 500 fails", api.Probe{HTTPGet: &api.HTTPGetAction{Path: "/fail", Port: api.FromInt(int32(port))}}, Target{PodIP: host}, false},
		{"http unknown port name fails", api.Probe{HTTPGet: &api.HTTPGetAction{Port: api.FromString("nope")}}, Target{PodIP: host}, false},
		{"http without pod ip fails", api.Probe{HTTPGet: &api.HTTPGetAction{Port: api.FromInt(80)}}, Target{}, false},
		{"tcp open port passes", api.Probe{TCPSocket: &api.TCPSocketAction{Port: api.FromInt(int32(port))}}, Target{PodIP: host}, true},
		{"tcp closed port fails", api.Probe{TCPSocket: &api.TCPSocketAction{Port: api.FromInt(int32(closedPort))}}, Target{PodIP: host}, false},
		{"exec exit 0 passes", api.Probe{Exec: &api.ExecAction{Command: []string{"true"}}}, Target{ContainerID: "c", Exec: fakeExec{}}, true},
		{"exec exit 1 fails", api.Probe{Exec: &api.ExecAction{Command: []string{"false"}}}, Target{ContainerID: "c", Exec: fakeExec{code: 1, out: "bad"}}, false},
		{"exec error fails", api.Probe{Exec: &api.ExecAction{Command: []string{"x"}}}, Target{ContainerID: "c", Exec: fakeExec{err: errors.New("timeout")}}, false},
		{"probe without action fails", api.Probe{}, Target{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(context.Background(), &tc.probe, tc.target)
			if r.OK != tc.ok {
				t.Fatalf("Check = %+v, want ok=%v", r, tc.ok)
			}
			if !r.OK && r.Message == "" {
				t.Fatal("a failed check must say why")
			}
		})
	}
}

func TestWorkerReportsVerdictChangesOnly(t *testing.T) {
	healthy := make(chan bool, 1)
	healthy <- true
	state := true
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case state = <-healthy:
		default:
		}
		if !state {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)

	changes := make(chan bool, 10)
	w := NewWorker(&api.Probe{HTTPGet: &api.HTTPGetAction{Port: api.FromInt(int32(port))}, PeriodSeconds: 1, FailureThreshold: 1},
		Target{PodIP: host}, WorkerOptions{Initial: false, OnChange: func(p bool, _ Result) { changes <- p }})
	w.Start(context.Background())
	defer w.Stop()
	if got := <-changes; !got {
		t.Fatal("first change should be to passing")
	}
	healthy <- false
	if got := <-changes; got {
		t.Fatal("second change should be to failing")
	}
	if w.Passing() {
		t.Fatal("Passing() disagrees with the last change")
	}
	w.Stop()
	w.Stop()
}
