package containerd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"

	"github.com/berth-io/berth/nodeagent/runtime"
)

func TestPullFailuresAreClassifiedByCause(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		reason   runtime.Reason
		notFound bool
	}{
		{"unknown tag", fmt.Errorf("r/web:v9: %w", errdefs.ErrNotFound), runtime.ReasonImageNotFound, true},
		{"no credentials", fmt.Errorf("pull: %w: no basic auth credentials", docker.ErrInvalidAuthorization), runtime.ReasonRegistryUnauthorized, false},
		{"401 status", remoteerrors.ErrUnexpectedStatus{Status: "401 Unauthorized", StatusCode: 401}, runtime.ReasonRegistryUnauthorized, false},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, runtime.ReasonRegistryUnavailable, false},
		{"unknown host", &net.DNSError{Err: "no such host", Name: "nowhere.invalid"}, runtime.ReasonRegistryUnavailable, false},
		{"refused across grpc", errors.New("rpc error: dial tcp 127.0.0.1:1: connect: connection refused"), runtime.ReasonRegistryUnavailable, false},
		{"anything else", errors.New("unexpected media type"), runtime.ReasonImagePull, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pullError("r/web:v1", tt.err)
			if !errors.Is(err, runtime.ErrImagePull) {
				t.Errorf("%v does not match ErrImagePull", err)
			}
			if got := runtime.ReasonOf(err); got != tt.reason {
				t.Errorf("reason %q, want %q", got, tt.reason)
			}
			if got := errors.Is(err, runtime.ErrImageNotFound); got != tt.notFound {
				t.Errorf("matches ErrImageNotFound: %v, want %v", got, tt.notFound)
			}
			if !strings.Contains(err.Error(), tt.err.Error()) {
				t.Errorf("message %q lost the registry's cause %q", err, tt.err)
			}
		})
	}
}

func TestStartFailuresNameAMissingExecutable(t *testing.T) {
	tests := []struct {
		name   string
		msg    string
		kind   error
		reason runtime.Reason
	}{
		{"runc 1.1 lookup", `failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: "/nope": stat /nope: no such file or directory: unknown`,
			runtime.ErrContainerCreate, runtime.ReasonExecutableNotFound},
		{"not in PATH", `OCI runtime create failed: exec: "nope": executable file not found in $PATH: unknown`,
			runtime.ErrContainerCreate, runtime.ReasonExecutableNotFound},
		{"cgroup limit refused", `OCI runtime create failed: runc create failed: unable to start container process: error during container init: error setting cgroup config for procHooks process: failed to write "4096": write /sys/fs/cgroup/memory/b/x/memory.limit_in_bytes: device or resource busy: unknown`,
			runtime.ErrResources, runtime.ReasonResources},
		{"bad working directory", `OCI runtime create failed: chdir to cwd ("/missing") set in config.json failed: not a directory: unknown`,
			runtime.ErrContainerCreate, runtime.ReasonCreateContainer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classifyCreate("start container", "c1", errors.New(tt.msg))
			if !errors.Is(err, tt.kind) || runtime.ReasonOf(err) != tt.reason {
				t.Errorf("%v: kind/reason %q, want %v / %q", err, runtime.ReasonOf(err), tt.kind, tt.reason)
			}
		})
	}
}

func TestSpecsTheNodeCannotRunAreRejectedBeforeContainerdIsAsked(t *testing.T) {
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 10.96.0.10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := runtime.ContainerSpec{Image: "r/web:v1", ResolvConfPath: resolv, Resources: runtime.Resources{MemoryBytes: 64 << 20, CPUMillis: 500}}
	tests := []struct {
		name   string
		change func(*runtime.ContainerSpec)
		kind   error
	}{
		{"a sound spec", func(*runtime.ContainerSpec) {}, nil},
		{"memory below what a process needs", func(s *runtime.ContainerSpec) { s.Resources.MemoryBytes = 1 << 20 }, runtime.ErrResources},
		{"negative cpu", func(s *runtime.ContainerSpec) { s.Resources.CPUMillis = -1 }, runtime.ErrResources},
		{"no image", func(s *runtime.ContainerSpec) { s.Image = "" }, runtime.ErrContainerCreate},
		{"reserved label", func(s *runtime.ContainerSpec) { s.Labels = map[string]string{"io.berth.pod.name": "x"} }, runtime.ErrContainerCreate},
		{"missing resolv.conf", func(s *runtime.ContainerSpec) { s.ResolvConfPath = filepath.Join(dir, "nope") }, runtime.ErrContainerCreate},
		{"missing network namespace", func(s *runtime.ContainerSpec) { s.NetNSPath = "/var/run/netns/berth-test-missing" }, runtime.ErrContainerCreate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.change(&s)
			err := checkSpec("default/web/web", s)
			if tt.kind == nil && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if tt.kind != nil && !errors.Is(err, tt.kind) {
				t.Fatalf("error %v, want %v", err, tt.kind)
			}
		})
	}
}

