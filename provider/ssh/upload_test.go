package ssh_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	berthssh "github.com/berth-io/berth/provider/ssh"
	"github.com/berth-io/berth/provider/ssh/sshtest"
)

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// payload returns n bytes that differ at every offset, so a wrongly
// resumed upload cannot pass verification by accident.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// onlyReader hides io.Seeker so Upload sees a plain stream.
type onlyReader struct{ io.Reader }

func TestUploadWritesVerifiesAndResumes(t *testing.T) {
	_, cfg := newHost(t, "node-1", sshtest.Options{})
	c := dial(t, cfg)
	data := payload(300_000)
	wrongPrefix := append([]byte("not the image"), data[13:1000]...)

	for _, tc := range []struct {
		name         string
		partial      []byte // left on the host by an earlier attempt; nil for none
		seekable     bool
		wantFirstAt  int64 // first progress report: where writing starts
		wantFinalMod fs.FileMode
	}{
		{name: "fresh upload", seekable: true, wantFirstAt: 0},
		{name: "resumes after a matching partial prefix", partial: data[:123_457], seekable: true, wantFirstAt: 123_457},
		{name: "complete partial file is only verified", partial: data, seekable: true, wantFirstAt: int64(len(data))},
		{name: "restarts when the partial content differs", partial: wrongPrefix, seekable: true, wantFirstAt: 0},
		{name: "restarts when the partial file is longer", partial: append(append([]byte{}, data...), 'x'), seekable: true, wantFirstAt: 0},
		{name: "restarts from a stream that cannot rewind", partial: data[:5000], seekable: false, wantFirstAt: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "images", "image.tar")
			if tc.partial != nil {
				if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dest+berthssh.PartialSuffix, tc.partial, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var r io.Reader = bytes.NewReader(data)
			if !tc.seekable {
				r = onlyReader{r}
			}
			var reports []int64
			err := c.Upload(testContext(t), r, int64(len(data)), dest, 0o640, digest(data),
				berthssh.WithProgress(func(n int64) { reports = append(reports, n) }))
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			got, err := os.ReadFile(dest)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("final file holds %d bytes (%v); want the %d uploaded bytes", len(got), err, len(data))
			}
			if st, _ := os.Stat(dest); st.Mode().Perm() != 0o640 {
				t.Errorf("mode = %v, want 0640", st.Mode().Perm())
			}
			if _, err := os.Stat(dest + berthssh.PartialSuffix); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("partial file still exists after a successful upload (%v)", err)
			}
			if len(reports) == 0 || reports[0] != tc.wantFirstAt || reports[len(reports)-1] != int64(len(data)) {
				t.Errorf("progress went %v; want it to start at %d and end at %d", ends(reports), tc.wantFirstAt, len(data))
			}
		})
	}
}

func ends(r []int64) []int64 {
	if len(r) <= 2 {
		return r
	}
	return []int64{r[0], r[len(r)-1]}
}

func TestUploadWithAWrongDigestNeverProducesTheFinalFile(t *testing.T) {
	_, cfg := newHost(t, "node-1", sshtest.Options{})
	c := dial(t, cfg)
	dir := t.TempDir()
	dest := filepath.Join(dir, "image.tar")
	data := payload(10_000)
	wrong := digest([]byte("something else"))

	err := c.Upload(testContext(t), bytes.NewReader(data), int64(len(data)), dest, 0o644, wrong)
	var dm *berthssh.DigestMismatchError
	if !errors.As(err, &dm) || dm.Got != digest(data) || dm.Want != wrong {
		t.Fatalf("Upload error = %v (%T); want *DigestMismatchError got %s want %s", err, err, digest(data), wrong)
	}
	if !strings.Contains(err.Error(), `"node-1"`) {
		t.Errorf("error %q does not name the host", err)
	}
	for _, p := range []string{dest, dest + berthssh.PartialSuffix} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists after a digest mismatch (%v)", p, err)
		}
	}
}

