package nodeimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-io/berth/internal/prereq"
)

func TestVerifyAcceptsOnlyTheExpectedDigest(t *testing.T) {
	spec := fixture(t)
	out := filepath.Join(t.TempDir(), "image.tar.gz")
	_, digest, err := BuildFile(context.Background(), spec, out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(context.Background(), out, digest); err != nil {
		t.Fatalf("Verify with the built digest: %v", err)
	}
	other := Digest("sha256:" + strings.Repeat("0", 64))
	if _, err := Verify(context.Background(), out, other); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Verify with another digest: got %v, want ErrDigestMismatch", err)
	}
	if _, err := Verify(context.Background(), out, "sha256:nothex"); err == nil {
		t.Fatal("Verify accepted a malformed digest")
	}
}

func TestTamperedBundleFailsVerifyAndLeavesNothingUnpacked(t *testing.T) {
	bundle, _, digest := build(t, fixture(t))
	tests := []struct {
		name string
		at   int // byte to flip; negative counts from the end
		// anyReaderRefuses says the change breaks the bundle itself, not
		// only its digest (the gzip header's time field is not checked
		// by gzip, so flipping it yields a readable bundle of another
		// digest).
		anyReaderRefuses bool
	}{
		{"byte in the compressed body", len(bundle) / 2, true},
		{"byte in the gzip trailer checksum", -8, true},
		{"byte in the gzip header time", 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := slices.Clone(bundle)
			at := tt.at
			if at < 0 {
				at += len(bad)
			}
			bad[at] ^= 0x01
			p := filepath.Join(t.TempDir(), "image.tar.gz")
			writeFile(t, p, bad, 0o644)
			if _, err := Verify(context.Background(), p, digest); err == nil {
				t.Fatal("Verify accepted a tampered bundle")
			}
			parent := t.TempDir()
			dest := filepath.Join(parent, digest.Hex())
			if _, err := UnpackVerified(context.Background(), bytes.NewReader(bad), dest, digest); err == nil {
				t.Fatal("UnpackVerified accepted a tampered bundle")
			}
			_, _, readErr := Read(context.Background(), bytes.NewReader(bad))
			_, _, unpackErr := Unpack(context.Background(), bytes.NewReader(bad), dest+"-unverified")
			if tt.anyReaderRefuses && (readErr == nil || unpackErr == nil) {
				t.Fatalf("Read error %v, Unpack error %v; want both to refuse", readErr, unpackErr)
			}
			if tt.anyReaderRefuses {
				if names := dirNames(t, parent); len(names) != 0 {
					t.Fatalf("left behind %v", names)
				}
			}
			if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("destination exists after a failed unpack: %v", err)
			}
		})
	}
}

func TestUnpackRefusesForgedBundles(t *testing.T) {
	bundle, m, _ := build(t, fixture(t))
	good := entries(t, bundle)
	find := func(es []entry, name string) int {
		i := slices.IndexFunc(es, func(e entry) bool { return e.hdr.Name == name })
		if i < 0 {
			t.Fatalf("no entry %s", name)
		}
		return i
	}
	// withManifest replaces the manifest entry with m re-encoded, so
	// forgeries can be self-consistent.
	withManifest := func(es []entry, m Manifest) []entry {
		raw, err := encodeManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		es[find(es, ManifestName)].body = raw
		return es
	}
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	tests := []struct {
		name    string
		forge   func(es []entry) []entry
		wantMsg string
	}{
		{"an entry escaping the destination", func(es []entry) []entry {
			return append(es, entry{hdr: tar.Header{Name: "../escaped", Typeflag: tar.TypeReg, Mode: 0o644}, body: []byte("x")})
		}, `"../escaped" is not listed`},
		{"an absolute entry", func(es []entry) []entry {
			return append(es, entry{hdr: tar.Header{Name: "/tmp/escaped", Typeflag: tar.TypeReg, Mode: 0o644}, body: []byte("x")})
		}, `"/tmp/escaped" is not listed`},
		{"a manifest listing a path that escapes", func(es []entry) []entry {
			m2 := m
			m2.Files = append(slices.Clone(m.Files), File{Path: "../escaped", Mode: 0o644, Size: 1, SHA256: sum([]byte("x"))})
			es = withManifest(es, m2)
			return append(es, entry{hdr: tar.Header{Name: "../escaped", Typeflag: tar.TypeReg, Mode: 0o644}, body: []byte("x")})
		}, "not allowed"},
		{"a symlink pointing outside", func(es []entry) []entry {
			return append(es, entry{hdr: tar.Header{Name: "bin/evil", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}})
		}, "only files and directories"},
		{"a symlink in place of an executable", func(es []entry) []entry {
			i := find(es, RuncPath)
			es[i] = entry{hdr: tar.Header{Name: RuncPath, Typeflag: tar.TypeSymlink, Linkname: "../../../usr/bin/runc"}}
			return es
		}, "only files and directories"},
		{"a hard link", func(es []entry) []entry {
			return append(es, entry{hdr: tar.Header{Name: "bin/evil", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}})
		}, "only files and directories"},
		{"a file whose contents differ from the manifest", func(es []entry) []entry {
			i := find(es, RuncPath)
			body := slices.Clone(es[i].body)
			body[len(body)-1] ^= 0xff
			es[i].body = body
			return es
		}, "file bin/runc has sha256"},
		{"a file whose size differs from the manifest", func(es []entry) []entry {
			i := find(es, RuncPath)
			es[i].body = append(slices.Clone(es[i].body), 0)
			return es
		}, "file bin/runc has size"},
		{"a file with a mode the manifest does not record", func(es []entry) []entry {
			es[find(es, RuncPath)].hdr.Mode = 0o4755
			return es
		}, "file bin/runc has size"},
		{"a file appearing twice", func(es []entry) []entry {
			return append(es, es[find(es, RuncPath)])
		}, "appears twice"},
		{"a missing file", func(es []entry) []entry {
			return slices.Delete(es, find(es, RuncPath), find(es, RuncPath)+1)
		}, "bin/runc listed in the manifest is missing"},
		{"a missing directory entry", func(es []entry) []entry {
			return slices.Delete(es, find(es, "images/"), find(es, "images/")+1)
		}, "images/pause.tar comes before its directory"},
		{"the manifest not first", func(es []entry) []entry {
			return append(es[1:], es[0])
		}, "first entry is"},
		{"a manifest of another format", func(es []entry) []entry {
			m2 := m
			m2.FormatVersion = 9
			return withManifest(es, m2)
		}, "unsupported node image format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := make([]entry, len(good))
			copy(es, good)
			forged := pack(t, tt.forge(es))
			parent := t.TempDir()
			dest := filepath.Join(parent, "image")
			_, _, err := Unpack(context.Background(), bytes.NewReader(forged), dest)
			if err == nil {
				t.Fatal("Unpack accepted a forged bundle")
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
			if names := dirNames(t, parent); len(names) != 0 {
				t.Fatalf("left behind %v", names)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(parent), "escaped")); err == nil {
				t.Fatal("an entry escaped the destination")
			}
			if _, _, err := Read(context.Background(), bytes.NewReader(forged)); err == nil {
				t.Fatal("Read accepted a forged bundle")
			}
		})
	}
}

