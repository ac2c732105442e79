package ssh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
)

// PartialSuffix is appended to an upload's remote path while it is in
// flight; the file is renamed into place only once the host has verified
// its sha256.
const PartialSuffix = ".partial"

// UploadOption tunes one upload.
type UploadOption func(*uploadOptions)

type uploadOptions struct {
	progress func(sent int64)
}

// WithProgress reports progress: fn is called with the number of bytes of
// the file now on the host (starting from the resumed prefix, ending at
// size). It is called from the uploading goroutine and must be quick.
func WithProgress(fn func(sent int64)) UploadOption {
	return func(o *uploadOptions) { o.progress = fn }
}

// digestMismatchExit is the exit status the verify script uses to say the
// digest differed (chosen to be unlike any coreutils status).
const digestMismatchExit = 97

// Upload writes size bytes from r to remotePath on the host with the given
// permission bits, and returns only once the host itself has computed the
// file's sha256 (sha256sum) and found it equal to sha256hex.
//
// Data goes to remotePath+PartialSuffix first. When that partial file is
// already there (an earlier upload was interrupted) and r is an io.Seeker,
// the partial file's content is compared with the start of r, and the
// upload resumes after it when they match; otherwise it starts over. A
// mismatching digest removes the partial file and returns a
// *DigestMismatchError: the final name never holds unverified data. A full
// disk returns an error matching ErrNoSpace. The parent directory is
// created when missing.
func (c *Client) Upload(ctx context.Context, r io.Reader, size int64, remotePath string, mode fs.FileMode, sha256hex string, opts ...UploadOption) error {
	var o uploadOptions
	for _, opt := range opts {
		opt(&o)
	}
	want := strings.ToLower(sha256hex)
	if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("upload %s to host %q: %q is not a hex sha256 digest", remotePath, c.cfg.Name, sha256hex)
	}
	if size < 0 {
		return fmt.Errorf("upload %s to host %q: negative size %d", remotePath, c.cfg.Name, size)
	}
	if !path.IsAbs(remotePath) || strings.HasSuffix(remotePath, "/") {
		return fmt.Errorf("upload %s to host %q: remote path must be an absolute file path", remotePath, c.cfg.Name)
	}
	partial := remotePath + PartialSuffix
	fail := func(format string, args ...any) error {
		return fmt.Errorf("upload %s to host %q: "+format, append([]any{remotePath, c.cfg.Name}, args...)...)
	}

	offset, err := c.resumeOffset(ctx, r, size, remotePath, partial)
	if err != nil {
		return err
	}
	if o.progress != nil {
		o.progress(offset)
	}
	if remaining := size - offset; remaining > 0 || offset == 0 {
		redirect := ">"
		if offset > 0 {
			redirect = ">>"
		}
		src := &countingReader{r: io.LimitReader(r, remaining), base: offset, progress: o.progress}
		// umask 077: the file may be a credential; its mode is set only
		// once verified.
		_, stderr, _, err := c.Run(ctx, "umask 077; cat "+redirect+" "+Quote(partial), RunOptions{Stdin: src})
		sent, srcErr := src.stop()
		if err != nil {
			if bytes.Contains(stderr, []byte("No space left on device")) {
				return fmt.Errorf("upload %s to host %q: the host's disk is full after %d of %d bytes; free space there and retry (the partial file %s is kept for resuming): %w",
					remotePath, c.cfg.Name, offset+sent, size, partial, errors.Join(ErrNoSpace, err))
			}
			if srcErr != nil {
				return fail("read source: %w", srcErr)
			}
			return fail("write %s: %w", partial, err)
		}
		if srcErr != nil {
			return fail("read source: %w", srcErr)
		}
		if sent < remaining {
			return fail("the source ended after %d of %d bytes", offset+sent, size)
		}
	}

	script := fmt.Sprintf(`set -e
command -v sha256sum >/dev/null 2>&1 || { echo "sha256sum is not installed on the host" >&2; exit 127; }
p=%s
set -- $(sha256sum < "$p")
if [ "$1" != %s ]; then rm -f "$p"; echo "digest $1" >&2; exit %d; fi
chmod %04o "$p"
sync "$p" 2>/dev/null || sync
mv -f "$p" %s`, Quote(partial), Quote(want), digestMismatchExit, mode.Perm(), Quote(remotePath))
	_, stderr, code, err := c.Run(ctx, script, RunOptions{})
	if err != nil {
		if code == digestMismatchExit {
			got := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(stderr)), "digest "))
			return &DigestMismatchError{Host: c.cfg.Name, Path: remotePath, Want: want, Got: got}
		}
		return fail("verify sha256 and rename into place: %w", err)
	}
	return nil
}

// resumeOffset looks at the partial file on the host and returns how many
// bytes of r it already holds, leaving r positioned just after them. It
// returns 0 (with r at its start) when there is nothing to resume.
func (c *Client) resumeOffset(ctx context.Context, r io.Reader, size int64, remotePath, partial string) (int64, error) {
	probe := fmt.Sprintf(`mkdir -p %s && if [ -f %s ]; then wc -c < %s; sha256sum < %s; else echo absent; fi`,
		Quote(path.Dir(remotePath)), Quote(partial), Quote(partial), Quote(partial))
	out, _, _, err := c.Run(ctx, probe, RunOptions{})
	if err != nil {
		return 0, fmt.Errorf("upload %s to host %q: inspect partial file: %w", remotePath, c.cfg.Name, err)
	}
	fields := strings.Fields(string(out))
	if len(fields) == 1 && fields[0] == "absent" {
		return 0, nil
	}
	if len(fields) < 2 {
		return 0, fmt.Errorf("upload %s to host %q: inspect partial file: unexpected output %q", remotePath, c.cfg.Name, out)
	}
	have, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("upload %s to host %q: inspect partial file: unexpected size %q", remotePath, c.cfg.Name, fields[0])
	}
	seeker, ok := r.(io.Seeker)
	if !ok || have == 0 || have > size {
		return 0, nil
	}
	start, err := seeker.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, nil
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, have))
	if err == nil && n == have && hex.EncodeToString(h.Sum(nil)) == fields[1] {
		return have, nil
	}
	if _, err := seeker.Seek(start, io.SeekStart); err != nil {
		return 0, fmt.Errorf("upload %s to host %q: rewind source after a partial file that did not match: %w", remotePath, c.cfg.Name, err)
	}
	return 0, nil
}

// countingReader counts bytes handed to the session and reports progress;
// it remembers a read error so Upload can blame the source, not the host.
// The session's stdin goroutine may still read after Run returned on
// cancellation, so its state is guarded and stop ends progress reports.
type countingReader struct {
	r        io.Reader
	base     int64
	progress func(int64)

	mu      sync.Mutex
	n       int64
	err     error
	stopped bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.mu.Lock()
	stopped := c.stopped
	c.mu.Unlock()
	if stopped {
		return 0, io.ErrClosedPipe
	}
	n, err := c.r.Read(p) // not under mu: a blocked source must not block stop
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return 0, io.ErrClosedPipe
	}
	c.n += int64(n)
	if n > 0 && c.progress != nil {
		c.progress(c.base + c.n)
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// stop ends reading and returns the bytes read and the source's error.
func (c *countingReader) stop() (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	return c.n, c.err
}
