// Package fake is an in-memory runtime.Runtime for the node agent's unit
// tests: no containerd, no root, no processes. Containers change state only
// when the test says so (Exit, OOMKill) or when the agent calls the
// interface, so tests are deterministic and never sleep.
//
// Knobs make the runtime misbehave the way a real node can: a pull that
// fails (FailPull), an image that is missing, a start that fails
// (FailStart), a container that exits at once (ExitOnStart), a process that
// ignores SIGTERM (IgnoreTerm), an exec probe's answer (SetExec). Reopen
// models an agent restart: a new Runtime over the same containers.
//
// It must never be used outside tests, and it never starts goroutines
// beyond the one that delivers Events.
package fake

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/berth-io/berth/nodeagent/runtime"
	"github.com/berth-io/berth/nodeagent/runtime/internal/eventq"
)

var _ runtime.Runtime = (*Runtime)(nil)

// Runtime is an in-memory runtime.Runtime. The zero value is not usable:
// call New.
type Runtime struct {
	n      *node
	events *eventq.Queue
	closed bool // guarded by n.mu
}

// node is the state every Runtime from one New shares, like the containerd
// daemon outliving agent restarts.
type node struct {
	mu         sync.Mutex
	now        func() time.Time
	registry   map[string]runtime.Image // pullable refs
	images     map[string]runtime.Image // on the node
	containers map[string]*container
	nextID     int
	failPull   map[string]error
	failCreate map[string]error // by image ref
	failStart  map[string]error // by image ref
	exitOn     map[string]int32 // by image ref
	ignoreTerm map[string]bool  // by image ref
	execFn     func(id string, cmd []string) (int, []byte, error)
	calls      []string
	stops      []StopCall
	handles    []*Runtime
	version    runtime.Version
}

type container struct {
	id      string
	spec    runtime.ContainerSpec
	digest  string
	created time.Time
	state   runtime.State
	started bool
}

// StopCall records one StopContainer call, for tests asserting the grace
// period the agent used.
type StopCall struct {
	// ID of the container.
	ID string
	// Grace the agent gave.
	Grace time.Duration
	// Killed is true when SIGTERM was ignored and SIGKILL followed.
	Killed bool
}

// New returns an empty fake runtime: no images, no containers.
func New() *Runtime {
	n := &node{
		now:        time.Now,
		registry:   map[string]runtime.Image{},
		images:     map[string]runtime.Image{},
		containers: map[string]*container{},
		failPull:   map[string]error{},
		failCreate: map[string]error{},
		failStart:  map[string]error{},
		exitOn:     map[string]int32{},
		ignoreTerm: map[string]bool{},
		version:    runtime.Version{Name: "fake", Version: "v0.0.0"},
	}
	r := &Runtime{n: n, events: eventq.New()}
	n.handles = append(n.handles, r)
	return r
}

// Reopen returns a new Runtime over the same images and containers, as an
// agent gets after it restarts; close the old one first, as the old agent
// process would be gone. Running containers keep running, and their exits
// reach the new Runtime's Events.
func (r *Runtime) Reopen() *Runtime {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	nr := &Runtime{n: r.n, events: eventq.New()}
	r.n.handles = append(r.n.handles, nr)
	return nr
}

// SetClock makes the fake read time from now, for tests that check
// StartedAt and FinishedAt.
func (r *Runtime) SetClock(now func() time.Time) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	r.n.now = now
}

// norm returns ref in the normalised form a real runtime uses, or ref
// itself when it does not parse (PullImage and CreateContainer reject it).
func norm(ref string) string {
	if n, err := runtime.NormalizeImageRef(ref); err == nil {
		return n
	}
	return ref
}

// invalidRef is the error a real runtime returns for a reference that
// does not parse.
func invalidRef(op, ref string, kind error) error {
	if _, err := runtime.NormalizeImageRef(ref); err != nil {
		return &runtime.Error{Op: op, Subject: ref, Kind: kind, Reason: runtime.ReasonInvalidImageName, Err: err}
	}
	return nil
}

// digestOf makes a stable fake digest for ref.
func digestOf(ref string) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(ref)))
}

// AddRegistryImage makes ref pullable; it returns the digest PullImage will
// report.
func (r *Runtime) AddRegistryImage(ref string) string {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	ref = norm(ref)
	img := runtime.Image{Ref: ref, Digest: digestOf(ref)}
	r.n.registry[ref] = img
	return img.Digest
}

