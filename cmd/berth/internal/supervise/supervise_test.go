package supervise

import (
	"context"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as every supervised program: copied into a fake
// image as bin/containerd and bin/berth, it waits for SIGTERM.
func TestMain(m *testing.M) {
	if os.Getenv("BERTH_SUPERVISE_TEST_CHILD") == "1" {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		<-ch
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestBackoffDoublesUpToMaxAndResetsAfterAGoodRun(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 8 * time.Second, Reset: time.Minute}
	tests := []struct {
		name      string
		prev, ran time.Duration
		want      time.Duration
	}{
		{"first exit waits the initial time", 0, time.Second, time.Second},
		{"an exit in a row doubles the wait", 2 * time.Second, time.Second, 4 * time.Second},
		{"the wait never exceeds max", 8 * time.Second, time.Second, 8 * time.Second},
		{"a run longer than reset starts over", 8 * time.Second, 2 * time.Minute, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := b.Next(tc.prev, tc.ran); got != tc.want {
				t.Fatalf("Next(%s, %s) = %s, want %s", tc.prev, tc.ran, got, tc.want)
			}
		})
	}
}

func TestServicesByRole(t *testing.T) {
	for role, want := range map[string]string{RoleWorker: "containerd agent", RoleControlPlane: "containerd control agent"} {
		var names []string
		for _, s := range (Config{Role: role}).WithDefaults().Services("/img") {
			names = append(names, s.Name)
		}
		if got := strings.Join(names, " "); got != want {
			t.Errorf("%s services = %q, want %q", role, got, want)
		}
	}
}

func fakeImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"containerd", "berth"} {
		in, err := os.Open(self)
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(filepath.Join(bin, name), os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
	return dir
}

func TestUnitsPassSystemdAnalyzeVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	img := fakeImage(t)
	c := Config{Name: "h1", Role: RoleControlPlane, ImageDir: img, LogDir: t.TempDir()}
	dir := t.TempDir()
	var paths []string
	units := Units(c)
	if len(units) != 3 {
		t.Fatalf("got %d units, want 3", len(units))
	}
	for name, text := range units {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	if !strings.Contains(units[UnitName("containerd")], "KillMode=process") {
		t.Error("containerd unit would kill its shims on restart: KillMode=process missing")
	}
	out, err := exec.Command("systemd-analyze", append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 600; i++ {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestSuperviseRestartsACrashedServiceAndStopsAllOnCancel(t *testing.T) {
	t.Setenv("BERTH_SUPERVISE_TEST_CHILD", "1")
	img := fakeImage(t)
	state := t.TempDir()
	c := Config{Name: "h1", Role: RoleControlPlane, ImageDir: img, LogDir: filepath.Join(state, "log"),
		RunDir: filepath.Join(state, "run"), ContainerdRoot: filepath.Join(state, "containerd"),
		AgentConfig: filepath.Join(state, "etc", "agent.json")}
	if err := os.MkdirAll(filepath.Join(state, "etc"), 0o700); err != nil {
		t.Fatal(err)
	}
	// The fake containerd never makes its socket; make it so start-up
	// does not wait for it.
	if err := os.MkdirAll(filepath.Join(c.RunDir, "containerd"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.WithDefaults().ContainerdSocket(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Supervise(ctx, c, Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Reset: time.Minute}, nil)
	}()
	// The supervisor is this test process, so Status lists only the
	// services.
	waitFor(t, "three services", func() bool { return len(Status(c)) == 3 })
	containerd := Status(c)["containerd"]
	first := Status(c)["agent"]
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "agent restarted", func() bool {
		s, ok := Status(c)["agent"]
		return ok && s.PID != first.PID
	})
	if Status(c)["containerd"] != containerd {
		t.Error("containerd was restarted when the agent crashed")
	}
	pids := Status(c)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for name, s := range pids {
		exe := "berth"
		if name == "containerd" {
			exe = "containerd"
		}
		if runs(s.PID, exe) {
			t.Errorf("%s (pid %d) still runs after the supervisor stopped", name, s.PID)
		}
	}
}
