package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// Dialer opens SSH connections with pinned host keys. The zero Dialer
// accepts only hosts whose HostConfig.HostKey is set; give it a HostKeyStore
// to trust other hosts on first use.
type Dialer struct {
	// HostKeys records and enforces keys of hosts whose HostConfig.HostKey
	// is empty. Nil means such hosts are refused.
	HostKeys HostKeyStore
}

// Client is an authenticated SSH connection to one host. It is safe for
// concurrent use: each Run or Upload opens its own session.
type Client struct {
	cfg     HostConfig
	conn    *gossh.Client
	hostKey gossh.PublicKey
	jump    *Client // the jump connection, closed with this one when ownsJump
	owns    bool
	pooled  bool
	done    chan struct{}
	closeMu sync.Once
}

// Host returns the host's name as used in errors.
func (c *Client) Host() string { return c.cfg.Name }

// Config returns the configuration the client was dialled with, defaults
// filled in.
func (c *Client) Config() HostConfig { return c.cfg }

// HostKey returns the key the host presented (and that was verified), so
// callers can pin it in their own state.
func (c *Client) HostKey() gossh.PublicKey { return c.hostKey }

// Alive reports whether the connection has not yet been seen to end.
func (c *Client) Alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// Close ends the connection (and a jump connection it owns). Clients
// handed out by a Pool belong to the pool: their Close does nothing and
// Pool.Close ends them.
func (c *Client) Close() error {
	if c.pooled {
		return nil
	}
	return c.close()
}

