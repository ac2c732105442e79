package nodeimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// VerifyDir checks an unpacked image directory against its manifest.json:
// every listed file is present as a regular file with the recorded mode,
// size and sha256, and nothing else (no extra file, directory or link) is
// there. dir itself may be a symbolic link, such as /opt/berth/current. It
// returns the manifest, so the engine can trust what it finds on a host.
func VerifyDir(ctx context.Context, dir string) (Manifest, error) {
	m, err := verifyDir(ctx, dir)
	if err != nil {
		return Manifest{}, fmt.Errorf("verify node image directory %s: %w", dir, err)
	}
	return m, nil
}

func verifyDir(ctx context.Context, dir string) (Manifest, error) {
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return Manifest{}, err
	}
	root, err := os.OpenRoot(resolved)
	if err != nil {
		return Manifest{}, err
	}
	defer root.Close()
	raw, err := readRootFile(ctx, root, ManifestName, maxManifestSize)
	if err != nil {
		return Manifest{}, err
	}
	m, err := decodeManifest(raw)
	if err != nil {
		return Manifest{}, err
	}
	wantDirs := map[string]bool{}
	for _, d := range dirsOf(m.Files) {
		wantDirs[d] = true
	}
	wantFiles := map[string]File{}
	for _, f := range m.Files {
		wantFiles[f.Path] = f
	}
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case p == "." || p == ManifestName && d.Type().IsRegular():
			return nil
		case d.IsDir():
			if !wantDirs[p] {
				return fmt.Errorf("unexpected directory %s: %w", p, ErrInvalid)
			}
			delete(wantDirs, p)
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is a %s, not a regular file: %w", p, d.Type(), ErrInvalid)
		}
		f, ok := wantFiles[p]
		if !ok {
			return fmt.Errorf("unexpected file %s: %w", p, ErrInvalid)
		}
		delete(wantFiles, p)
		return checkRootFile(ctx, root, f)
	})
	if err != nil {
		return Manifest{}, err
	}
	for p := range wantFiles {
		return Manifest{}, fmt.Errorf("file %s listed in the manifest is missing: %w", p, ErrInvalid)
	}
	return m, nil
}

// checkRootFile compares one file under root with its manifest entry.
func checkRootFile(ctx context.Context, root *os.Root, want File) error {
	f, err := root.Open(want.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Mode().Perm() != want.Mode.Perm() || st.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		return fmt.Errorf("file %s has mode %s, manifest says %s: %w", want.Path, st.Mode(), want.Mode, ErrInvalid)
	}
	if st.Size() != want.Size {
		return fmt.Errorf("file %s has %d bytes, manifest says %d: %w", want.Path, st.Size(), want.Size, ErrInvalid)
	}
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return fmt.Errorf("read %s: %w", want.Path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return fmt.Errorf("file %s has sha256 %s, manifest says %s: %w", want.Path, got, want.SHA256, ErrInvalid)
	}
	return nil
}

// readRootFile reads a regular file under root, refusing anything larger
// than limit.
func readRootFile(ctx context.Context, root *os.Root, name string, limit int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: %w", name, ErrInvalid)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than %d: %w", name, st.Size(), limit, ErrInvalid)
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(ctxReader{ctx, io.LimitReader(f, limit+1)})
}
