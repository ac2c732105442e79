// Package workloads builds the project's own test workloads into small OCI
// images and hands them to the testbed: pushed to a registry, written as an
// archive for `ctr image import`, or as a root filesystem tarball for
// `docker import`.
//
// Every image holds one statically linked binary, /web (see the command in
// ./web for its endpoints, variants and the `web check` exec-probe command),
// as a single layer, with the entrypoint ["/web"], PORT=8080 and OCI labels.
// There are four variants:
//
//	V1, V2   healthy servers answering "web v1 pod=<name>" / "web v2 pod=<name>"
//	Broken   starts but never becomes ready: /healthz 503, / 500
//	Crash    exits with status 3 about a second after it starts
//
// A test builds the set once and pushes it to the testbed's registry:
//
//	set, err := workloads.Build(ctx, "")           // cached for the whole process
//	refs, err := set.Push(ctx, "198.18.0.1:5000")  // plain HTTP
//	// refs.V1 == "198.18.0.1:5000/berth-test/web:v1", refs.V2, refs.Broken, refs.Crash
//
// Build runs the Go toolchain found on PATH (`go`) on source embedded in this
// package, in a throw-away module, so it works from any directory and needs
// no network. Binaries are built with CGO_ENABLED=0, -trimpath and an empty
// build ID, and image timestamps are zero, so the same toolchain yields the
// same image digests every time. This package must never push anywhere but
// the address it is given, and never logs.
package workloads

import (
	"archive/tar"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

//go:embed web/main.go
var webSource []byte

// Repository is the repository, under the registry's host, that Push writes
// every variant to, tagged with the variant's name.
const Repository = "berth-test/web"

// BinaryPath is where the workload binary sits inside every image; exec
// probes run []string{BinaryPath, "check"}.
const BinaryPath = "/web"

// Port is the port the images listen on unless a pod sets PORT.
const Port = 8080

// Variant names one of the test images; it is also the image's tag.
type Variant string

// The variants Build produces.
const (
	V1     Variant = "v1"
	V2     Variant = "v2"
	Broken Variant = "broken"
	Crash  Variant = "crash"
)

// Variants lists every variant in a fixed order.
func Variants() []Variant { return []Variant{V1, V2, Broken, Crash} }

// mode is the web program's build-time mode for each variant.
func (v Variant) mode() string {
	switch v {
	case Broken:
		return "broken"
	case Crash:
		return "crash"
	default:
		return "serve"
	}
}

// Set is the built images, ready to push or export. It is immutable and safe
// for concurrent use.
type Set struct {
	binaries map[Variant][]byte
	images   map[Variant]v1.Image
}

// Refs are the tags Push wrote, one per variant, each
// "<registry>/berth-test/web:<variant>".
type Refs struct {
	V1, V2, Broken, Crash string
}

// Of returns the ref of variant v.
func (r Refs) Of(v Variant) string {
	switch v {
	case V1:
		return r.V1
	case V2:
		return r.V2
	case Broken:
		return r.Broken
	case Crash:
		return r.Crash
	}
	return ""
}

var cache struct {
	mu  sync.Mutex
	set *Set
}

// Build compiles the workload binaries and assembles their images. The
// result is cached for the life of the process, so many tests in one test
// binary build only once; the images do not depend on workDir.
//
// workDir is scratch space for the build: the module source goes to
// workDir/src and binaries to workDir/bin, and are left there. With an empty
// workDir Build uses a temporary directory and removes it afterwards.
func Build(ctx context.Context, workDir string) (*Set, error) {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if cache.set != nil {
		return cache.set, nil
	}
	if workDir == "" {
		tmp, err := os.MkdirTemp("", "berth-workloads-")
		if err != nil {
			return nil, fmt.Errorf("build workloads: %w", err)
		}
		defer os.RemoveAll(tmp)
		workDir = tmp
	}
	s, err := build(ctx, workDir)
	if err != nil {
		return nil, err
	}
	cache.set = s
	return s, nil
}

// build does Build's work without the cache.
func build(ctx context.Context, workDir string) (*Set, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("build workloads: the go toolchain is not on PATH: %w", err)
	}
	src := filepath.Join(workDir, "src")
	bin := filepath.Join(workDir, "bin")
	for _, d := range []string{src, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("build workloads: %w", err)
		}
	}
	files := map[string][]byte{
		"go.mod":  []byte("module berth.test/web\n\ngo 1.22\n"),
		"main.go": webSource,
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(src, n), b, 0o644); err != nil {
			return nil, fmt.Errorf("build workloads: write source: %w", err)
		}
	}
	s := &Set{binaries: map[Variant][]byte{}, images: map[Variant]v1.Image{}}
	for _, v := range Variants() {
		out := filepath.Join(bin, "web-"+string(v))
		ldflags := fmt.Sprintf("-s -w -buildid= -X main.version=%s -X main.mode=%s", v, v.mode())
		cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-ldflags", ldflags, "-o", out, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(),
			"CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH,
			"GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-buildvcs=false", "GOPROXY=off")
		if os.Getenv("GOCACHE") == "" {
			if _, err := os.UserCacheDir(); err != nil {
				// No HOME (a process started with a bare environment):
				// give the toolchain a cache of its own.
				cmd.Env = append(cmd.Env, "GOCACHE="+filepath.Join(workDir, "gocache"))
			}
		}
		if msg, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build workload %s: go build: %w: %s", v, err, msg)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return nil, fmt.Errorf("build workload %s: %w", v, err)
		}
		img, err := image(v, b)
		if err != nil {
			return nil, fmt.Errorf("build workload %s: %w", v, err)
		}
		s.binaries[v] = b
		s.images[v] = img
	}
	return s, nil
}

