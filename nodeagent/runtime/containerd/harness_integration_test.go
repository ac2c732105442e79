package containerd_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-io/berth/acceptance/registry"
	"github.com/berth-io/berth/acceptance/workloads"
	"github.com/berth-io/berth/internal/prereq"
	"github.com/berth-io/berth/nodeagent/runtime"
	"github.com/berth-io/berth/nodeagent/runtime/containerd"
)

// Everything an integration test run creates carries this prefix: its
// directory under the temp dir, its cgroup parent and its netns names, so
// a later run can find and remove what a crashed run left behind.
const runPrefix = "berth-rt-test-"

// toolSource is a small static program the tests run in containers to
// make a process behave as a case needs.
const toolSource = `package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tool sleep|ignore-term|exit N|chatter|hog|burst N|env")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "sleep": // exits 0 on SIGTERM
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("sleeping")
		<-c
		fmt.Println("got SIGTERM")
		os.Exit(0)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		for {
			time.Sleep(time.Hour)
		}
	case "exit":
		n, _ := strconv.Atoi(os.Args[2])
		os.Exit(n)
	case "chatter":
		line := strings.Repeat("x", 99) + "\n"
		for {
			os.Stdout.WriteString(line)
			time.Sleep(2 * time.Millisecond)
		}
	case "hog":
		var keep [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			keep = append(keep, b)
		}
	case "burst": // N lines on each stream, interleaved, N more on stderr, then a last line on each
		n, _ := strconv.Atoi(os.Args[2])
		pad := strings.Repeat("-", 80)
		for i := 0; i < n; i++ {
			fmt.Fprintf(os.Stdout, "out %06d %s\n", i, pad)
			fmt.Fprintf(os.Stderr, "err %06d %s\n", i, pad)
		}
		fmt.Fprintln(os.Stdout, "out done")
		for i := n; i < 2*n; i++ {
			fmt.Fprintf(os.Stderr, "err %06d %s\n", i, pad)
		}
		fmt.Fprintln(os.Stderr, "err done")
	case "env":
		host, _ := os.Hostname()
		cwd, _ := os.Getwd()
		netns, _ := os.Readlink("/proc/self/ns/net")
		resolv, _ := os.ReadFile("/etc/resolv.conf")
		fmt.Printf("hostname=%s\ncwd=%s\nnetns=%s\nresolv=%s\n", host, cwd, netns, strings.TrimSpace(string(resolv)))
		for _, e := range os.Environ() {
			fmt.Println("env", e)
		}
		fmt.Fprintln(os.Stderr, "stderr too")
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}
`

// testEnv is the private containerd, registries and images every
// integration test of this package shares; each test gets its own
// namespace and cgroup parent.
type testEnv struct {
	dir          string
	address      string
	daemon       *exec.Cmd
	daemonExited chan struct{} // closed when the daemon process is gone
	stopServing  context.CancelFunc
	registry     string // plain HTTP, no auth
	authReg      string // plain HTTP, basic auth berth/s3cret
	refs         workloads.Refs
	set          *workloads.Set
	tool         string // ref of the tool image in registry
	authTool     string // ref of the tool image in authReg
	webArchive   string // OCI archive of web v1
	webArchRef   string
}

// envBinDir names an environment variable: a directory holding containerd,
// containerd-shim-runc-v2 and runc to test against instead of those on PATH,
// e.g. the static v2 runtime node images carry (tools/runtime's bin/).
const envBinDir = "BERTH_TEST_CONTAINERD_BIN"

var binDir = os.Getenv(envBinDir)

var (
	envOnce  sync.Once
	envErr   error
	theEnv   *testEnv
	testSeq  atomic.Int64
	runOwner = strconv.Itoa(os.Getpid())
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theEnv != nil {
		theEnv.teardown()
	}
	os.Exit(code)
}

// integration returns the shared environment, starting it on first use.
func integration(t *testing.T) *testEnv {
	t.Helper()
	prereq.Integration(t)
	prereq.Root(t)
	prereq.Binary(t, "go")
	if binDir == "" {
		prereq.Binary(t, "containerd", "containerd-shim-runc-v2", "runc")
	}
	envOnce.Do(func() {
		sweepStaleRuns()
		theEnv, envErr = startEnv()
	})
	if envErr != nil {
		t.Fatalf("start integration environment: %v", envErr)
	}
	return theEnv
}

func startEnv() (*testEnv, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", runPrefix+runOwner+"-")
	if err != nil {
		return nil, err
	}
	e := &testEnv{dir: dir, address: filepath.Join(dir, "c.sock")}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(runOwner), 0o644); err != nil {
		return e, err
	}
	if err := e.startDaemon(ctx); err != nil {
		e.teardown()
		return nil, err
	}
	if err := e.startRegistries(ctx); err != nil {
		e.teardown()
		return nil, err
	}
	return e, nil
}