func TestMetaSurvivesTheRoundTripThroughLabels(t *testing.T) {
	m := runtime.Meta{PodNamespace: "shop", PodName: "web-7f9c", PodUID: "0b6e", ContainerName: "web", RestartCount: 4}
	labels := metaLabels(m)
	labels["team"] = "payments"
	if got := metaOf(labels); got != m {
		t.Errorf("meta %+v, want %+v", got, m)
	}
	if got := userLabels(labels); len(got) != 1 || got["team"] != "payments" {
		t.Errorf("user labels %v, want only team=payments", got)
	}
}

func TestLogRotationKeepsAtMostMaxFilesOfTheNewestWholeWrites(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return "<missing>"
		}
		return string(b)
	}
	tests := []struct {
		name     string
		existing string // in the log before it is opened
		maxFiles int
		writes   []string
		want     []string // log, log.1, log.2, log.3
	}{
		{"below the limit", "", 3, []string{"abc\n", "def\n"}, []string{"abc\ndef\n", "<missing>", "<missing>", "<missing>"}},
		{"exactly the limit", "", 3, []string{"0123\n", "5678\n"}, []string{"0123\n5678\n", "<missing>", "<missing>", "<missing>"}},
		{"a write that would pass it starts a new file", "", 3, []string{"0123\n", "5678\n", "x\n"}, []string{"x\n", "0123\n5678\n", "<missing>", "<missing>"}},
		{"the oldest part is dropped", "", 3, []string{"first-one\n", "second-on\n", "third-one\n", "fourth\n"}, []string{"fourth\n", "third-one\n", "second-on\n", "<missing>"}},
		{"a write larger than the limit gets a file of its own", "", 3, []string{"a\n", "0123456789abcdef\n", "b\n"}, []string{"b\n", "0123456789abcdef\n", "a\n", "<missing>"}},
		{"what is already there counts", "0123456\n", 3, []string{"abc\n"}, []string{"abc\n", "0123456\n", "<missing>", "<missing>"}},
		{"one file only is emptied", "", 1, []string{"0123456\n", "abc\n"}, []string{"abc\n", "<missing>", "<missing>", "<missing>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "pods", "web.log")
			if tt.existing != "" {
				if err := os.MkdirAll(filepath.Dir(log), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(log, []byte(tt.existing), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			l, err := openLog(log, 10, tt.maxFiles)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.writes {
				if n, err := l.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("write %q = %d, %v", w, n, err)
				}
			}
			if err := l.Close(); err != nil || l.Err() != nil {
				t.Fatalf("close = %v, err = %v", err, l.Err())
			}
			for i, want := range tt.want {
				p := log
				if i > 0 {
					p = fmt.Sprintf("%s.%d", log, i)
				}
				if got := read(p); got != want {
					t.Errorf("%s = %q, want %q", filepath.Base(p), got, want)
				}
			}
		})
	}
}

func TestALogThatCannotBeRotatedKeepsGrowingAndSaysWhy(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "web.log")
	l, err := openLog(log, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Write([]byte("0123456\n")); err != nil {
		t.Fatal(err)
	}
	// A directory where the rotated file must go: rotation fails.
	if err := os.Mkdir(log+".1", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(log+".1", "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The container behind it is never blocked or failed, and no output
	// is lost for it.
	if n, err := l.Write([]byte("abcdef\n")); err != nil || n != 7 {
		t.Fatalf("write = %d, %v; want the output taken", n, err)
	}
	if err := l.Err(); err == nil || !strings.Contains(err.Error(), "rotate log") {
		t.Errorf("Err = %v, want the rotation failure", err)
	}
	if b, err := os.ReadFile(log); err != nil || string(b) != "0123456\nabcdef\n" {
		t.Errorf("log = %q (%v), want both writes", b, err)
	}
	l.Close()
	if n, err := l.Write([]byte("late\n")); err != nil || n != 5 {
		t.Errorf("write after close = %d, %v; want it taken and dropped", n, err)
	}
	if b, _ := os.ReadFile(log); strings.Contains(string(b), "late") {
		t.Errorf("a write after Close reached the log")
	}
}

func TestOOMKillsAreReadFromEitherCgroupVersion(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  int64
		found bool
	}{
		{"cgroup v1 with a kill", map[string]string{"memory/berth/c1/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"}, 1, true},
		{"cgroup v1 without", map[string]string{"memory/berth/c1/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"}, 0, true},
		{"cgroup v2 with a kill", map[string]string{"cgroup.controllers": "memory\n", "berth/c1/memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n"}, 2, true},
		{"cgroup gone", map[string]string{}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for p, s := range tt.files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			n, found := oomKillCount(root, "/berth/c1")
			if n != tt.want || found != tt.found {
				t.Errorf("oomKillCount = %d, %v; want %d, %v", n, found, tt.want, tt.found)
			}
		})
	}
}

func TestPlainHTTPAppliesOnlyToTheRegistriesNamed(t *testing.T) {
	hosts := registryHosts(runtime.PullOptions{
		PlainHTTP:   []string{"127.0.0.1:5000"},
		Credentials: map[string]runtime.Credential{"127.0.0.1:5000": {Username: "u", Password: "p"}},
	})
	for host, scheme := range map[string]string{"127.0.0.1:5000": "http", "registry.example": "https"} {
		hs, err := hosts(host)
		if err != nil || len(hs) == 0 {
			t.Fatalf("hosts(%s) = %v, %v", host, hs, err)
		}
		if hs[0].Scheme != scheme {
			t.Errorf("%s spoken to over %s, want %s", host, hs[0].Scheme, scheme)
		}
	}
}

func TestExecOutputIsCapped(t *testing.T) {
	b := &cappedBuffer{max: 4}
	for _, s := range []string{"ab", "cdef", "gh"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("write %q = %d, %v: a capped buffer must accept everything", s, n, err)
		}
	}
	if got := string(b.Bytes()); got != "abcd" {
		t.Errorf("kept %q, want the first 4 bytes", got)
	}
}