func (c *Client) close() error {
	var err error
	c.closeMu.Do(func() {
		err = c.conn.Close()
		if c.jump != nil && c.owns {
			c.jump.close()
		}
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

// Dial connects to cfg's host (through its jump host, if any), verifies
// the host key and authenticates. Errors are *UnreachableError,
// *AuthError, *HostKeyMismatchError or wrapped configuration errors.
func (d *Dialer) Dial(ctx context.Context, cfg HostConfig) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var jump *Client
	if cfg.Jump != nil {
		var err error
		jump, err = d.Dial(ctx, *cfg.Jump)
		if err != nil {
			return nil, fmt.Errorf("host %q: dial jump host: %w", cfg.Name, err)
		}
	}
	c, err := d.dialVia(ctx, cfg, jump)
	if err != nil {
		if jump != nil {
			jump.close()
		}
		return nil, err
	}
	c.owns = true
	return c, nil
}

// dialVia dials cfg (defaults applied) directly or through jump.
func (d *Dialer) dialVia(ctx context.Context, cfg HostConfig, jump *Client) (*Client, error) {
	known := cfg.KnownHostsName()
	var p pin
	tofu := false
	if cfg.HostKey != "" {
		var err error
		if p, err = parsePin(cfg.HostKey); err != nil {
			return nil, fmt.Errorf("host %q: %w", cfg.Name, err)
		}
	} else {
		if d.HostKeys == nil {
			return nil, fmt.Errorf("host %q: no host key is pinned and no host key store is configured to record one; refusing to trust an unknown key", cfg.Name)
		}
		keys, err := d.HostKeys.Lookup(ctx, known)
		if err != nil {
			return nil, fmt.Errorf("host %q: look up recorded host key of %s: %w", cfg.Name, known, err)
		}
		p.keys = keys
		tofu = len(keys) == 0
	}

	auth, offered, cleanup, err := cfg.authMethod(ctx)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	algorithms := p.algorithms()
	var firstMismatch *HostKeyMismatchError
	for attempt := 0; attempt < 8 && len(algorithms) > 0; attempt++ {
		var mismatch *HostKeyMismatchError
		var presented gossh.PublicKey
		check := func(_ string, _ net.Addr, key gossh.PublicKey) error {
			presented = key
			if tofu || p.matches(key) {
				return nil
			}
			mismatch = &HostKeyMismatchError{Host: cfg.Name, Address: known, Want: p.want(), Got: Fingerprint(key), GotType: key.Type()}
			return mismatch
		}
		conf := &gossh.ClientConfig{
			User:              cfg.User,
			Auth:              []gossh.AuthMethod{auth},
			HostKeyCallback:   check,
			HostKeyAlgorithms: algorithms,
			Timeout:           cfg.ConnectTimeout,
		}
		conn, err := d.handshake(ctx, cfg, jump, conf, offered)
		if err == nil {
			if tofu {
				if err := d.HostKeys.Record(ctx, known, presented); err != nil {
					conn.Close()
					return nil, fmt.Errorf("host %q: record host key %s: %w", cfg.Name, Fingerprint(presented), err)
				}
			}
			c := &Client{cfg: cfg, conn: conn, hostKey: presented, jump: jump, done: make(chan struct{})}
			go func() {
				conn.Wait()
				close(c.done)
			}()
			return c, nil
		}
		if mismatch != nil {
			if firstMismatch == nil {
				firstMismatch = mismatch
			}
			if len(p.fingerprints) > 0 {
				// The host may hold the pinned key under another type:
				// ask again without the type it just presented.
				algorithms = without(algorithms, algorithmsForKeyType(mismatch.GotType))
				continue
			}
			return nil, mismatch
		}
		var neg *gossh.AlgorithmNegotiationError
		if errors.As(err, &neg) && neg.What == "host key" {
			if firstMismatch != nil {
				return nil, firstMismatch
			}
			// The host has no key of the pinned type: connect once more
			// offering every type, only to learn which key it presents.
			algorithms = preferredHostKeyAlgorithms()
			p.fingerprints = nil
			continue
		}
		return nil, err
	}
	if firstMismatch != nil {
		return nil, firstMismatch
	}
	return nil, fmt.Errorf("host %q (%s): the host presented none of the pinned host keys %s", cfg.Name, known, strings.Join(p.want(), ", "))
}

func without(list, drop []string) []string {
	var out []string
	for _, a := range list {
		if !contains(drop, a) {
			out = append(out, a)
		}
	}
	return out
}

// handshake opens the transport (TCP, or direct-tcpip through jump) and
// runs the SSH handshake, all bounded by cfg.ConnectTimeout and ctx.
func (d *Dialer) handshake(ctx context.Context, cfg HostConfig, jump *Client, conf *gossh.ClientConfig, offered []string) (*gossh.Client, error) {
	hctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	unreachable := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("connect to host %q (%s): %w", cfg.Name, cfg.addr(), ctx.Err())
		}
		e := &UnreachableError{Host: cfg.Name, Address: cfg.addr(), Timeout: cfg.ConnectTimeout, Err: err}
		if jump != nil {
			e.Via = jump.cfg.Name
		}
		return e
	}
	var raw net.Conn
	var err error
	if jump != nil {
		raw, err = jump.conn.DialContext(hctx, "tcp", cfg.addr())
	} else {
		var nd net.Dialer
		raw, err = nd.DialContext(hctx, "tcp", cfg.addr())
	}
	if err != nil {
		return nil, unreachable(err)
	}
	// Close the connection if the deadline or ctx fires mid-handshake;
	// jump channels do not support deadlines, so this covers both paths.
	stop := context.AfterFunc(hctx, func() { raw.Close() })
	sconn, chans, reqs, err := gossh.NewClientConn(raw, cfg.addr(), conf)
	if !stop() {
		if err == nil {
			sconn.Close()
		}
		return nil, unreachable(fmt.Errorf("no SSH handshake within %s: %w", cfg.ConnectTimeout, hctx.Err()))
	}
	if err != nil {
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, &AuthError{Host: cfg.Name, User: cfg.User, Methods: offered, Err: err}
		}
		var neg *gossh.AlgorithmNegotiationError
		if errors.As(err, &neg) {
			return nil, fmt.Errorf("ssh handshake with host %q (%s): %w", cfg.Name, cfg.addr(), err)
		}
		if isNetworkError(err) {
			return nil, unreachable(err)
		}
		return nil, fmt.Errorf("ssh handshake with host %q (%s): %w", cfg.Name, cfg.addr(), err)
	}
	return gossh.NewClient(sconn, chans, reqs), nil
}

// isNetworkError reports whether the handshake failed because the peer
// went away (EOF, reset) rather than because of what it said.
func isNetworkError(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.As(err, &ne)
}

// RunOptions tunes one command.
type RunOptions struct {
	// Timeout bounds the command; zero means only ctx bounds it. When it
	// fires, the command is sent SIGKILL and its session closed.
	Timeout time.Duration
	// Stdin is fed to the command's standard input when set.
	Stdin io.Reader
}

