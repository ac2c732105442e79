package containerd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-io/berth/nodeagent/runtime"
)

// cpuPeriod is the CFS period CPU limits are expressed in: 100 ms, as
// Kubernetes and Docker use.
const cpuPeriod = 100_000

// CreateContainer implements runtime.Runtime.
func (r *Runtime) CreateContainer(ctx context.Context, spec runtime.ContainerSpec) (string, error) {
	subject := spec.Meta.PodNamespace + "/" + spec.Meta.PodName + "/" + spec.Meta.ContainerName
	if err := r.open("create container", subject); err != nil {
		return "", err
	}
	if err := checkSpec(subject, spec); err != nil {
		return "", err
	}
	imageRef, err := normalize("create container", spec.Image, runtime.ErrContainerCreate)
	if err != nil {
		return "", err
	}
	ctx, cancel := r.call(ctx, r.cfg.CallTimeout)
	defer cancel()
	img, err := r.client.GetImage(ctx, imageRef)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return "", runtime.Errorf("create container", subject, runtime.ErrImageNotFound, runtime.ReasonImageNotFound,
				"image %s is not on the node: pull or import it first", spec.Image)
		}
		return "", fmt.Errorf("create container %s: get image %s: %w", subject, spec.Image, err)
	}
	unpacked, err := img.IsUnpacked(ctx, r.cfg.Snapshotter)
	if err != nil {
		return "", fmt.Errorf("create container %s: check image %s is unpacked: %w", subject, spec.Image, err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, r.cfg.Snapshotter); err != nil {
			return "", fmt.Errorf("create container %s: unpack image %s: %w", subject, spec.Image, err)
		}
	}
	id, err := newID()
	if err != nil {
		return "", err
	}
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, metaLabels(spec.Meta))
	labels[labelImageDigest] = img.Target().Digest.String()
	if spec.LogPath != "" {
		labels[labelLogPath] = spec.LogPath
	}
	_, err = r.client.NewContainer(ctx, id,
		client.WithImage(img),
		client.WithImageStopSignal(img, "SIGTERM"),
		client.WithSnapshotter(r.cfg.Snapshotter),
		client.WithNewSnapshot(id, img),
		client.WithRuntime(r.cfg.RuntimeName, nil),
		client.WithNewSpec(r.specOpts(id, img, spec)...),
		client.WithContainerLabels(labels),
	)
	if err != nil {
		// NewContainer leaves no container behind, but the snapshot it
		// prepared first may stay.
		r.removeSnapshot(id)
		return "", classifyCreate("create container", subject, err)
	}
	return id, nil
}

// checkSpec rejects what cannot work before touching containerd.
func checkSpec(subject string, spec runtime.ContainerSpec) error {
	if spec.Image == "" {
		return runtime.Errorf("create container", subject, runtime.ErrContainerCreate, runtime.ReasonCreateContainer, "no image given")
	}
	res := spec.Resources
	switch {
	case res.CPUMillis < 0 || res.CPURequestMillis < 0 || res.MemoryBytes < 0:
		return runtime.Errorf("create container", subject, runtime.ErrResources, runtime.ReasonResources,
			"negative resource limit %+v", res)
	case res.MemoryBytes > 0 && res.MemoryBytes < MinMemoryBytes:
		return runtime.Errorf("create container", subject, runtime.ErrResources, runtime.ReasonResources,
			"memory limit %d bytes is below the %d bytes a container needs to start", res.MemoryBytes, MinMemoryBytes)
	}
	for k := range spec.Labels {
		if hasPrefix(k, reservedPrefix) || hasPrefix(k, containerdPrefix) {
			return runtime.Errorf("create container", subject, runtime.ErrContainerCreate, runtime.ReasonCreateContainer,
				"label %q uses a reserved prefix (%s or %s)", k, reservedPrefix, containerdPrefix)
		}
	}
	for what, p := range map[string]string{"resolv.conf": spec.ResolvConfPath, "hosts file": spec.HostsPath, "network namespace": spec.NetNSPath} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return runtime.Errorf("create container", subject, runtime.ErrContainerCreate, runtime.ReasonCreateContainer,
				"%s: %w", what, err)
		}
	}
	return nil
}

