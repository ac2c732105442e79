package containerd_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-io/berth/acceptance/workloads"
	"github.com/berth-io/berth/nodeagent/runtime"
	"github.com/berth-io/berth/nodeagent/runtime/containerd"
)

func readCgroup(t *testing.T, ctl, parent, id, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctl, parent, id, file))
	if err != nil {
		t.Fatalf("read %s cgroup file %s: %v", ctl, file, err)
	}
	return strings.TrimSpace(string(b))
}

func TestIntegrationImportedWebRunsWithLimitsStopsOnTermAndIsRemovedCompletely(t *testing.T) {
	env := integration(t)
	rt := env.runtime(t, nil)
	ctx := t.Context()
	v, err := rt.Version(ctx)
	if err != nil || v.Name != "containerd" || v.Version == "" {
		t.Fatalf("version %+v (%v)", v, err)
	}
	t.Logf("testing against containerd %s", v.Version)

	imgs, err := rt.ImportArchive(ctx, env.webArchive)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := env.set.Digest(workloads.V1)
	if len(imgs) != 1 || imgs[0].Ref != env.webArchRef || imgs[0].Digest != want {
		t.Fatalf("imported %+v, want %s at %s", imgs, env.webArchRef, want)
	}
	snapsBefore := rt.snapshots(t)

	logPath := filepath.Join(t.TempDir(), "pods", "web", "main.log")
	id, err := runtime.RunContainer(ctx, rt, runtime.ContainerSpec{
		Meta:      meta("web"),
		Image:     env.webArchRef,
		Resources: runtime.Resources{MemoryBytes: 64 << 20, CPUMillis: 250, CPURequestMillis: 500},
		LogPath:   logPath,
		Labels:    map[string]string{"team": "edge"},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := rt.ContainerStatus(ctx, id)
	if err != nil || st.Status != runtime.StatusRunning || st.PID == 0 || st.StartedAt.IsZero() {
		t.Fatalf("status after start %+v (%v), want Running with a PID and a start time", st, err)
	}

	parent := strings.TrimPrefix(rt.cfg.CgroupParent, "/")
	for _, c := range []struct{ ctl, file, want string }{
		{"memory", "memory.limit_in_bytes", strconv.Itoa(64 << 20)},
		{"cpu", "cpu.cfs_quota_us", "25000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpu", "cpu.shares", "512"},
	} {
		if got := readCgroup(t, c.ctl, parent, id, c.file); got != c.want {
			t.Errorf("%s = %s, want %s", c.file, got, c.want)
		}
	}
	procs := readCgroup(t, "memory", parent, id, "cgroup.procs")
	if !slices.Contains(strings.Fields(procs), strconv.Itoa(int(st.PID))) {
		t.Errorf("process %d is not in the container's memory cgroup (procs %q)", st.PID, procs)
	}

	list, err := rt.ListContainers(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list = %+v (%v), want the one container", list, err)
	}
	if got := list[0]; got.ID != id || got.Meta != meta("web") || got.Image != env.webArchRef || got.ImageDigest != want ||
		got.LogPath != logPath || got.Labels["team"] != "edge" || len(got.Labels) != 1 {
		t.Errorf("listed %+v", got)
	}

	// The exec probe of the web image: /web check asks the server's own
	// /healthz; it answers once the server listens.
	waitFor(t, "web check to pass", func() (bool, error) {
		code, _, err := rt.Exec(ctx, id, []string{workloads.BinaryPath, "check"}, 10*time.Second)
		return code == 0, err
	})
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "listening on") {
		t.Errorf("log %s lacks the server's stderr line: %q", logPath, b)
	}

	if err := rt.StopContainer(ctx, id, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	ev := nextExit(t, rt, id)
	if ev.ExitCode != 0 || ev.Meta != meta("web") || ev.OOMKilled {
		t.Errorf("exit event %+v, want a clean exit 0 on SIGTERM", ev)
	}
	st, err = rt.ContainerStatus(ctx, id)
	if err != nil || st.Status != runtime.StatusExited || st.ExitCode != 0 || st.FinishedAt.IsZero() {
		t.Errorf("status after stop %+v (%v), want Exited 0 with a finish time", st, err)
	}

	if err := rt.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemoveContainer(ctx, id); err != nil {
		t.Errorf("removing again: %v, want no error", err)
	}
	if _, err := rt.ContainerStatus(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("status after remove: %v, want ErrNotFound", err)
	}
	if list, _ := rt.ListContainers(ctx); len(list) != 0 {
		t.Errorf("containers after remove: %+v", list)
	}
	if after := rt.snapshots(t); !slices.Equal(after, snapsBefore) || slices.Contains(after, id) {
		t.Errorf("snapshots after remove %v, want those before the container %v", after, snapsBefore)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", parent, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("memory cgroup of the removed container remains: %v", err)
	}
	if _, err := os.Stat(logPath); err != nil {
		t.Errorf("log file removed with the container: %v", err)
	}
}

func TestIntegrationPullsFromPlainHTTPRegistriesWithCredentials(t *testing.T) {
	env := integration(t)
	rt := env.runtime(t, nil)
	ctx := t.Context()

	img, err := rt.PullImage(ctx, env.refs.V1, runtime.PullOptions{PlainHTTP: []string{env.registry}})
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := env.set.Digest(workloads.V1); img.Digest != want || img.Ref != env.refs.V1 {
		t.Errorf("pulled %+v, want %s at %s", img, env.refs.V1, want)
	}
	if got, err := rt.GetImage(ctx, env.refs.V1); err != nil || got != img {
		t.Errorf("get image after pull = %+v, %v", got, err)
	}
	creds := map[string]runtime.Credential{env.authReg: {Username: "berth", Password: "s3cret"}}
	if _, err := rt.PullImage(ctx, env.authTool, runtime.PullOptions{PlainHTTP: []string{env.authReg}, Credentials: creds}); err != nil {
		t.Errorf("pull with credentials: %v", err)
	}
}

func TestIntegrationPullFailuresSayWhy(t *testing.T) {
	env := integration(t)
	rt := env.runtime(t, nil)
	closed := closedPort(t)
	tests := []struct {
		name     string
		ref      string
		opts     runtime.PullOptions
		reason   runtime.Reason
		notFound bool
	}{
		{"unknown tag", env.registry + "/berth-test/web:nope", runtime.PullOptions{PlainHTTP: []string{env.registry}}, runtime.ReasonImageNotFound, true},
		{"unknown repository", env.registry + "/berth-test/missing:v1", runtime.PullOptions{PlainHTTP: []string{env.registry}}, runtime.ReasonImageNotFound, true},
		{"no credentials", env.authTool, runtime.PullOptions{PlainHTTP: []string{env.authReg}}, runtime.ReasonRegistryUnauthorized, false},
		{"wrong password", env.authTool, runtime.PullOptions{PlainHTTP: []string{env.authReg},
			Credentials: map[string]runtime.Credential{env.authReg: {Username: "berth", Password: "wrong"}}}, runtime.ReasonRegistryUnauthorized, false},
		{"nobody listening", closed + "/berth-test/web:v1", runtime.PullOptions{PlainHTTP: []string{closed}}, runtime.ReasonRegistryUnavailable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rt.PullImage(t.Context(), tt.ref, tt.opts)
			if !errors.Is(err, runtime.ErrImagePull) {
				t.Fatalf("error %v, want ErrImagePull", err)
			}
			if got := runtime.ReasonOf(err); got != tt.reason {
				t.Errorf("reason %q, want %q (error: %v)", got, tt.reason, err)
			}
			if got := errors.Is(err, runtime.ErrImageNotFound); got != tt.notFound {
				t.Errorf("matches ErrImageNotFound %v, want %v (error: %v)", got, tt.notFound, err)
			}
		})
	}
	if _, err := rt.GetImage(t.Context(), env.refs.V2); !errors.Is(err, runtime.ErrImageNotFound) {
		t.Errorf("get image never pulled: %v, want ErrImageNotFound", err)
	}
	_, err := rt.CreateContainer(t.Context(), runtime.ContainerSpec{Meta: meta("nopull"), Image: env.refs.V2})
	if !errors.Is(err, runtime.ErrImageNotFound) {
		t.Errorf("create from an image never pulled: %v, want ErrImageNotFound", err)
	}
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func (e *testEnv) pullTool(t *testing.T, rt *testRuntime) {
	t.Helper()
	if _, err := rt.PullImage(t.Context(), e.tool, runtime.PullOptions{PlainHTTP: []string{e.registry}}); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationStopKillsAProcessThatIgnoresTermAfterTheGrace(t *testing.T) {
	env := integration(t)
	rt := env.runtime(t, nil)
	env.pullTool(t, rt)
	ctx := t.Context()
	tests := []struct {
		mode     string
		wantCode int32
	}{
		{"sleep", 0},         // honours SIGTERM
		{"ignore-term", 137}, // SIGKILL after the grace
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "c.log")
			id, err := runtime.RunContainer(ctx, rt, runtime.ContainerSpec{Meta: meta(tt.mode), Image: env.tool, Args: []string{tt.mode}, LogPath: log})
			if err != nil {
				t.Fatal(err)
			}
			// Signal only once the program has set up its handling.
			waitFor(t, "the program to start", func() (bool, error) {
				b, _ := os.ReadFile(log)
				return len(b) > 0, nil
			})
			if err := rt.StopContainer(ctx, id, time.Second); err != nil {
				t.Fatal(err)
			}
			st, err := rt.ContainerStatus(ctx, id)
			if err != nil || st.Status != runtime.StatusExited || st.ExitCode != tt.wantCode {
				t.Errorf("status after stop %+v (%v), want Exited %d", st, err, tt.wantCode)
			}
			if ev := nextExit(t, rt, id); ev.ExitCode != tt.wantCode {
				t.Errorf("exit event code %d, want %d", ev.ExitCode, tt.wantCode)
			}
			if err := rt.StopContainer(ctx, id, time.Second); err != nil {
				t.Errorf("stopping a stopped container: %v", err)
			}
		})
	}
}

