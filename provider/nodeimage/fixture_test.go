package nodeimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fakeELF returns a minimal ELF64 little-endian executable for machine that
// debug/elf parses: one PT_LOAD segment, a PT_INTERP segment when interp is
// set, and payload appended so different fakes have different bytes.
func fakeELF(machine elf.Machine, interp string, payload string) []byte {
	const ehsize, phentsize = 64, 56
	phnum := 1
	if interp != "" {
		phnum = 2
	}
	dataOff := uint64(ehsize + phentsize*phnum)
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), 0})
	b.Write(make([]byte, 8))
	binary.Write(&b, le, uint16(elf.ET_EXEC))
	binary.Write(&b, le, uint16(machine))
	binary.Write(&b, le, uint32(elf.EV_CURRENT))
	binary.Write(&b, le, uint64(0x400000)) // entry
	binary.Write(&b, le, uint64(ehsize))   // phoff
	binary.Write(&b, le, uint64(0))        // shoff
	binary.Write(&b, le, uint32(0))        // flags
	binary.Write(&b, le, uint16(ehsize))
	binary.Write(&b, le, uint16(phentsize))
	binary.Write(&b, le, uint16(phnum))
	binary.Write(&b, le, uint16(64)) // shentsize
	binary.Write(&b, le, uint16(0))  // shnum
	binary.Write(&b, le, uint16(0))  // shstrndx
	interpBytes := []byte(interp + "\x00")
	prog := func(typ elf.ProgType, off, size uint64) {
		binary.Write(&b, le, uint32(typ))
		binary.Write(&b, le, uint32(elf.PF_R|elf.PF_X))
		binary.Write(&b, le, off)
		binary.Write(&b, le, 0x400000+off)
		binary.Write(&b, le, 0x400000+off)
		binary.Write(&b, le, size)
		binary.Write(&b, le, size)
		binary.Write(&b, le, uint64(0x1000))
	}
	total := dataOff + uint64(len(payload))
	if interp != "" {
		total += uint64(len(interpBytes))
	}
	if interp != "" {
		prog(elf.PT_INTERP, dataOff, uint64(len(interpBytes)))
	}
	prog(elf.PT_LOAD, 0, total)
	if interp != "" {
		b.Write(interpBytes)
	}
	b.WriteString(payload)
	return b.Bytes()
}

// staticELF is a fake static amd64 executable with the given payload.
func staticELF(payload string) []byte { return fakeELF(elf.EM_X86_64, "", payload) }

// dynamicELF is a fake amd64 executable that needs the glibc loader.
func dynamicELF(payload string) []byte {
	return fakeELF(elf.EM_X86_64, "/lib64/ld-linux-x86-64.so.2", payload)
}

// ociArchive returns a tiny tar shaped like an OCI image layout.
func ociArchive(t *testing.T, name string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range []struct{ name, body string }{
		{"oci-layout", `{"imageLayoutVersion":"1.0.0"}`},
		{"index.json", `{"schemaVersion":2,"manifests":[],"annotations":{"name":"` + name + `"}}`},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// plainTar returns an uncompressed tar holding one file.
func plainTar(t *testing.T, name, body string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fixture lays out a berth binary, a runtime directory and one OCI archive
// under a fresh directory and returns the spec that builds them.
func fixture(t *testing.T) BuildSpec {
	t.Helper()
	dir := t.TempDir()
	write := func(rel string, data []byte, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	spec := BuildSpec{
		BerthBinary:  write("berth", staticELF("berth"), 0o755),
		BerthVersion: "v0.1.0",
		RuntimeDir:   filepath.Join(dir, "runtime"),
		ExtraImages:  []string{write("pause.tar", ociArchive(t, "pause"), 0o644)},
	}
	for _, b := range RuntimeBinaries {
		write(filepath.Join("runtime", "bin", b), staticELF(b), 0o755)
	}
	for _, p := range RequiredCNIPlugins {
		write(filepath.Join("runtime", "cni", "bin", p), staticELF(p), 0o755)
	}
	write(filepath.Join("runtime", VersionsFile), []byte(`{"containerd":"v2.4.2","runc":"v1.5.2","cni-plugins":"v1.10.0","go":"go1.26.8"}`), 0o644)
	return spec
}

// runtimePath returns the path of a file of the fixture's runtime directory.
func runtimePath(spec BuildSpec, rel string) string {
	return filepath.Join(spec.RuntimeDir, filepath.FromSlash(rel))
}

// build builds spec into memory, failing the test on error.
func build(t *testing.T, spec BuildSpec) ([]byte, Manifest, Digest) {
	t.Helper()
	var b bytes.Buffer
	m, d, err := Build(context.Background(), spec, &b)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return b.Bytes(), m, d
}

// entry is one tar entry of a bundle, for tests that take bundles apart.
type entry struct {
	hdr  tar.Header
	body []byte
}

// entries decodes a bundle into its tar entries.
func entries(t *testing.T, bundle []byte) []entry {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(bundle))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []entry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{hdr: *hdr, body: body})
	}
}

// pack encodes tar entries into a gzip bundle, as a forger would.
func pack(t *testing.T, es []entry) []byte {
	t.Helper()
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	for _, e := range es {
		hdr := e.hdr
		hdr.Size = int64(len(e.body))
		if hdr.Typeflag != tar.TypeReg {
			hdr.Size = 0
		}
		hdr.Format = tar.FormatUnknown
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