// specOpts builds the OCI spec: the image's config, then the pod's
// overrides, limits, namespaces and mounts.
func (r *Runtime) specOpts(id string, img client.Image, spec runtime.ContainerSpec) []oci.SpecOpts {
	opts := []oci.SpecOpts{oci.WithImageConfigArgs(img, spec.Args)}
	if len(spec.Command) > 0 {
		opts = append(opts, oci.WithProcessArgs(append(append([]string{}, spec.Command...), spec.Args...)...))
	}
	if len(spec.Env) > 0 {
		opts = append(opts, oci.WithEnv(spec.Env))
	}
	if spec.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(spec.WorkingDir))
	}
	if spec.Hostname != "" {
		opts = append(opts, oci.WithHostname(spec.Hostname))
	}
	opts = append(opts, oci.WithCgroup(path.Join(r.cfg.CgroupParent, id)))
	res := spec.Resources
	if res.MemoryBytes > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(res.MemoryBytes)))
	}
	if res.CPUMillis > 0 {
		opts = append(opts, oci.WithCPUCFS(max(res.CPUMillis*cpuPeriod/1000, 1000), cpuPeriod))
	}
	if res.CPURequestMillis > 0 {
		opts = append(opts, oci.WithCPUShares(uint64(max(res.CPURequestMillis*1024/1000, 2))))
	}
	if spec.NetNSPath != "" {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: spec.NetNSPath}))
	}
	var mounts []specs.Mount
	for dst, src := range map[string]string{"/etc/resolv.conf": spec.ResolvConfPath, "/etc/hosts": spec.HostsPath} {
		if src != "" {
			mounts = append(mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "ro"}})
		}
	}
	if len(mounts) > 0 {
		opts = append(opts, oci.WithMounts(mounts))
	}
	return opts
}

// classifyCreate turns a create or start failure into the reason a pod
// reports.
func classifyCreate(op, subject string, err error) error {
	msg := err.Error()
	e := &runtime.Error{Op: op, Subject: subject, Kind: runtime.ErrContainerCreate, Reason: runtime.ReasonCreateContainer, Err: err}
	switch {
	case strings.Contains(msg, "executable file not found"),
		strings.Contains(msg, "exec:") && strings.Contains(msg, "no such file or directory"),
		strings.Contains(msg, "exec format error"):
		e.Reason = runtime.ReasonExecutableNotFound
		e.Err = fmt.Errorf("executable not found in the image (check the command): %w", err)
	case strings.Contains(msg, "cgroup") && (strings.Contains(msg, "limit") || strings.Contains(msg, "cpu") ||
		strings.Contains(msg, "memory") || strings.Contains(msg, "invalid argument") || strings.Contains(msg, "no such file")):
		e.Kind = runtime.ErrResources
		e.Reason = runtime.ReasonResources
	}
	return e
}

// removeSnapshot deletes the root filesystem snapshot of a container that
// could not be created; a missing snapshot is fine.
func (r *Runtime) removeSnapshot(id string) {
	ctx, cancel := r.call(context.Background(), r.cfg.CallTimeout)
	defer cancel()
	err := r.client.SnapshotService(r.cfg.Snapshotter).Remove(ctx, id)
	if err != nil && !errdefs.IsNotFound(err) {
		r.cfg.Logger.Warn("remove snapshot of a container that failed to create", "container", id, "error", err)
	}
}

// load returns container id, or an error matching ErrNotFound.
func (r *Runtime) load(ctx context.Context, op, id string) (client.Container, error) {
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, runtime.Errorf(op, id, runtime.ErrNotFound, runtime.ReasonNotFound, "no such container in namespace %s", r.cfg.Namespace)
		}
		return nil, fmt.Errorf("%s %s: %w", op, id, err)
	}
	return c, nil
}

