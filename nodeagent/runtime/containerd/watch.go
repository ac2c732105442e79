package containerd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/berth-io/berth/nodeagent/runtime"
)

// Back-off bounds for re-attaching to a task after the connection to
// containerd broke (containerd restarted, say).
const (
	reattachMin = 100 * time.Millisecond
	reattachMax = 5 * time.Second
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// adopt re-attaches to every task still alive in the namespace (after an
// agent restart): to its exit and to its output.
func (r *Runtime) adopt(ctx context.Context) error {
	ctx, cancel := r.call(ctx, r.cfg.CallTimeout)
	defer cancel()
	cs, err := r.client.Containers(ctx, fmt.Sprintf("labels.%q==true", labelManaged))
	if err != nil {
		return fmt.Errorf("adopt containers in namespace %s: %w", r.cfg.Namespace, err)
	}
	for _, c := range cs {
		labels, err := c.Labels(ctx)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("adopt container %s: %w", c.ID(), err)
		}
		task, err := c.Task(ctx, nil)
		if errdefs.IsNotFound(err) {
			continue // created, never started
		}
		if err != nil {
			return fmt.Errorf("adopt container %s: look up task: %w", c.ID(), err)
		}
		st, err := task.Status(ctx)
		if err != nil {
			return fmt.Errorf("adopt container %s: task status: %w", c.ID(), err)
		}
		if st.Status == client.Stopped {
			continue // exited while nobody watched: ListContainers reports it
		}
		var tio *taskIO
		if p := labels[labelLogPath]; p != "" {
			// Take over copying the task's output into its log; what it
			// wrote while no agent read is waiting in the FIFOs.
			// A task whose output cannot be taken over still runs and is
			// still watched: losing its log is better than losing it.
			if _, err := c.Task(ctx, r.logIO(c.ID(), p, &tio)); err != nil {
				r.cfg.Logger.Warn("adopt container: its output is not copied to its log", "container", c.ID(), "error", err)
				tio = nil
			}
			if tio != nil {
				r.keepIO(c.ID(), tio)
			}
		}
		exitCh, err := task.Wait(r.base)
		if err != nil {
			return fmt.Errorf("adopt container %s: wait for its task: %w", c.ID(), err)
		}
		r.watch(c.ID(), metaOf(labels), exitCh, tio)
	}
	return nil
}

// watch waits, in the background, for container id's task to exit, then
// lets its output (t, if any) reach the log and reports the exit on
// Events. A broken wait (containerd restarted) is re-attached with
// back-off; a task that was deleted meanwhile ends the watch quietly, as
// its container was removed.
func (r *Runtime) watch(id string, meta runtime.Meta, exitCh <-chan client.ExitStatus, t *taskIO) {
	r.mu.Lock()
	if r.closed || r.watching[id] {
		r.mu.Unlock()
		return
	}
	r.watching[id] = true
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.watching, id)
			r.mu.Unlock()
		}()
		delay := reattachMin
		for {
			var s client.ExitStatus
			select {
			case s = <-exitCh:
			case <-r.base.Done():
				return
			}
			if s.Error() == nil {
				r.finishIO(id, t)
				r.exited(id, meta, s)
				return
			}
			if r.base.Err() != nil {
				return
			}
			r.cfg.Logger.Warn("wait for container exit broke; re-attaching", "container", id, "error", s.Error(), "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-r.base.Done():
				return
			}
			delay = min(2*delay, reattachMax)
			ch, gone := r.reattach(id)
			if gone {
				return
			}
			if ch != nil {
				exitCh = ch
			} else {
				exitCh = brokenWait()
			}
		}
	}()
}

// brokenWait stands in for a wait that could not be set up, so the watch
// loop retries.
func brokenWait() <-chan client.ExitStatus {
	ch := make(chan client.ExitStatus, 1)
	ch <- *client.NewExitStatus(client.UnknownExitStatus, time.Time{}, fmt.Errorf("could not wait for the task"))
	return ch
}

// reattach waits anew for container id's task; gone is true when the
// container or its task no longer exists.
func (r *Runtime) reattach(id string) (ch <-chan client.ExitStatus, gone bool) {
	ctx, cancel := r.call(context.Background(), r.cfg.CallTimeout)
	defer cancel()
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil, true
	}
	if err != nil {
		return nil, false
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil, true
	}
	if err != nil {
		return nil, false
	}
	ch, err = task.Wait(r.base)
	if err != nil {
		return nil, false
	}
	return ch, false
}

// exited records an exit (whether the OOM killer caused it) and reports it.
func (r *Runtime) exited(id string, meta runtime.Meta, s client.ExitStatus) {
	ev := runtime.ExitEvent{ID: id, Meta: meta, ExitCode: int32(s.ExitCode()), ExitedAt: s.ExitTime()}
	if ev.ExitCode == 137 && r.oomKilled(id) {
		ev.OOMKilled = true
		ctx, cancel := r.call(context.Background(), r.cfg.CallTimeout)
		if c, err := r.client.LoadContainer(ctx, id); err == nil {
			if _, err := c.SetLabels(ctx, map[string]string{labelOOMKilled: "true"}); err != nil {
				r.cfg.Logger.Warn("record OOM kill", "container", id, "error", err)
			}
		}
		cancel()
	}
	r.events.Push(ev)
}

// oomKilled reports whether the kernel's OOM killer killed a process in
// container id's cgroup, while that cgroup still exists.
func (r *Runtime) oomKilled(id string) bool {
	n, ok := oomKillCount(cgroupRoot, filepath.Join(r.cfg.CgroupParent, id))
	return ok && n > 0
}

// oomKillCount reads the OOM kill counter of cgroup path under root: from
// memory.events on cgroup v2, from memory.oom_control on v1.
func oomKillCount(root, path string) (int64, bool) {
	candidates := []string{
		filepath.Join(root, path, "memory.events"),
		filepath.Join(root, "memory", path, "memory.oom_control"),
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
		candidates[0], candidates[1] = candidates[1], candidates[0]
	}
	for _, p := range candidates {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			k, v, ok := bytes.Cut(sc.Bytes(), []byte(" "))
			if ok && string(k) == "oom_kill" {
				n, err := strconv.ParseInt(string(v), 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}
