package nodeimage

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// VersionsFile is the name of the file in a runtime directory that records
// the versions its components were built from, as a JSON object of name to
// version (tools/runtime writes it).
const VersionsFile = "versions.json"

// BuildSpec says what goes into a node image. Paths are on the machine that
// builds the image.
type BuildSpec struct {
	// BerthBinary is the statically linked berth executable for the target
	// architecture; it becomes bin/berth.
	BerthBinary string
	// BerthVersion is recorded in the manifest; Nodes report it.
	BerthVersion string
	// RuntimeDir holds the runtime as tools/runtime builds it: bin/ with
	// containerd, containerd-shim-runc-v2, ctr and runc; cni/bin/ with the
	// CNI plugins (every file there is included); and versions.json.
	RuntimeDir string
	// ExtraImages are OCI image archives (.tar) to preload, stored as
	// images/<base name>. Base names must be distinct.
	ExtraImages []string
	// Components adds to or overrides the component versions read from
	// RuntimeDir's versions.json (which may then be absent).
	Components map[string]string
}

// input is one file of the image being built and where it comes from.
type input struct {
	File
	src string
}

// Build writes the node image bundle described by spec to w and returns its
// manifest and digest. It fails, naming the file, when an executable is not a
// static ELF or executables target different architectures, and when a
// required file, component version or the berth version is missing. On error,
// w may hold a partial bundle; BuildFile never leaves one behind.
func Build(ctx context.Context, spec BuildSpec, w io.Writer) (Manifest, Digest, error) {
	m, inputs, err := plan(ctx, spec)
	if err != nil {
		return Manifest{}, "", fmt.Errorf("build node image: %w", err)
	}
	d, err := write(ctx, m, inputs, w)
	if err != nil {
		return Manifest{}, "", fmt.Errorf("build node image: %w", err)
	}
	return m, d, nil
}

// BuildFile builds the bundle into outPath, which appears only once the
// bundle is complete (it is written beside it and renamed).
func BuildFile(ctx context.Context, spec BuildSpec, outPath string) (Manifest, Digest, error) {
	dir, base := filepath.Split(outPath)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-")
	if err != nil {
		return Manifest{}, "", fmt.Errorf("build node image %s: %w", outPath, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	m, d, err := Build(ctx, spec, bw)
	if err != nil {
		return Manifest{}, "", err
	}
	if err := bw.Flush(); err != nil {
		return Manifest{}, "", fmt.Errorf("write node image %s: %w", outPath, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return Manifest{}, "", fmt.Errorf("write node image %s: %w", outPath, err)
	}
	if err := tmp.Sync(); err != nil {
		return Manifest{}, "", fmt.Errorf("write node image %s: %w", outPath, err)
	}
	if err := tmp.Close(); err != nil {
		return Manifest{}, "", fmt.Errorf("write node image %s: %w", outPath, err)
	}
	if err := os.Rename(tmp.Name(), outPath); err != nil {
		return Manifest{}, "", fmt.Errorf("write node image %s: %w", outPath, err)
	}
	return m, d, nil
}

// plan gathers the inputs, hashes them, checks executables, and builds the
// manifest.
func plan(ctx context.Context, spec BuildSpec) (Manifest, []input, error) {
	switch {
	case spec.BerthBinary == "":
		return Manifest{}, nil, errors.New("no berth binary given")
	case spec.BerthVersion == "":
		return Manifest{}, nil, errors.New("no berth version given")
	case spec.RuntimeDir == "":
		return Manifest{}, nil, errors.New("no runtime directory given")
	}
	inputs := []input{{File: File{Path: BerthPath}, src: spec.BerthBinary}}
	for _, b := range RuntimeBinaries {
		inputs = append(inputs, input{File: File{Path: "bin/" + b}, src: filepath.Join(spec.RuntimeDir, "bin", b)})
	}
	cniDir := filepath.Join(spec.RuntimeDir, filepath.FromSlash(CNIBinDir))
	entries, err := os.ReadDir(cniDir)
	if err != nil {
		return Manifest{}, nil, fmt.Errorf("list CNI plugins: %w", err)
	}
	for _, e := range entries {
		inputs = append(inputs, input{File: File{Path: CNIBinDir + "/" + e.Name()}, src: filepath.Join(cniDir, e.Name())})
	}
	for _, img := range spec.ExtraImages {
		inputs = append(inputs, input{File: File{Path: ImagesDir + "/" + filepath.Base(img)}, src: img})
	}
	slices.SortFunc(inputs, func(a, b input) int { return strings.Compare(a.Path, b.Path) })

	arch, archFrom := "", ""
	for i := range inputs {
		in := &inputs[i]
		if i > 0 && inputs[i-1].Path == in.Path {
			return Manifest{}, nil, fmt.Errorf("%s and %s would both be stored as %s", inputs[i-1].src, in.src, in.Path)
		}
		mode, err := modeFor(in.Path)
		if err != nil {
			return Manifest{}, nil, fmt.Errorf("%s: %w", in.src, err)
		}
		in.Mode = mode
		a, err := inspect(ctx, in)
		if err != nil {
			return Manifest{}, nil, err
		}
		if a == "" {
			continue
		}
		if arch != "" && a != arch {
			return Manifest{}, nil, fmt.Errorf("%s targets %s but %s targets %s: %w", in.src, a, archFrom, arch, ErrInvalid)
		}
		arch, archFrom = a, in.src
	}

	components, err := readVersions(ctx, spec.RuntimeDir)
	if err != nil {
		return Manifest{}, nil, err
	}
	maps.Copy(components, spec.Components)
	m := Manifest{
		FormatVersion: FormatVersion,
		BerthVersion:  spec.BerthVersion,
		Architecture:  arch,
		Components:    components,
	}
	for _, in := range inputs {
		m.Files = append(m.Files, in.File)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, nil, err
	}
	return m, inputs, nil
}

// inspect fills in the size and hash of in and, for an executable, checks
// that it is static and returns its architecture.
func inspect(ctx context.Context, in *input) (arch string, err error) {
	f, err := os.Open(in.src)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", in.src, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read %s: %w", in.src, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file: %w", in.src, ErrInvalid)
	}
	if in.Mode == 0o755 {
		if arch, err = checkStaticELF(in.src, f); err != nil {
			return "", err
		}
	} else if err := checkImageArchive(ctx, in.src, f); err != nil {
		return "", err
	}
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, io.NewSectionReader(f, 0, st.Size())})
	if err != nil {
		return "", fmt.Errorf("read %s: %w", in.src, err)
	}
	in.Size = n
	in.SHA256 = hex.EncodeToString(h.Sum(nil))
	return arch, nil
}

