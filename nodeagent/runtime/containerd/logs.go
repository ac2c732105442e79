package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
)

// logFile is a container's log as the agent writes it: stdout and stderr
// both append to one file, one write at a time, and the file is rotated by
// size between writes, so rotation never loses or splits a write.
type logFile struct {
	path     string
	maxBytes int64
	maxFiles int

	mu     sync.Mutex
	f      *os.File // nil between a failed rotation and the next write
	size   int64
	closed bool
	err    error // the first error that cost output or rotation
}

// openLog opens (appending to) the log at path, creating its directory.
func openLog(path string, maxBytes int64, maxFiles int) (*logFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	l := &logFile{path: path, maxBytes: maxBytes, maxFiles: maxFiles}
	if err := l.reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *logFile) reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log %s: %w", l.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log %s: %w", l.path, err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write appends p, first rotating the file when p would take it past
// maxBytes (a single write larger than maxBytes gets a file of its own).
// A log that cannot be rotated keeps growing; one that cannot be written
// swallows output rather than blocking the container behind it. The
// first error is kept for Err.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(p), nil
	}
	if l.f != nil && l.size > 0 && l.size+int64(len(p)) > l.maxBytes {
		if err := l.rotate(); err != nil {
			l.fail(err)
		}
	}
	if l.f == nil {
		if err := l.reopen(); err != nil {
			l.fail(err)
			return len(p), nil
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	if err != nil {
		l.fail(fmt.Errorf("write log %s: %w", l.path, err))
	}
	return len(p), nil
}

func (l *logFile) fail(err error) {
	if l.err == nil {
		l.err = err
	}
}

// Err returns the first error that cost output or a rotation, if any.
func (l *logFile) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// rotate closes the current file, shifts path.1 … path.<maxFiles-2> up by
// one (dropping the oldest), renames path to path.1 and opens a new path;
// with maxFiles 1 the file is only emptied.
func (l *logFile) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("rotate log %s: %w", l.path, err)
	}
	l.f = nil
	if l.maxFiles > 1 {
		oldest := fmt.Sprintf("%s.%d", l.path, l.maxFiles-1)
		if err := os.Remove(oldest); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate log %s: %w", l.path, err)
		}
		for i := l.maxFiles - 2; i >= 1; i-- {
			from, to := fmt.Sprintf("%s.%d", l.path, i), fmt.Sprintf("%s.%d", l.path, i+1)
			if err := os.Rename(from, to); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("rotate log %s: %w", l.path, err)
			}
		}
		if err := os.Rename(l.path, l.path+".1"); err != nil {
			return fmt.Errorf("rotate log %s: %w", l.path, err)
		}
	} else if err := os.Truncate(l.path, 0); err != nil {
		return fmt.Errorf("rotate log %s: %w", l.path, err)
	}
	return l.reopen()
}

// Close closes the file; later writes are dropped.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// maxPartialLine is how much of a line without its end a stream holds back
// before writing it anyway.
const maxPartialLine = 16 << 10

// lineWriter is one stream (stdout or stderr) into a shared log: it passes
// on whole lines only, so the two streams interleave line by line however
// the pipes cut their output, and holds back the unfinished end of the
// last line until it is finished, passes maxPartialLine or is flushed.
type lineWriter struct {
	log *logFile

	mu      sync.Mutex
	partial []byte
}

// Write implements io.Writer; it never fails (see logFile.Write).
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := bytes.LastIndexByte(p, '\n')
	if i < 0 {
		w.partial = append(w.partial, p...)
		if len(w.partial) >= maxPartialLine {
			w.flushLocked()
		}
		return len(p), nil
	}
	if len(w.partial) > 0 {
		w.partial = append(w.partial, p[:i+1]...)
		w.flushLocked()
	} else {
		w.log.Write(p[:i+1])
	}
	w.partial = append(w.partial, p[i+1:]...)
	return len(p), nil
}

// Flush writes out an unfinished line.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
}

func (w *lineWriter) flushLocked() {
	if len(w.partial) > 0 {
		w.log.Write(w.partial)
		w.partial = w.partial[:0]
	}
}

// taskIO is the agent's end of a running task's output: the FIFOs the
// shim writes the task's stdout and stderr into, the copy from them into
// the log, and the log.
type taskIO struct {
	io       cio.IO
	log      *logFile
	out, err *lineWriter
	copying  sync.WaitGroup // the two copies, until the shim closes its ends
	once     sync.Once      // finishing
}

// copyBufferBytes is each stream's copy buffer: a FIFO hands over at most
// a pipe's worth at a time, and a node may run hundreds of containers.
const copyBufferBytes = 8 << 10

// copy moves one stream from its FIFO into the log until the FIFO ends (the
// shim closed it: the task is gone) or is closed here.
func (t *taskIO) copy(w *lineWriter, r io.Reader) {
	defer t.copying.Done()
	io.CopyBuffer(w, r, make([]byte, copyBufferBytes))
}

