package workloads

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-io/berth/internal/prereq"
)

// privateContainerd is a containerd started by a test with its own root,
// state and socket under a temporary directory.
type privateContainerd struct {
	address   string
	namespace string
}

func startContainerd(t *testing.T) *privateContainerd {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-workloads-containerd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "containerd.sock")
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &privateContainerd{address: sock, namespace: fmt.Sprintf("berth-workloads-test-%d", os.Getpid())}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("containerd log:\n%s", b)
		}
	})
	// `ctr version` waits up to its connect timeout for the socket to
	// answer, so it both waits for start-up and notices a failed start.
	if out, err := c.ctr(t.Context(), "version"); err != nil {
		t.Fatalf("private containerd did not come up: %v\n%s", err, out)
	}
	return c
}

func (c *privateContainerd) command(ctx context.Context, args ...string) *exec.Cmd {
	global := []string{"--address", c.address, "--namespace", c.namespace, "--connect-timeout", "60s"}
	return exec.CommandContext(ctx, "ctr", append(global, args...)...)
}

func (c *privateContainerd) ctr(ctx context.Context, args ...string) (string, error) {
	out, err := c.command(ctx, args...).CombinedOutput()
	return string(out), err
}

func TestIntegrationOCIArchiveImportsAndRunsInContainerd(t *testing.T) {
	prereq.Integration(t)
	prereq.Root(t)
	prereq.Binary(t, "containerd", "ctr", "runc", "containerd-shim-runc-v2")
	set := buildSet(t)
	ctd := startContainerd(t)
	ctx := t.Context()

	const ref = "registry.test/berth-test/web:v2"
	archive := filepath.Join(t.TempDir(), "web.tar")
	if err := set.WriteOCIArchive(ctx, V2, ref, archive); err != nil {
		t.Fatal(err)
	}
	if out, err := ctd.ctr(ctx, "image", "import", archive); err != nil {
		t.Fatalf("ctr image import: %v\n%s", err, out)
	}
	out, err := ctd.ctr(ctx, "image", "ls", "--quiet")
	if err != nil {
		t.Fatalf("ctr image ls: %v\n%s", err, out)
	}
	if !strings.Contains(out, ref) {
		t.Fatalf("imported images %q do not include %s", out, ref)
	}

	// Run in the foreground, in the container's own network namespace (only
	// loopback): the container's output tells when it listens.
	id := "web-" + strings.ReplaceAll(ctd.namespace, "berth-workloads-test-", "")
	run := ctd.command(ctx, "run", "--rm", "--env", "POD_NAME=pod-in-ctr", ref, id)
	stdout, err := run.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	run.Stderr = run.Stdout
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if run.ProcessState == nil {
			cctx := context.WithoutCancel(ctx)
			_, _ = ctd.ctr(cctx, "task", "kill", "--signal", "SIGKILL", id)
			_ = run.Wait()
			_, _ = ctd.ctr(cctx, "task", "rm", "--force", id)
			_, _ = ctd.ctr(cctx, "container", "rm", id)
		}
	})
	lines := bufio.NewScanner(stdout)
	waitFor := func(prefix string) {
		t.Helper()
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), prefix) {
				return
			}
		}
		t.Fatalf("container output ended before %q", prefix)
	}
	waitFor("listening on ")

	// The exec-probe command answers from inside the container.
	if out, err := ctd.ctr(ctx, "task", "exec", "--exec-id", "check", id, BinaryPath, "check"); err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("web check inside the container: %v: %q, want ok", err, out)
	}
	if out, err := ctd.ctr(ctx, "task", "kill", "--signal", "SIGTERM", id); err != nil {
		t.Fatalf("ctr task kill: %v\n%s", err, out)
	}
	waitFor("stopped")
	_, _ = io.Copy(io.Discard, stdout)
	err = run.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("container exited %d after SIGTERM, want 0", ee.ExitCode())
	}
	if err != nil {
		t.Fatal(err)
	}
}