// restartDaemon kills containerd the way a crash would (its shims and
// containers live on) and starts it again on the same socket and state.
func (e *testEnv) restartDaemon(t *testing.T) {
	t.Helper()
	if e.daemon != nil && e.daemon.Process != nil {
		_ = e.daemon.Process.Kill()
		<-e.daemonExited
	}
	if err := e.startDaemon(t.Context()); err != nil {
		t.Fatalf("restart containerd: %v", err)
	}
}

func (e *testEnv) startDaemon(ctx context.Context) error {
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(e.dir, "root"), filepath.Join(e.dir, "state"), e.address, e.address+".ttrpc", filepath.Join(e.dir, "opt"))
	cfgPath := filepath.Join(e.dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(e.dir, "containerd.log"))
	if err != nil {
		return err
	}
	bin := "containerd"
	cmd := exec.Command(bin, "--config", cfgPath)
	if binDir != "" {
		cmd = exec.Command(filepath.Join(binDir, bin), "--config", cfgPath)
		// The daemon finds its shim, and the shim runc, on PATH.
		cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"))
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// The daemon dies with the test process, even if it crashes; its shims
	// and containers are removed by the next run's sweep.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start containerd: %w", err)
	}
	logf.Close()
	e.daemon = cmd
	exited := make(chan error, 1)
	e.daemonExited = make(chan struct{})
	go func() { exited <- cmd.Wait(); close(e.daemonExited) }()
	for {
		c, err := client.New(e.address, client.WithTimeout(time.Second))
		if err == nil {
			vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = c.Version(vctx)
			cancel()
			c.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case werr := <-exited:
			e.daemon = nil
			b, _ := os.ReadFile(filepath.Join(e.dir, "containerd.log"))
			return fmt.Errorf("containerd exited at start-up: %v\n%s", werr, b)
		case <-ctx.Done():
			return fmt.Errorf("containerd did not answer: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (e *testEnv) startRegistries(ctx context.Context) error {
	sctx, stop := context.WithCancel(context.Background())
	e.stopServing = stop
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = registry.Serve(sctx, l) }()
	e.registry = l.Addr().String()

	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	inner := registry.New()
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "berth" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="berth-test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, r)
		}),
	}
	go func() { _ = srv.Serve(al) }()
	context.AfterFunc(sctx, func() { srv.Close() })
	e.authReg = al.Addr().String()

	e.set, err = workloads.Build(ctx, "")
	if err != nil {
		return err
	}
	if e.refs, err = e.set.Push(ctx, e.registry); err != nil {
		return err
	}
	e.webArchRef = "registry.test/berth-test/web:v1"
	e.webArchive = filepath.Join(e.dir, "web-v1.oci.tar")
	if err := e.set.WriteOCIArchive(ctx, workloads.V1, e.webArchRef, e.webArchive); err != nil {
		return err
	}
	img, err := buildTool(ctx, e.dir)
	if err != nil {
		return err
	}
	e.tool = e.registry + "/berth-test/tool:v1"
	if err := push(ctx, img, e.tool, authn.Anonymous); err != nil {
		return err
	}
	e.authTool = e.authReg + "/berth-test/tool:v1"
	return push(ctx, img, e.authTool, &authn.Basic{Username: "berth", Password: "s3cret"})
}

func push(ctx context.Context, img v1.Image, ref string, auth authn.Authenticator) error {
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx), remote.WithAuth(auth)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// buildTool compiles toolSource statically and wraps it in a one-layer
// image with the entrypoint /tool and the cmd "sleep".
func buildTool(ctx context.Context, dir string) (v1.Image, error) {
	src := filepath.Join(dir, "tool-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module berth.test/tool\n\ngo 1.22\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(toolSource), 0o644); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "tool")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-buildvcs=false", "GOPROXY=off")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build tool: %w: %s", err, msg)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "tool", Mode: 0o755, Size: int64(len(bin))}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: "amd64", OS: "linux",
		Config: v1.Config{Entrypoint: []string{"/tool"}, Cmd: []string{"sleep"}, Env: []string{"PATH=/", "FROM_IMAGE=yes"}, WorkingDir: "/"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(img, l)
}

func (e *testEnv) teardown() {
	if e.stopServing != nil {
		e.stopServing()
	}
	if e.daemon != nil && e.daemon.Process != nil {
		_ = e.daemon.Process.Kill()
		<-e.daemonExited
	}
	cleanRun(e.dir, runOwner)
}

// testRuntime is one test's Runtime with its own namespace and cgroup
// parent, removed with everything in it when the test ends.
type testRuntime struct {
	*containerd.Runtime
	cfg containerd.Config
	env *testEnv
}

func (e *testEnv) runtime(t *testing.T, change func(*containerd.Config)) *testRuntime {
	t.Helper()
	n := testSeq.Add(1)
	cfg := containerd.Config{
		Address:      e.address,
		Namespace:    fmt.Sprintf("berth-test-%s-%d", runOwner, n),
		CgroupParent: fmt.Sprintf("/%s%s/t%d", runPrefix, runOwner, n),
		FIFODir:      filepath.Join(e.dir, "fifo"),
		CallTimeout:  time.Minute,
		PullTimeout:  2 * time.Minute,
	}
	if change != nil {
		change(&cfg)
	}
	rt, err := containerd.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("new runtime: %v", err)
	}
	t.Cleanup(func() {
		rt.Close()
		e.removeNamespace(t, cfg.Namespace)
		removeCgroup(strings.TrimPrefix(cfg.CgroupParent, "/"))
	})
	return &testRuntime{Runtime: rt, cfg: cfg, env: e}
}

