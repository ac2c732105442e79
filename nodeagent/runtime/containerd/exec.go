package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"

	"github.com/berth-io/berth/nodeagent/runtime"
)

// Exec implements runtime.Runtime: cmd runs in the container's namespaces
// and cgroup with the container's user and environment, without a
// terminal; its stdout and stderr are kept together.
func (r *Runtime) Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (int, []byte, error) {
	if err := r.open("exec in container", id); err != nil {
		return 0, nil, err
	}
	if len(cmd) == 0 {
		return 0, nil, fmt.Errorf("exec in container %s: no command given", id)
	}
	if timeout <= 0 {
		timeout = r.cfg.CallTimeout
	}
	ctx, cancel := r.call(ctx, timeout+r.cfg.CallTimeout)
	defer cancel()
	c, err := r.load(ctx, "exec in container", id)
	if err != nil {
		return 0, nil, err
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return 0, nil, fmt.Errorf("exec in container %s: %w", id, errExecNotRunning)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("exec in container %s: look up task: %w", id, err)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("exec in container %s: read spec: %w", id, err)
	}
	pspec := *spec.Process
	pspec.Args = cmd
	pspec.Terminal = false
	if err := os.MkdirAll(r.cfg.FIFODir, 0o700); err != nil {
		return 0, nil, fmt.Errorf("exec in container %s: fifo directory: %w", id, err)
	}
	execID, err := newID()
	if err != nil {
		return 0, nil, err
	}
	out := &cappedBuffer{max: runtime.MaxExecOutput}
	proc, err := task.Exec(ctx, "exec-"+execID[:12], &pspec,
		cio.NewCreator(cio.WithStreams(nil, out, out), cio.WithFIFODir(r.cfg.FIFODir)))
	if err != nil {
		if errdefs.IsFailedPrecondition(err) || errdefs.IsNotFound(err) {
			return 0, nil, fmt.Errorf("exec in container %s: %w: %w", id, errExecNotRunning, err)
		}
		return 0, nil, fmt.Errorf("exec in container %s: %w", id, err)
	}
	defer func() {
		dctx, dcancel := r.call(context.Background(), r.cfg.CallTimeout)
		defer dcancel()
		if _, err := proc.Delete(dctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			r.cfg.Logger.Warn("delete exec process", "container", id, "error", err)
		}
	}()
	exitCh, err := proc.Wait(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("exec in container %s: wait: %w", id, err)
	}
	if err := proc.Start(ctx); err != nil {
		err = classifyCreate("exec in container", id, err)
		var e *runtime.Error
		if errors.As(err, &e) {
			e.Kind = nil // the container exists; only the command failed
			if e.Reason == runtime.ReasonCreateContainer {
				e.Reason = ""
			}
		}
		return 0, nil, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case s := <-exitCh:
		code, _, err := s.Result()
		if err != nil {
			return 0, nil, fmt.Errorf("exec in container %s: wait: %w", id, err)
		}
		proc.IO().Wait() // all output copied
		return int(code), out.Bytes(), nil
	case <-timer.C:
		if err := proc.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
			return 0, nil, fmt.Errorf("exec in container %s: kill after timeout: %w", id, err)
		}
		select {
		case <-exitCh:
		case <-ctx.Done():
		}
		return 0, out.Bytes(), runtime.Errorf("exec in container", id, runtime.ErrExecTimeout, runtime.ReasonExecTimeout,
			"%v did not finish within %v", cmd, timeout)
	case <-ctx.Done():
		return 0, nil, fmt.Errorf("exec in container %s: %w", id, ctx.Err())
	}
}

// cappedBuffer keeps the first max bytes written to it and accepts the rest
// without keeping it, so a chatty command never blocks or grows the agent.
type cappedBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// Bytes returns a copy of what was kept.
func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
