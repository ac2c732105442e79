// Package containerd implements runtime.Runtime on containerd, the runtime
// every berth node image carries (a static containerd v2 with runc), and
// also Debian's containerd 1.6 daemon used in development.
//
// A Runtime is one long-lived client in one containerd namespace ("berth"
// unless configured), with a timeout on every call:
//
//	rt, err := containerd.New(ctx, containerd.Config{
//		Address:      "/run/berth/containerd/containerd.sock",
//		CgroupParent: "/berth",
//	})
//	defer rt.Close()
//	img, err := rt.PullImage(ctx, "registry:5000/web:v1", runtime.PullOptions{})
//	id, err := runtime.RunContainer(ctx, rt, runtime.ContainerSpec{...})
//	for ev := range rt.Events() { ... } // exits, until Close
//
// # Containers outlive the agent
//
// Everything the agent needs to find its containers again lives in
// containerd: the pod's identity, the log path, the start time and whether
// the kernel's OOM killer struck are container labels. New re-attaches to
// every task that is still running (task Wait, as nomad-driver-containerd
// recovers), so their exits reach Events; nothing is restarted. A task
// that exited while no agent watched stays in containerd, stopped, and
// ListContainers reports it Exited with its code.
//
// # Logs
//
// The shim writes a task's stdout and stderr into two FIFOs (under
// Config.FIFODir, at a path fixed by the container ID), and the Runtime
// copies both into the container's log file, rotating it by size between
// writes: past Config.LogMaxBytes the file becomes LOG.1 (LOG.1 becomes
// LOG.2, and so on, keeping LogMaxFiles files in all) and a new LOG is
// begun, so rotation loses nothing and no file grows past the limit by
// more than one write. An exit is reported only once the task's last
// output is in the log.
//
// containerd's own file:// log URI (cio.LogFile), where the shim writes the
// file itself, was used first and dropped: when stdout and stderr share
// the file the shim closes it as soon as stdout reaches its end, and
// whatever stderr still had in flight is lost — typically the last lines a
// crashing program printed, the ones a user needs most (containerd 1.6 and
// 2.x alike; TestIntegrationNoOutputIsLostWhenAContainerExits shows it).
// The price of copying in the agent: while no agent runs, the FIFOs
// buffer the output (a pipe's worth, 64 KiB, per stream, plus the task's
// own pipe), after which the task's writes wait until an agent attaches
// again, as they would for Docker with live-restore or containerd's CRI
// plugin. A restarted agent attaches to the FIFOs of every running task
// and resumes the copy where it stopped.
//
// # Cgroups
//
// Every container's cgroup is <CgroupParent>/<container ID> (cgroupfs paths;
// cgroup v1 on the development kernel, v2 where the node has it). Several
// berth nodes sharing one kernel, as test hosts do, must have distinct
// parents.
//
// This package must never touch containers outside its namespace, never
// remove anything it did not create, and never log secrets (registry
// passwords are only handed to the resolver).
package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	clog "github.com/containerd/log"
	"github.com/sirupsen/logrus"

	"github.com/berth-io/berth/nodeagent/runtime"
	"github.com/berth-io/berth/nodeagent/runtime/internal/eventq"
)

var _ runtime.Runtime = (*Runtime)(nil)

// Defaults for the zero fields of Config.
const (
	DefaultAddress      = "/run/containerd/containerd.sock"
	DefaultNamespace    = "berth"
	DefaultCgroupParent = "/berth"
	DefaultSnapshotter  = "overlayfs"
	DefaultRuntimeName  = "io.containerd.runc.v2"
	DefaultFIFODir      = "/run/berth/fifo"
	DefaultCallTimeout  = 30 * time.Second
	DefaultPullTimeout  = 10 * time.Minute
	DefaultLogMaxBytes  = 10 << 20
	DefaultLogMaxFiles  = 3
)

