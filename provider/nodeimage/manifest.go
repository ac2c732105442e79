package nodeimage

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FormatVersion is the bundle format this package writes and the only one it
// reads. It changes when an older reader could misread a newer bundle.
const FormatVersion = 1

// ManifestName is the path of the manifest inside a bundle and inside an
// unpacked image directory.
const ManifestName = "manifest.json"

// modTime is the modification time written into every tar header, so that
// bundle bytes never depend on when their inputs were made.
var modTime = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// Paths of the executables every node image carries, relative to the image
// root. The engine starts services from them.
const (
	BerthPath      = "bin/berth"
	ContainerdPath = "bin/containerd"
	ShimPath       = "bin/containerd-shim-runc-v2"
	CtrPath        = "bin/ctr"
	RuncPath       = "bin/runc"
	// CNIBinDir holds the CNI plugins; point CNI's plugin path here.
	CNIBinDir = "cni/bin"
	// ImagesDir holds preloaded OCI image archives.
	ImagesDir = "images"
)

// RuntimeBinaries names the files Build takes from the runtime directory's
// bin/: the container runtime berth's agent drives.
var RuntimeBinaries = []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc"}

// RequiredCNIPlugins names the CNI plugins every image must carry, because
// berth's pod network uses them.
var RequiredCNIPlugins = []string{"bridge", "host-local", "loopback", "portmap"}

// RequiredComponents names the component versions every manifest records, so
// a host can always tell which runtime it runs.
var RequiredComponents = []string{"containerd", "runc", "cni-plugins"}

// ErrUnsupportedFormat reports a bundle written in a format version this
// build of berth cannot read; a newer berth can.
var ErrUnsupportedFormat = errors.New("unsupported node image format")

// ErrInvalid reports a bundle, manifest or unpacked image that breaks the
// format: a missing or extra file, a wrong size, mode or hash, an unsafe path,
// a link, or a dynamically linked executable.
var ErrInvalid = errors.New("invalid node image")

// Manifest describes a node image: what it contains and which versions it
// pins. It is the first entry of every bundle and is kept as manifest.json in
// the unpacked image directory.
type Manifest struct {
	// FormatVersion is the bundle format; see [FormatVersion].
	FormatVersion int `json:"formatVersion"`
	// BerthVersion is the version of bin/berth, which a Node reports.
	BerthVersion string `json:"berthVersion"`
	// Architecture is the GOARCH every executable in the image targets.
	Architecture string `json:"architecture"`
	// Components maps runtime component names (containerd, runc,
	// cni-plugins, go) to the versions they were built from.
	Components map[string]string `json:"components"`
	// Files lists every regular file of the image except the manifest,
	// sorted by path.
	Files []File `json:"files"`
}

// File is one regular file of an image, as the manifest records it.
type File struct {
	// Path is slash-separated and relative to the image root.
	Path string `json:"path"`
	// Mode holds the permission bits: 0755 for executables, 0644 otherwise.
	Mode FileMode `json:"mode"`
	// Size is the length in bytes.
	Size int64 `json:"size"`
	// SHA256 is the lower-case hex SHA-256 of the contents.
	SHA256 string `json:"sha256"`
}

// FileMode holds permission bits and is written as an octal string ("0755")
// so the manifest reads the way ls and chmod do.
type FileMode uint32

// Perm returns the mode as an fs.FileMode.
func (m FileMode) Perm() fs.FileMode { return fs.FileMode(m).Perm() }

// String formats the mode as four octal digits.
func (m FileMode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// MarshalText writes the mode as four octal digits.
func (m FileMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads an octal mode with only permission bits set.
func (m *FileMode) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 8, 32)
	if err != nil || v&^0o777 != 0 {
		return fmt.Errorf("invalid file mode %q: want octal permission bits like 0755", string(b))
	}
	*m = FileMode(v)
	return nil
}

// File returns the manifest entry for path p.
func (m Manifest) File(p string) (File, bool) {
	for _, f := range m.Files {
		if f.Path == p {
			return f, true
		}
	}
	return File{}, false
}

// Images returns the paths of the preloaded OCI image archives, so the agent
// can import them into containerd.
func (m Manifest) Images() []string {
	var out []string
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, ImagesDir+"/") {
			out = append(out, f.Path)
		}
	}
	return out
}