// AddImage puts ref on the node as if imported; it returns its digest.
func (r *Runtime) AddImage(ref string) string {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	ref = norm(ref)
	img := runtime.Image{Ref: ref, Digest: digestOf(ref)}
	r.n.images[ref] = img
	return img.Digest
}

// FailPull makes every pull of ref fail with err until called again with a
// nil err. Pass a *runtime.Error (see PullError) to test the agent's
// reasons.
func (r *Runtime) FailPull(ref string, err error) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	setOrDelete(r.n.failPull, norm(ref), err)
}

// PullError is the error a real runtime returns when pulling ref fails for
// reason; pass it to FailPull.
func PullError(ref string, reason runtime.Reason) error {
	cause := fmt.Errorf("fake registry says %s", reason)
	if reason == runtime.ReasonImageNotFound {
		cause = fmt.Errorf("%w: %w", runtime.ErrImageNotFound, cause)
	}
	return &runtime.Error{Op: "pull image", Subject: ref, Kind: runtime.ErrImagePull, Reason: reason, Err: cause}
}

// FailCreate makes CreateContainer fail with err for containers of image
// until called again with a nil err.
func (r *Runtime) FailCreate(image string, err error) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	setOrDelete(r.n.failCreate, norm(image), err)
}

// FailStart makes StartContainer fail with err for containers of image
// until called again with a nil err; ExecutableNotFound builds the error a
// missing command gives.
func (r *Runtime) FailStart(image string, err error) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	setOrDelete(r.n.failStart, norm(image), err)
}

// ExecutableNotFound is the error a real runtime returns from
// StartContainer when the command does not exist in the image.
func ExecutableNotFound(id, command string) error {
	return runtime.Errorf("start container", id, runtime.ErrContainerCreate, runtime.ReasonExecutableNotFound,
		"executable %q not found in the image", command)
}

// ExitOnStart makes containers of image exit with code right after they
// start (a crash loop), until ClearExitOnStart.
func (r *Runtime) ExitOnStart(image string, code int32) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	r.n.exitOn[norm(image)] = code
}

// ClearExitOnStart undoes ExitOnStart for image.
func (r *Runtime) ClearExitOnStart(image string) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	delete(r.n.exitOn, norm(image))
}

// IgnoreTerm makes containers of image ignore SIGTERM, so StopContainer
// ends them with SIGKILL (exit code 137) and records Killed.
func (r *Runtime) IgnoreTerm(image string, ignore bool) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	if ignore {
		r.n.ignoreTerm[norm(image)] = true
	} else {
		delete(r.n.ignoreTerm, norm(image))
	}
}

// SetExec decides what Exec returns; by default every command exits 0 with
// no output.
func (r *Runtime) SetExec(fn func(id string, cmd []string) (exitCode int, output []byte, err error)) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	r.n.execFn = fn
}

// Exit makes the running container id exit with code now, as if its
// process ended; Events reports it.
func (r *Runtime) Exit(id string, code int32) error {
	return r.exit(id, code, false)
}

// OOMKill makes the running container id die as the kernel's OOM killer
// would make it: exit code 137, OOMKilled.
func (r *Runtime) OOMKill(id string) error {
	return r.exit(id, 137, true)
}

func (r *Runtime) exit(id string, code int32, oom bool) error {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	c, ok := r.n.containers[id]
	if !ok {
		return runtime.Errorf("exit container", id, runtime.ErrNotFound, runtime.ReasonNotFound, "no such container")
	}
	if c.state.Status != runtime.StatusRunning {
		return fmt.Errorf("exit container %s: it is %s, not running", id, c.state.Status)
	}
	r.n.exitLocked(c, code, oom)
	return nil
}

// exitLocked ends c's process and tells every open Runtime.
func (n *node) exitLocked(c *container, code int32, oom bool) {
	c.state.Status = runtime.StatusExited
	c.state.PID = 0
	c.state.ExitCode = code
	c.state.FinishedAt = n.now()
	c.state.OOMKilled = oom
	ev := runtime.ExitEvent{ID: c.id, Meta: c.spec.Meta, ExitCode: code, ExitedAt: c.state.FinishedAt, OOMKilled: oom}
	for _, h := range n.handles {
		if !h.closed {
			h.events.Push(ev)
		}
	}
}

// Calls lists the operations the agent performed, in order, each as
// "<operation> <subject>" (e.g. "pull registry:5000/web:v1", "start c1").
func (r *Runtime) Calls() []string {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	return slices.Clone(r.n.calls)
}