// Run runs cmd on the host through the login shell (which must be a POSIX
// shell) and returns its output and exit code. A non-zero exit returns a
// *CommandError (naming host, command, status and the tail of stderr)
// along with the exit code; a timeout returns a *TimeoutError; cancelling
// ctx returns ctx's error. In both of the latter cases the session is
// signalled and closed, and Run returns without waiting for the host.
//
// Without opts.Stdin, cmd is killed on the host when its session ends
// early (timeout, cancellation, lost connection), even where the SSH
// server ignores signals; see lifelineScript. With opts.Stdin, cmd sees end
// of input when the session ends and is otherwise left to finish.
func (c *Client) Run(ctx context.Context, cmd string, opts RunOptions) (stdout, stderr []byte, exitCode int, err error) {
	runCtx := ctx
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	start := time.Now()
	timedOut := func() error {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("run %q on host %q: %w", cmd, c.cfg.Name, ctx.Err())
		}
		after := opts.Timeout
		if ctx.Err() != nil || after == 0 {
			after = time.Since(start).Round(time.Millisecond)
		}
		return &TimeoutError{Host: c.cfg.Name, Command: cmd, After: after}
	}

	sess, err := c.openSession(runCtx)
	if err != nil {
		if runCtx.Err() != nil {
			return nil, nil, -1, timedOut()
		}
		return nil, nil, -1, fmt.Errorf("run %q on host %q: open session: %w", cmd, c.cfg.Name, err)
	}
	defer sess.Close()
	var outBuf, errBuf lockedBuffer
	sess.Stdout = &outBuf
	sess.Stderr = &errBuf
	remote := cmd
	if opts.Stdin != nil {
		sess.Stdin = opts.Stdin
	} else {
		// Keep stdin open as the command's lifeline (see lifelineScript);
		// closing the session closes it.
		lifeline, err := sess.StdinPipe()
		if err != nil {
			return nil, nil, -1, fmt.Errorf("run %q on host %q: %w", cmd, c.cfg.Name, err)
		}
		defer lifeline.Close()
		remote = lifelineScript(cmd)
	}
	if err := sess.Start(remote); err != nil {
		return nil, nil, -1, fmt.Errorf("run %q on host %q: start: %w", cmd, c.cfg.Name, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-runCtx.Done():
		// Kill the command and drop the session; do not wait for the host
		// to acknowledge: it may be the thing that hangs.
		_ = sess.Signal(gossh.SIGKILL)
		sess.Close()
		return outBuf.snapshot(), errBuf.snapshot(), -1, timedOut()
	}
	stdout, stderr = outBuf.snapshot(), errBuf.snapshot()
	if err == nil {
		return stdout, stderr, 0, nil
	}
	var exit *gossh.ExitError
	if errors.As(err, &exit) {
		ce := &CommandError{Host: c.cfg.Name, Command: cmd, ExitCode: exit.ExitStatus(), Stderr: stderrTail(stderr)}
		if exit.Signal() != "" {
			ce.ExitCode = -1
			ce.Signal = exit.Signal()
		}
		return stdout, stderr, ce.ExitCode, ce
	}
	var missing *gossh.ExitMissingError
	if errors.As(err, &missing) {
		return stdout, stderr, -1, fmt.Errorf("run %q on host %q: the session ended without an exit status (connection lost?): %w", cmd, c.cfg.Name, err)
	}
	return stdout, stderr, -1, fmt.Errorf("run %q on host %q: %w", cmd, c.cfg.Name, err)
}

// lifelineScript wraps cmd so that it is killed when its session ends
// before it does. OpenSSH ignores signal requests for root logins ("session
// signalling requires privilege separation") and leaves a command running
// when its channel closes, so a timed-out command would live on. The
// wrapper runs cmd in its own session (setsid, when the host has it) with
// stdin from /dev/null, and a watcher blocks reading the session's stdin,
// which Run holds open and never writes: end of input means the session
// closed, and the watcher kills cmd's process group. When cmd finishes
// first, the watcher is stopped, so daemons that cmd started survive. The
// wrapper exits with cmd's status (128+n when a signal ended it).
func lifelineScript(cmd string) string {
	q := Quote(cmd)
	return `exec 3<&0 </dev/null
if command -v setsid >/dev/null 2>&1; then setsid /bin/sh -c ` + q + ` 3<&- & else /bin/sh -c ` + q + ` 3<&- & fi
berth_cmd=$!
( while read -r _; do :; done <&3; kill -9 -$berth_cmd 2>/dev/null || kill -9 $berth_cmd ) >/dev/null 2>&1 &
berth_watch=$!
exec 3<&-
wait $berth_cmd
berth_status=$?
kill $berth_watch 2>/dev/null
exit $berth_status`
}

// openSession opens a session without letting a dead connection block
// past ctx.
func (c *Client) openSession(ctx context.Context) (*gossh.Session, error) {
	type result struct {
		s   *gossh.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := c.conn.NewSession()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// lockedBuffer collects output written by session goroutines while Run may
// return early and read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) snapshot() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

// Quote returns s quoted for a POSIX shell, so paths and arguments can be
// put into command lines safely.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
