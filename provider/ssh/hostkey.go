package ssh

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyStore remembers host keys seen at first contact so they can be
// enforced afterwards (trust on first use). Host names are as returned by
// HostConfig.KnownHostsName. Implementations must be safe for concurrent
// use.
type HostKeyStore interface {
	// Lookup returns the keys recorded for host; none means the host has
	// never been seen.
	Lookup(ctx context.Context, host string) ([]gossh.PublicKey, error)
	// Record remembers key for host; it is called once, after the first
	// successful connection to a host Lookup knew nothing about.
	Record(ctx context.Context, host string, key gossh.PublicKey) error
}

// Fingerprint returns the key's SHA256 fingerprint as OpenSSH prints it
// ("SHA256:..."), the form used in every message of this package.
func Fingerprint(key gossh.PublicKey) string { return gossh.FingerprintSHA256(key) }

// FormatHostKey returns key as one authorized_keys line without a newline,
// the form HostConfig.HostKey accepts, for callers that keep pins in state.
func FormatHostKey(key gossh.PublicKey) string {
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(key)))
}

// ParseHostKey parses one authorized_keys line ("ssh-ed25519 AAAA...
// [comment]"), for callers validating a pinned key in configuration.
func ParseHostKey(line string) (gossh.PublicKey, error) {
	k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("parse host key %q: %w", line, err)
	}
	return k, nil
}

// knownHostsName normalises host:port the way known_hosts writes it.
func knownHostsName(addr string) string { return knownhosts.Normalize(addr) }

// pin is the set of keys or fingerprints a host may present.
type pin struct {
	keys         []gossh.PublicKey
	fingerprints []string // SHA256:... for pins given only as fingerprints
}

// parsePin reads HostConfig.HostKey: lines of authorized_keys keys or
// SHA256 fingerprints.
func parsePin(s string) (pin, error) {
	var p pin
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "SHA256:") {
			raw := strings.TrimPrefix(line, "SHA256:")
			if b, err := base64.RawStdEncoding.DecodeString(raw); err != nil || len(b) != 32 {
				return pin{}, fmt.Errorf("host key fingerprint %q is not a SHA256 fingerprint as ssh-keygen -lf prints it", line)
			}
			p.fingerprints = append(p.fingerprints, line)
			continue
		}
		if strings.HasPrefix(line, "MD5:") {
			return pin{}, fmt.Errorf("host key fingerprint %q uses MD5; give the SHA256 fingerprint or the key itself", line)
		}
		k, err := ParseHostKey(line)
		if err != nil {
			return pin{}, err
		}
		p.keys = append(p.keys, k)
	}
	if len(p.keys) == 0 && len(p.fingerprints) == 0 {
		return pin{}, errors.New("host key is empty")
	}
	return p, nil
}

func (p pin) empty() bool { return len(p.keys) == 0 && len(p.fingerprints) == 0 }

// matches reports whether key is one of the pinned keys or fingerprints.
func (p pin) matches(key gossh.PublicKey) bool {
	fp := Fingerprint(key)
	for _, k := range p.keys {
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			return true
		}
	}
	for _, f := range p.fingerprints {
		if f == fp {
			return true
		}
	}
	return false
}

// want lists the pinned fingerprints for error messages.
func (p pin) want() []string {
	var out []string
	for _, k := range p.keys {
		out = append(out, Fingerprint(k))
	}
	return append(out, p.fingerprints...)
}

