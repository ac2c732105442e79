//go:build unix

package sshtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// Options configures a Server.
type Options struct {
	// HostKey is the server's key; a fresh Ed25519 key when nil.
	HostKey gossh.Signer
	// AuthorizedKeys may log in (as any user).
	AuthorizedKeys []gossh.PublicKey
	// AllowForwarding lets clients open direct-tcpip channels to loopback
	// addresses, making the server usable as a jump host.
	AllowForwarding bool
	// Shell runs commands as Shell -c CMD; defaults to /bin/sh.
	Shell string
	// Port to listen on (on 127.0.0.1); a free port when zero. Reusing a
	// closed server's port simulates a host replaced at the same address.
	Port int
}

// Server is a running SSH server on 127.0.0.1. Commands run as the test's
// user on this machine, each in its own process group. Like OpenSSH for
// root logins, the server ignores signal requests and lets a command run
// on after its client closed the session (its stdin reaches EOF); Close
// kills whatever is still running.
type Server struct {
	opts     Options
	hostKey  gossh.Signer
	listener net.Listener
	config   *gossh.ServerConfig

	mu        sync.Mutex
	cond      *sync.Cond
	conns     map[net.Conn]bool
	running   map[*exec.Cmd]bool
	accepted  int
	forwarded int
	sessions  int
	closed    bool
	wg        sync.WaitGroup
}

// New starts a server on a free loopback port and stops it when the test
// ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.HostKey == nil {
		opts.HostKey, _ = NewKey(t)
	}
	if opts.Shell == "" {
		opts.Shell = "/bin/sh"
	}
	s := &Server{opts: opts, hostKey: opts.HostKey, conns: map[net.Conn]bool{}, running: map[*exec.Cmd]bool{}}
	s.cond = sync.NewCond(&s.mu)
	s.config = &gossh.ServerConfig{
		PublicKeyCallback: func(meta gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			for _, k := range opts.AuthorizedKeys {
				if string(k.Marshal()) == string(key.Marshal()) {
					return &gossh.Permissions{}, nil
				}
			}
			return nil, fmt.Errorf("key %s is not authorized", gossh.FingerprintSHA256(key))
		},
	}
	s.config.AddHostKey(opts.HostKey)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)))
	if err != nil {
		t.Fatalf("sshtest: listen on loopback: %v", err)
	}
	s.listener = l
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// NewKey returns a fresh Ed25519 key as a signer and as OpenSSH PEM, the
// form HostConfig.PrivateKey takes.
func NewKey(t testing.TB) (gossh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sshtest: generate key: %v", err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("sshtest: signer: %v", err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "sshtest")
	if err != nil {
		t.Fatalf("sshtest: marshal key: %v", err)
	}
	return signer, pem.EncodeToMemory(block)
}

// Addr returns the server's address, 127.0.0.1:port.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Host returns the address without the port.
func (s *Server) Host() string { return "127.0.0.1" }

// Port returns the port the server listens on.
func (s *Server) Port() int { return s.listener.Addr().(*net.TCPAddr).Port }

// HostKey returns the server's public host key.
func (s *Server) HostKey() gossh.PublicKey { return s.hostKey.PublicKey() }

// Connections returns how many SSH connections completed a handshake.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Forwarded returns how many direct-tcpip channels the server opened.
func (s *Server) Forwarded() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forwarded
}

// WaitSessionsClosed blocks until no session is open (its command ended
// and its channel closed), or ctx ends.
func (s *Server) WaitSessionsClosed(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.sessions > 0 {
		if ctx.Err() != nil {
			return fmt.Errorf("%d session(s) still open: %w", s.sessions, ctx.Err())
		}
		s.cond.Wait()
	}
	return nil
}

// DropConnections closes every open connection, as a network failure or a
// restarted sshd would.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Close stops the server and ends all its connections and commands.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for cmd := range s.running {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	s.mu.Unlock()
	s.listener.Close()
	s.DropConnections()
	s.wg.Wait()
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.listener.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handleConn(c)
	}
}

func (s *Server) handleConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	sconn, chans, reqs, err := gossh.NewServerConn(c, s.config)
	if err != nil {
		return
	}
	defer sconn.Close()
	s.mu.Lock()
	s.accepted++
	s.mu.Unlock()
	go gossh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			wg.Add(1)
			go func() { defer wg.Done(); s.handleSession(nc) }()
		case "direct-tcpip":
			wg.Add(1)
			go func() { defer wg.Done(); s.handleForward(nc) }()
		default:
			nc.Reject(gossh.UnknownChannelType, "unsupported channel type")
		}
	}
}

