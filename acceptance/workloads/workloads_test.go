package workloads

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-io/berth/acceptance/registry"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func buildSet(t *testing.T) *Set {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go toolchain is not on PATH")
	}
	s, err := Build(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func serveRegistry(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- registry.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("registry: %v", err)
		}
	})
	return l.Addr().String()
}

func TestPushedImagesPullBackWithEntrypointPortAndLabels(t *testing.T) {
	set := buildSet(t)
	host := serveRegistry(t)
	refs, err := set.Push(t.Context(), host)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Variants() {
		t.Run(string(v), func(t *testing.T) {
			want := host + "/berth-test/web:" + string(v)
			if refs.Of(v) != want {
				t.Fatalf("ref %q, want %q", refs.Of(v), want)
			}
			tag, err := name.NewTag(refs.Of(v), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(tag, remote.WithContext(t.Context()))
			if err != nil {
				t.Fatalf("pull %s: %v", tag, err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Config.Entrypoint, []string{"/web"}) {
				t.Errorf("entrypoint %q, want [/web]", cfg.Config.Entrypoint)
			}
			if !slices.Contains(cfg.Config.Env, "PORT=8080") {
				t.Errorf("env %q lacks PORT=8080", cfg.Config.Env)
			}
			if got := cfg.Config.Labels["io.berth.workload.variant"]; got != string(v) {
				t.Errorf("variant label %q, want %q", got, v)
			}
			if cfg.OS != "linux" {
				t.Errorf("os %q, want linux", cfg.OS)
			}
			gotDigest, _ := img.Digest()
			wantDigest, err := set.Digest(v)
			if err != nil {
				t.Fatal(err)
			}
			if gotDigest.String() != wantDigest {
				t.Errorf("pulled digest %s, built %s", gotDigest, wantDigest)
			}
			files := layerFiles(t, img)
			if len(files) != 1 || files["web"] != 0o755 {
				t.Errorf("layer files %v, want only web with mode 0755", files)
			}
		})
	}
}

// layerFiles lists the files of img's layers with their modes.
func layerFiles(t *testing.T, img v1.Image) map[string]int64 {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int64{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		for name, h := range tarEntries(t, rc) {
			files[name] = h.Mode
		}
		rc.Close()
	}
	return files
}

func tarEntries(t *testing.T, r io.Reader) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}

func TestRebuildYieldsIdenticalDigests(t *testing.T) {
	set := buildSet(t)
	again, err := build(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Variants() {
		a, _ := set.Digest(v)
		b, err := again.Digest(v)
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Errorf("%s: first build %s, second build %s", v, a, b)
		}
	}
}

func TestUnknownVariantIsAnError(t *testing.T) {
	set := buildSet(t)
	if _, err := set.Image("v7"); err == nil {
		t.Error("Image(v7) succeeded")
	}
	if err := set.WriteBinary("v7", filepath.Join(t.TempDir(), "x")); err == nil {
		t.Error("WriteBinary(v7) succeeded")
	}
}

func TestBinariesAreStaticLinuxExecutables(t *testing.T) {
	set := buildSet(t)
	for _, v := range Variants() {
		f, err := elf.NewFile(bytes.NewReader(set.binaries[v]))
		if err != nil {
			t.Fatalf("%s: not an ELF file: %v", v, err)
		}
		if f.Type != elf.ET_EXEC {
			t.Errorf("%s: ELF type %s, want a static executable", v, f.Type)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s: has an interpreter (dynamically linked)", v)
			}
		}
	}
}

func TestRootFSTarHoldsOnlyTheBinary(t *testing.T) {
	set := buildSet(t)
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := set.WriteRootFSTar(V2, p); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := tarEntries(t, f)
	h, ok := entries["web"]
	if len(entries) != 1 || !ok || h.Mode != 0o755 || h.Size != int64(len(set.binaries[V2])) {
		t.Fatalf("rootfs entries %v, want only web (0755, %d bytes)", entries, len(set.binaries[V2]))
	}
}