// checkImageArchive makes sure an archive to preload is a tar holding an OCI
// layout (oci-layout or index.json) or a docker-save manifest.json, so a
// wrong file fails the build instead of the import on every host.
func checkImageArchive(ctx context.Context, name string, r io.ReaderAt) error {
	tr := tar.NewReader(ctxReader{ctx, io.NewSectionReader(r, 0, 1<<62)})
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%s is not an OCI image archive (no oci-layout, index.json or manifest.json): %w", name, ErrInvalid)
		}
		if err != nil {
			return fmt.Errorf("%s is not a tar archive: %v: %w", name, err, ErrInvalid)
		}
		switch path.Clean(hdr.Name) {
		case "oci-layout", "index.json", "manifest.json":
			return nil
		}
	}
}

// readVersions reads the component versions of a runtime directory; a
// missing versions.json yields an empty map.
func readVersions(ctx context.Context, runtimeDir string) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := filepath.Join(runtimeDir, VersionsFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read component versions: %w", err)
	}
	v := map[string]string{}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("read component versions %s: %w", p, err)
	}
	return v, nil
}

// write streams the bundle to w: the manifest first, then directories and
// files sorted by name, all with fixed metadata. It re-hashes every file
// while copying, so a file that changed since plan fails the build.
func write(ctx context.Context, m Manifest, inputs []input, w io.Writer) (Digest, error) {
	manifest, err := encodeManifest(m)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	gz, err := gzip.NewWriterLevel(io.MultiWriter(w, h), gzip.DefaultCompression)
	if err != nil {
		return "", fmt.Errorf("start compression: %w", err)
	}
	// The zero gzip header has no name, no time and OS "unknown": fixed.
	tw := tar.NewWriter(gz)
	if err := writeEntry(tw, ManifestName, 0o644, int64(len(manifest)), strings.NewReader(string(manifest))); err != nil {
		return "", err
	}
	type entry struct {
		name string
		in   *input
	}
	var entries []entry
	for _, d := range dirsOf(m.Files) {
		entries = append(entries, entry{name: d + "/"})
	}
	for i := range inputs {
		entries = append(entries, entry{name: inputs[i].Path, in: &inputs[i]})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if e.in == nil {
			if err := tw.WriteHeader(header(e.name, tar.TypeDir, 0o755, 0)); err != nil {
				return "", fmt.Errorf("write %s: %w", e.name, err)
			}
			continue
		}
		if err := copyInput(ctx, tw, e.in); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("finish archive: %w", err)
	}
	if err := gz.Close(); err != nil {
		return "", fmt.Errorf("finish compression: %w", err)
	}
	return digestOf(h), nil
}

// copyInput writes one input file into the archive and checks it still has
// the size and hash recorded in the manifest.
func copyInput(ctx context.Context, tw *tar.Writer, in *input) error {
	f, err := os.Open(in.src)
	if err != nil {
		return fmt.Errorf("read %s: %w", in.src, err)
	}
	defer f.Close()
	h := sha256.New()
	if err := writeEntry(tw, in.Path, in.Mode, in.Size, io.TeeReader(ctxReader{ctx, f}, h)); err != nil {
		return fmt.Errorf("%s: %w", in.src, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != in.SHA256 {
		return fmt.Errorf("%s changed while the image was being built", in.src)
	}
	return nil
}

// writeEntry writes a regular file of exactly size bytes from r.
func writeEntry(tw *tar.Writer, name string, mode FileMode, size int64, r io.Reader) error {
	if err := tw.WriteHeader(header(name, tar.TypeReg, mode, size)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	n, err := io.Copy(tw, io.LimitReader(r, size))
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("write %s: file shrank from %d to %d bytes while the image was being built", name, size, n)
	}
	// One more byte means the file grew.
	if k, _ := r.Read(make([]byte, 1)); k > 0 {
		return fmt.Errorf("write %s: file grew beyond %d bytes while the image was being built", name, size)
	}
	return nil
}

// header returns the fixed-metadata tar header every entry uses.
func header(name string, typ byte, mode FileMode, size int64) *tar.Header {
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     int64(mode),
		Size:     size,
		ModTime:  modTime,
		Format:   tar.FormatUSTAR,
	}
}

// ctxReader stops a long copy when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
