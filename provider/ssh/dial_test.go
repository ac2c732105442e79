package ssh_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	berthssh "github.com/berth-io/berth/provider/ssh"
	"github.com/berth-io/berth/provider/ssh/sshtest"
)

func TestDialAcceptsThePinnedHostKeyInEitherForm(t *testing.T) {
	srv, cfg := newHost(t, "node-1", sshtest.Options{})
	other, _ := sshtest.NewKey(t)
	for _, tc := range []struct {
		name string
		pin  string
	}{
		{"authorized_keys line", berthssh.FormatHostKey(srv.HostKey())},
		{"SHA256 fingerprint", berthssh.Fingerprint(srv.HostKey())},
		{"one of several lines", berthssh.FormatHostKey(other.PublicKey()) + "\n" + berthssh.Fingerprint(srv.HostKey())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cfg
			cfg.HostKey = tc.pin
			c := dial(t, cfg)
			if got, want := berthssh.Fingerprint(c.HostKey()), berthssh.Fingerprint(srv.HostKey()); got != want {
				t.Errorf("HostKey() = %s, want %s", got, want)
			}
			out, _, code, err := c.Run(testContext(t), "echo hello", berthssh.RunOptions{})
			if err != nil || code != 0 || string(out) != "hello\n" {
				t.Errorf("Run = %q, %d, %v; want \"hello\\n\", 0, nil", out, code, err)
			}
		})
	}
}

func TestDialRefusesAWrongHostKeyNamingHostAndBothFingerprints(t *testing.T) {
	srv, cfg := newHost(t, "node-1", sshtest.Options{})
	impostor, _ := sshtest.NewKey(t)
	store := berthssh.NewMemoryHostKeyStore()
	if err := store.Record(context.Background(), cfg.KnownHostsName(), impostor.PublicKey()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		pin   string
		store berthssh.HostKeyStore
	}{
		{"pinned key", berthssh.FormatHostKey(impostor.PublicKey()), nil},
		{"pinned fingerprint", berthssh.Fingerprint(impostor.PublicKey()), nil},
		{"key recorded at first use", "", store},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cfg
			cfg.HostKey = tc.pin
			d := berthssh.Dialer{HostKeys: tc.store}
			c, err := d.Dial(testContext(t), cfg)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded with a wrong host key")
			}
			var mm *berthssh.HostKeyMismatchError
			if !errors.As(err, &mm) {
				t.Fatalf("error %v (%T) is not a *HostKeyMismatchError", err, err)
			}
			msg := err.Error()
			for _, want := range []string{`"node-1"`, berthssh.Fingerprint(srv.HostKey()), berthssh.Fingerprint(impostor.PublicKey()), "update its pinned host key"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			}
		})
	}
}

func TestDialRefusesAHostWithoutPinAndWithoutStore(t *testing.T) {
	_, cfg := newHost(t, "node-1", sshtest.Options{})
	cfg.HostKey = ""
	var d berthssh.Dialer
	c, err := d.Dial(testContext(t), cfg)
	if err == nil {
		c.Close()
		t.Fatal("Dial trusted an unknown host key with no store to record it")
	}
	if !strings.Contains(err.Error(), `"node-1"`) {
		t.Errorf("error %q does not name the host", err)
	}
}