// Stops lists the StopContainer calls made, in order.
func (r *Runtime) Stops() []StopCall {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	return slices.Clone(r.n.stops)
}

// Spec returns the spec container id was created with.
func (r *Runtime) Spec(id string) (runtime.ContainerSpec, bool) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	c, ok := r.n.containers[id]
	if !ok {
		return runtime.ContainerSpec{}, false
	}
	return c.spec, true
}

func setOrDelete(m map[string]error, k string, err error) {
	if err == nil {
		delete(m, k)
	} else {
		m[k] = err
	}
}

// begin checks the runtime is open and ctx alive, and records the call.
func (r *Runtime) begin(ctx context.Context, op, subject string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, subject, err)
	}
	if r.closed {
		return fmt.Errorf("%s %s: %w", op, subject, runtime.ErrClosed)
	}
	r.n.calls = append(r.n.calls, op+" "+subject)
	return nil
}

// PullImage implements runtime.Runtime.
func (r *Runtime) PullImage(ctx context.Context, ref string, _ runtime.PullOptions) (runtime.Image, error) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	if err := r.begin(ctx, "pull", ref); err != nil {
		return runtime.Image{}, err
	}
	if err := invalidRef("pull image", ref, runtime.ErrImagePull); err != nil {
		return runtime.Image{}, err
	}
	ref = norm(ref)
	if err := r.n.failPull[ref]; err != nil {
		return runtime.Image{}, err
	}
	img, ok := r.n.registry[ref]
	if !ok {
		return runtime.Image{}, PullError(ref, runtime.ReasonImageNotFound)
	}
	r.n.images[ref] = img
	return img, nil
}

// GetImage implements runtime.Runtime.
func (r *Runtime) GetImage(ctx context.Context, ref string) (runtime.Image, error) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	if err := r.begin(ctx, "get-image", ref); err != nil {
		return runtime.Image{}, err
	}
	if err := invalidRef("get image", ref, runtime.ErrImageNotFound); err != nil {
		return runtime.Image{}, err
	}
	img, ok := r.n.images[norm(ref)]
	if !ok {
		return runtime.Image{}, runtime.Errorf("get image", ref, runtime.ErrImageNotFound, runtime.ReasonImageNotFound, "not on the node")
	}
	return img, nil
}

// ImportArchive implements runtime.Runtime: the fake treats path as the
// reference of one image (e.g. "registry.test/web:v1") and puts it on the
// node.
func (r *Runtime) ImportArchive(ctx context.Context, path string) ([]runtime.Image, error) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	if err := r.begin(ctx, "import", path); err != nil {
		return nil, err
	}
	if err := invalidRef("import image archive", path, runtime.ErrImageNotFound); err != nil {
		return nil, err
	}
	ref := norm(path)
	img := runtime.Image{Ref: ref, Digest: digestOf(ref)}
	r.n.images[ref] = img
	return []runtime.Image{img}, nil
}

// CreateContainer implements runtime.Runtime.
func (r *Runtime) CreateContainer(ctx context.Context, spec runtime.ContainerSpec) (string, error) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	if err := r.begin(ctx, "create", spec.Meta.PodName+"/"+spec.Meta.ContainerName); err != nil {
		return "", err
	}
	if err := invalidRef("create container", spec.Image, runtime.ErrContainerCreate); err != nil {
		return "", err
	}
	spec.Image = norm(spec.Image)
	img, ok := r.n.images[spec.Image]
	if !ok {
		return "", runtime.Errorf("create container", spec.Meta.ContainerName, runtime.ErrImageNotFound,
			runtime.ReasonImageNotFound, "image %s is not on the node", spec.Image)
	}
	if err := r.n.failCreate[spec.Image]; err != nil {
		return "", err
	}
	r.n.nextID++
	id := fmt.Sprintf("fake%06d", r.n.nextID)
	spec.Labels = maps.Clone(spec.Labels)
	r.n.containers[id] = &container{
		id: id, spec: spec, digest: img.Digest, created: r.n.now(),
		state: runtime.State{Status: runtime.StatusCreated},
	}
	return id, nil
}

// StartContainer implements runtime.Runtime.
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	if err := r.begin(ctx, "start", id); err != nil {
		return err
	}
	c, ok := r.n.containers[id]
	if !ok {
		return runtime.Errorf("start container", id, runtime.ErrNotFound, runtime.ReasonNotFound, "no such container")
	}
	if c.state.Status == runtime.StatusRunning {
		return nil
	}
	if err := r.n.failStart[c.spec.Image]; err != nil {
		return err
	}
	c.state = runtime.State{Status: runtime.StatusRunning, PID: uint32(1000 + len(r.n.calls)), StartedAt: r.n.now()}
	c.started = true
	if code, ok := r.n.exitOn[c.spec.Image]; ok {
		r.n.exitLocked(c, code, false)
	}
	return nil
}

