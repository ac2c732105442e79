package ssh_test

import (
	"context"
	"errors"
	"io"
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
			name: "killed by a signal", cmd: "kill -TERM $$", wantCode: -1,
			wantInErr: []string{"killed by signal TERM"},
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
	_, _, code, err := c.Run(ctx, "echo started; sleep 600", berthssh.RunOptions{Timeout: 200 * time.Millisecond})
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
	if _, _, _, err := c.Run(ctx, "true", berthssh.RunOptions{}); err != nil {
		t.Errorf("the connection is unusable after a timeout: %v", err)
	}
}

func TestRunReturnsWhenTheContextIsCancelled(t *testing.T) {
	srv, cfg := newHost(t, "node-1", sshtest.Options{})
	c := dial(t, cfg)
	ctx, cancel := context.WithCancel(testContext(t))
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, _, _, err := c.Run(ctx, "echo go; sleep 600", berthssh.RunOptions{Stdin: &signalOnRead{started: started}})
		done <- err
	}()
	<-started
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v; want context.Canceled", err)
	}
	if err := srv.WaitSessionsClosed(testContext(t)); err != nil {
		t.Fatalf("the session of the cancelled command stayed open: %v", err)
	}
}

// signalOnRead closes started when the session first reads stdin (so the
// command has been started), then reports end of input.
type signalOnRead struct {
	started chan struct{}
	once    bool
}

func (s *signalOnRead) Read(p []byte) (int, error) {
	if !s.once {
		s.once = true
		close(s.started)
	}
	return 0, io.EOF
}
