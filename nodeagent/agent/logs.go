package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// lastLines returns up to n last lines (at most maxBytes) of a container's
// log, for a terminated container's status message.
func lastLines(path string, n, maxBytes int) string {
	data, err := tailBytes(path, int64(maxBytes)*4)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := string(bytes.Join(lines, []byte("\n")))
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
	}
	return out
}

// tailBytes reads at most max bytes from the end of path.
func tailBytes(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max64(st.Size()-max, 0)
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// logParts lists a container's log files oldest first: the rotated parts
// (LOG.N … LOG.1) then LOG itself.
func logParts(path string) []string {
	var parts []string
	for i := 9; i >= 1; i-- {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err == nil {
			parts = append(parts, p)
		}
	}
	return append(parts, path)
}

// writeLog copies a container's log to w: the last tail lines (all when
// tail ≤ 0) across rotated parts, then, with follow, new output as it
// arrives until ctx ends or alive reports the container gone.
func writeLog(ctx context.Context, w io.Writer, flush func(), path string, tail int64, follow bool, alive func() bool) error {
	parts := logParts(path)
	if _, err := os.Stat(path); err != nil && len(parts) == 1 {
		if errors.Is(err, os.ErrNotExist) && follow {
			// The container has not written yet; follow from the start.
		} else if errors.Is(err, os.ErrNotExist) {
			return nil
		} else {
			return fmt.Errorf("open log: %w", err)
		}
	}
	if tail > 0 {
		var lines [][]byte
		for _, p := range parts {
			data, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			for _, l := range bytes.SplitAfter(data, []byte("\n")) {
				if len(l) > 0 {
					lines = append(lines, l)
				}
			}
			if int64(len(lines)) > tail*2 {
				lines = lines[int64(len(lines))-tail:]
			}
		}
		if int64(len(lines)) > tail {
			lines = lines[int64(len(lines))-tail:]
		}
		for _, l := range lines {
			if _, err := w.Write(l); err != nil {
				return err
			}
		}
	} else {
		for _, p := range parts[:len(parts)-1] {
			if err := copyFile(w, p); err != nil {
				return err
			}
		}
	}
	// Now the live file: from its end when tailing, else from its start.
	// It is followed by identity, as tail -F does: when the runtime
	// rotates it (renames it to LOG.1 and begins a new LOG), the rest of
	// the old file is read before the new one, from its start, so nothing
	// is skipped or repeated.
	live, err := os.Open(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("open log: %w", err)
	}
	defer func() {
		if live != nil {
			live.Close()
		}
	}()
	if live != nil {
		if tail > 0 {
			if _, err := live.Seek(0, io.SeekEnd); err != nil {
				return fmt.Errorf("read log: %w", err)
			}
		} else if _, err := io.Copy(w, live); err != nil {
			return err
		}
	}
	flush()
	if !follow {
		return nil
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for ctx.Err() == nil {
		if live == nil {
			if live, err = os.Open(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("open log: %w", err)
			}
		}
		var n int64
		if live != nil {
			if n, err = io.Copy(w, live); err != nil {
				return err
			}
			if replaced(live, path) {
				// What was written to the old file after the copy above.
				if _, err := io.Copy(w, live); err != nil {
					return err
				}
				live.Close()
				live = nil
				flush()
				continue
			}
		}
		if n > 0 {
			flush()
			continue
		}
		if !alive() {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return nil
}

// replaced reports whether path names another file than f (or none): the
// log was rotated.
func replaced(f *os.File, path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	fst, err := f.Stat()
	return err == nil && !os.SameFile(st, fst)
}

func copyFile(w io.Writer, path string) error {
	_, err := copyFrom(w, path, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func copyFrom(w io.Writer, path string, off int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.Copy(w, bufio.NewReader(f))
}
