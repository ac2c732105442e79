package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/berth-io/berth/acceptance/lb"
	"github.com/berth-io/berth/acceptance/registry"
)

// The keeper is a long-running helper process inside the router's network
// namespace. It serves the registry and the load balancer on testbed
// addresses, delays traffic between vendors when the testbed has latency
// (see latency.go), and serves a control API on the unix socket StateDir/NAME/keeper.sock:
//
//	GET /healthz   200 once everything serves
//	GET /lb        the load balancer's configuration and backend health (LBStatus)
//	PUT /lb        replace its backends (body: LBConfig)
//	GET /lb/wait   answers when every backend is in service
//
// When the CLI makes a testbed, the keeper is its owner, so the testbed
// stays up after the CLI exits.
const envDir = "BERTH_TESTBED_DIR"

// LBConfig is what the load balancer spreads connections across: Port on
// every address in Backends.
type LBConfig struct {
	// Port is the backend port (a node port) on every backend host.
	Port int `json:"port"`
	// Backends are host addresses ("198.18.1.11").
	Backends []string `json:"backends"`
}

// LBStatus is the load balancer as the keeper sees it.
type LBStatus struct {
	LBConfig
	// Backends are the backends' health and connection counters.
	Backends []lb.BackendStatus `json:"status"`
	// Refused counts connections closed because no backend was healthy.
	Refused uint64 `json:"refused"`
}

// startKeeper starts the keeper in the router's network namespace and waits
// until its control API answers.
func (tb *Testbed) startKeeper(ctx context.Context) (proc, error) {
	self, err := os.Executable()
	if err != nil {
		return proc{}, fmt.Errorf("start keeper: find own executable: %w", err)
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return proc{}, fmt.Errorf("start keeper: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(tb.dir, "keeper.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return proc{}, fmt.Errorf("start keeper: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(nsenter, "--net="+nsPath(routerNS(tb.name)), "--", self)
	cmd.Env = []string{childEnv + "=" + roleKeep, envDir + "=" + tb.dir, "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return proc{}, fmt.Errorf("start keeper: %w", err)
	}
	p, err := procOf(cmd.Process.Pid)
	go cmd.Wait()
	if err != nil {
		return proc{}, fmt.Errorf("start keeper: %w", err)
	}
	for {
		if !p.alive() {
			return proc{}, fmt.Errorf("start keeper: it exited (see %s)", filepath.Join(tb.dir, "keeper.log"))
		}
		if _, err := tb.keeperCall(ctx, http.MethodGet, "/healthz", nil); err == nil {
			return p, nil
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return proc{}, fmt.Errorf("wait for keeper: %w", err)
		}
	}
}

// keeperCall makes one request to the keeper's control API.
func (tb *Testbed) keeperCall(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode keeper request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	sock := tb.socketPath()
	c := http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, "http://keeper"+path, rd)
	if err != nil {
		return nil, fmt.Errorf("keeper %s %s: %w", method, path, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("keeper %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("keeper %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("keeper %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// SetLB points the load balancer at port on the named hosts (every host
// when none is named). It works on testbeds of other processes too.
func (tb *Testbed) SetLB(ctx context.Context, port int, hosts ...string) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("set load balancer backends: port %d out of range", port)
	}
	if len(hosts) == 0 {
		for _, h := range tb.Hosts() {
			hosts = append(hosts, h.Name)
		}
	}
	cfg := LBConfig{Port: port}
	for _, name := range hosts {
		h, err := tb.Host(name)
		if err != nil {
			return fmt.Errorf("set load balancer backends: %w", err)
		}
		cfg.Backends = append(cfg.Backends, h.Address)
	}
	if _, err := tb.keeperCall(ctx, http.MethodPut, "/lb", cfg); err != nil {
		return fmt.Errorf("set load balancer backends: %w", err)
	}
	return nil
}

// LB returns the load balancer's backends and what its health checks (a TCP
// connect every second) say of each.
func (tb *Testbed) LB(ctx context.Context) (LBStatus, error) {
	b, err := tb.keeperCall(ctx, http.MethodGet, "/lb", nil)
	if err != nil {
		return LBStatus{}, fmt.Errorf("get load balancer status: %w", err)
	}
	var st LBStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return LBStatus{}, fmt.Errorf("decode load balancer status: %w", err)
	}
	return st, nil
}

// WaitLB returns when every backend of the load balancer is in service (has
// passed its health check), or when ctx ends.
func (tb *Testbed) WaitLB(ctx context.Context) error {
	if _, err := tb.keeperCall(ctx, http.MethodGet, "/lb/wait", nil); err != nil {
		return fmt.Errorf("wait for load balancer backends: %w", err)
	}
	return nil
}

// keeperMain runs the keeper until SIGTERM or SIGINT.
func keeperMain() error {
	dir := os.Getenv(envDir)
	st, err := readState(filepath.Join(dir, "state.json"))
	if err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	p := plan{block: st.Block}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	blobs := filepath.Join(dir, "registry")
	if err := os.MkdirAll(blobs, 0o700); err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	regL, err := net.Listen("tcp", net.JoinHostPort(p.Registry().String(), strconv.Itoa(RegistryPort)))
	if err != nil {
		return fmt.Errorf("keeper: listen for registry: %w", err)
	}
	lbL, err := net.Listen("tcp", net.JoinHostPort(p.LB().String(), strconv.Itoa(LBPort)))
	if err != nil {
		return fmt.Errorf("keeper: listen for load balancer: %w", err)
	}
	sock := filepath.Join(dir, "keeper.sock")
	os.Remove(sock)
	ctlL, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("keeper: listen for control: %w", err)
	}
	bal, err := newBalancer(lbL)
	if err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	latency, err := parseLatency(st.Latency)
	if err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	if latency > 0 {
		// Before the control API answers, so Up returns with latency in place.
		d, err := startDelay(ctx, p, len(st.Vendors), latency)
		if err != nil {
			return fmt.Errorf("keeper: %w", err)
		}
		defer d.Close()
		fmt.Fprintf(os.Stderr, "keeper: traffic between vendors delayed by %s each way\n", latency)
	}

	errc := make(chan error, 3)
	go func() { errc <- registry.Serve(ctx, regL, registry.WithBlobDir(blobs)) }()
	go func() { errc <- bal.serve(ctx) }()
	srv := &http.Server{Handler: controlHandler(bal), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		err := srv.Serve(ctlL)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	fmt.Fprintf(os.Stderr, "keeper: registry on %s, load balancer on %s, control on %s\n", regL.Addr(), lbL.Addr(), sock)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	return nil
}

func controlHandler(bal *balancer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /lb", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(bal.status())
	})
	mux.HandleFunc("GET /lb/wait", func(w http.ResponseWriter, r *http.Request) {
		if err := bal.waitHealthy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("PUT /lb", func(w http.ResponseWriter, r *http.Request) {
		var cfg LBConfig
		if err := json.NewDecoder(r.Body).Decode(&cfg); err != nil {
			http.Error(w, "decode load balancer config: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := bal.set(cfg); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, "ok\n")
	})
	return mux
}