// MinMemoryBytes is the smallest memory limit CreateContainer accepts: below
// it runc cannot even start the container's first process (Docker draws the
// same line at 6 MB).
const MinMemoryBytes = 6 << 20

// Config says which containerd to use and how. Zero fields take the
// Default* values.
type Config struct {
	// Address is containerd's gRPC socket.
	Address string
	// Namespace is the containerd namespace holding this node's containers
	// and images; the Runtime never looks outside it.
	Namespace string
	// CgroupParent is the cgroup every container's cgroup sits under,
	// e.g. "/berth". Nodes sharing one kernel need distinct parents.
	CgroupParent string
	// Snapshotter unpacks images and holds root filesystems.
	Snapshotter string
	// RuntimeName is containerd's runtime (shim) for tasks.
	RuntimeName string
	// FIFODir holds the FIFOs that carry containers' and Exec processes'
	// output; created when missing. It must outlive an agent restart
	// (a tmpfs such as /run is right: tasks do not outlive a reboot).
	FIFODir string
	// CallTimeout bounds every call but pulls and imports.
	CallTimeout time.Duration
	// PullTimeout bounds PullImage and ImportArchive.
	PullTimeout time.Duration
	// LogMaxBytes is the size a container's log file is rotated at.
	LogMaxBytes int64
	// LogMaxFiles is how many files of a container's log are kept,
	// counting the one being written (so at least 1).
	LogMaxFiles int
	// Logger receives reports of background trouble (a task watch that had
	// to reconnect, output that could not be written). Nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Address, DefaultAddress)
	def(&c.Namespace, DefaultNamespace)
	def(&c.CgroupParent, DefaultCgroupParent)
	def(&c.Snapshotter, DefaultSnapshotter)
	def(&c.RuntimeName, DefaultRuntimeName)
	def(&c.FIFODir, DefaultFIFODir)
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.PullTimeout <= 0 {
		c.PullTimeout = DefaultPullTimeout
	}
	if c.LogMaxBytes <= 0 {
		c.LogMaxBytes = DefaultLogMaxBytes
	}
	if c.LogMaxFiles <= 0 {
		c.LogMaxFiles = DefaultLogMaxFiles
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Runtime is runtime.Runtime on containerd. Create it with New; it is safe
// for concurrent use.
type Runtime struct {
	cfg    Config
	client *client.Client
	events *eventq.Queue

	base   context.Context // namespaced, lives until Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	watching map[string]bool    // container IDs whose task is watched
	ios      map[string]*taskIO // container ID -> its running task's output
	closed   bool
}

// New connects to containerd, checks that it answers and re-attaches to
// every running task in the namespace (its exit and its output). ctx
// bounds only the connection and the adoption.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	cfg = cfg.withDefaults()
	if cfg.LogMaxFiles < 1 {
		return nil, fmt.Errorf("new containerd runtime: LogMaxFiles must be at least 1")
	}
	c, err := client.New(cfg.Address,
		client.WithDefaultNamespace(cfg.Namespace),
		client.WithDefaultRuntime(cfg.RuntimeName),
		client.WithTimeout(cfg.CallTimeout))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", cfg.Address, err)
	}
	base, cancel := context.WithCancel(quiet(namespaces.WithNamespace(context.Background(), cfg.Namespace)))
	r := &Runtime{
		cfg: cfg, client: c, events: eventq.New(), base: base, cancel: cancel,
		watching: map[string]bool{}, ios: map[string]*taskIO{},
	}
	if _, err := r.Version(ctx); err != nil {
		r.Close()
		return nil, err
	}
	if err := r.adopt(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// call returns a namespaced context bounded by the call timeout and by Close.
func (r *Runtime) call(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx = quiet(namespaces.WithNamespace(ctx, r.cfg.Namespace))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	stop := context.AfterFunc(r.base, cancel)
	return ctx, func() { stop(); cancel() }
}

// silent discards what the containerd client library would otherwise log
// to the process's stderr (through logrus): a library never logs.
var silent = func() *clog.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.PanicLevel)
	return logrus.NewEntry(l)
}()