func TestTrustOnFirstUseRecordsTheKeyThenRefusesAReplacedHost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) berthssh.HostKeyStore
	}{
		{"memory", func(t *testing.T) berthssh.HostKeyStore { return berthssh.NewMemoryHostKeyStore() }},
		{"known_hosts file", func(t *testing.T) berthssh.HostKeyStore {
			return berthssh.NewKnownHostsFile(filepath.Join(t.TempDir(), "ssh", "known_hosts"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			first, cfg := newHost(t, "node-1", sshtest.Options{})
			cfg.HostKey = ""
			store := tc.store(t)
			d := berthssh.Dialer{HostKeys: store}

			c, err := d.Dial(ctx, cfg)
			if err != nil {
				t.Fatalf("first contact: %v", err)
			}
			c.Close()
			keys, err := store.Lookup(ctx, cfg.KnownHostsName())
			if err != nil || len(keys) != 1 || berthssh.Fingerprint(keys[0]) != berthssh.Fingerprint(first.HostKey()) {
				t.Fatalf("store holds %v, %v after first contact; want the host's key %s", keys, err, berthssh.Fingerprint(first.HostKey()))
			}
			c, err = d.Dial(ctx, cfg)
			if err != nil {
				t.Fatalf("second contact with the same host: %v", err)
			}
			c.Close()

			// The address is recycled: another machine answers there.
			first.Close()
			replacement := sshtest.New(t, sshtest.Options{Port: cfg.Port, AuthorizedKeys: authorizedFrom(t, cfg)})
			c, err = d.Dial(ctx, cfg)
			if err == nil {
				c.Close()
				t.Fatal("a host with a new key at a recorded address was trusted silently")
			}
			var mm *berthssh.HostKeyMismatchError
			if !errors.As(err, &mm) || mm.Got != berthssh.Fingerprint(replacement.HostKey()) || mm.Want[0] != berthssh.Fingerprint(first.HostKey()) {
				t.Fatalf("error = %v; want a *HostKeyMismatchError from %s to %s", err, berthssh.Fingerprint(first.HostKey()), berthssh.Fingerprint(replacement.HostKey()))
			}
		})
	}
}

// authorizedFrom returns the public key of cfg's private key.
func authorizedFrom(t *testing.T, cfg berthssh.HostConfig) []gossh.PublicKey {
	t.Helper()
	s, err := gossh.ParsePrivateKey(cfg.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return []gossh.PublicKey{s.PublicKey()}
}

func TestKnownHostsFileIsReadableByOpenSSHAndReadsHashedEntries(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	signer, _ := sshtest.NewKey(t)
	key := signer.PublicKey()

	path := filepath.Join(dir, "known_hosts")
	store := berthssh.NewKnownHostsFile(path)
	if err := store.Record(ctx, "[127.0.0.1]:2222", key); err != nil {
		t.Fatal(err)
	}
	if err := store.Record(ctx, "[127.0.0.1]:2222", key); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); strings.Count(string(data), "\n") != 1 {
		t.Errorf("recording the same key twice wrote %q; want one line", data)
	}
	check, err := knownhosts.New(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := check("127.0.0.1:2222", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}, key); err != nil {
		t.Errorf("x/crypto knownhosts does not accept the recorded line: %v", err)
	}

	hashed := filepath.Join(dir, "hashed")
	line := knownhosts.Line([]string{knownhosts.HashHostname("node.example")}, key) + "\n"
	if err := os.WriteFile(hashed, []byte("# comment\n@revoked other "+berthssh.FormatHostKey(key)+"\n"+line), 0o600); err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]int{"node.example": 1, "other.example": 0, "other": 0} {
		keys, err := berthssh.NewKnownHostsFile(hashed).Lookup(ctx, host)
		if err != nil || len(keys) != want {
			t.Errorf("Lookup(%q) = %d keys, %v; want %d", host, len(keys), err, want)
		}
	}
}

func TestDialWithAnUnauthorizedKeyIsAnAuthError(t *testing.T) {
	_, cfg := newHost(t, "node-1", sshtest.Options{})
	_, cfg.PrivateKey = sshtest.NewKey(t)
	var d berthssh.Dialer
	c, err := d.Dial(testContext(t), cfg)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded with an unauthorized key")
	}
	var ae *berthssh.AuthError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), `"node-1"`) || !strings.Contains(err.Error(), `"berth"`) {
		t.Fatalf("error = %v (%T); want an *AuthError naming host and user", err, err)
	}
}

func TestDialAuthenticatesWithAPassphraseProtectedKey(t *testing.T) {
	srv, cfg := newHost(t, "node-1", sshtest.Options{})
	signer, plain := sshtest.NewKey(t)
	raw, err := gossh.ParseRawPrivateKey(plain)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKeyWithPassphrase(raw, "", []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	srv = sshtest.New(t, sshtest.Options{AuthorizedKeys: []gossh.PublicKey{signer.PublicKey()}})
	cfg.Port, cfg.HostKey = srv.Port(), berthssh.FormatHostKey(srv.HostKey())
	cfg.PrivateKey = pemEncode(block)

	var d berthssh.Dialer
	if _, err := d.Dial(testContext(t), cfg); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("Dial without passphrase = %v; want an error asking for the passphrase", err)
	}
	cfg.Passphrase = []byte("s3cret")
	dial(t, cfg)
}

