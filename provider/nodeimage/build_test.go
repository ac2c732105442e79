package nodeimage

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBuildIsReproducible(t *testing.T) {
	a, b := fixture(t), fixture(t)
	// The second copy differs in everything but contents: location, times
	// and permission bits of the inputs.
	old := time.Date(2011, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, p := range []string{b.BerthBinary, runtimePath(b, "bin/runc"), b.ExtraImages[0]} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	bytesA, _, digestA := build(t, a)
	bytesB, _, digestB := build(t, b)
	if digestA != digestB {
		t.Fatalf("same inputs gave digests %s and %s", digestA, digestB)
	}
	if !bytes.Equal(bytesA, bytesB) {
		t.Fatal("same inputs gave different bundle bytes")
	}
	out := filepath.Join(t.TempDir(), "image.tar.gz")
	_, digestFile, err := BuildFile(context.Background(), a, out)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if digestFile != digestA || !bytes.Equal(onDisk, bytesA) {
		t.Fatalf("BuildFile wrote %s, Build wrote %s", digestFile, digestA)
	}
}

func TestBuildDigestChangesWithAnyInput(t *testing.T) {
	_, _, base := build(t, fixture(t))
	tests := []struct {
		name   string
		change func(t *testing.T, s *BuildSpec)
	}{
		{"one byte of berth", func(t *testing.T, s *BuildSpec) {
			writeFile(t, s.BerthBinary, staticELF("berti"), 0o755)
		}},
		{"berth version", func(t *testing.T, s *BuildSpec) { s.BerthVersion = "v0.1.1" }},
		{"a component version", func(t *testing.T, s *BuildSpec) { s.Components = map[string]string{"runc": "v1.5.3"} }},
		{"an extra CNI plugin", func(t *testing.T, s *BuildSpec) {
			writeFile(t, runtimePath(*s, "cni/bin/firewall"), staticELF("firewall"), 0o755)
		}},
		{"no preloaded image", func(t *testing.T, s *BuildSpec) { s.ExtraImages = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := fixture(t)
			tt.change(t, &spec)
			if _, _, d := build(t, spec); d == base {
				t.Fatalf("digest stayed %s", d)
			}
		})
	}
}

func TestBuildRefusesBadInputsNamingTheProblem(t *testing.T) {
	tests := []struct {
		name    string
		change  func(t *testing.T, s *BuildSpec)
		wantIs  error
		wantMsg string // the error must mention this
	}{
		{"dynamically linked berth", func(t *testing.T, s *BuildSpec) {
			writeFile(t, s.BerthBinary, dynamicELF("berth"), 0o755)
		}, ErrDynamicallyLinked, "berth needs program interpreter /lib64/ld-linux-x86-64.so.2"},
		{"dynamically linked runc", func(t *testing.T, s *BuildSpec) {
			writeFile(t, runtimePath(*s, "bin/runc"), dynamicELF("runc"), 0o755)
		}, ErrDynamicallyLinked, filepath.Join("bin", "runc")},
		{"dynamically linked CNI plugin", func(t *testing.T, s *BuildSpec) {
			writeFile(t, runtimePath(*s, "cni/bin/portmap"), dynamicELF("portmap"), 0o755)
		}, ErrDynamicallyLinked, filepath.Join("cni", "bin", "portmap")},
		{"executable for another architecture", func(t *testing.T, s *BuildSpec) {
			writeFile(t, runtimePath(*s, "bin/ctr"), fakeELF(elf.EM_AARCH64, "", "ctr"), 0o755)
		}, ErrInvalid, "arm64"},
		{"shell script as a runtime binary", func(t *testing.T, s *BuildSpec) {
			writeFile(t, runtimePath(*s, "bin/containerd"), []byte("#!/bin/sh\nexec true\n"), 0o755)
		}, ErrInvalid, "containerd is not an ELF executable"},
		{"missing shim", func(t *testing.T, s *BuildSpec) {
			if err := os.Remove(runtimePath(*s, "bin/containerd-shim-runc-v2")); err != nil {
				t.Fatal(err)
			}
		}, os.ErrNotExist, "containerd-shim-runc-v2"},
		{"missing required CNI plugin", func(t *testing.T, s *BuildSpec) {
			if err := os.Remove(runtimePath(*s, "cni/bin/bridge")); err != nil {
				t.Fatal(err)
			}
		}, ErrInvalid, "cni/bin/bridge"},
		{"directory among CNI plugins", func(t *testing.T, s *BuildSpec) {
			if err := os.Mkdir(runtimePath(*s, "cni/bin/extra"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, ErrInvalid, "extra is not a regular file"},
		{"no runc version recorded", func(t *testing.T, s *BuildSpec) {
			writeFile(t, runtimePath(*s, VersionsFile), []byte(`{"containerd":"v2.4.2","cni-plugins":"v1.10.0"}`), 0o644)
		}, ErrInvalid, "component runc"},
		{"no berth version", func(t *testing.T, s *BuildSpec) { s.BerthVersion = "" }, nil, "no berth version"},
		{"preloaded image that is not a tar", func(t *testing.T, s *BuildSpec) {
			writeFile(t, s.ExtraImages[0], []byte("hello"), 0o644)
		}, ErrInvalid, "pause.tar is not"},
		{"preloaded tar that is not an image", func(t *testing.T, s *BuildSpec) {
			writeFile(t, s.ExtraImages[0], plainTar(t, "notes.txt", "not an image"), 0o644)
		}, ErrInvalid, "pause.tar is not"},
		{"preloaded image without .tar suffix", func(t *testing.T, s *BuildSpec) {
			p := filepath.Join(t.TempDir(), "pause.img")
			writeFile(t, p, ociArchive(t, "pause"), 0o644)
			s.ExtraImages = []string{p}
		}, ErrInvalid, "pause.img"},
		{"two preloaded images with one name", func(t *testing.T, s *BuildSpec) {
			p := filepath.Join(t.TempDir(), "pause.tar")
			writeFile(t, p, ociArchive(t, "other"), 0o644)
			s.ExtraImages = append(s.ExtraImages, p)
		}, nil, "both be stored as images/pause.tar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := fixture(t)
			tt.change(t, &spec)
			var b bytes.Buffer
			_, _, err := Build(context.Background(), spec, &b)
			if err == nil {
				t.Fatal("Build succeeded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestBuildFileLeavesNothingWhenBuildFails(t *testing.T) {
	spec := fixture(t)
	writeFile(t, spec.BerthBinary, dynamicELF("berth"), 0o755)
	dir := t.TempDir()
	if _, _, err := BuildFile(context.Background(), spec, filepath.Join(dir, "image.tar.gz")); err == nil {
		t.Fatal("BuildFile succeeded with a dynamic berth")
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("left behind %v", names)
	}
}

func TestBuildStopsWhenContextIsCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var b bytes.Buffer
	if _, _, err := Build(ctx, fixture(t), &b); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestManifestRoundTripsThroughBundle(t *testing.T) {
	spec := fixture(t)
	bundle, built, digest := build(t, spec)
	read, readDigest, err := Read(context.Background(), bytes.NewReader(bundle))
	if err != nil {
		t.Fatal(err)
	}
	if readDigest != digest {
		t.Errorf("Read digest %s, Build digest %s", readDigest, digest)
	}
	if !reflect.DeepEqual(read, built) {
		t.Errorf("Read manifest %+v, Build manifest %+v", read, built)
	}
	want := []string{
		"bin/berth", "bin/containerd", "bin/containerd-shim-runc-v2", "bin/ctr", "bin/runc",
		"cni/bin/bridge", "cni/bin/host-local", "cni/bin/loopback", "cni/bin/portmap",
		"images/pause.tar",
	}
	var got []string
	for _, f := range read.Files {
		got = append(got, f.Path)
	}
	if !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	if read.Architecture != "amd64" || read.BerthVersion != "v0.1.0" || read.Components["containerd"] != "v2.4.2" || read.Components["go"] != "go1.26.8" {
		t.Errorf("manifest header %+v", read)
	}
	if !slices.Equal(read.Images(), []string{"images/pause.tar"}) {
		t.Errorf("Images() = %v", read.Images())
	}
	// Entries in archive order: the manifest, then everything sorted.
	var names []string
	for _, e := range entries(t, bundle) {
		names = append(names, e.hdr.Name)
		if !e.hdr.ModTime.Equal(modTime) || e.hdr.Uid != 0 || e.hdr.Gid != 0 || e.hdr.Uname != "" || e.hdr.Gname != "" {
			t.Errorf("entry %s has header %+v, want fixed metadata", e.hdr.Name, e.hdr)
		}
	}
	wantNames := append([]string{ManifestName, "bin/"}, want[:5]...)
	wantNames = append(wantNames, "cni/", "cni/bin/")
	wantNames = append(wantNames, want[5:9]...)
	wantNames = append(wantNames, "images/", "images/pause.tar")
	if !slices.Equal(names, wantNames) {
		t.Errorf("archive order %v, want %v", names, wantNames)
	}
}

func TestManifestModesAreOctalStrings(t *testing.T) {
	_, m, _ := build(t, fixture(t))
	raw, err := encodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	var generic struct {
		Files []map[string]any `json:"files"`
	}
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	modes := map[string]any{}
	for _, f := range generic.Files {
		modes[f["path"].(string)] = f["mode"]
	}
	if modes["bin/runc"] != "0755" || modes["images/pause.tar"] != "0644" {
		t.Fatalf("modes in JSON: %v", modes)
	}
}

func TestDecodeManifestRefuses(t *testing.T) {
	_, good, _ := build(t, fixture(t))
	tests := []struct {
		name   string
		edit   func(m *Manifest)
		raw    string // used instead of the edited manifest when set
		wantIs error
	}{
		{"a newer format", func(m *Manifest) { m.FormatVersion = 2 }, "", ErrUnsupportedFormat},
		{"a path escaping the image", func(m *Manifest) { m.Files[0].Path = "../bin/berth" }, "", ErrInvalid},
		{"an absolute path", func(m *Manifest) { m.Files[0].Path = "/bin/berth" }, "", ErrInvalid},
		{"a file outside the known directories", func(m *Manifest) { m.Files[0].Path = "etc/passwd" }, "", ErrInvalid},
		{"a hidden file", func(m *Manifest) { m.Files[0].Path = "bin/.berth" }, "", ErrInvalid},
		{"a setuid executable", func(m *Manifest) { m.Files[0].Mode = 0o4755 }, "", ErrInvalid},
		{"an executable image archive", func(m *Manifest) { m.Files[len(m.Files)-1].Mode = 0o755 }, "", ErrInvalid},
		{"unsorted files", func(m *Manifest) { m.Files[0], m.Files[1] = m.Files[1], m.Files[0] }, "", ErrInvalid},
		{"a duplicate file", func(m *Manifest) { m.Files[1] = m.Files[0] }, "", ErrInvalid},
		{"a missing runc", func(m *Manifest) {
			m.Files = slices.DeleteFunc(m.Files, func(f File) bool { return f.Path == RuncPath })
		}, "", ErrInvalid},
		{"a malformed hash", func(m *Manifest) { m.Files[0].SHA256 = strings.ToUpper(m.Files[0].SHA256) }, "", ErrInvalid},
		{"an unknown architecture", func(m *Manifest) { m.Architecture = "vax" }, "", ErrInvalid},
		{"unknown fields", nil, `{"formatVersion":1,"surprise":true}`, ErrInvalid},
		{"trailing data", nil, "", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good
			m.Files = slices.Clone(good.Files)
			var raw []byte
			if tt.edit != nil {
				tt.edit(&m)
			}
			raw, err := encodeManifest(m)
			if err != nil {
				t.Fatal(err)
			}
			if tt.raw != "" {
				raw = []byte(tt.raw)
			}
			if tt.name == "trailing data" {
				raw = append(raw, []byte("{}")...)
			}
			if _, err := decodeManifest(raw); !errors.Is(err, tt.wantIs) {
				t.Fatalf("got %v, want %v", err, tt.wantIs)
			}
		})
	}
}

func TestParseDigest(t *testing.T) {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		in string
		ok bool
	}{
		{"sha256:" + hex64, true},
		{hex64, false},
		{"sha512:" + hex64, false},
		{"sha256:" + strings.ToUpper(hex64), false},
		{"sha256:" + hex64[:63], false},
		{"sha256:" + hex64[:63] + "g", false},
		{"", false},
	}
	for _, tt := range tests {
		d, err := ParseDigest(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseDigest(%q) error %v, want ok=%t", tt.in, err, tt.ok)
		}
		if tt.ok && d.Hex() != hex64 {
			t.Errorf("Hex() = %q", d.Hex())
		}
	}
}

// writeFile replaces the file at p.
func writeFile(t *testing.T, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