// quiet makes the containerd client log nothing for calls under ctx.
func quiet(ctx context.Context) context.Context { return clog.WithLogger(ctx, silent) }

// open fails once the runtime is closed.
func (r *Runtime) open(op, subject string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("%s %s: %w", op, subject, runtime.ErrClosed)
	}
	return nil
}

// Version implements runtime.Runtime.
func (r *Runtime) Version(ctx context.Context) (runtime.Version, error) {
	if err := r.open("containerd", "version"); err != nil {
		return runtime.Version{}, err
	}
	ctx, cancel := r.call(ctx, r.cfg.CallTimeout)
	defer cancel()
	v, err := r.client.Version(ctx)
	if err != nil {
		return runtime.Version{}, fmt.Errorf("containerd version at %s: %w", r.cfg.Address, err)
	}
	return runtime.Version{Name: "containerd", Version: v.Version, Revision: v.Revision}, nil
}

// Events implements runtime.Runtime.
func (r *Runtime) Events() <-chan runtime.ExitEvent { return r.events.C() }

// Close implements runtime.Runtime: it stops the task watches and the
// copying of output, closes Events and the connection. Containers keep
// running; their output waits in the FIFOs for the next Runtime.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	// Running tasks keep writing into their FIFOs; the next Runtime
	// attaches to them.
	r.mu.Lock()
	ios := r.ios
	r.ios = map[string]*taskIO{}
	r.mu.Unlock()
	for _, t := range ios {
		t.close()
	}
	r.events.Close()
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("close containerd client: %w", err)
	}
	return nil
}

// Labels berth stores on every container it creates.
const (
	labelManaged      = "io.berth.managed"
	labelPodNamespace = "io.berth.pod.namespace"
	labelPodName      = "io.berth.pod.name"
	labelPodUID       = "io.berth.pod.uid"
	labelContainer    = "io.berth.container.name"
	labelRestartCount = "io.berth.container.restart-count"
	labelLogPath      = "io.berth.log-path"
	labelImageDigest  = "io.berth.image.digest"
	labelStartedAt    = "io.berth.started-at"
	labelOOMKilled    = "io.berth.oom-killed"

	reservedPrefix    = "io.berth."
	containerdPrefix  = "io.containerd."
	timeLabelFormat   = time.RFC3339Nano
	randomIDByteCount = 16
)

// metaLabels turns m into labels.
func metaLabels(m runtime.Meta) map[string]string {
	return map[string]string{
		labelManaged:      "true",
		labelPodNamespace: m.PodNamespace,
		labelPodName:      m.PodName,
		labelPodUID:       m.PodUID,
		labelContainer:    m.ContainerName,
		labelRestartCount: strconv.FormatInt(int64(m.RestartCount), 10),
	}
}

// metaOf reads Meta back from labels.
func metaOf(l map[string]string) runtime.Meta {
	n, _ := strconv.ParseInt(l[labelRestartCount], 10, 32)
	return runtime.Meta{
		PodNamespace:  l[labelPodNamespace],
		PodName:       l[labelPodName],
		PodUID:        l[labelPodUID],
		ContainerName: l[labelContainer],
		RestartCount:  int32(n),
	}
}

// userLabels returns the labels the caller gave, without berth's own or
// containerd's.
func userLabels(l map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range l {
		if !hasPrefix(k, reservedPrefix) && !hasPrefix(k, containerdPrefix) {
			out[k] = v
		}
	}
	return out
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// parseTime reads a time label; zero when absent or malformed.
func parseTime(s string) time.Time {
	t, err := time.Parse(timeLabelFormat, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// newID returns a random container ID: 32 hex digits, valid for containerd
// and as a cgroup name.
func newID() (string, error) {
	b := make([]byte, randomIDByteCount)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make container id: %w", err)
	}
	return hex.EncodeToString(b), nil
}
