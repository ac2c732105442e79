// Command runtime builds the statically linked container runtime that every
// berth node image carries: containerd, containerd-shim-runc-v2, ctr, runc and
// the CNI plugins berth uses, at the versions pinned in this module's go.mod.
//
// Outputs go to a cache directory keyed by a hash of everything that decides
// the bytes (the recipe below, go.mod, go.sum, the Go toolchain and target),
// laid out as a node image expects them:
//
//	<cache>/<key>/bin/{containerd,containerd-shim-runc-v2,ctr,runc}
//	<cache>/<key>/cni/bin/{bridge,host-local,loopback,portmap}
//	<cache>/<key>/versions.json
//
// A directory under its final name is always complete: builds go to a
// temporary directory that is renamed into place only after every binary was
// built and proved static. An existing directory is reused. This program must
// never install anything on the machine (the wrapper script installs
// libseccomp-dev) and never write outside the cache directory.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// recipeVersion changes whenever the build recipe changes in a way the
// component table does not show, so old cache entries stop matching.
const recipeVersion = "berth-runtime-recipe-1"

// target is one executable to build from a main package.
type target struct {
	pkg string // import path of the main package
	dir string // output directory inside the cache entry
}

// component is one upstream project: its module, how to build its binaries,
// and the name under which versions.json records its version.
type component struct {
	name    string
	module  string
	cgo     bool
	tags    []string
	ldflags []string
	static  []string // extra linker flags that make a cgo build static
	bins    []target
}

// components is the recipe. Versions come from go.mod; the ldflags set the
// version strings the projects' own Makefiles would set, so `containerd
// --version` and `runc --version` tell the truth.
func components(versions map[string]string) []component {
	const ctrd = "github.com/containerd/containerd/v2"
	const cni = "github.com/containernetworking/plugins"
	return []component{
		{
			name:   "containerd",
			module: ctrd,
			tags:   []string{"no_btrfs", "no_devmapper", "no_zfs"},
			ldflags: []string{
				"-X", ctrd + "/version.Version=" + versions[ctrd],
				"-X", ctrd + "/version.Package=" + ctrd,
			},
			bins: []target{
				{pkg: ctrd + "/cmd/containerd", dir: "bin"},
				{pkg: ctrd + "/cmd/containerd-shim-runc-v2", dir: "bin"},
				{pkg: ctrd + "/cmd/ctr", dir: "bin"},
			},
		},
		{
			name:   "runc",
			module: "github.com/opencontainers/runc",
			cgo:    true,
			tags:   []string{"seccomp", "netgo", "osusergo"},
			static: []string{"-extldflags", "-static"},
			bins:   []target{{pkg: "github.com/opencontainers/runc", dir: "bin"}},
		},
		{
			name:    "cni-plugins",
			module:  cni,
			ldflags: []string{"-X", cni + "/pkg/utils/buildversion.BuildVersion=" + versions[cni]},
			bins: []target{
				{pkg: cni + "/plugins/main/bridge", dir: "cni/bin"},
				{pkg: cni + "/plugins/ipam/host-local", dir: "cni/bin"},
				{pkg: cni + "/plugins/main/loopback", dir: "cni/bin"},
				{pkg: cni + "/plugins/meta/portmap", dir: "cni/bin"},
			},
		},
	}
}

func main() {
	if err := Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "build-runtime:", err)
		os.Exit(1)
	}
}

// Run builds the runtime (or finds it in the cache) and prints the directory
// holding it on stdout; progress goes to stderr. It runs from the
// tools/runtime module directory, whose go.mod pins the versions.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build-runtime", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cache := fs.String("cache", "../../.cache/runtime", "cache `dir`ectory holding one subdirectory per recipe hash")
	module := fs.String("module", ".", "`dir`ectory of the tools/runtime module")
	goTool := fs.String("go", "go", "go `command` to build with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	b := &builder{goTool: *goTool, module: *module, progress: stderr}
	dir, err := b.Build(ctx, *cache)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", dir, err)
	}
	fmt.Fprintln(stdout, abs)
	return nil
}

// builder builds the components with one Go toolchain from one module.
type builder struct {
	goTool   string
	module   string
	progress io.Writer
}

