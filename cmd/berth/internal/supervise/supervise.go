package supervise

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Event is one step of supervision, for the caller to print.
type Event struct {
	Service string
	Step    string
	Elapsed time.Duration
	Err     error
}

// Backoff says how long to wait before restarting a service that exited.
type Backoff struct {
	// Initial is the first wait; it doubles with each exit in a row.
	Initial time.Duration
	// Max caps the wait.
	Max time.Duration
	// Reset is how long a service must run before its exits count from
	// zero again.
	Reset time.Duration
}

// DefaultBackoff restarts quickly (a node agent waiting for its join token
// must not sleep long) and never waits more than 10 s.
var DefaultBackoff = Backoff{Initial: 500 * time.Millisecond, Max: 10 * time.Second, Reset: time.Minute}

// Next returns the wait after an exit, given the previous wait and how long
// the service ran.
func (b Backoff) Next(prev, ran time.Duration) time.Duration {
	if prev == 0 || ran >= b.Reset {
		return b.Initial
	}
	n := prev * 2
	if n > b.Max {
		n = b.Max
	}
	return n
}

// StopTimeout is how long a service gets between SIGTERM and SIGKILL.
const StopTimeout = 20 * time.Second

// PIDFile is the pid file of a service ("supervise" for the supervisor).
func (c Config) PIDFile(service string) string {
	return filepath.Join(c.RunDir, service+".pid")
}

// Supervise runs the host's services until ctx ends, restarting any that
// exits, then stops them in reverse order (containerd by its own PID only)
// and returns. It resolves ImageDir once, so a symlink switch takes effect at
// the next Supervise, not in the middle of this one.
func Supervise(ctx context.Context, c Config, b Backoff, progress func(Event)) error {
	c = c.WithDefaults()
	if progress == nil {
		progress = func(Event) {}
	}
	img, err := filepath.EvalSymlinks(c.ImageDir)
	if err != nil {
		return fmt.Errorf("resolve node image %s: %w", c.ImageDir, err)
	}
	for _, d := range []string{c.RunDir, c.LogDir, filepath.Join(c.RunDir, "containerd"), c.ContainerdRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := os.WriteFile(c.ContainerdConfigPath(), []byte(c.ContainerdTOML()), 0o600); err != nil {
		return fmt.Errorf("write containerd config: %w", err)
	}
	if err := writePID(c.PIDFile("supervise"), os.Getpid()); err != nil {
		return err
	}
	defer os.Remove(c.PIDFile("supervise"))
	services := c.Services(img)
	// A service left behind by a supervisor that died (SIGKILL) is stopped
	// first, by its PID, so two copies never run.
	for i := len(services) - 1; i >= 0; i-- {
		stopStale(c, services[i])
	}
	start := time.Now()
	runs := make([]*runner, len(services))
	var wg sync.WaitGroup
	for i, s := range services {
		r := &runner{c: c, s: s, b: b, progress: progress, start: start, stop: make(chan struct{}), done: make(chan struct{})}
		runs[i] = r
		wg.Add(1)
		go func() { defer wg.Done(); r.loop(ctx) }()
		if s.Name == "containerd" {
			waitSocket(ctx, c.ContainerdSocket(), 30*time.Second)
		}
	}
	<-ctx.Done()
	for i := len(runs) - 1; i >= 0; i-- {
		close(runs[i].stop)
		<-runs[i].done
	}
	wg.Wait()
	progress(Event{Step: "stopped", Elapsed: time.Since(start)})
	return nil
}

type runner struct {
	c        Config
	s        Service
	b        Backoff
	progress func(Event)
	start    time.Time
	stop     chan struct{}
	done     chan struct{}
}

func (r *runner) loop(ctx context.Context) {
	defer close(r.done)
	var wait time.Duration
	for {
		began := time.Now()
		cmd, err := r.spawn()
		if err != nil {
			r.progress(Event{Service: r.s.Name, Step: "start failed", Elapsed: time.Since(r.start), Err: err})
		} else {
			r.progress(Event{Service: r.s.Name, Step: fmt.Sprintf("started pid %d", cmd.Process.Pid), Elapsed: time.Since(r.start)})
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				os.Remove(r.c.PIDFile(r.s.Name))
				r.progress(Event{Service: r.s.Name, Step: "exited", Elapsed: time.Since(r.start), Err: err})
			case <-r.stop:
				terminate(cmd.Process.Pid, exited, StopTimeout)
				os.Remove(r.c.PIDFile(r.s.Name))
				r.progress(Event{Service: r.s.Name, Step: "stopped", Elapsed: time.Since(r.start)})
				return
			}
		}
		wait = r.b.Next(wait, time.Since(began))
		select {
		case <-time.After(wait):
		case <-r.stop:
			return
		}
	}
}

