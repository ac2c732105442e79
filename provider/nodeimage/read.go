package nodeimage

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxManifestSize bounds the manifest a reader accepts, so a hostile bundle
// cannot make it allocate without limit.
const maxManifestSize = 16 << 20

// visitor receives what walk finds; a nil method is skipped. Contents passed
// to file must be read to the end before returning.
type visitor struct {
	manifest func(raw []byte) error
	dir      func(name string) error
	file     func(f File, contents io.Reader) error
}

// Read reads a whole bundle from r, checks every file against the manifest,
// and returns the manifest and the bundle's digest.
func Read(ctx context.Context, r io.Reader) (Manifest, Digest, error) {
	m, d, err := walk(ctx, r, visitor{})
	if err != nil {
		return Manifest{}, "", fmt.Errorf("read node image: %w", err)
	}
	return m, d, nil
}

// Open reads the bundle at path like Read.
func Open(ctx context.Context, path string) (Manifest, Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Manifest{}, "", fmt.Errorf("open node image: %w", err)
	}
	defer f.Close()
	m, d, err := walk(ctx, bufio.NewReaderSize(f, 1<<20), visitor{})
	if err != nil {
		return Manifest{}, "", fmt.Errorf("read node image %s: %w", path, err)
	}
	return m, d, nil
}

// Verify reads the bundle at path like Open and fails with ErrDigestMismatch
// unless its digest is want.
func Verify(ctx context.Context, path string, want Digest) (Manifest, error) {
	if err := want.Validate(); err != nil {
		return Manifest{}, fmt.Errorf("verify node image %s: %w", path, err)
	}
	m, got, err := Open(ctx, path)
	if err != nil {
		return Manifest{}, err
	}
	if got != want {
		return Manifest{}, fmt.Errorf("verify node image %s: got %s, want %s: %w", path, got, want, ErrDigestMismatch)
	}
	return m, nil
}

// Unpack extracts the bundle read from r into destDir, which must not exist
// yet. Files are written into a temporary directory beside destDir and
// checked against the manifest as they are written; destDir appears, by
// rename, only when the whole bundle checked out. It returns the manifest and
// the bundle's digest.
func Unpack(ctx context.Context, r io.Reader, destDir string) (Manifest, Digest, error) {
	m, d, err := unpack(ctx, r, destDir, "")
	if err != nil {
		return Manifest{}, "", fmt.Errorf("unpack node image into %s: %w", destDir, err)
	}
	return m, d, nil
}

// UnpackVerified is Unpack that also requires the bundle's digest to be want
// before destDir appears, failing with ErrDigestMismatch otherwise.
func UnpackVerified(ctx context.Context, r io.Reader, destDir string, want Digest) (Manifest, error) {
	if err := want.Validate(); err != nil {
		return Manifest{}, fmt.Errorf("unpack node image into %s: %w", destDir, err)
	}
	m, _, err := unpack(ctx, r, destDir, want)
	if err != nil {
		return Manifest{}, fmt.Errorf("unpack node image %s into %s: %w", want, destDir, err)
	}
	return m, nil
}

// unpack does the work of Unpack; a non-empty want must match the digest.
func unpack(ctx context.Context, r io.Reader, destDir string, want Digest) (Manifest, Digest, error) {
	destDir = filepath.Clean(destDir)
	if _, err := os.Lstat(destDir); err == nil {
		return Manifest{}, "", fmt.Errorf("%s already exists: %w", destDir, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, "", err
	}
	parent := filepath.Dir(destDir)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(destDir)+".unpack-")
	if err != nil {
		return Manifest{}, "", err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return Manifest{}, "", err
	}
	defer root.Close()
	dirs := []string{"."}
	m, got, err := walk(ctx, r, visitor{
		manifest: func(raw []byte) error {
			return writeRootFile(ctx, root, ManifestName, 0o644, strings.NewReader(string(raw)))
		},
		dir: func(name string) error {
			dirs = append(dirs, name)
			if err := root.Mkdir(name, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", name, err)
			}
			return nil
		},
		file: func(f File, contents io.Reader) error {
			return writeRootFile(ctx, root, f.Path, f.Mode, contents)
		},
	})
	if err != nil {
		return Manifest{}, "", err
	}
	if want != "" && got != want {
		return Manifest{}, "", fmt.Errorf("bundle digest is %s: %w", got, ErrDigestMismatch)
	}
	// Directories get their final mode, and everything reaches the disk
	// before the rename makes it visible.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chmod(dirs[i], 0o755); err != nil {
			return Manifest{}, "", fmt.Errorf("chmod %s: %w", dirs[i], err)
		}
		if err := syncRootDir(root, dirs[i]); err != nil {
			return Manifest{}, "", err
		}
	}
	if err := os.Rename(tmp, destDir); err != nil {
		return Manifest{}, "", err
	}
	done = true
	if err := syncDir(parent); err != nil {
		return Manifest{}, "", err
	}
	return m, got, nil
}