// removeNamespace deletes every task and container (with its snapshot) in
// ns, whether or not a test left them.
func (e *testEnv) removeNamespace(t *testing.T, ns string) {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), time.Minute)
	defer cancel()
	c, err := client.New(e.address)
	if err != nil {
		t.Errorf("clean up namespace %s: %v", ns, err)
		return
	}
	defer c.Close()
	cs, err := c.Containers(ctx)
	if err != nil {
		t.Errorf("clean up namespace %s: %v", ns, err)
		return
	}
	for _, ct := range cs {
		if task, err := ct.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				t.Errorf("clean up task %s: %v", ct.ID(), err)
			}
		}
		if err := ct.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			t.Errorf("clean up container %s: %v", ct.ID(), err)
		}
	}
}

// snapshots lists the snapshot keys of the runtime's namespace.
func (r *testRuntime) snapshots(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), r.cfg.Namespace), time.Minute)
	defer cancel()
	c, err := client.New(r.env.address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var keys []string
	err = c.SnapshotService(containerd.DefaultSnapshotter).Walk(ctx, func(_ context.Context, i snapshots.Info) error {
		keys = append(keys, i.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// cgroupControllers are the v1 hierarchies runc places a container in.
var cgroupControllers = []string{"memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "devices", "freezer", "systemd", "unified"}

// removeCgroup kills what still runs in cgroup rel (relative to each
// hierarchy's root) and removes it, depth first, in every hierarchy.
func removeCgroup(rel string) {
	for _, ctl := range cgroupControllers {
		root := filepath.Join("/sys/fs/cgroup", ctl, rel)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if b, err := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs")); err == nil {
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
			for range 50 {
				if err := os.Remove(dirs[i]); err == nil || errors.Is(err, os.ErrNotExist) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// sweepStaleRuns removes what runs of this test whose process died left
// behind: shims, container processes, mounts, cgroups and directories.
func sweepStaleRuns() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), runPrefix+"*"))
	for _, d := range dirs {
		owner, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(owner)))
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue // still alive (or not ours to judge)
		}
		cleanRun(d, strconv.Itoa(pid))
	}
}

// removeStaleNetNS deletes the network namespaces a run owned by owner
// created and left.
func removeStaleNetNS(owner string) {
	names, _ := filepath.Glob("/var/run/netns/" + runPrefix + owner + "-*")
	for _, n := range names {
		_ = exec.Command("ip", "netns", "delete", filepath.Base(n)).Run()
	}
}

// cleanRun removes every trace of the run owned by pid owner with
// directory dir: shims started for its daemon, container processes in its
// cgroups, mounts under its directory, the cgroups and the directory.
func cleanRun(dir, owner string) {
	if dir == "" {
		return
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmdline := string(b)
		if strings.Contains(cmdline, "containerd-shim") && strings.Contains(cmdline, dir) {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	removeCgroup(runPrefix + owner)
	removeStaleNetNS(owner)
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		lines := strings.Split(string(b), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			f := strings.Fields(lines[i])
			if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
				_ = syscall.Unmount(f[4], syscall.MNT_DETACH)
			}
		}
	}
	_ = os.RemoveAll(dir)
}

// waitFor polls cond until it holds or a minute passes; the deadline only
// stops a broken test from hanging, no assertion depends on timing.
func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nextExit returns the next exit event for id, skipping others.
func nextExit(t *testing.T, rt runtime.Runtime, id string) runtime.ExitEvent {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case ev, ok := <-rt.Events():
			if !ok {
				t.Fatalf("events closed before %s exited", id)
			}
			if ev.ID == id {
				return ev
			}
		case <-timeout:
			t.Fatalf("no exit event for %s", id)
		}
	}
}

func meta(name string) runtime.Meta {
	return runtime.Meta{PodNamespace: "default", PodName: name, PodUID: "uid-" + name, ContainerName: "main"}
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func prereqBinary(t *testing.T, names ...string) { t.Helper(); prereq.Binary(t, names...) }

// newNetNS creates a named network namespace for one test, as the pod
// network would, and deletes it afterwards.
func newNetNS(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("%s%s-%d", runPrefix, runOwner, testSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	return filepath.Join("/var/run/netns", name)
}