// algorithms lists the host key algorithms to offer: those of the pinned
// keys when every pin is a key (so a host with several keys presents the
// pinned one), otherwise every algorithm in preference order.
func (p pin) algorithms() []string {
	if len(p.fingerprints) > 0 || len(p.keys) == 0 {
		return preferredHostKeyAlgorithms()
	}
	var out []string
	for _, k := range p.keys {
		for _, a := range algorithmsForKeyType(k.Type()) {
			if !contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// preferredHostKeyAlgorithms is the order offered when any key will do:
// Ed25519 first, as modern OpenSSH prefers.
func preferredHostKeyAlgorithms() []string {
	return []string{
		gossh.KeyAlgoED25519,
		gossh.KeyAlgoECDSA256, gossh.KeyAlgoECDSA384, gossh.KeyAlgoECDSA521,
		gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA,
	}
}

// algorithmsForKeyType maps a key type to the signature algorithms a host
// with such a key can use.
func algorithmsForKeyType(t string) []string {
	if t == gossh.KeyAlgoRSA {
		return []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
	}
	return []string{t}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// MemoryHostKeyStore keeps recorded host keys in memory: enough for one
// provider run, or for callers that copy keys into their own state.
type MemoryHostKeyStore struct {
	mu   sync.Mutex
	keys map[string][]gossh.PublicKey
}

// NewMemoryHostKeyStore returns an empty store.
func NewMemoryHostKeyStore() *MemoryHostKeyStore {
	return &MemoryHostKeyStore{keys: map[string][]gossh.PublicKey{}}
}

// Lookup returns the keys recorded for host.
func (s *MemoryHostKeyStore) Lookup(ctx context.Context, host string) ([]gossh.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]gossh.PublicKey(nil), s.keys[host]...), nil
}

// Record remembers key for host.
func (s *MemoryHostKeyStore) Record(ctx context.Context, host string, key gossh.PublicKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys[host] {
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			return nil
		}
	}
	s.keys[host] = append(s.keys[host], key)
	return nil
}

// KnownHostsFile is a HostKeyStore backed by an OpenSSH known_hosts file,
// so keys recorded by berth and by ssh(1) are shared. Lookup understands
// plain and hashed host names; lines with markers (@cert-authority,
// @revoked) and wildcard patterns are not pins and are ignored. Record
// appends a line; it serialises writers within this process only.
type KnownHostsFile struct {
	path string
	mu   sync.Mutex
}

// NewKnownHostsFile returns a store reading and appending to path, which
// need not exist yet.
func NewKnownHostsFile(path string) *KnownHostsFile { return &KnownHostsFile{path: path} }

// Lookup returns the keys the file records for host.
func (f *KnownHostsFile) Lookup(ctx context.Context, host string) ([]gossh.PublicKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookup(host)
}

// lookup reads the file; f.mu must be held.
func (f *KnownHostsFile) lookup(host string) ([]gossh.PublicKey, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read known hosts %s: %w", f.path, err)
	}
	var keys []gossh.PublicKey
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		marker, hosts, key, _, _, err := gossh.ParseKnownHosts(line)
		if err != nil {
			return nil, fmt.Errorf("read known hosts %s line %d: %w", f.path, lineNo, err)
		}
		if marker != "" {
			continue
		}
		for _, h := range hosts {
			if hostPatternMatches(h, host) {
				keys = append(keys, key)
				break
			}
		}
	}
	return keys, nil
}

// Record appends a known_hosts line for host, unless the file already
// holds that key for it, creating the file (0600) and its directory (0700)
// when needed.
func (f *KnownHostsFile) Record(ctx context.Context, host string, key gossh.PublicKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	known, err := f.lookup(host)
	if err != nil {
		return fmt.Errorf("record host key of %s: %w", host, err)
	}
	for _, k := range known {
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return fmt.Errorf("record host key of %s in %s: %w", host, f.path, err)
	}
	fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record host key of %s in %s: %w", host, f.path, err)
	}
	_, werr := fh.WriteString(knownhosts.Line([]string{host}, key) + "\n")
	cerr := fh.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("record host key of %s in %s: %w", host, f.path, err)
	}
	return nil
}

// hostPatternMatches reports whether a known_hosts host entry names host
// exactly, either in clear or hashed (|1|salt|hash).
func hostPatternMatches(pattern, host string) bool {
	if !strings.HasPrefix(pattern, "|1|") {
		return pattern == host
	}
	parts := strings.Split(pattern[len("|1|"):], "|")
	if len(parts) != 2 {
		return false
	}
	salt, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		return false
	}
	want, err := base64.StdEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	mac := hmac.New(sha1.New, salt)
	mac.Write([]byte(host))
	return hmac.Equal(mac.Sum(nil), want)
}