// image assembles the single-layer OCI image of variant v around binary.
func image(v Variant, binary []byte) (v1.Image, error) {
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     BinaryPath[1:],
		Mode:     0o755,
		Size:     int64(len(binary)),
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatUSTAR,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	raw := layerTar.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Config: v1.Config{
			Entrypoint:   []string{BinaryPath},
			Env:          []string{fmt.Sprintf("PORT=%d", Port)},
			ExposedPorts: map[string]struct{}{fmt.Sprintf("%d/tcp", Port): {}},
			WorkingDir:   "/",
			Labels: map[string]string{
				"org.opencontainers.image.title":   Repository,
				"org.opencontainers.image.version": string(v),
				"io.berth.workload.variant":        string(v),
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{CreatedBy: "berth workloads: web " + string(v)},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	return img, nil
}

// Image returns the image of variant v.
func (s *Set) Image(v Variant) (v1.Image, error) {
	img, ok := s.images[v]
	if !ok {
		return nil, fmt.Errorf("workload variant %q does not exist", v)
	}
	return img, nil
}

// Digest returns the manifest digest of variant v's image, for tests that
// pin a pod to an exact image.
func (s *Set) Digest(v Variant) (string, error) {
	img, err := s.Image(v)
	if err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("digest of workload %s: %w", v, err)
	}
	return d.String(), nil
}

// WriteBinary writes variant v's static binary to path (mode 0755), for
// tests that run the workload as a plain process.
func (s *Set) WriteBinary(v Variant, path string) error {
	b, ok := s.binaries[v]
	if !ok {
		return fmt.Errorf("write workload binary: variant %q does not exist", v)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		return fmt.Errorf("write workload binary %s: %w", v, err)
	}
	return nil
}

// Push writes every variant to the registry at registryHostPort over plain
// HTTP, tagged "<registryHostPort>/berth-test/web:<variant>", and returns the
// tags.
func (s *Set) Push(ctx context.Context, registryHostPort string) (Refs, error) {
	var refs Refs
	for _, v := range Variants() {
		ref := registryHostPort + "/" + Repository + ":" + string(v)
		tag, err := name.NewTag(ref, name.Insecure, name.StrictValidation)
		if err != nil {
			return Refs{}, fmt.Errorf("push workload %s: %w", v, err)
		}
		if err := remote.Write(tag, s.images[v], remote.WithContext(ctx)); err != nil {
			return Refs{}, fmt.Errorf("push workload %s to %s: %w", v, ref, err)
		}
		switch v {
		case V1:
			refs.V1 = ref
		case V2:
			refs.V2 = ref
		case Broken:
			refs.Broken = ref
		case Crash:
			refs.Crash = ref
		}
	}
	return refs, nil
}

// WriteRootFSTar writes variant v's root filesystem as a plain tarball, the
// input `docker import` expects. docker import carries no image config, so
// give it the entrypoint and port:
//
//	docker import --change 'ENTRYPOINT ["/web"]' --change 'ENV PORT=8080' rootfs.tar berth-test/web:v1
func (s *Set) WriteRootFSTar(v Variant, path string) (err error) {
	img, err := s.Image(v)
	if err != nil {
		return fmt.Errorf("write root filesystem: %w", err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	if err := writeFile(path, func(w io.Writer) error {
		_, err := io.Copy(w, rc)
		return err
	}); err != nil {
		return fmt.Errorf("write root filesystem of %s: %w", v, err)
	}
	return nil
}

// writeFile creates path and fills it with fill, removing it on failure.
func writeFile(path string, fill func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}