func (r *runner) spawn() (*exec.Cmd, error) {
	logf, err := os.OpenFile(filepath.Join(r.c.LogDir, r.s.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", r.s.Name, err)
	}
	defer logf.Close()
	cmd := exec.Command(r.s.Path, r.s.Args...)
	cmd.Env = append(os.Environ(), r.s.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Each service leads its own process group, so a signal to the
	// supervisor's group never reaches containerd or its shims.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", r.s.Name, err)
	}
	if err := writePID(r.c.PIDFile(r.s.Name), cmd.Process.Pid); err != nil {
		return cmd, err
	}
	return cmd, nil
}

// terminate sends SIGTERM to pid alone, then SIGKILL after timeout.
func terminate(pid int, exited <-chan error, timeout time.Duration) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(timeout):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-exited
	}
}

// stopStale stops a process recorded in s's pid file when it still runs the
// service's program, by its PID only.
func stopStale(c Config, s Service) {
	pid, ok := ReadPID(c.PIDFile(s.Name))
	if !ok || !runs(pid, filepath.Base(s.Path)) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(StopTimeout)
	for time.Now().Before(deadline) && runs(pid, filepath.Base(s.Path)) {
		time.Sleep(100 * time.Millisecond)
	}
	if runs(pid, filepath.Base(s.Path)) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	os.Remove(c.PIDFile(s.Name))
}

func waitSocket(ctx context.Context, path string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writePID(path string, pid int) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write pid file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write pid file %s: %w", path, err)
	}
	return nil
}

// ReadPID reads a pid file; ok is false when it is missing or malformed.
func ReadPID(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 0
}

// runs reports whether pid is alive and its executable's base name is exe,
// so a recycled PID is never signalled.
func runs(pid int, exe string) bool {
	target, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	target = strings.TrimSuffix(target, " (deleted)")
	if filepath.Base(target) != exe {
		return false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie is not running.
	if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
		return false
	}
	return true
}

// Running reports whether the supervisor of c runs, and its PID.
func Running(c Config) (int, bool) {
	c = c.WithDefaults()
	pid, ok := ReadPID(c.PIDFile("supervise"))
	return pid, ok && runs(pid, "berth")
}

// Start launches `self node supervise --config configPath` detached from
// the caller (new session, output to LogDir/supervise.log) unless a
// supervisor already runs, and waits until it has written its pid file.
func Start(ctx context.Context, c Config, self, configPath string) (int, error) {
	c = c.WithDefaults()
	if pid, ok := Running(c); ok {
		return pid, nil
	}
	if err := os.MkdirAll(c.LogDir, 0o700); err != nil {
		return 0, fmt.Errorf("create %s: %w", c.LogDir, err)
	}
	if err := os.MkdirAll(c.RunDir, 0o700); err != nil {
		return 0, fmt.Errorf("create %s: %w", c.RunDir, err)
	}
	logf, err := os.OpenFile(filepath.Join(c.LogDir, "supervise.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("open supervisor log: %w", err)
	}
	defer logf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	cmd := exec.Command(self, "node", "supervise", "--config", configPath)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start supervisor: %w", err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	for {
		if p, ok := Running(c); ok && p == pid {
			return pid, nil
		}
		if err := syscall.Kill(pid, 0); err != nil {
			return 0, fmt.Errorf("supervisor exited at once; see %s", filepath.Join(c.LogDir, "supervise.log"))
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("wait for supervisor pid file: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop asks the supervisor to stop its services and waits for it to exit.
// A supervisor that does not exit in time is killed by PID, and the services
// it left are then stopped by their own PIDs.
func Stop(ctx context.Context, c Config) error {
	c = c.WithDefaults()
	pid, ok := Running(c)
	if ok {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		for runs(pid, "berth") {
			select {
			case <-ctx.Done():
				_ = syscall.Kill(pid, syscall.SIGKILL)
				return errors.Join(fmt.Errorf("supervisor %d did not stop: %w", pid, ctx.Err()), stopLeftovers(c))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return stopLeftovers(c)
}

func stopLeftovers(c Config) error {
	img, err := filepath.EvalSymlinks(c.ImageDir)
	if err != nil {
		img = c.ImageDir
	}
	s := c.Services(img)
	for i := len(s) - 1; i >= 0; i-- {
		stopStale(c, s[i])
	}
	return nil
}

// ServiceStatus is what Status reports about one process.
type ServiceStatus struct {
	PID int `json:"pid"`
	// StartTicks is the process start time in clock ticks since boot
	// (/proc/PID/stat field 22): equal values mean the same process.
	StartTicks uint64 `json:"startTicks"`
}

// Status reports the supervisor and each running service, keyed by name
// ("supervise", "containerd", "control", "agent").
func Status(c Config) map[string]ServiceStatus {
	c = c.WithDefaults()
	out := map[string]ServiceStatus{}
	for _, name := range []string{"supervise", "containerd", "control", "agent"} {
		pid, ok := ReadPID(c.PIDFile(name))
		if !ok {
			continue
		}
		exe := "berth"
		if name == "containerd" {
			exe = "containerd"
		}
		if !runs(pid, exe) {
			continue
		}
		out[name] = ServiceStatus{PID: pid, StartTicks: startTicks(pid)}
	}
	return out
}

func startTicks(pid int) uint64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(st)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// Fields after the command: state is index 0 = field 3; field 22 is index 19.
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}