func TestDialAuthenticatesThroughTheSSHAgent(t *testing.T) {
	srv, cfg := newHost(t, "node-1", sshtest.Options{})
	signer, plain := sshtest.NewKey(t)
	raw, err := gossh.ParseRawPrivateKey(plain)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, conn); conn.Close() }()
		}
	}()
	srv.Close()
	srv = sshtest.New(t, sshtest.Options{AuthorizedKeys: []gossh.PublicKey{signer.PublicKey()}})
	cfg.Port, cfg.HostKey = srv.Port(), berthssh.FormatHostKey(srv.HostKey())
	cfg.PrivateKey = nil
	cfg.UseAgent = true
	cfg.AgentSocket = sock
	c := dial(t, cfg)
	if _, _, _, err := c.Run(testContext(t), "true", berthssh.RunOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestDialToAClosedPortIsUnreachableNamingTheHost(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	_, cfg := newHost(t, "node-7", sshtest.Options{})
	cfg.Port = port
	var d berthssh.Dialer
	_, err = d.Dial(testContext(t), cfg)
	var ue *berthssh.UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("error = %v (%T); want *UnreachableError", err, err)
	}
	if !strings.Contains(err.Error(), `"node-7"`) || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("error %q does not name the host and its address", err)
	}
}

func TestDialThroughAJumpHost(t *testing.T) {
	jumpSrv, jumpCfg := newHost(t, "bastion", sshtest.Options{AllowForwarding: true})
	target, cfg := newHost(t, "node-1", sshtest.Options{})
	jumpCfg.Name = "bastion"
	cfg.Jump = &jumpCfg

	c := dial(t, cfg)
	out, _, _, err := c.Run(testContext(t), "echo via", berthssh.RunOptions{})
	if err != nil || string(out) != "via\n" {
		t.Fatalf("Run through jump host = %q, %v", out, err)
	}
	if jumpSrv.Forwarded() != 1 || target.Connections() != 1 {
		t.Errorf("jump forwarded %d channels, target saw %d connections; want 1 and 1", jumpSrv.Forwarded(), target.Connections())
	}

	t.Run("jump host key is pinned too", func(t *testing.T) {
		impostor, _ := sshtest.NewKey(t)
		bad := jumpCfg
		bad.HostKey = berthssh.FormatHostKey(impostor.PublicKey())
		cfg := cfg
		cfg.Jump = &bad
		var d berthssh.Dialer
		_, err := d.Dial(testContext(t), cfg)
		var mm *berthssh.HostKeyMismatchError
		if !errors.As(err, &mm) || mm.Host != "bastion" {
			t.Fatalf("error = %v; want a *HostKeyMismatchError for the bastion", err)
		}
	})
	t.Run("target key is checked end to end", func(t *testing.T) {
		impostor, _ := sshtest.NewKey(t)
		cfg := cfg
		cfg.HostKey = berthssh.Fingerprint(impostor.PublicKey())
		var d berthssh.Dialer
		_, err := d.Dial(testContext(t), cfg)
		var mm *berthssh.HostKeyMismatchError
		if !errors.As(err, &mm) || mm.Host != "node-1" {
			t.Fatalf("error = %v; want a *HostKeyMismatchError for node-1", err)
		}
	})
	t.Run("unreachable target names the jump host", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		cfg := cfg
		cfg.Port = port
		var d berthssh.Dialer
		_, err = d.Dial(testContext(t), cfg)
		var ue *berthssh.UnreachableError
		if !errors.As(err, &ue) || ue.Via != "bastion" {
			t.Fatalf("error = %v; want an *UnreachableError via bastion", err)
		}
	})
}

func TestDialGivesUpOnAHostThatNeverSpeaksSSH(t *testing.T) {
	// A listener that accepts and then says nothing, as a firewall that
	// blackholes after the TCP handshake or a hung sshd would.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	_, cfg := newHost(t, "node-9", sshtest.Options{})
	cfg.Port = l.Addr().(*net.TCPAddr).Port
	cfg.ConnectTimeout = 300 * time.Millisecond
	var d berthssh.Dialer
	_, err = d.Dial(testContext(t), cfg)
	var ue *berthssh.UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "no SSH handshake within 300ms") || !strings.Contains(err.Error(), `"node-9"`) {
		t.Fatalf("error = %v (%T); want an *UnreachableError naming node-9 and the handshake timeout", err, err)
	}
}