func TestUnpackRefusesTrailingData(t *testing.T) {
	bundle, _, _ := build(t, fixture(t))
	for _, extra := range [][]byte{{0}, bundle} {
		bad := append(slices.Clone(bundle), extra...)
		if _, _, err := Read(context.Background(), bytes.NewReader(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%d trailing bytes: got %v, want ErrInvalid", len(extra), err)
		}
	}
}

func TestUnpackProducesAVerifiableImageDirectory(t *testing.T) {
	bundle, built, digest := build(t, fixture(t))
	dest := filepath.Join(t.TempDir(), digest.Hex())
	m, err := UnpackVerified(context.Background(), bytes.NewReader(bundle), dest, digest)
	if err != nil {
		t.Fatal(err)
	}
	if m.Architecture != built.Architecture || len(m.Files) != len(built.Files) {
		t.Fatalf("unpacked manifest %+v, built %+v", m, built)
	}
	for _, f := range built.Files {
		st, err := os.Stat(filepath.Join(dest, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != f.Mode.Perm() || st.Size() != f.Size {
			t.Errorf("%s: mode %s size %d, want %s size %d", f.Path, st.Mode(), st.Size(), f.Mode, f.Size)
		}
	}
	if arch, err := CheckStatic(context.Background(), filepath.Join(dest, "bin", "berth")); err != nil || arch != "amd64" {
		t.Errorf("CheckStatic of unpacked berth: %q, %v", arch, err)
	}
	if _, err := VerifyDir(context.Background(), dest); err != nil {
		t.Fatalf("VerifyDir: %v", err)
	}
	link := filepath.Join(t.TempDir(), "current")
	if err := os.Symlink(dest, link); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyDir(context.Background(), link); err != nil {
		t.Fatalf("VerifyDir through a symlink: %v", err)
	}
	if _, _, err := Unpack(context.Background(), bytes.NewReader(bundle), dest); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Unpack into the same directory: got %v, want fs.ErrExist", err)
	}
}

func TestPlainTarUnpacksTheSameImage(t *testing.T) {
	prereq.Binary(t, "tar")
	bundle, _, _ := build(t, fixture(t))
	dir := t.TempDir()
	p := filepath.Join(dir, "image.tar.gz")
	writeFile(t, p, bundle, 0o644)
	dest := filepath.Join(dir, "unpacked")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(context.Background(), "tar", "-xzf", p, "-C", dest).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -xzf: %v: %s", err, out)
	}
	if _, err := VerifyDir(context.Background(), dest); err != nil {
		t.Fatalf("VerifyDir after tar -xzf: %v", err)
	}
}

func TestVerifyDirDetectsChanges(t *testing.T) {
	bundle, _, _ := build(t, fixture(t))
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
	}{
		{"a changed byte", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "bin", "runc")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-1] ^= 1
			writeFile(t, p, b, 0o755)
		}},
		{"a changed mode", func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "bin", "runc"), 0o777); err != nil {
				t.Fatal(err)
			}
		}},
		{"an extra file", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "bin", "sh"), staticELF("sh"), 0o755)
		}},
		{"an extra directory", func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"a file replaced by a symlink", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "bin", "runc")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/usr/bin/runc", p); err != nil {
				t.Fatal(err)
			}
		}},
		{"a missing file", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "cni", "bin", "portmap")); err != nil {
				t.Fatal(err)
			}
		}},
		{"an edited manifest", func(t *testing.T, dir string) {
			p := filepath.Join(dir, ManifestName)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, p, bytes.Replace(b, []byte(`"0755"`), []byte(`"0777"`), 1), 0o644)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "image")
			if _, _, err := Unpack(context.Background(), bytes.NewReader(bundle), dest); err != nil {
				t.Fatal(err)
			}
			tt.change(t, dest)
			if _, err := VerifyDir(context.Background(), dest); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestUnpackStopsWhenContextIsCancelledAndLeavesNothing(t *testing.T) {
	bundle, _, _ := build(t, fixture(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	parent := t.TempDir()
	if _, _, err := Unpack(ctx, bytes.NewReader(bundle), filepath.Join(parent, "image")); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if names := dirNames(t, parent); len(names) != 0 {
		t.Fatalf("left behind %v", names)
	}
}