// StopContainer implements runtime.Runtime without waiting: a container
// that honours SIGTERM exits 143 (0 would be its own choice, but the fake
// has no process to choose), one that ignores it exits 137.
func (r *Runtime) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	if err := r.begin(ctx, "stop", id); err != nil {
		return err
	}
	c, ok := r.n.containers[id]
	if !ok {
		return runtime.Errorf("stop container", id, runtime.ErrNotFound, runtime.ReasonNotFound, "no such container")
	}
	if c.state.Status != runtime.StatusRunning {
		return nil
	}
	killed := r.n.ignoreTerm[c.spec.Image]
	r.n.stops = append(r.n.stops, StopCall{ID: id, Grace: grace, Killed: killed})
	code := int32(143)
	if killed {
		code = 137
	}
	r.n.exitLocked(c, code, false)
	return nil
}

// RemoveContainer implements runtime.Runtime.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	if err := r.begin(ctx, "remove", id); err != nil {
		return err
	}
	c, ok := r.n.containers[id]
	if !ok {
		return nil
	}
	if c.state.Status == runtime.StatusRunning {
		r.n.exitLocked(c, 137, false)
	}
	delete(r.n.containers, id)
	return nil
}

// ContainerStatus implements runtime.Runtime.
func (r *Runtime) ContainerStatus(ctx context.Context, id string) (runtime.State, error) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	if err := r.begin(ctx, "status", id); err != nil {
		return runtime.State{}, err
	}
	c, ok := r.n.containers[id]
	if !ok {
		return runtime.State{}, runtime.Errorf("container status", id, runtime.ErrNotFound, runtime.ReasonNotFound, "no such container")
	}
	return c.state, nil
}

// ListContainers implements runtime.Runtime, ordered by ID.
func (r *Runtime) ListContainers(ctx context.Context) ([]runtime.ContainerInfo, error) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	if err := r.begin(ctx, "list", "containers"); err != nil {
		return nil, err
	}
	out := make([]runtime.ContainerInfo, 0, len(r.n.containers))
	for _, id := range slices.Sorted(maps.Keys(r.n.containers)) {
		c := r.n.containers[id]
		out = append(out, runtime.ContainerInfo{
			ID: id, Meta: c.spec.Meta, Image: c.spec.Image, ImageDigest: c.digest,
			LogPath: c.spec.LogPath, Labels: maps.Clone(c.spec.Labels), CreatedAt: c.created, State: c.state,
		})
	}
	return out, nil
}

// Exec implements runtime.Runtime through the SetExec function.
func (r *Runtime) Exec(ctx context.Context, id string, cmd []string, _ time.Duration) (int, []byte, error) {
	r.n.mu.Lock()
	if err := r.begin(ctx, "exec", id); err != nil {
		r.n.mu.Unlock()
		return 0, nil, err
	}
	c, ok := r.n.containers[id]
	running := ok && c.state.Status == runtime.StatusRunning
	fn := r.n.execFn
	r.n.mu.Unlock()
	if !ok {
		return 0, nil, runtime.Errorf("exec in container", id, runtime.ErrNotFound, runtime.ReasonNotFound, "no such container")
	}
	if !running {
		return 0, nil, fmt.Errorf("exec in container %s: it does not run", id)
	}
	if fn == nil {
		return 0, nil, nil
	}
	code, out, err := fn(id, slices.Clone(cmd))
	if len(out) > runtime.MaxExecOutput {
		out = out[:runtime.MaxExecOutput]
	}
	return code, out, err
}

// Events implements runtime.Runtime.
func (r *Runtime) Events() <-chan runtime.ExitEvent { return r.events.C() }

// Version implements runtime.Runtime.
func (r *Runtime) Version(ctx context.Context) (runtime.Version, error) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	if err := r.begin(ctx, "version", ""); err != nil {
		return runtime.Version{}, err
	}
	return r.n.version, nil
}

// Close implements runtime.Runtime: containers keep their state, and a
// Runtime from Reopen sees them.
func (r *Runtime) Close() error {
	r.n.mu.Lock()
	r.closed = true
	r.n.mu.Unlock()
	r.events.Close()
	return nil
}
