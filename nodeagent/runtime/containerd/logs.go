package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// rotateLoop checks log sizes every LogRotateInterval until Close.
func (r *Runtime) rotateLoop() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.LogRotateInterval)
	defer t.Stop()
	for {
		select {
		case <-r.base.Done():
			return
		case <-t.C:
			if err := r.RotateLogs(r.base); err != nil && r.base.Err() == nil {
				r.cfg.Logger.Warn("rotate container logs", "error", err)
			}
		}
	}
}

// RotateLogs rotates, now, every container log that has grown past
// LogMaxBytes; the Runtime also does it every LogRotateInterval. It is
// exported for tests and for an agent that wants to rotate before
// reading logs.
func (r *Runtime) RotateLogs(ctx context.Context) error {
	r.mu.Lock()
	paths := make([]string, 0, len(r.logs))
	for _, p := range r.logs {
		paths = append(paths, p)
	}
	r.mu.Unlock()
	var errs []error
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("rotate container logs: %w", err)
		}
		if _, err := rotateFile(p, r.cfg.LogMaxBytes, r.cfg.LogMaxFiles); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rotateFile rotates the log at path once it holds maxBytes or more, keeping
// maxFiles files in all: path.1 is the newest old part, path.<maxFiles-1>
// the oldest; with maxFiles 1 the log is only truncated. The writer (the
// containerd shim) holds path open with O_APPEND, so the file is copied and
// then truncated in place (logrotate's copytruncate) rather than renamed.
// It reports whether it rotated.
func rotateFile(path string, maxBytes int64, maxFiles int) (bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("rotate log %s: %w", path, err)
	}
	if fi.Size() < maxBytes {
		return false, nil
	}
	if maxFiles > 1 {
		oldest := fmt.Sprintf("%s.%d", path, maxFiles-1)
		if err := os.Remove(oldest); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("rotate log %s: %w", path, err)
		}
		for i := maxFiles - 2; i >= 1; i-- {
			from, to := fmt.Sprintf("%s.%d", path, i), fmt.Sprintf("%s.%d", path, i+1)
			if err := os.Rename(from, to); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false, fmt.Errorf("rotate log %s: %w", path, err)
			}
		}
		if err := copyFile(path, path+".1", fi.Mode().Perm()); err != nil {
			return false, fmt.Errorf("rotate log %s: %w", path, err)
		}
	}
	if err := os.Truncate(path, 0); err != nil {
		return false, fmt.Errorf("rotate log %s: truncate: %w", path, err)
	}
	return true, nil
}

// copyFile copies src to dst through a temporary file, so dst is either
// absent or complete.
func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
