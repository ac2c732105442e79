package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrRevoked is returned during a TLS handshake when the peer's certificate
// has been revoked (its Node was deleted, or an admin revoked it).
var ErrRevoked = errors.New("certificate revoked")

// ClientCertPolicy says whether a server requires callers to present a
// certificate.
type ClientCertPolicy int

const (
	// RequireClientCert refuses any caller without a certificate signed by
	// the cluster CA: the API server and etcd use it.
	RequireClientCert ClientCertPolicy = iota
	// OptionalClientCert accepts callers without a certificate, but verifies
	// any certificate presented against the cluster CA. The join endpoint
	// uses it: a joining node has only a token.
	OptionalClientCert
)

// CertStore holds the certificate a server serves or a client presents, so
// a renewed certificate takes effect on the next handshake without
// rebuilding listeners or clients. It is safe for concurrent use.
type CertStore struct {
	cur atomic.Pointer[tls.Certificate]
}

// NewCertStore returns a store holding cert.
func NewCertStore(cert tls.Certificate) *CertStore {
	s := &CertStore{}
	s.Set(cert)
	return s
}

// Set replaces the certificate used by new handshakes.
func (s *CertStore) Set(cert tls.Certificate) {
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
			cert.Leaf = leaf
		}
	}
	s.cur.Store(&cert)
}

// Current is the certificate new handshakes use.
func (s *CertStore) Current() *tls.Certificate { return s.cur.Load() }

// GetCertificate serves the current certificate (tls.Config.GetCertificate).
func (s *CertStore) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load(), nil
}

// GetClientCertificate presents the current certificate
// (tls.Config.GetClientCertificate).
func (s *CertStore) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return s.cur.Load(), nil
}

// ServerTLSConfig is the TLS configuration of every berth server: TLS 1.2 or
// newer, the certificate from certs, and client certificates verified against
// roots (the cluster CA) as policy says. Read the caller's identity from
// the verified chain with IdentityFromCert.
func ServerTLSConfig(roots *x509.CertPool, certs *CertStore, policy ClientCertPolicy) *tls.Config {
	auth := tls.RequireAndVerifyClientCert
	if policy == OptionalClientCert {
		auth = tls.VerifyClientCertIfGiven
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.GetCertificate,
		ClientCAs:      roots,
		ClientAuth:     auth,
	}
}

// ClientTLSConfig is the TLS configuration of every berth client: TLS 1.2 or
// newer, roots (the cluster CA) as the only trusted roots, and the client
// certificate from certs (nil for a caller that has none yet, such as a
// node joining with a token). serverName overrides the name checked against
// the server's certificate; empty means the dialled host.
func ClientTLSConfig(roots *x509.CertPool, certs *CertStore, serverName string) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    roots,
		ServerName: serverName,
	}
	if certs != nil {
		cfg.GetClientCertificate = certs.GetClientCertificate
	}
	return cfg
}

// CheckRevocation makes cfg refuse, during the handshake, any peer whose
// leaf certificate's serial (as SerialString formats it) isRevoked reports
// as revoked. The error wraps ErrRevoked. isRevoked is called on every
// handshake that carries a certificate, so it should read from memory (the
// server keeps the revocation list from etcd watched).
func CheckRevocation(cfg *tls.Config, isRevoked func(serial string) bool) {
	prev := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if prev != nil {
			if err := prev(cs); err != nil {
				return err
			}
		}
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		leaf := cs.PeerCertificates[0]
		if serial := SerialString(leaf); isRevoked(serial) {
			return fmt.Errorf("peer %q serial %s: %w", leaf.Subject.CommonName, serial, ErrRevoked)
		}
		return nil
	}
}

// RequirePeer makes cfg refuse, during the handshake, a peer whose verified
// leaf certificate's identity check rejects, so a client can insist on
// talking to a control-plane host (RoleServer) or to a node agent
// (RoleNodeServer) and not merely to anything the CA signed.
func RequirePeer(cfg *tls.Config, check func(Identity) error) {
	prev := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if prev != nil {
			if err := prev(cs); err != nil {
				return err
			}
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer presented no certificate")
		}
		id, err := IdentityFromCert(cs.PeerCertificates[0])
		if err != nil {
			return err
		}
		return check(id)
	}
}