// Build returns the cache entry for the current recipe, building it when
// missing.
func (b *builder) Build(ctx context.Context, cache string) (string, error) {
	versions, err := b.moduleVersions(ctx)
	if err != nil {
		return "", err
	}
	goVersion, err := b.goEnv(ctx, "GOVERSION")
	if err != nil {
		return "", err
	}
	goos, err := b.goEnv(ctx, "GOOS")
	if err != nil {
		return "", err
	}
	goarch, err := b.goEnv(ctx, "GOARCH")
	if err != nil {
		return "", err
	}
	if goos != "linux" {
		return "", fmt.Errorf("runtime targets linux, not GOOS=%s", goos)
	}
	gomod, err := os.ReadFile(filepath.Join(b.module, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("read go.mod: %w", err)
	}
	gosum, err := os.ReadFile(filepath.Join(b.module, "go.sum"))
	if err != nil {
		return "", fmt.Errorf("read go.sum: %w", err)
	}
	comps := components(versions)
	key := cacheKey(comps, goVersion, goarch, gomod, gosum)
	final := filepath.Join(cache, key)
	if _, err := os.Stat(filepath.Join(final, "versions.json")); err == nil {
		fmt.Fprintf(b.progress, "runtime: reusing %s\n", final)
		return final, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("create cache %s: %w", cache, err)
	}
	tmp, err := os.MkdirTemp(cache, key+".tmp-")
	if err != nil {
		return "", fmt.Errorf("create build directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	absTmp, err := filepath.Abs(tmp)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", tmp, err)
	}
	recorded := map[string]string{"go": goVersion}
	for _, c := range comps {
		if err := b.buildComponent(ctx, c, absTmp); err != nil {
			return "", err
		}
		v, err := verifyComponent(c, absTmp)
		if err != nil {
			return "", err
		}
		if want := versions[c.module]; v != want {
			return "", fmt.Errorf("%s: binaries report %s %s, go.mod pins %s", c.name, c.module, v, want)
		}
		recorded[c.name] = v
	}
	data, err := json.MarshalIndent(recorded, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode versions: %w", err)
	}
	if err := os.WriteFile(filepath.Join(absTmp, "versions.json"), append(data, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write versions.json: %w", err)
	}
	if err := os.Chmod(absTmp, 0o755); err != nil {
		return "", fmt.Errorf("chmod %s: %w", absTmp, err)
	}
	if err := os.Rename(absTmp, final); err != nil {
		// Someone else finished the same recipe first: theirs is as good.
		if _, statErr := os.Stat(filepath.Join(final, "versions.json")); statErr == nil {
			return final, nil
		}
		return "", fmt.Errorf("move runtime into %s: %w", final, err)
	}
	fmt.Fprintf(b.progress, "runtime: built %s\n", final)
	return final, nil
}

// buildComponent runs one go build per output directory of c.
func (b *builder) buildComponent(ctx context.Context, c component, out string) error {
	byDir := map[string][]string{}
	var dirs []string
	for _, bin := range c.bins {
		if _, ok := byDir[bin.dir]; !ok {
			dirs = append(dirs, bin.dir)
		}
		byDir[bin.dir] = append(byDir[bin.dir], bin.pkg)
	}
	for _, d := range dirs {
		dest := filepath.Join(out, d)
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dest, err)
		}
		args := buildArgs(c, dest+string(filepath.Separator), byDir[d])
		fmt.Fprintf(b.progress, "runtime: building %s: %s %s\n", c.name, b.goTool, strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, b.goTool, args...)
		cmd.Dir = b.module
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+map[bool]string{true: "1", false: "0"}[c.cgo], "GOOS=linux", "GOFLAGS=-mod=readonly -buildvcs=false")
		cmd.Stdout = b.progress
		cmd.Stderr = b.progress
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", c.name, err)
		}
	}
	return nil
}

