package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Defaults applied to a HostConfig's empty fields.
const (
	// DefaultPort is the SSH port used when HostConfig.Port is zero.
	DefaultPort = 22
	// DefaultUser is the login used when HostConfig.User is empty: installing
	// node images needs root.
	DefaultUser = "root"
	// DefaultConnectTimeout bounds TCP connect plus SSH handshake and
	// authentication when HostConfig.ConnectTimeout is zero.
	DefaultConnectTimeout = 15 * time.Second
)

// HostConfig says how to reach one host over SSH and which host key to
// trust. It is plain data so the provider can keep it in state and reach a
// host again after the configuration has moved on.
type HostConfig struct {
	// Name identifies the host in every error message; defaults to the
	// address.
	Name string
	// Address is the host name or IP address, as seen from the jump host
	// when Jump is set.
	Address string
	// Port defaults to DefaultPort.
	Port int
	// User defaults to DefaultUser.
	User string
	// PrivateKey is a PEM private key (OpenSSH, PKCS#1, PKCS#8 or SEC 1).
	PrivateKey []byte
	// Passphrase decrypts PrivateKey when it is protected.
	Passphrase []byte
	// UseAgent offers the keys of the SSH agent at AgentSocket (or
	// $SSH_AUTH_SOCK when AgentSocket is empty) after PrivateKey.
	UseAgent bool
	// AgentSocket overrides $SSH_AUTH_SOCK.
	AgentSocket string
	// HostKey pins the host's key: one or more authorized_keys lines
	// ("ssh-ed25519 AAAA...") or SHA256 fingerprints ("SHA256:..."),
	// separated by newlines; the host must present one of them. When empty,
	// the Dialer's HostKeyStore decides (trust on first use).
	HostKey string
	// Jump, when set, is a bastion the connection is tunnelled through
	// (direct-tcpip), with its own credentials and pinned key.
	Jump *HostConfig
	// ConnectTimeout bounds connecting, handshake and authentication;
	// defaults to DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

// withDefaults returns a copy of c with empty fields filled in.
func (c HostConfig) withDefaults() HostConfig {
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.User == "" {
		c.User = DefaultUser
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Name == "" {
		c.Name = c.addr()
	}
	return c
}

// addr is host:port for dialling.
func (c HostConfig) addr() string {
	port := c.Port
	if port == 0 {
		port = DefaultPort
	}
	return net.JoinHostPort(c.Address, strconv.Itoa(port))
}

// KnownHostsName is the name under which the host's key is looked up and
// recorded in a HostKeyStore: "addr" for port 22, "[addr]:port" otherwise,
// as OpenSSH writes known_hosts. Hosts behind different jump hosts that
// share a private address share this name; pin their keys explicitly.
func (c HostConfig) KnownHostsName() string {
	return knownHostsName(c.addr())
}

// validate reports configuration errors before any connection is tried.
func (c HostConfig) validate() error {
	name := c.Name
	if name == "" {
		name = c.Address
	}
	switch {
	case c.Address == "":
		return fmt.Errorf("host %q: address is empty", name)
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("host %q: port %d is out of range", name, c.Port)
	case len(c.PrivateKey) == 0 && !c.UseAgent:
		return fmt.Errorf("host %q: no credentials: set a private key or use the SSH agent", name)
	}
	if c.HostKey != "" {
		if _, err := parsePin(c.HostKey); err != nil {
			return fmt.Errorf("host %q: %w", name, err)
		}
	}
	if c.Jump != nil {
		if c.Jump.Jump != nil {
			return fmt.Errorf("host %q: jump host %q has a jump host of its own; only one hop is supported", name, c.Jump.Name)
		}
		if err := c.Jump.validate(); err != nil {
			return fmt.Errorf("host %q: jump host: %w", name, err)
		}
	}
	return nil
}

// authMethod builds the single publickey method offering the private key
// and then the agent's keys (x/crypto tries each method name only once, so
// they must share one). The returned cleanup closes the agent connection.
func (c HostConfig) authMethod(ctx context.Context) (gossh.AuthMethod, []string, func(), error) {
	var signers []gossh.Signer
	var offered []string
	cleanup := func() {}
	if len(c.PrivateKey) > 0 {
		var s gossh.Signer
		var err error
		if len(c.Passphrase) > 0 {
			s, err = gossh.ParsePrivateKeyWithPassphrase(c.PrivateKey, c.Passphrase)
		} else {
			s, err = gossh.ParsePrivateKey(c.PrivateKey)
		}
		var missing *gossh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, nil, cleanup, fmt.Errorf("host %q: the private key is passphrase-protected and no passphrase was given", c.Name)
		}
		if err != nil {
			return nil, nil, cleanup, fmt.Errorf("host %q: parse private key: %w", c.Name, err)
		}
		signers = append(signers, s)
		offered = append(offered, "publickey ("+s.PublicKey().Type()+" key "+gossh.FingerprintSHA256(s.PublicKey())+")")
	}
	var ag agent.ExtendedAgent
	if c.UseAgent {
		sock := c.AgentSocket
		if sock == "" {
			sock = os.Getenv("SSH_AUTH_SOCK")
		}
		if sock == "" {
			return nil, nil, cleanup, fmt.Errorf("host %q: use of the SSH agent requested but SSH_AUTH_SOCK is not set", c.Name)
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", sock)
		if err != nil {
			return nil, nil, cleanup, fmt.Errorf("host %q: connect to SSH agent at %s: %w", c.Name, sock, err)
		}
		cleanup = func() { conn.Close() }
		ag = agent.NewClient(conn)
		offered = append(offered, "publickey (agent "+sock+")")
	}
	method := gossh.PublicKeysCallback(func() ([]gossh.Signer, error) {
		all := append([]gossh.Signer(nil), signers...)
		if ag != nil {
			more, err := ag.Signers()
			if err != nil {
				return nil, fmt.Errorf("list SSH agent keys: %w", err)
			}
			all = append(all, more...)
		}
		return all, nil
	})
	return method, offered, cleanup, nil
}
