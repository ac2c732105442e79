package nodeimage

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// Digest identifies a node image by the SHA-256 of its bundle bytes, written
// "sha256:<64 lower-case hex digits>". Hosts, state and Node status all name
// images by it, so it is the only identity an image has.
type Digest string

// digestPrefix is the algorithm prefix every Digest carries.
const digestPrefix = "sha256:"

// ErrDigestMismatch reports a bundle whose bytes do not hash to the digest
// the caller expected: it was corrupted or is not the image asked for.
var ErrDigestMismatch = errors.New("node image digest mismatch")

// ParseDigest checks that s is a well-formed digest, so a typo in
// configuration fails before any upload starts.
func ParseDigest(s string) (Digest, error) {
	d := Digest(s)
	if err := d.Validate(); err != nil {
		return "", err
	}
	return d, nil
}

// Validate reports whether d is "sha256:" followed by 64 lower-case hex digits.
func (d Digest) Validate() error {
	h, ok := strings.CutPrefix(string(d), digestPrefix)
	if !ok {
		return fmt.Errorf("invalid node image digest %q: want prefix %q", string(d), digestPrefix)
	}
	if len(h) != 64 || strings.ToLower(h) != h {
		return fmt.Errorf("invalid node image digest %q: want 64 lower-case hex digits", string(d))
	}
	if _, err := hex.DecodeString(h); err != nil {
		return fmt.Errorf("invalid node image digest %q: %w", string(d), err)
	}
	return nil
}

// Hex returns the digest without its algorithm prefix: handy for file and
// directory names, where a colon is awkward.
func (d Digest) Hex() string { return strings.TrimPrefix(string(d), digestPrefix) }

// String returns the digest in its canonical "sha256:<hex>" form.
func (d Digest) String() string { return string(d) }

// digestOf formats the sum of a finished SHA-256 hash.
func digestOf(h hash.Hash) Digest {
	return Digest(digestPrefix + hex.EncodeToString(h.Sum(nil)))
}
