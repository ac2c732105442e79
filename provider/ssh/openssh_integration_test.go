package ssh_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/berth-io/berth/internal/prereq"
	berthssh "github.com/berth-io/berth/provider/ssh"
	"github.com/berth-io/berth/provider/ssh/sshtest"
)

// openSSH is Debian's sshd started by a test on a loopback port, with its
// own host keys and authorized_keys.
type openSSH struct {
	port    int
	ed25519 gossh.PublicKey
	ecdsa   gossh.PublicKey
	client  []byte // PEM private key it accepts
}

// startOpenSSH runs sshd -D on 127.0.0.1 and kills it (by PID) when the test
// ends.
func startOpenSSH(t *testing.T) *openSSH {
	t.Helper()
	prereq.Integration(t)
	prereq.Root(t)
	prereq.Binary(t, "sshd")
	sshdPath, err := exec.LookPath("sshd")
	if err != nil {
		t.Fatal(err)
	}
	sshdPath, err = filepath.Abs(sshdPath) // sshd re-executes itself and needs an absolute path
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var s openSSH
	var hostKeyFiles []string
	for _, k := range []any{edPriv, ecPriv} {
		block, err := gossh.MarshalPrivateKey(k, "")
		if err != nil {
			t.Fatal(err)
		}
		signer, err := gossh.NewSignerFromKey(k)
		if err != nil {
			t.Fatal(err)
		}
		name := "host_" + signer.PublicKey().Type()
		hostKeyFiles = append(hostKeyFiles, write(name, pem.EncodeToMemory(block)))
		switch k.(type) {
		case ed25519.PrivateKey:
			s.ed25519 = signer.PublicKey()
		default:
			s.ecdsa = signer.PublicKey()
		}
	}
	clientSigner, clientPEM := sshtest.NewKey(t)
	s.client = clientPEM
	authorized := write("authorized_keys", gossh.MarshalAuthorizedKey(clientSigner.PublicKey()))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()

	config := fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
HostKey %s
AuthorizedKeysFile %s
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
PermitOpen 127.0.0.1:%d
LogLevel VERBOSE
`, s.port, hostKeyFiles[0], hostKeyFiles[1], authorized, s.port)
	cfgPath := write("sshd_config", []byte(config))
	// sshd insists on its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfgPath)
	var logs lockedLog
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sshd log:\n%s", logs.String())
		}
	})

	// Wait until sshd accepts connections (or dies, or the test's time is up).
	ctx := testContext(t)
	for {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)))
		if err == nil {
			conn.Close()
			return &s
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("sshd exited before listening: %v\n%s", err, logs.String())
		case <-ctx.Done():
			t.Fatalf("sshd did not listen on port %d: %v\n%s", s.port, err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (s *openSSH) config(name, pin string) berthssh.HostConfig {
	return berthssh.HostConfig{
		Name: name, Address: "127.0.0.1", Port: s.port, User: "root",
		PrivateKey: s.client, HostKey: pin, ConnectTimeout: 10 * time.Second,
	}
}

func TestIntegrationOpenSSHRunUploadAndVerify(t *testing.T) {
	s := startOpenSSH(t)
	ctx := testContext(t)

	t.Run("each pinned key of a host with several is accepted", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			pin  string
			want gossh.PublicKey
		}{
			{"ed25519 key", berthssh.FormatHostKey(s.ed25519), s.ed25519},
			{"ecdsa key", berthssh.FormatHostKey(s.ecdsa), s.ecdsa},
			{"ed25519 fingerprint", berthssh.Fingerprint(s.ed25519), s.ed25519},
			{"ecdsa fingerprint", berthssh.Fingerprint(s.ecdsa), s.ecdsa},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := dial(t, s.config("real", tc.pin))
				if got := berthssh.Fingerprint(c.HostKey()); got != berthssh.Fingerprint(tc.want) {
					t.Errorf("host presented %s; want %s", got, berthssh.Fingerprint(tc.want))
				}
			})
		}
	})

	t.Run("a wrong pin fails closed", func(t *testing.T) {
		impostor, _ := sshtest.NewKey(t)
		var d berthssh.Dialer
		_, err := d.Dial(ctx, s.config("real", berthssh.FormatHostKey(impostor.PublicKey())))
		var mm *berthssh.HostKeyMismatchError
		if !errors.As(err, &mm) || mm.Got != berthssh.Fingerprint(s.ed25519) {
			t.Fatalf("error = %v; want a *HostKeyMismatchError reporting the host's %s", err, berthssh.Fingerprint(s.ed25519))
		}
	})

	c := dial(t, s.config("real", berthssh.FormatHostKey(s.ed25519)))

	t.Run("run", func(t *testing.T) {
		out, _, code, err := c.Run(ctx, "id -u", berthssh.RunOptions{})
		if err != nil || code != 0 || string(out) != "0\n" {
			t.Fatalf("Run(id -u) = %q, %d, %v", out, code, err)
		}
		_, _, code, err = c.Run(ctx, "echo oops >&2; exit 5", berthssh.RunOptions{})
		var ce *berthssh.CommandError
		if !errors.As(err, &ce) || code != 5 || ce.Stderr != "oops" {
			t.Fatalf("Run(exit 5) = %d, %v; want a *CommandError with status 5 and stderr oops", code, err)
		}
	})

	t.Run("timeout kills the remote command", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		_, _, _, err := c.Run(ctx, "echo $$ > "+berthssh.Quote(pidFile)+"; exec sleep 600", berthssh.RunOptions{Timeout: 500 * time.Millisecond})
		var te *berthssh.TimeoutError
		if !errors.As(err, &te) {
			t.Fatalf("Run = %v; want *TimeoutError", err)
		}
		// The timeout may fire before the command wrote its PID; if it
		// did write it, that process must be gone.
		if _, err := os.Stat(pidFile); err == nil {
			waitForExit(t, pidFile)
		}
	})

	t.Run("cancellation kills the remote command", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			q := berthssh.Quote(pidFile)
			_, _, _, err := c.Run(runCtx, "echo $$ > "+q+".tmp; mv "+q+".tmp "+q+"; exec sleep 600", berthssh.RunOptions{})
			done <- err
		}()
		waitForFile(t, pidFile)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v; want context.Canceled", err)
		}
		waitForExit(t, pidFile)
	})

	t.Run("upload resumes and is verified on the host", func(t *testing.T) {
		data := payload(3 << 20)
		dest := filepath.Join(t.TempDir(), "images", "node.img")
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dest+berthssh.PartialSuffix, data[:1<<20], 0o600); err != nil {
			t.Fatal(err)
		}
		var first int64 = -1
		err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), dest, 0o600, digest(data),
			berthssh.WithProgress(func(n int64) {
				if first < 0 {
					first = n
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		if first != 1<<20 {
			t.Errorf("upload started at byte %d; want it to resume at %d", first, 1<<20)
		}
		if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("uploaded file differs (%v)", err)
		}

		bad := filepath.Join(filepath.Dir(dest), "bad.img")
		err = c.Upload(ctx, bytes.NewReader(data), int64(len(data)), bad, 0o600, digest([]byte("other")))
		var dm *berthssh.DigestMismatchError
		if !errors.As(err, &dm) {
			t.Fatalf("Upload with a wrong digest = %v; want *DigestMismatchError", err)
		}
		if _, err := os.Stat(bad); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a file with the wrong digest exists under the final name (%v)", err)
		}
	})

	t.Run("jump host", func(t *testing.T) {
		jump := s.config("bastion", berthssh.FormatHostKey(s.ecdsa))
		cfg := s.config("behind", berthssh.Fingerprint(s.ed25519))
		cfg.Jump = &jump
		c := dial(t, cfg)
		if out, _, _, err := c.Run(ctx, "echo through", berthssh.RunOptions{}); err != nil || string(out) != "through\n" {
			t.Fatalf("Run through the jump host = %q, %v", out, err)
		}
	})

	t.Run("preflight", func(t *testing.T) {
		r, err := berthssh.Preflight(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if r.UID != 0 || r.Kernel == "" || len(r.FreeBytes) != 2 {
			t.Errorf("report = %+v", r)
		}
	})
}