// buildArgs returns the go build arguments for packages of c written to out.
// -trimpath and an empty build ID keep the bytes independent of where and
// when the build ran.
func buildArgs(c component, out string, pkgs []string) []string {
	ld := append([]string{"-s", "-w", "-buildid="}, c.ldflags...)
	ld = append(ld, c.static...)
	args := []string{"build", "-trimpath", "-o", out}
	if len(c.tags) > 0 {
		args = append(args, "-tags", strings.Join(c.tags, " "))
	}
	args = append(args, "-ldflags", quoteLdflags(ld))
	return append(args, pkgs...)
}

// quoteLdflags joins linker flags the way the go command splits them,
// quoting values that contain spaces.
func quoteLdflags(flags []string) string {
	q := make([]string, len(flags))
	for i, f := range flags {
		if strings.ContainsAny(f, " \t'\"") {
			f = "'" + f + "'"
		}
		q[i] = f
	}
	return strings.Join(q, " ")
}

// verifyComponent checks that every binary of c exists, is a static ELF, and
// was built from the same version of c's module; it returns that version.
func verifyComponent(c component, out string) (string, error) {
	version := ""
	for _, bin := range c.bins {
		p := filepath.Join(out, bin.dir, path.Base(bin.pkg))
		if err := checkStatic(p); err != nil {
			return "", err
		}
		v, err := moduleVersionOf(p, c.module)
		if err != nil {
			return "", err
		}
		if version != "" && v != version {
			return "", fmt.Errorf("%s: %s built from %s %s, others from %s", c.name, p, c.module, v, version)
		}
		version = v
	}
	return version, nil
}

// ErrDynamic reports an executable that needs a dynamic loader or shared
// libraries, which a node image must never carry.
var ErrDynamic = errors.New("dynamically linked")

// checkStatic fails unless the file at p is an ELF executable without a
// program interpreter and without needed shared libraries.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("read ELF %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: has a program interpreter: %w", p, ErrDynamic)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("read dynamic section of %s: %w", p, err)
	}
	if len(libs) > 0 {
		return fmt.Errorf("%s: needs %s: %w", p, strings.Join(libs, ", "), ErrDynamic)
	}
	return nil
}

// moduleVersionOf reads the version of module mod recorded in the build
// information of the binary at p.
func moduleVersionOf(p, mod string) (string, error) {
	info, err := buildinfo.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read build info of %s: %w", p, err)
	}
	if info.Main.Path == mod {
		return info.Main.Version, nil
	}
	for _, d := range info.Deps {
		if d.Path == mod {
			if d.Replace != nil {
				return "", fmt.Errorf("%s: module %s is replaced by %s", p, mod, d.Replace.Path)
			}
			return d.Version, nil
		}
	}
	return "", fmt.Errorf("%s: build info does not mention module %s", p, mod)
}

// moduleVersions lists the selected version of every module in the build.
func (b *builder) moduleVersions(ctx context.Context) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, b.goTool, "list", "-m", "-f", "{{.Path}} {{.Version}}", "all")
	cmd.Dir = b.module
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("list modules: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	versions := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, version, _ := strings.Cut(line, " ")
		versions[path] = version
	}
	return versions, nil
}

// goEnv reads one variable from go env.
func (b *builder) goEnv(ctx context.Context, name string) (string, error) {
	cmd := exec.CommandContext(ctx, b.goTool, "env", name)
	cmd.Dir = b.module
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// cacheKey hashes everything that decides the bytes of the runtime. Sixteen
// hex digits are plenty to tell recipes apart in one cache.
func cacheKey(comps []component, goVersion, goarch string, gomod, gosum []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\nlinux/%s\n", recipeVersion, goVersion, goarch)
	for _, c := range comps {
		tags := append([]string(nil), c.tags...)
		sort.Strings(tags)
		fmt.Fprintf(h, "%s %s cgo=%t tags=%q ldflags=%q static=%q\n", c.name, c.module, c.cgo, tags, c.ldflags, c.static)
		for _, bin := range c.bins {
			fmt.Fprintf(h, "  %s -> %s\n", bin.pkg, bin.dir)
		}
	}
	fmt.Fprintf(h, "go.mod %d\n", len(gomod))
	h.Write(gomod)
	fmt.Fprintf(h, "go.sum %d\n", len(gosum))
	h.Write(gosum)
	return hex.EncodeToString(h.Sum(nil))[:16] + "-" + goarch
}
