package ssh_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	berthssh "github.com/berth-io/berth/provider/ssh"
	"github.com/berth-io/berth/provider/ssh/sshtest"
)

func TestRunReportsOutputExitCodeAndCommandErrors(t *testing.T) {
	_, cfg := newHost(t, "node-1", sshtest.Options{})
	c := dial(t, cfg)
	for _, tc := range []struct {
		name       string
		cmd        string
		stdin      string
		wantOut    string
		wantErr    string
		wantCode   int
		wantInErr  []string
		wantStderr string
	}{
		{name: "success", cmd: "echo out; echo err >&2", wantOut: "out\n", wantStderr: "err\n"},
		{name: "stdin is fed", cmd: "tr a-z A-Z", stdin: "abc", wantOut: "ABC"},
		{
			name: "non-zero exit names host, command, status and stderr tail", cmd: "echo first >&2; echo last words >&2; exit 3",
			wantCode: 3, wantStderr: "first\nlast words\n",
			wantInErr: []string{`"node-1"`, `"echo first >&2; echo last words >&2; exit 3"`, "exit status 3", "last words"},
		},
		{
			name: "killed by a signal reports 128+n as shells do", cmd: "kill -TERM $$", wantCode: 143, wantStderr: "Terminated\n",
			wantInErr: []string{"exit status 143"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := berthssh.RunOptions{}
			if tc.stdin != "" {
				opts.Stdin = strings.NewReader(tc.stdin)
			}
			out, errOut, code, err := c.Run(testContext(t), tc.cmd, opts)
			if string(out) != tc.wantOut || code != tc.wantCode || string(errOut) != tc.wantStderr {
				t.Errorf("Run = (%q, %q, %d); want (%q, %q, %d)", out, errOut, code, tc.wantOut, tc.wantStderr, tc.wantCode)
			}
			if len(tc.wantInErr) == 0 {
				if err != nil {
					t.Errorf("Run error = %v; want nil", err)
				}
				return
			}
			var ce *berthssh.CommandError
			if !errors.As(err, &ce) || ce.ExitCode != tc.wantCode {
				t.Fatalf("Run error = %v (%T); want *CommandError with exit code %d", err, err, tc.wantCode)
			}
			for _, want := range tc.wantInErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestRunTimeoutReturnsATimeoutErrorAndClosesTheSession(t *testing.T) {
	srv, cfg := newHost(t, "node-1", sshtest.Options{})
	c := dial(t, cfg)
	ctx := testContext(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	_, _, code, err := c.Run(ctx, "echo $$ > "+berthssh.Quote(pidFile)+"; exec sleep 600", berthssh.RunOptions{Timeout: 200 * time.Millisecond})
	var te *berthssh.TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) || code != -1 {
		t.Fatalf("Run = %d, %v (%T); want -1 and a *TimeoutError matching context.DeadlineExceeded", code, err, err)
	}
	if !strings.Contains(err.Error(), `"node-1"`) || !strings.Contains(err.Error(), "sleep 600") {
		t.Errorf("error %q does not name host and command", err)
	}
	if err := srv.WaitSessionsClosed(ctx); err != nil {
		t.Fatalf("the session of the timed-out command stayed open: %v", err)
	}
	// The timeout may fire before the command wrote its PID; if it did
	// write it, that process must be gone too.
	if _, err := os.Stat(pidFile); err == nil {
		waitForExit(t, pidFile)
	}
	if _, _, _, err := c.Run(ctx, "true", berthssh.RunOptions{}); err != nil {
		t.Errorf("the connection is unusable after a timeout: %v", err)
	}
}

func TestRunCancelledReturnsAndTheCommandEndsOnTheHost(t *testing.T) {
	srv, cfg := newHost(t, "node-1", sshtest.Options{})
	c := dial(t, cfg)
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() {
		_, _, _, err := c.Run(ctx, "echo $$ > "+berthssh.Quote(pidFile)+".tmp; mv "+berthssh.Quote(pidFile)+".tmp "+berthssh.Quote(pidFile)+"; exec sleep 600", berthssh.RunOptions{})
		done <- err
	}()
	waitForFile(t, pidFile)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v; want context.Canceled", err)
	}
	// The server, like OpenSSH for root, ignores signals and leaves
	// commands running when their channel closes: only Run's lifeline
	// ends the command, and with it the session.
	waitForExit(t, pidFile)
	if err := srv.WaitSessionsClosed(testContext(t)); err != nil {
		t.Fatalf("the session of the cancelled command stayed open: %v", err)
	}
}

// waitForExit waits until the process whose PID is in pidFile has ended,
// failing the test if it never does.
func waitForExit(t *testing.T, pidFile string) {
	t.Helper()
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the command never started: %v", err)
	}
	proc := "/proc/" + strings.TrimSpace(string(pid))
	ctx := testContext(t)
	for {
		if _, err := os.Stat(proc); errors.Is(err, fs.ErrNotExist) {
			return
		}
		if st, err := os.ReadFile(proc + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
			return // a zombie has ended; only its parent has not reaped it yet
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the command (pid %s) is still running on the host", pid)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitForFile waits until path exists, failing the test if it never does.
func waitForFile(t *testing.T, path string) {
	t.Helper()
	ctx := testContext(t)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never appeared", path)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