// StartContainer implements runtime.Runtime. It sets up the wait for the
// exit before starting, so no exit goes unseen. A container whose process
// already runs is left alone; one whose process exited gets a new one.
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	if err := r.open("start container", id); err != nil {
		return err
	}
	ctx, cancel := r.call(ctx, r.cfg.CallTimeout)
	defer cancel()
	c, err := r.load(ctx, "start container", id)
	if err != nil {
		return err
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	if old, err := c.Task(ctx, nil); err == nil {
		st, err := old.Status(ctx)
		if err != nil {
			return fmt.Errorf("start container %s: status of its task: %w", id, err)
		}
		if st.Status == client.Running || st.Status == client.Paused {
			return nil
		}
		if _, err := old.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("start container %s: delete its previous task: %w", id, err)
		}
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("start container %s: look up its task: %w", id, err)
	}
	// The previous run's output is all in the log before this run's.
	r.finishIO(id, nil)
	logPath := labels[labelLogPath]
	creator := cio.NullIO
	var tio *taskIO
	if logPath != "" {
		creator = r.newTaskIO(id, logPath, &tio)
	}
	task, err := c.NewTask(ctx, creator)
	if err != nil {
		if tio != nil {
			r.finishIO(id, tio)
		}
		return classifyCreate("start container", id, err)
	}
	if tio != nil {
		r.keepIO(id, tio)
	}
	// Wait before Start: the exit channel must exist before the process
	// can exit. It lives on the runtime's context, not this call's.
	exitCh, err := task.Wait(r.base)
	if err != nil {
		r.deleteTask(task)
		r.finishIO(id, tio)
		return fmt.Errorf("start container %s: wait for its task: %w", id, err)
	}
	if err := task.Start(ctx); err != nil {
		r.deleteTask(task)
		r.finishIO(id, tio)
		return classifyCreate("start container", id, err)
	}
	startedAt := time.Now().UTC()
	r.watch(id, metaOf(labels), exitCh, tio)
	// The process runs and is watched; a start time that cannot be
	// recorded only leaves StartedAt empty.
	if _, err := c.SetLabels(ctx, map[string]string{labelStartedAt: startedAt.Format(timeLabelFormat)}); err != nil {
		r.cfg.Logger.Warn("record container start time", "container", id, "error", err)
	}
	return nil
}

// deleteTask removes a task that failed to start.
func (r *Runtime) deleteTask(task client.Task) {
	ctx, cancel := r.call(context.Background(), r.cfg.CallTimeout)
	defer cancel()
	if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		r.cfg.Logger.Warn("delete task that failed to start", "container", task.ID(), "error", err)
	}
}

// StopContainer implements runtime.Runtime.
func (r *Runtime) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	if err := r.open("stop container", id); err != nil {
		return err
	}
	ctx, cancel := r.call(ctx, grace+r.cfg.CallTimeout)
	defer cancel()
	c, err := r.load(ctx, "stop container", id)
	if err != nil {
		return err
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop container %s: look up its task: %w", id, err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return fmt.Errorf("stop container %s: status: %w", id, err)
	}
	if st.Status == client.Stopped {
		return nil
	}
	sig, err := client.GetStopSignal(ctx, c, syscall.SIGTERM)
	if err != nil {
		return fmt.Errorf("stop container %s: stop signal: %w", id, err)
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("stop container %s: wait: %w", id, err)
	}
	if err := task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: send %v: %w", id, sig, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case s := <-exitCh:
		if err := s.Error(); err != nil {
			return fmt.Errorf("stop container %s: wait for exit: %w", id, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop container %s: %w", id, ctx.Err())
	case <-timer.C:
	}
	if err := task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: send SIGKILL after %v grace: %w", id, grace, err)
	}
	select {
	case s := <-exitCh:
		if err := s.Error(); err != nil {
			return fmt.Errorf("stop container %s: wait for exit after SIGKILL: %w", id, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop container %s: wait for exit after SIGKILL: %w", id, ctx.Err())
	}
}

// RemoveContainer implements runtime.Runtime.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	if err := r.open("remove container", id); err != nil {
		return err
	}
	ctx, cancel := r.call(ctx, r.cfg.CallTimeout)
	defer cancel()
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		r.finishIO(id, nil)
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	switch {
	case err == nil:
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove container %s: delete task: %w", id, err)
		}
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("remove container %s: look up task: %w", id, err)
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	r.finishIO(id, nil)
	return nil
}