// Validate checks the manifest against the format: a known format version,
// the required files, components and versions, well-formed safe paths in
// order, and the mode each path must have.
func (m Manifest) Validate() error {
	if m.FormatVersion != FormatVersion {
		return fmt.Errorf("manifest format version %d, this berth reads %d: %w", m.FormatVersion, FormatVersion, ErrUnsupportedFormat)
	}
	if m.BerthVersion == "" {
		return fmt.Errorf("manifest has no berth version: %w", ErrInvalid)
	}
	if _, ok := goarchOf[m.Architecture]; !ok {
		return fmt.Errorf("manifest architecture %q is not supported: %w", m.Architecture, ErrInvalid)
	}
	for _, c := range RequiredComponents {
		if m.Components[c] == "" {
			return fmt.Errorf("manifest records no version for component %s: %w", c, ErrInvalid)
		}
	}
	for i, f := range m.Files {
		if err := f.validate(); err != nil {
			return err
		}
		if i > 0 && m.Files[i-1].Path >= f.Path {
			return fmt.Errorf("manifest files are not sorted and unique at %s: %w", f.Path, ErrInvalid)
		}
	}
	required := []string{BerthPath}
	for _, b := range RuntimeBinaries {
		required = append(required, "bin/"+b)
	}
	for _, p := range RequiredCNIPlugins {
		required = append(required, CNIBinDir+"/"+p)
	}
	for _, p := range required {
		if _, ok := m.File(p); !ok {
			return fmt.Errorf("manifest lacks required file %s: %w", p, ErrInvalid)
		}
	}
	return nil
}

// validate checks one file entry.
func (f File) validate() error {
	want, err := modeFor(f.Path)
	if err != nil {
		return err
	}
	if f.Mode != want {
		return fmt.Errorf("file %s has mode %s, the format requires %s: %w", f.Path, f.Mode, want, ErrInvalid)
	}
	if f.Size < 0 {
		return fmt.Errorf("file %s has negative size: %w", f.Path, ErrInvalid)
	}
	if len(f.SHA256) != 64 || strings.ToLower(f.SHA256) != f.SHA256 {
		return fmt.Errorf("file %s has malformed sha256 %q: %w", f.Path, f.SHA256, ErrInvalid)
	}
	if _, err := hex.DecodeString(f.SHA256); err != nil {
		return fmt.Errorf("file %s has malformed sha256 %q: %w", f.Path, f.SHA256, ErrInvalid)
	}
	return nil
}

// fileDirs are the only directories an image has; files sit directly in them.
var fileDirs = map[string]FileMode{"bin": 0o755, CNIBinDir: 0o755, ImagesDir: 0o644}

// dirsOf lists the directories (parents included) that hold the files,
// sorted, as tar entries and unpacking need them.
func dirsOf(files []File) []string {
	seen := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			seen[d] = true
		}
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// modeFor returns the mode a file at p must have, or an error when p is not
// a path the format allows: one safe name directly inside bin/, cni/bin/ or
// images/ (ending in .tar), short enough for a USTAR header.
func modeFor(p string) (FileMode, error) {
	dir, name := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	mode, ok := fileDirs[dir]
	if !ok || !safeName(name) {
		return 0, fmt.Errorf("path %q is not allowed in a node image: %w", p, ErrInvalid)
	}
	if dir == ImagesDir && !strings.HasSuffix(name, ".tar") {
		return 0, fmt.Errorf("preloaded image %q must be a .tar archive: %w", p, ErrInvalid)
	}
	if len(p) > 100 {
		return 0, fmt.Errorf("path %q is longer than 100 bytes: %w", p, ErrInvalid)
	}
	return mode, nil
}

// safeName accepts names made of letters, digits, '.', '_', '-' and '+' that
// do not start with a dot, so no name can be "..", hidden, or need quoting.
func safeName(name string) bool {
	if name == "" || name[0] == '.' {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '.', r == '_', r == '-', r == '+':
		default:
			return false
		}
	}
	return true
}

// encodeManifest renders the manifest as it is stored: indented JSON with a
// trailing newline. encoding/json sorts map keys, so equal manifests encode
// to equal bytes.
func encodeManifest(m Manifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// decodeManifest parses and validates manifest bytes, refusing unknown
// fields so that a newer format is never half-understood.
func decodeManifest(b []byte) (Manifest, error) {
	var probe struct {
		FormatVersion int `json:"formatVersion"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return Manifest{}, fmt.Errorf("decode manifest: %v: %w", err, ErrInvalid)
	}
	if probe.FormatVersion != FormatVersion {
		return Manifest{}, fmt.Errorf("manifest format version %d, this berth reads %d: %w", probe.FormatVersion, FormatVersion, ErrUnsupportedFormat)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("decode manifest: %v: %w", err, ErrInvalid)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return Manifest{}, fmt.Errorf("decode manifest: trailing data: %w", ErrInvalid)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}