// ioWaitLimit bounds how long an exit waits for the last output to be
// copied. The shim closes the FIFOs once the task's pipes are drained,
// which is immediate unless a process outside the task still holds them.
const ioWaitLimit = 5 * time.Second

// fifoDir is where container id's output FIFOs live. The path is fixed,
// so a restarted agent, and the removal of the container, find them; the
// containerd namespace in it keeps runtimes sharing a FIFODir apart.
func (r *Runtime) fifoDir(id string) string {
	return filepath.Join(r.cfg.FIFODir, "containers", r.cfg.Namespace, id)
}

// logIO returns the attach function behind both a new task's IO
// (newTaskIO) and an adopted task's (adopt hands it to Task): it opens the
// FIFOs in fifoDir(id) and copies what comes out of them into the log at
// logPath. The IO it made is stored in *made.
func (r *Runtime) logIO(id, logPath string, made **taskIO) func(*cio.FIFOSet) (cio.IO, error) {
	return func(fifos *cio.FIFOSet) (cio.IO, error) {
		if want := filepath.Join(r.fifoDir(id), "stdout"); fifos.Stdout != want {
			// Not FIFOs this Runtime made (a task started with another
			// kind of IO): attaching would create stray files.
			return nil, fmt.Errorf("output of %s goes to %q, not to %s", id, fifos.Stdout, want)
		}
		log, err := openLog(logPath, r.cfg.LogMaxBytes, r.cfg.LogMaxFiles)
		if err != nil {
			return nil, err
		}
		// The FIFO files outlive the IO (closing it must not remove them:
		// an agent that stops leaves running tasks writing into them);
		// finishIO removes them once the task has ended.
		fifos = cio.NewFIFOSet(fifos.Config, nil)
		fifos.Stdin = ""
		d, err := cio.NewDirectIO(context.Background(), fifos)
		if err != nil {
			log.Close()
			return nil, err
		}
		t := &taskIO{io: d, log: log, out: &lineWriter{log: log}, err: &lineWriter{log: log}}
		t.copying.Add(2)
		go t.copy(t.out, d.Stdout)
		go t.copy(t.err, d.Stderr)
		*made = t
		return d, nil
	}
}

// newTaskIO is the cio.Creator for a new task of container id.
func (r *Runtime) newTaskIO(id, logPath string, made **taskIO) cio.Creator {
	return func(string) (cio.IO, error) {
		dir := r.fifoDir(id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("fifo directory for %s: %w", id, err)
		}
		return r.logIO(id, logPath, made)(cio.NewFIFOSet(cio.Config{
			Stdout: filepath.Join(dir, "stdout"),
			Stderr: filepath.Join(dir, "stderr"),
		}, nil))
	}
}

// keepIO records container id's IO, so the task's exit, the container's
// removal, the next start and the Runtime's Close find it.
func (r *Runtime) keepIO(id string, t *taskIO) {
	r.mu.Lock()
	r.ios[id] = t
	r.mu.Unlock()
}

// finishIO waits (up to ioWaitLimit) for the last of a task's output to
// reach its log, then closes the log and removes the FIFOs. t is the IO of
// the task that ended, or nil for whatever container id has (nothing, for
// a container whose task ended while no agent watched: then only leftover
// FIFOs go). Concurrent calls for one IO all return once it is finished,
// so a restart never begins while the previous run's output is still
// being copied.
func (r *Runtime) finishIO(id string, t *taskIO) {
	if t == nil {
		r.mu.Lock()
		t = r.ios[id]
		r.mu.Unlock()
	}
	if t == nil {
		if err := os.RemoveAll(r.fifoDir(id)); err != nil {
			r.cfg.Logger.Warn("remove container FIFOs", "container", id, "error", err)
		}
		return
	}
	t.once.Do(func() {
		done := make(chan struct{})
		go func() { t.copying.Wait(); close(done) }()
		timer := time.NewTimer(ioWaitLimit)
		select {
		case <-done:
		case <-timer.C:
			r.cfg.Logger.Warn("container output still open after its task ended; closing its log", "container", id)
		}
		timer.Stop()
		t.close()
		if err := t.log.Err(); err != nil {
			r.cfg.Logger.Warn("container output lost", "container", id, "error", err)
		}
		if err := os.RemoveAll(r.fifoDir(id)); err != nil {
			r.cfg.Logger.Warn("remove container FIFOs", "container", id, "error", err)
		}
	})
	r.mu.Lock()
	if r.ios[id] == t {
		delete(r.ios, id)
	}
	r.mu.Unlock()
}

// close stops copying (the FIFO files stay, for a later agent to attach
// to) and closes the log.
func (t *taskIO) close() {
	t.io.Cancel()
	t.io.Close()
	// Closing the FIFOs ends the copies; let them hand over what they read.
	stopped := make(chan struct{})
	go func() { t.copying.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(time.Second):
	}
	t.out.Flush()
	t.err.Flush()
	t.log.Close()
}