func TestUploadLeavesAnExistingFileUntouchedOnDigestMismatch(t *testing.T) {
	_, cfg := newHost(t, "node-1", sshtest.Options{})
	c := dial(t, cfg)
	dest := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(dest, []byte("previous good image"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := payload(1000)
	err := c.Upload(testContext(t), bytes.NewReader(data), int64(len(data)), dest, 0o644, digest([]byte("x")))
	if err == nil {
		t.Fatal("Upload with a wrong digest succeeded")
	}
	if got, _ := os.ReadFile(dest); string(got) != "previous good image" {
		t.Errorf("final name now holds %q; want the previous file untouched", got)
	}
}

func TestUploadOfAShortSourceFailsWithoutTheFinalFile(t *testing.T) {
	_, cfg := newHost(t, "node-1", sshtest.Options{})
	c := dial(t, cfg)
	dest := filepath.Join(t.TempDir(), "image.tar")
	data := payload(1000)
	err := c.Upload(testContext(t), bytes.NewReader(data[:600]), int64(len(data)), dest, 0o644, digest(data))
	if err == nil || !strings.Contains(err.Error(), "600 of 1000") {
		t.Fatalf("Upload error = %v; want the source to be blamed for ending after 600 of 1000 bytes", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("final file exists after a short upload (%v)", err)
	}
}

func TestUploadToAFullDiskIsErrNoSpaceNamingTheHost(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	_, cfg := newHost(t, "node-1", sshtest.Options{})
	c := dial(t, cfg)
	dest := filepath.Join(t.TempDir(), "image.tar")
	// Writes to the partial file land on /dev/full, which fails them with
	// ENOSPC exactly as a full filesystem would.
	if err := os.Symlink("/dev/full", dest+berthssh.PartialSuffix); err != nil {
		t.Fatal(err)
	}
	data := payload(100_000)
	err := c.Upload(testContext(t), bytes.NewReader(data), int64(len(data)), dest, 0o644, digest(data))
	if !errors.Is(err, berthssh.ErrNoSpace) {
		t.Fatalf("Upload error = %v; want ErrNoSpace", err)
	}
	if !strings.Contains(err.Error(), `"node-1"`) || !strings.Contains(err.Error(), "disk is full") {
		t.Errorf("error %q does not say that node-1's disk is full", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("final file exists after a failed upload (%v)", err)
	}
}

func TestUploadRejectsBadArgumentsBeforeTouchingTheHost(t *testing.T) {
	_, cfg := newHost(t, "node-1", sshtest.Options{})
	c := dial(t, cfg)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, path, digest string
	}{
		{"relative path", "image.tar", digest(nil)},
		{"directory path", dir + "/", digest(nil)},
		{"digest not hex", filepath.Join(dir, "a"), "zz"},
		{"digest too short", filepath.Join(dir, "a"), "abcd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.Upload(testContext(t), bytes.NewReader(nil), 0, tc.path, 0o644, tc.digest); err == nil {
				t.Fatal("Upload accepted bad arguments")
			}
			if _, err := os.Stat(filepath.Join(dir, "a")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Upload touched the host")
			}
		})
	}
}

func TestUploadKeepsTheFileUnreadableToOthersUntilItsModeIsSet(t *testing.T) {
	_, cfg := newHost(t, "node-1", sshtest.Options{})
	c := dial(t, cfg)
	dest := filepath.Join(t.TempDir(), "node.key")
	data := payload(1000)
	// A digest mismatch keeps nothing, so stop after the write by giving a
	// short source: the partial file stays for inspection.
	err := c.Upload(testContext(t), bytes.NewReader(data[:10]), int64(len(data)), dest, 0o644, digest(data))
	if err == nil {
		t.Fatal("Upload of a short source succeeded")
	}
	st, err := os.Stat(dest + berthssh.PartialSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("partial file mode = %v; want 0600 until verified", st.Mode().Perm())
	}
}