// writeRootFile creates name inside root (never through a link, never over
// an existing file), copies contents into it and syncs it.
func writeRootFile(ctx context.Context, root *os.Root, name string, mode FileMode, contents io.Reader) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	defer f.Close()
	if _, err := io.Copy(f, ctxReader{ctx, contents}); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	// The umask may have narrowed the mode OpenFile asked for.
	if err := f.Chmod(mode.Perm()); err != nil {
		return fmt.Errorf("chmod %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// syncRootDir flushes a directory inside root to disk.
func syncRootDir(root *os.Root, name string) error {
	d, err := root.Open(name)
	if err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	return nil
}

// syncDir flushes a directory to disk, so a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// walk reads a bundle from r, hands its parts to v in archive order, and
// checks everything the format promises: the manifest comes first and is
// valid; every other entry is a directory or regular file the manifest
// implies, appearing once, with the recorded size, mode and sha256; nothing
// the manifest lists is missing; and nothing follows the compressed stream.
func walk(ctx context.Context, r io.Reader, v visitor) (Manifest, Digest, error) {
	m, d, err := walkBundle(ctx, r, v)
	// A cancelled read surfaces as a broken stream; say what really
	// happened, so callers can tell cancellation from a bad bundle.
	if ctxErr := ctx.Err(); err != nil && ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return m, d, err
}

// walkBundle does the work of walk.
func walkBundle(ctx context.Context, r io.Reader, v visitor) (Manifest, Digest, error) {
	h := sha256.New()
	br := bufio.NewReader(io.TeeReader(ctxReader{ctx, r}, h))
	gz, err := gzip.NewReader(br)
	if err != nil {
		return Manifest{}, "", fmt.Errorf("not a gzip stream: %v: %w", err, ErrInvalid)
	}
	gz.Multistream(false)
	tr := tar.NewReader(gz)

	hdr, err := tr.Next()
	if err != nil {
		return Manifest{}, "", fmt.Errorf("read first entry: %v: %w", err, ErrInvalid)
	}
	if hdr.Name != ManifestName || hdr.Typeflag != tar.TypeReg {
		return Manifest{}, "", fmt.Errorf("first entry is %q, want %s: %w", hdr.Name, ManifestName, ErrInvalid)
	}
	if hdr.Size > maxManifestSize {
		return Manifest{}, "", fmt.Errorf("manifest is %d bytes, more than %d: %w", hdr.Size, maxManifestSize, ErrInvalid)
	}
	raw, err := io.ReadAll(tr)
	if err != nil {
		return Manifest{}, "", fmt.Errorf("read manifest: %w", err)
	}
	m, err := decodeManifest(raw)
	if err != nil {
		return Manifest{}, "", err
	}
	if v.manifest != nil {
		if err := v.manifest(raw); err != nil {
			return Manifest{}, "", err
		}
	}

	pendingDirs := map[string]bool{}
	for _, d := range dirsOf(m.Files) {
		pendingDirs[d+"/"] = true
	}
	pendingFiles := map[string]File{}
	for _, f := range m.Files {
		pendingFiles[f.Path] = f
	}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Manifest{}, "", ctxErr
		}
		if err != nil {
			return Manifest{}, "", fmt.Errorf("read archive: %v: %w", err, ErrInvalid)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if !pendingDirs[hdr.Name] {
				return Manifest{}, "", fmt.Errorf("unexpected directory entry %q: %w", hdr.Name, ErrInvalid)
			}
			if hdr.Mode != 0o755 {
				return Manifest{}, "", fmt.Errorf("directory %s has mode %04o, want 0755: %w", hdr.Name, hdr.Mode, ErrInvalid)
			}
			delete(pendingDirs, hdr.Name)
			if v.dir != nil {
				if err := v.dir(strings.TrimSuffix(hdr.Name, "/")); err != nil {
					return Manifest{}, "", err
				}
			}
		case tar.TypeReg:
			f, ok := pendingFiles[hdr.Name]
			if !ok {
				return Manifest{}, "", fmt.Errorf("entry %q is not listed in the manifest or appears twice: %w", hdr.Name, ErrInvalid)
			}
			delete(pendingFiles, hdr.Name)
			if hdr.Size != f.Size || hdr.Mode != int64(f.Mode) {
				return Manifest{}, "", fmt.Errorf("file %s has size %d and mode %04o, manifest says %d and %s: %w", f.Path, hdr.Size, hdr.Mode, f.Size, f.Mode, ErrInvalid)
			}
			if err := checkParentsSeen(f.Path, pendingDirs); err != nil {
				return Manifest{}, "", err
			}
			fh := sha256.New()
			contents := io.TeeReader(tr, fh)
			if v.file != nil {
				if err := v.file(f, contents); err != nil {
					return Manifest{}, "", err
				}
			}
			if _, err := io.Copy(io.Discard, contents); err != nil {
				return Manifest{}, "", fmt.Errorf("read %s: %v: %w", f.Path, err, ErrInvalid)
			}
			if got := hex.EncodeToString(fh.Sum(nil)); got != f.SHA256 {
				return Manifest{}, "", fmt.Errorf("file %s has sha256 %s, manifest says %s: %w", f.Path, got, f.SHA256, ErrInvalid)
			}
		default:
			return Manifest{}, "", fmt.Errorf("entry %q has type %q; only files and directories are allowed: %w", hdr.Name, hdr.Typeflag, ErrInvalid)
		}
	}
	for p := range pendingFiles {
		return Manifest{}, "", fmt.Errorf("file %s listed in the manifest is missing: %w", p, ErrInvalid)
	}
	for d := range pendingDirs {
		return Manifest{}, "", fmt.Errorf("directory entry %s is missing: %w", d, ErrInvalid)
	}
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return Manifest{}, "", fmt.Errorf("read compressed stream: %v: %w", err, ErrInvalid)
	}
	if n, err := io.Copy(io.Discard, br); err != nil {
		return Manifest{}, "", fmt.Errorf("read bundle: %w", err)
	} else if n > 0 {
		return Manifest{}, "", fmt.Errorf("%d bytes of trailing data after the compressed stream: %w", n, ErrInvalid)
	}
	return m, digestOf(h), nil
}

// checkParentsSeen fails when a file comes before its directory's entry, so
// an extractor never has to create directories the archive did not describe.
func checkParentsSeen(p string, pendingDirs map[string]bool) error {
	for i := range len(p) {
		if p[i] == '/' && pendingDirs[p[:i+1]] {
			return fmt.Errorf("file %s comes before its directory entry: %w", p, ErrInvalid)
		}
	}
	return nil
}
