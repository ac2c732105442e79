package ssh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNoSpace reports that the host's disk filled up while writing; callers
// test for it with errors.Is to tell an operator to free space rather than
// retry.
var ErrNoSpace = errors.New("no space left on device")

// UnreachableError reports that no SSH connection could be opened to a host
// (refused, timed out, no route) within its connect timeout. Retrying later
// or fixing the address helps; changing credentials does not.
type UnreachableError struct {
	Host    string        // HostConfig name
	Address string        // host:port dialled
	Via     string        // jump host name, empty when dialled directly
	Timeout time.Duration // connect timeout in force
	Err     error
}

// Error says which host could not be reached, how, and within what time.
func (e *UnreachableError) Error() string {
	via := ""
	if e.Via != "" {
		via = fmt.Sprintf(" via jump host %q", e.Via)
	}
	return fmt.Sprintf("host %q (%s) is unreachable%s (connect timeout %s): %v", e.Host, e.Address, via, e.Timeout, e.Err)
}

// Unwrap exposes the network error (for example a refused connection).
func (e *UnreachableError) Unwrap() error { return e.Err }

// AuthError reports that the host refused every credential offered, so
// callers can tell a wrong key or user apart from a network problem.
type AuthError struct {
	Host    string
	User    string
	Methods []string // what was offered: "publickey (key)", "publickey (agent)"
	Err     error
}

// Error says which host refused which user and what was offered.
func (e *AuthError) Error() string {
	return fmt.Sprintf("host %q refused authentication as user %q (offered %s): check the private key, the agent and the host's authorized_keys: %v",
		e.Host, e.User, strings.Join(e.Methods, ", "), e.Err)
}

// Unwrap exposes the SSH library's error.
func (e *AuthError) Unwrap() error { return e.Err }

// HostKeyMismatchError reports that a host presented a key other than the
// one pinned for it. It fails closed: the host may have been reinstalled,
// or its address recycled to someone else's machine, and only a person can
// tell which.
type HostKeyMismatchError struct {
	Host    string   // HostConfig name
	Address string   // the address the key is pinned under
	Want    []string // pinned fingerprints, SHA256:...
	Got     string   // fingerprint the host presented, SHA256:...
	GotType string   // key type the host presented, e.g. ssh-ed25519
}

// Error names the host, both fingerprints and what to do.
func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("host %q (%s) presented %s host key %s, but %s is pinned for it: "+
		"refusing to connect because the host may have been reinstalled or its address given to another machine; "+
		"if you replaced this host on purpose, update its pinned host key (or remove its known_hosts entry) and try again",
		e.Host, e.Address, e.GotType, e.Got, strings.Join(e.Want, " or "))
}

// CommandError reports that a remote command ran and did not exit zero.
// A command ended by a signal reports 128+n, as shells do; ExitCode is -1
// and Signal is set only when the SSH server itself reports the signal.
type CommandError struct {
	Host     string
	Command  string
	ExitCode int
	Signal   string // set when the command was killed by a signal
	Stderr   string // the last lines of standard error
}

// Error names host, command, exit status and the tail of stderr.
func (e *CommandError) Error() string {
	status := fmt.Sprintf("exit status %d", e.ExitCode)
	if e.Signal != "" {
		status = "killed by signal " + e.Signal
	}
	msg := fmt.Sprintf("run %q on host %q: %s", e.Command, e.Host, status)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// TimeoutError reports that a command did not finish within its timeout
// (or before its context's deadline); its session was closed. It matches
// context.DeadlineExceeded with errors.Is.
type TimeoutError struct {
	Host    string
	Command string
	After   time.Duration
}

// Error names host, command and the time allowed.
func (e *TimeoutError) Error() string {
	return fmt.Sprintf("run %q on host %q: timed out after %s; the session was closed", e.Command, e.Host, e.After)
}

// Is lets errors.Is(err, context.DeadlineExceeded) hold for timeouts.
func (e *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// DigestMismatchError reports that an uploaded file's sha256, computed on
// the host, differs from the expected one. The file was removed; nothing
// was placed under the final name.
type DigestMismatchError struct {
	Host string
	Path string
	Want string
	Got  string
}

// Error names host, path and both digests.
func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("upload %s to host %q: sha256 on the host is %s, want %s; the partial file was removed and %s was left untouched",
		e.Path, e.Host, e.Got, e.Want, e.Path)
}

// stderrTail returns the last few non-empty lines of stderr, bounded in
// size, for error messages.
func stderrTail(b []byte) string {
	const maxLines, maxBytes = 5, 2048
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	s = strings.Join(lines, "\n")
	if len(s) > maxBytes {
		s = "…" + s[len(s)-maxBytes:]
	}
	return s
}
