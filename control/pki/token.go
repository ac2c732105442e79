package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Join token errors. A server answers all of them with the same refusal to
// the caller; they differ so the server can log and count them.
var (
	// ErrTokenMalformed: the text is not "<id>.<secret>" in the right
	// alphabet and lengths.
	ErrTokenMalformed = errors.New("join token malformed")
	// ErrTokenUnknown: no record has this ID, or the secret does not match
	// the record's hash.
	ErrTokenUnknown = errors.New("join token unknown")
	// ErrTokenUsed: the token was already used for a join.
	ErrTokenUsed = errors.New("join token already used")
	// ErrTokenExpired: the token's lifetime has passed.
	ErrTokenExpired = errors.New("join token expired")
)

const (
	tokenIDBytes  = 8  // 16 hex characters
	secretLength  = 26 // rand.Text: 26 base32 characters, 130 bits
	base32Letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
)

// JoinTokenRecord is what the control plane stores for a join token: its ID
// (to find it), a SHA-256 hash of its secret (never the secret), its expiry
// and whether it has been used. It is JSON-serialisable for etcd.
type JoinTokenRecord struct {
	// ID is the public half of the token, the key to store the record by.
	ID string `json:"id"`
	// SecretHash is the hex SHA-256 of the secret half.
	SecretHash string `json:"secretHash"`
	// CreatedAt is when the token was minted.
	CreatedAt time.Time `json:"createdAt"`
	// ExpiresAt is the moment the token stops being accepted.
	ExpiresAt time.Time `json:"expiresAt"`
	// Used is set (with a compare-and-swap in etcd) when a join consumes the
	// token, so it is accepted at most once.
	Used bool `json:"used"`
}

// NewJoinToken mints a single-use bearer token valid for ttl, formatted
// "<id>.<secret>". The token is handed to the node once and never stored;
// the record, which holds only a hash of the secret, is stored by the
// control plane.
func NewJoinToken(ttl time.Duration) (string, JoinTokenRecord) {
	idBytes := make([]byte, tokenIDBytes)
	_, _ = rand.Read(idBytes) // crypto/rand.Read never fails; it aborts the program instead.
	id := hex.EncodeToString(idBytes)
	secret := rand.Text()
	now := time.Now().UTC()
	return id + "." + secret, JoinTokenRecord{
		ID:         id,
		SecretHash: hashSecret(secret),
		CreatedAt:  now,
		ExpiresAt:  now.Add(ttl),
	}
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// JoinTokenID returns the ID half of a token so the server can look up its
// record, or ErrTokenMalformed.
func JoinTokenID(token string) (string, error) {
	id, _, err := splitToken(token)
	return id, err
}

func splitToken(token string) (id, secret string, err error) {
	id, secret, ok := strings.Cut(token, ".")
	if !ok || len(id) != 2*tokenIDBytes || len(secret) != secretLength {
		return "", "", ErrTokenMalformed
	}
	for _, r := range id {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return "", "", ErrTokenMalformed
		}
	}
	for _, r := range secret {
		if !strings.ContainsRune(base32Letters, r) {
			return "", "", ErrTokenMalformed
		}
	}
	return id, secret, nil
}

// VerifyJoinToken checks token against its stored record at now. The secret
// is compared (as a hash, in constant time) before the record's state is
// looked at, so only a holder of the secret learns whether a token is used
// or expired. It returns nil, or an error wrapping ErrTokenMalformed,
// ErrTokenUnknown, ErrTokenUsed or ErrTokenExpired; no error includes the
// secret. Marking the record used is the caller's compare-and-swap.
func VerifyJoinToken(token string, record JoinTokenRecord, now time.Time) error {
	id, secret, err := splitToken(token)
	if err != nil {
		return fmt.Errorf("verify join token: %w", err)
	}
	want, err := hex.DecodeString(record.SecretHash)
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("verify join token %s: record has no valid hash: %w", id, ErrTokenUnknown)
	}
	got := sha256.Sum256([]byte(secret))
	idMatch := subtle.ConstantTimeCompare([]byte(id), []byte(record.ID))
	secretMatch := subtle.ConstantTimeCompare(got[:], want)
	if idMatch&secretMatch != 1 {
		return fmt.Errorf("verify join token %s: %w", id, ErrTokenUnknown)
	}
	if record.Used {
		return fmt.Errorf("verify join token %s: %w", id, ErrTokenUsed)
	}
	if !now.Before(record.ExpiresAt) {
		return fmt.Errorf("verify join token %s: %w at %s", id, ErrTokenExpired, record.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}
