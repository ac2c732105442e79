// Package ssh is the transport the provisioning engine uses to reach hosts:
// it dials them over SSH (directly or through one jump host), runs commands
// with timeouts, uploads files whose sha256 is verified on the host, checks
// what a host has before anything is installed, and fans work out across
// many hosts with bounded parallelism.
//
// # Trust
//
// Host keys are always pinned. A HostConfig either names the key
// (authorized_keys line or SHA256 fingerprint), or the Dialer consults a
// HostKeyStore: a host seen for the first time has its key recorded
// (trust on first use) and that key is enforced on every later contact. A
// host presenting another key fails closed with a *HostKeyMismatchError
// naming the host and both fingerprints. The package never accepts an
// unknown key silently and never uses ssh.InsecureIgnoreHostKey.
//
// # Life of a connection
//
// A Dialer turns a HostConfig into a *Client; a Pool keeps one Client per
// host, hands the same one to every caller, and redials when the connection
// has died. Every operation takes a context: cancelling it (or a
// per-command timeout) closes the SSH session, so a hung remote command
// never hangs the caller. Because OpenSSH ignores signal requests for root
// logins and leaves a command running when its channel closes, Run wraps
// each command so that the host kills it when its session ends first (see
// Client.Run).
//
// # Errors
//
// Callers branch with errors.As on *UnreachableError (the host could not be
// reached within the connect timeout), *AuthError (the host refused our
// credentials), *HostKeyMismatchError, *CommandError (a command ran and
// exited non-zero), *TimeoutError, *DigestMismatchError, and errors.Is on
// ErrNoSpace (the host's disk is full). Every message names the host.
//
// # Uploads
//
// Upload streams over a plain exec channel (`cat >> path.partial`) instead
// of SFTP, because real hosts do not always ship an sftp-server; it needs
// only a POSIX shell, cat, wc, chmod, mv, mkdir and sha256sum on the host.
// An interrupted upload resumes from the partial file when its content is a
// prefix of the data being sent; the final name only ever holds a file
// whose sha256 the host itself has verified.
//
// This package must never log, never import other berth packages, and
// never send traffic anywhere but the hosts it is given.
package ssh