// ContainerStatus implements runtime.Runtime.
func (r *Runtime) ContainerStatus(ctx context.Context, id string) (runtime.State, error) {
	if err := r.open("container status", id); err != nil {
		return runtime.State{}, err
	}
	ctx, cancel := r.call(ctx, r.cfg.CallTimeout)
	defer cancel()
	c, err := r.load(ctx, "container status", id)
	if err != nil {
		return runtime.State{}, err
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		return runtime.State{}, fmt.Errorf("container status %s: %w", id, err)
	}
	return r.state(ctx, c, labels)
}

// state reads the state of c's task, with what labels recorded.
func (r *Runtime) state(ctx context.Context, c client.Container, labels map[string]string) (runtime.State, error) {
	st := runtime.State{
		StartedAt: parseTime(labels[labelStartedAt]),
		OOMKilled: labels[labelOOMKilled] == "true",
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		st.Status = runtime.StatusCreated
		st.StartedAt = time.Time{}
		return st, nil
	}
	if err != nil {
		return runtime.State{}, fmt.Errorf("container status %s: look up task: %w", c.ID(), err)
	}
	ts, err := task.Status(ctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			st.Status = runtime.StatusCreated
			return st, nil
		}
		return runtime.State{}, fmt.Errorf("container status %s: %w", c.ID(), err)
	}
	switch ts.Status {
	case client.Created:
		st.Status = runtime.StatusCreated
		st.StartedAt = time.Time{}
	case client.Running, client.Paused, client.Pausing:
		st.Status = runtime.StatusRunning
		st.PID = task.Pid()
	case client.Stopped:
		st.Status = runtime.StatusExited
		st.ExitCode = int32(ts.ExitStatus)
		st.FinishedAt = ts.ExitTime
		if !st.OOMKilled && ts.ExitStatus == 137 {
			st.OOMKilled = r.oomKilled(c.ID())
		}
	default:
		st.Status = runtime.StatusUnknown
	}
	return st, nil
}

// ListContainers implements runtime.Runtime: the containers berth created
// in this namespace, with their state.
func (r *Runtime) ListContainers(ctx context.Context) ([]runtime.ContainerInfo, error) {
	if err := r.open("list containers", "in "+r.cfg.Namespace); err != nil {
		return nil, err
	}
	ctx, cancel := r.call(ctx, r.cfg.CallTimeout)
	defer cancel()
	return r.list(ctx)
}

func (r *Runtime) list(ctx context.Context) ([]runtime.ContainerInfo, error) {
	cs, err := r.client.Containers(ctx, fmt.Sprintf("labels.%q==true", labelManaged))
	if err != nil {
		return nil, fmt.Errorf("list containers in namespace %s: %w", r.cfg.Namespace, err)
	}
	out := make([]runtime.ContainerInfo, 0, len(cs))
	for _, c := range cs {
		info, err := c.Info(ctx)
		if errdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list containers: info of %s: %w", c.ID(), err)
		}
		st, err := r.state(ctx, c, info.Labels)
		if err != nil {
			return nil, fmt.Errorf("list containers: %w", err)
		}
		out = append(out, runtime.ContainerInfo{
			ID:          c.ID(),
			Meta:        metaOf(info.Labels),
			Image:       info.Image,
			ImageDigest: info.Labels[labelImageDigest],
			LogPath:     info.Labels[labelLogPath],
			Labels:      userLabels(info.Labels),
			CreatedAt:   info.CreatedAt,
			State:       st,
		})
	}
	return out, nil
}

// errExecNotRunning says Exec found no running process to join.
var errExecNotRunning = errors.New("the container does not run")
