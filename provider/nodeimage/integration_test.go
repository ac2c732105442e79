package nodeimage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-io/berth/internal/prereq"
)

// TestIntegrationRuntimeImageIsStaticAndPinned builds the real runtime with
// scripts/build-runtime.sh (or reuses its cache), builds an image from it,
// and checks what hosts rely on: every executable is static, the manifest
// records the versions tools/runtime/go.mod pins, and the binaries run.
func TestIntegrationRuntimeImageIsStaticAndPinned(t *testing.T) {
	prereq.Integration(t)
	prereq.Binary(t, "go", "bash", "gcc")
	ctx := context.Background()
	repo := repoRoot(t)

	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repo, "scripts", "build-runtime.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build-runtime.sh: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	runtimeDir := lines[len(lines)-1]

	work := t.TempDir()
	static := goBuild(t, work, "static", "0", "package main\nfunc main() {}\n")
	spec := BuildSpec{BerthBinary: static, BerthVersion: "integration", RuntimeDir: runtimeDir}
	image := filepath.Join(work, "image.tar.gz")
	built, digest, err := BuildFile(ctx, spec, image)
	if err != nil {
		t.Fatalf("BuildFile: %v", err)
	}

	pinned := pinnedVersions(t, filepath.Join(repo, "tools", "runtime", "go.mod"))
	for component, module := range map[string]string{
		"containerd":  "github.com/containerd/containerd/v2",
		"runc":        "github.com/opencontainers/runc",
		"cni-plugins": "github.com/containernetworking/plugins",
	} {
		if got, want := built.Components[component], pinned[module]; got != want || want == "" {
			t.Errorf("manifest records %s %q, go.mod pins %s %q", component, got, module, want)
		}
	}

	dest := filepath.Join(work, digest.Hex())
	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := UnpackVerified(ctx, bufio.NewReader(f), dest, digest)
	if err != nil {
		t.Fatalf("UnpackVerified: %v", err)
	}
	for _, file := range m.Files {
		if file.Mode != 0o755 {
			continue
		}
		if arch, err := CheckStatic(ctx, filepath.Join(dest, file.Path)); err != nil || arch != m.Architecture {
			t.Errorf("%s: architecture %q, error %v", file.Path, arch, err)
		}
	}
	for bin, want := range map[string]string{
		RuncPath:       "runc version " + strings.TrimPrefix(pinned["github.com/opencontainers/runc"], "v"),
		ContainerdPath: pinned["github.com/containerd/containerd/v2"],
		CtrPath:        pinned["github.com/containerd/containerd/v2"],
	} {
		out, err := exec.CommandContext(ctx, filepath.Join(dest, bin), "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("%s --version: %v: %q does not mention %q", bin, err, out, want)
		}
	}

	// A real dynamically linked program (cgo links libc dynamically by
	// default) is refused, naming it: the fake ELF files of the short
	// tests stand for this.
	dynamic := goBuild(t, work, "dynamic", "1", "package main\n// #include <unistd.h>\nimport \"C\"\nfunc main() { C.getpid() }\n")
	spec.BerthBinary = dynamic
	_, _, err = BuildFile(ctx, spec, filepath.Join(work, "dynamic.tar.gz"))
	if !errors.Is(err, ErrDynamicallyLinked) || !strings.Contains(err.Error(), dynamic) {
		t.Fatalf("BuildFile with a dynamic berth: got %v, want ErrDynamicallyLinked naming %s", err, dynamic)
	}
}

// goBuild builds a one-file program named name with CGO_ENABLED=cgo.
func goBuild(t *testing.T, work, name, cgo, src string) string {
	t.Helper()
	dir := filepath.Join(work, name+"-src")
	writeFile(t, filepath.Join(dir, "go.mod"), []byte("module "+name+"\n\ngo 1.26\n"), 0o644)
	writeFile(t, filepath.Join(dir, "main.go"), []byte(src), 0o644)
	out := filepath.Join(work, name)
	cmd := exec.CommandContext(context.Background(), "go", "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOFLAGS=-mod=mod", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	return out
}

// repoRoot finds the berth module root above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/berth-io/berth\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("berth module root not found")
		}
		dir = parent
	}
}

// pinnedVersions reads module versions from the require lines of a go.mod.
func pinnedVersions(t *testing.T, gomod string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(fields) >= 2 && strings.HasPrefix(fields[1], "v") {
			out[fields[0]] = fields[1]
		}
	}
	return out
}