func TestOCIArchiveNamesTheImageAndHoldsEveryBlob(t *testing.T) {
	set := buildSet(t)
	p := filepath.Join(t.TempDir(), "web.tar")
	const ref = "registry.test/berth-test/web:v1"
	if err := set.WriteOCIArchive(t.Context(), V1, ref, p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c, _ := io.ReadAll(tr)
		files[h.Name] = c
	}
	for name, c := range files {
		if hexd, ok := strings.CutPrefix(name, "blobs/sha256/"); ok && hexd != "" {
			sum := sha256.Sum256(c)
			if hex.EncodeToString(sum[:]) != hexd {
				t.Errorf("blob %s has digest %x", name, sum)
			}
		}
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("index lists %d manifests, want 1", len(index.Manifests))
	}
	m := index.Manifests[0]
	if m.Annotations["io.containerd.image.name"] != ref || m.Annotations["org.opencontainers.image.ref.name"] != "v1" {
		t.Errorf("annotations %v, want the image named %s", m.Annotations, ref)
	}
	want, _ := set.Digest(V1)
	if m.Digest.String() != want {
		t.Errorf("index points at %s, want %s", m.Digest, want)
	}
	var manifest v1.Manifest
	if err := json.Unmarshal(files["blobs/sha256/"+m.Digest.Hex], &manifest); err != nil {
		t.Fatalf("manifest blob: %v", err)
	}
	for _, d := range append([]v1.Descriptor{manifest.Config}, manifest.Layers...) {
		if _, ok := files["blobs/sha256/"+d.Digest.Hex]; !ok {
			t.Errorf("archive lacks blob %s", d.Digest)
		}
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %q", files["oci-layout"])
	}
}

// proc is a workload binary running as a plain process.
type proc struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
	addr  string
}

// startBinary runs variant v on a free loopback port.
func startBinary(t *testing.T, set *Set, v Variant, env ...string) *proc {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "web")
	if err := set.WriteBinary(v, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"PORT=0", "POD_NAME=pod-" + string(v)}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: bufio.NewScanner(stderr)}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	if v == Crash {
		return p
	}
	_, port, _ := net.SplitHostPort(p.waitLine(t, "listening on "))
	p.addr = "127.0.0.1:" + port
	return p
}

func (p *proc) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	for p.lines.Scan() {
		if rest, ok := strings.CutPrefix(p.lines.Text(), prefix); ok {
			return rest
		}
	}
	t.Fatalf("workload output ended before a line starting with %q", prefix)
	return ""
}

// wait drains the output and returns the exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	for p.lines.Scan() {
	}
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func (p *proc) call(t *testing.T, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+p.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestWorkloadProcessesAnswerAsTheirVariant(t *testing.T) {
	set := buildSet(t)
	for _, tc := range []struct {
		v           Variant
		wantRoot    int
		wantBody    string
		wantHealthz int
	}{
		{V1, 200, "web v1 pod=pod-v1\n", 200},
		{V2, 200, "web v2 pod=pod-v2\n", 200},
		{Broken, 500, "web broken pod=pod-broken: broken on purpose\n", 503},
	} {
		t.Run(string(tc.v), func(t *testing.T) {
			p := startBinary(t, set, tc.v)
			if code, body := p.call(t, "GET", "/"); code != tc.wantRoot || body != tc.wantBody {
				t.Errorf("GET / = %d %q, want %d %q", code, body, tc.wantRoot, tc.wantBody)
			}
			if code, body := p.call(t, "GET", "/version"); code != 200 || body != string(tc.v)+"\n" {
				t.Errorf("GET /version = %d %q, want 200 %q", code, body, tc.v)
			}
			if code, _ := p.call(t, "GET", "/healthz"); code != tc.wantHealthz {
				t.Errorf("GET /healthz = %d, want %d", code, tc.wantHealthz)
			}
		})
	}
}

func TestCheckSubcommandFollowsHealthzSwitch(t *testing.T) {
	set := buildSet(t)
	p := startBinary(t, set, V1)
	bin := filepath.Join(t.TempDir(), "web")
	if err := set.WriteBinary(V1, bin); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(p.addr)
	check := func() int {
		cmd := exec.CommandContext(t.Context(), bin, "check")
		cmd.Env = []string{"PORT=" + port}
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	for _, st := range []struct {
		post string
		want int
	}{
		{"", 0},
		{"/fail", 1},
		{"/recover", 0},
	} {
		if st.post != "" {
			p.call(t, "POST", st.post)
		}
		if got := check(); got != st.want {
			t.Errorf("after POST %q: web check exited %d, want %d", st.post, got, st.want)
		}
	}
}

func TestSIGTERMFinishesInFlightRequestThenExitsZero(t *testing.T) {
	set := buildSet(t)
	p := startBinary(t, set, V1)
	type answer struct {
		code int
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + p.addr + "/slow?ms=200&hold=1")
		if err != nil {
			got <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- answer{resp.StatusCode, string(b), err}
	}()
	p.waitLine(t, "slow request started")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, "shutting down")
	a := <-got
	if a.err != nil || a.code != 200 || !strings.Contains(a.body, "pod=pod-v1") {
		t.Fatalf("request in flight at SIGTERM: %d %q %v, want 200 from pod-v1", a.code, a.body, a.err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
}

func TestCrashVariantExitsWithStatusThree(t *testing.T) {
	set := buildSet(t)
	p := startBinary(t, set, Crash)
	if code := p.wait(t); code != 3 {
		t.Fatalf("crash variant exited %d, want 3", code)
	}
}