func TestIntegrationAMissingCommandFailsClearlyAndLeavesNothing(t *testing.T) {
	env := integration(t)
	rt := env.runtime(t, nil)
	env.pullTool(t, rt)
	snapsBefore := rt.snapshots(t)
	_, err := runtime.RunContainer(t.Context(), rt, runtime.ContainerSpec{Meta: meta("missing"), Image: env.tool, Command: []string{"/does-not-exist"}})
	if !errors.Is(err, runtime.ErrContainerCreate) || runtime.ReasonOf(err) != runtime.ReasonExecutableNotFound {
		t.Fatalf("error %v (reason %q), want ErrContainerCreate / ExecutableNotFound", err, runtime.ReasonOf(err))
	}
	if !strings.Contains(err.Error(), "executable not found") {
		t.Errorf("message %q does not say the executable is missing", err)
	}
	if list, _ := rt.ListContainers(t.Context()); len(list) != 0 {
		t.Errorf("containers left: %+v", list)
	}
	if after := rt.snapshots(t); !slices.Equal(after, snapsBefore) {
		t.Errorf("snapshots %v, want %v", after, snapsBefore)
	}
}

func TestIntegrationContainerGetsItsEnvironmentHostnameDNSAndNetworkNamespace(t *testing.T) {
	env := integration(t)
	prereqBinary(t, "ip")
	rt := env.runtime(t, nil)
	env.pullTool(t, rt)
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 10.96.0.10 # berth\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	netns := newNetNS(t)
	log := filepath.Join(dir, "env.log")
	id, err := runtime.RunContainer(t.Context(), rt, runtime.ContainerSpec{
		Meta:           meta("env"),
		Image:          env.tool,
		Args:           []string{"env"},
		Env:            []string{"POD_NAME=env-1", "FROM_IMAGE=overridden"},
		WorkingDir:     "/proc",
		Hostname:       "env-1",
		ResolvConfPath: resolv,
		NetNSPath:      netns,
		LogPath:        log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextExit(t, rt, id); ev.ExitCode != 0 {
		t.Fatalf("env exited %d", ev.ExitCode)
	}
	var fi syscall.Stat_t
	if err := syscall.Stat(netns, &fi); err != nil {
		t.Fatal(err)
	}
	var out string
	defer func() {
		if t.Failed() {
			t.Logf("the log held:\n%s", out)
		}
	}()
	waitFor(t, "the output in the log", func() (bool, error) {
		b, _ := os.ReadFile(log)
		out = string(b)
		return strings.Contains(out, "stderr too"), nil
	})
	for _, want := range []string{
		"hostname=env-1\n", "cwd=/proc\n", "resolv=nameserver 10.96.0.10 # berth\n",
		fmt.Sprintf("netns=net:[%d]\n", fi.Ino),
		"env POD_NAME=env-1\n", "env FROM_IMAGE=overridden\n", "env PATH=/\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestIntegrationLogsRotateBySizeWhileTheContainerWrites(t *testing.T) {
	env := integration(t)
	const maxBytes = 8 << 10
	rt := env.runtime(t, func(c *containerd.Config) { c.LogMaxBytes = maxBytes; c.LogMaxFiles = 3 })
	env.pullTool(t, rt)
	log := filepath.Join(t.TempDir(), "chatter.log")
	id, err := runtime.RunContainer(t.Context(), rt, runtime.ContainerSpec{Meta: meta("chatter"), Image: env.tool, Args: []string{"chatter"}, LogPath: log})
	if err != nil {
		t.Fatal(err)
	}
	// Rotation needs no prompting: chatter writes 500 lines a second, so
	// .2 appears after three files' worth.
	waitFor(t, "chatter.log.2", func() (bool, error) {
		_, err := os.Stat(log + ".2")
		return err == nil, nil
	})
	if err := rt.StopContainer(t.Context(), id, time.Second); err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 99) + "\n"
	for _, p := range []string{log, log + ".1", log + ".2"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// Each file is whole lines (rotation falls between writes) and
		// within the limit.
		if len(b) > maxBytes || len(b)%len(line) != 0 || strings.ReplaceAll(string(b), line, "") != "" {
			t.Errorf("%s: %d bytes, want whole chatter lines and at most %d", filepath.Base(p), len(b), maxBytes)
		}
	}
	if fi, err := os.Stat(log + ".1"); err != nil || fi.Size() < maxBytes/2 {
		t.Errorf("chatter.log.1 = %v (%v), want a full file", fi, err)
	}
	if _, err := os.Stat(log + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("chatter.log.3 exists: more than LogMaxFiles kept")
	}
}

// The last lines a program prints, on either stream, are in its log by the
// time its exit is reported, and the two streams interleave by whole lines.
// containerd's file:// log URI loses the tail of stderr when stdout ends
// first, and splits lines; a burst on both streams that ends on stderr
// shows both at once.
func TestIntegrationNoOutputIsLostWhenAContainerExits(t *testing.T) {
	env := integration(t)
	rt := env.runtime(t, nil)
	env.pullTool(t, rt)
	const lines = 3000
	for run := range 3 {
		log := filepath.Join(t.TempDir(), "burst.log")
		id, err := runtime.RunContainer(t.Context(), rt, runtime.ContainerSpec{
			Meta: meta(fmt.Sprintf("burst-%d", run)), Image: env.tool, Args: []string{"burst", strconv.Itoa(lines)}, LogPath: log,
		})
		if err != nil {
			t.Fatal(err)
		}
		if ev := nextExit(t, rt, id); ev.ExitCode != 0 {
			t.Fatalf("burst exited %d", ev.ExitCode)
		}
		b, err := os.ReadFile(log) // at once: the exit waited for the output
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for l := range strings.Lines(string(b)) {
			got[l[:3]]++
		}
		if got["out"] != lines+1 || got["err"] != 2*lines+1 || !strings.Contains(string(b), "out done\n") || !strings.Contains(string(b), "err done\n") {
			t.Fatalf("run %d: log has %d whole stdout and %d whole stderr lines, want %d and %d, each stream ending in \"done\" (%d bytes)", run, got["out"], got["err"], lines+1, 2*lines+1, len(b))
		}
		if err := rt.RemoveContainer(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestIntegrationANewRuntimeAdoptsRunningContainersWithoutRestartingThem(t *testing.T) {
	env := integration(t)
	first := env.runtime(t, nil)
	env.pullTool(t, first)
	log := filepath.Join(t.TempDir(), "c.log")
	id, err := runtime.RunContainer(t.Context(), first, runtime.ContainerSpec{Meta: meta("adopted"), Image: env.tool, LogPath: log})
	if err != nil {
		t.Fatal(err)
	}
	before, err := first.ContainerStatus(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the program to start", func() (bool, error) {
		b, _ := os.ReadFile(log)
		return len(b) > 0, nil
	})
	first.Close() // the agent goes away; the container must not

	second, err := containerd.New(t.Context(), first.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	list, err := second.ListContainers(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("list after restart %+v (%v), want the running container", list, err)
	}
	got := list[0]
	if got.ID != id || got.Meta != meta("adopted") || got.State.Status != runtime.StatusRunning ||
		got.State.PID != before.PID || !got.State.StartedAt.Equal(before.StartedAt) {
		t.Fatalf("adopted %+v, want %s still running as PID %d since %v", got, id, before.PID, before.StartedAt)
	}
	// End the process behind the runtime's back: the new runtime hears it,
	// and copies what it printed on the way out into the same log.
	if err := syscall.Kill(int(before.PID), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ev := nextExit(t, second, id); ev.ExitCode != 0 || ev.Meta != meta("adopted") {
		t.Errorf("exit event %+v, want exit 0 of the adopted container", ev)
	}
	if b, err := os.ReadFile(log); err != nil || string(b) != "sleeping\ngot SIGTERM\n" {
		t.Errorf("log after adoption = %q (%v), want both runtimes' lines", b, err)
	}
}

func TestIntegrationAnOOMKillIsReported(t *testing.T) {
	env := integration(t)
	rt := env.runtime(t, nil)
	env.pullTool(t, rt)
	id, err := runtime.RunContainer(t.Context(), rt, runtime.ContainerSpec{
		Meta: meta("hog"), Image: env.tool, Args: []string{"hog"},
		Resources: runtime.Resources{MemoryBytes: 32 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := nextExit(t, rt, id)
	if ev.ExitCode != 137 || !ev.OOMKilled {
		t.Errorf("exit event %+v, want 137 and OOMKilled", ev)
	}
	if st, err := rt.ContainerStatus(t.Context(), id); err != nil || !st.OOMKilled {
		t.Errorf("status %+v (%v), want OOMKilled", st, err)
	}
}

func TestIntegrationExecReportsCodesOutputAndTimeouts(t *testing.T) {
	env := integration(t)
	rt := env.runtime(t, nil)
	env.pullTool(t, rt)
	id, err := runtime.RunContainer(t.Context(), rt, runtime.ContainerSpec{Meta: meta("exec"), Image: env.tool})
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := rt.Exec(t.Context(), id, []string{"/tool", "exit", "3"}, 30*time.Second)
	if err != nil || code != 3 {
		t.Errorf("exec exit 3 = %d, %v", code, err)
	}
	code, out, err := rt.Exec(t.Context(), id, []string{"/tool", "env"}, 30*time.Second)
	if err != nil || code != 0 || !strings.Contains(string(out), "stderr too") || !strings.Contains(string(out), "env FROM_IMAGE=yes") {
		t.Errorf("exec env = %d, %q, %v; want both streams and the container's environment", code, out, err)
	}
	if _, _, err := rt.Exec(t.Context(), id, []string{"/tool", "ignore-term"}, 200*time.Millisecond); !errors.Is(err, runtime.ErrExecTimeout) {
		t.Errorf("exec that never ends: %v, want ErrExecTimeout", err)
	}
	if _, _, err := rt.Exec(t.Context(), id, []string{"/nope"}, 30*time.Second); runtime.ReasonOf(err) != runtime.ReasonExecutableNotFound {
		t.Errorf("exec of a missing command: %v, want reason ExecutableNotFound", err)
	}
	left, _ := os.ReadDir(rt.cfg.FIFODir)
	left = slices.DeleteFunc(left, func(e os.DirEntry) bool { return e.Name() == "containers" })
	if len(left) != 0 {
		t.Errorf("exec left %d FIFO entries in %s", len(left), rt.cfg.FIFODir)
	}
}

func TestIntegrationExitsAreStillReportedAfterContainerdRestarts(t *testing.T) {
	env := integration(t)
	rt := env.runtime(t, nil)
	env.pullTool(t, rt)
	log := filepath.Join(t.TempDir(), "c.log")
	id, err := runtime.RunContainer(t.Context(), rt, runtime.ContainerSpec{Meta: meta("survivor"), Image: env.tool, LogPath: log})
	if err != nil {
		t.Fatal(err)
	}
	st, err := rt.ContainerStatus(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the program to start", func() (bool, error) {
		b, _ := os.ReadFile(log)
		return len(b) > 0, nil
	})
	env.restartDaemon(t)
	if err := syscall.Kill(int(st.PID), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ev := nextExit(t, rt, id); ev.ExitCode != 0 {
		t.Errorf("exit event %+v, want exit 0 after the restart", ev)
	}
	if st, err := rt.ContainerStatus(t.Context(), id); err != nil || st.Status != runtime.StatusExited {
		t.Errorf("status %+v (%v), want Exited through the same runtime", st, err)
	}
}