func TestImageReferencesAreNormalisedAsDockerDoes(t *testing.T) {
	tests := []struct {
		ref, want string
		valid     bool
	}{
		{"nginx", "docker.io/library/nginx:latest", true},
		{"nginx:1.25", "docker.io/library/nginx:1.25", true},
		{"team/web:v2", "docker.io/team/web:v2", true},
		{"127.0.0.1:5000/berth-test/web:v1", "127.0.0.1:5000/berth-test/web:v1", true},
		{"registry.test/web@sha256:" + strings.Repeat("a", 64), "registry.test/web@sha256:" + strings.Repeat("a", 64), true},
		{"Upper/Case:v1", "", false},
		{"web:", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := normalize("pull image", tt.ref, runtime.ErrImagePull)
			if !tt.valid {
				if !errors.Is(err, runtime.ErrImagePull) || runtime.ReasonOf(err) != runtime.ReasonInvalidImageName {
					t.Fatalf("normalize(%q) = %q, %v; want an InvalidImageName pull error", tt.ref, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("normalize(%q) = %q, %v; want %q", tt.ref, got, err, tt.want)
			}
		})
	}
}

func TestCredentialsGoOnlyToTheirRegistry(t *testing.T) {
	creds := credentialsFor(runtime.PullOptions{Credentials: map[string]runtime.Credential{
		"registry.example:5000": {Username: "ci", Password: "token"},
		"docker.io":             {Username: "hub", Password: "hubpass"},
	}})
	tests := []struct{ host, user, pass string }{
		{"registry.example:5000", "ci", "token"},
		{"registry.example", "", ""},
		{"registry-1.docker.io", "hub", "hubpass"},
		{"elsewhere.example", "", ""},
	}
	for _, tt := range tests {
		u, p, err := creds(tt.host)
		if err != nil || u != tt.user || p != tt.pass {
			t.Errorf("credentials for %s = %q/%q (%v), want %q/%q", tt.host, u, p, err, tt.user, tt.pass)
		}
	}
}