// handleForward serves a jump host's direct-tcpip channel, to loopback
// only.
func (s *Server) handleForward(nc gossh.NewChannel) {
	var req struct {
		DestAddr string
		DestPort uint32
		OrigAddr string
		OrigPort uint32
	}
	if !s.opts.AllowForwarding {
		nc.Reject(gossh.Prohibited, "forwarding is disabled")
		return
	}
	if err := gossh.Unmarshal(nc.ExtraData(), &req); err != nil {
		nc.Reject(gossh.ConnectionFailed, "bad direct-tcpip request")
		return
	}
	ip := net.ParseIP(req.DestAddr)
	if req.DestAddr != "localhost" && (ip == nil || !ip.IsLoopback()) {
		nc.Reject(gossh.Prohibited, "sshtest forwards to loopback only")
		return
	}
	var d net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	target, err := d.DialContext(ctx, "tcp", net.JoinHostPort(req.DestAddr, strconv.Itoa(int(req.DestPort))))
	if err != nil {
		nc.Reject(gossh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		target.Close()
		return
	}
	s.mu.Lock()
	s.forwarded++
	s.mu.Unlock()
	go gossh.DiscardRequests(reqs)
	done := make(chan struct{}, 2)
	go func() { io.Copy(target, ch); target.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(ch, target); ch.CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
	ch.Close()
	target.Close()
}

// handleSession runs one exec request through the shell.
func (s *Server) handleSession(nc gossh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	defer func() {
		ch.Close()
		s.mu.Lock()
		s.sessions--
		s.cond.Broadcast()
		s.mu.Unlock()
	}()

	var cmd *exec.Cmd
	exited := make(chan struct{})
	var exitErr error
	for {
		select {
		case req, ok := <-reqs:
			if !ok {
				// The client closed the channel. Like OpenSSH, leave the
				// command running (its stdin has reached EOF) and wait.
				if cmd != nil {
					<-exited
				}
				return
			}
			switch req.Type {
			case "exec":
				var payload struct{ Command string }
				if cmd != nil || gossh.Unmarshal(req.Payload, &payload) != nil {
					req.Reply(false, nil)
					continue
				}
				cmd = exec.Command(s.opts.Shell, "-c", payload.Command)
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				cmd.Stdout = ch
				cmd.Stderr = ch.Stderr()
				cmd.WaitDelay = 5 * time.Second
				stdin, err := cmd.StdinPipe()
				if err == nil {
					err = s.start(cmd)
				}
				if err != nil {
					req.Reply(false, nil)
					return
				}
				req.Reply(true, nil)
				go func() { io.Copy(stdin, ch); stdin.Close() }()
				go func() { exitErr = cmd.Wait(); s.finished(cmd); close(exited) }()
			case "signal":
				// Like OpenSSH for root logins, which ignores signal
				// requests ("session signalling requires privilege
				// separation"), so clients cannot rely on them.
				if req.WantReply {
					req.Reply(false, nil)
				}
			case "env":
				req.Reply(true, nil)
			default:
				if req.WantReply {
					req.Reply(false, nil)
				}
			}
		case <-exited:
			sendExit(ch, exitErr)
			return
		}
	}
}

// start starts cmd unless the server is closing, and tracks it so Close
// can kill what is left.
func (s *Server) start(cmd *exec.Cmd) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("server closed")
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.running[cmd] = true
	return nil
}

func (s *Server) finished(cmd *exec.Cmd) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, cmd)
}

// sendExit reports the command's exit as sshd does.
func sendExit(ch gossh.Channel, err error) {
	status := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			msg := struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{Signal: signalName(ws.Signal())}
			ch.SendRequest("exit-signal", false, gossh.Marshal(&msg))
			return
		}
		status = ee.ExitCode()
	} else if err != nil {
		status = 255
	}
	ch.SendRequest("exit-status", false, gossh.Marshal(&struct{ Status uint32 }{uint32(status)}))
}

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGKILL:
		return "KILL"
	case syscall.SIGTERM:
		return "TERM"
	case syscall.SIGINT:
		return "INT"
	case syscall.SIGHUP:
		return "HUP"
	case syscall.SIGPIPE:
		return "PIPE"
	default:
		return strconv.Itoa(int(sig))
	}
}
