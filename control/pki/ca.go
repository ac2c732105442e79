package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// clockSkew is how far before "now" a certificate's validity starts, so a
// host whose clock lags a little still accepts a certificate just issued.
const clockSkew = 5 * time.Minute

// ErrCSRNotAllowed is returned by CA.SignNodeCSR when a request asks for
// more than the node identity it is entitled to.
var ErrCSRNotAllowed = errors.New("certificate request asks for more than a node identity")

// CA is the cluster certificate authority: the one root every berth
// connection trusts, and the key that signs every identity.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA creates a self-signed CA with a fresh ECDSA P-256 key, valid from now
// (less a few minutes for clock skew) for validity. Bootstrap calls it once
// per cluster.
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("create ca: empty common name")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("create ca %q: validity %v is not positive", commonName, validity)
	}
	key, err := GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("create ca %q: %w", commonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("create ca %q: %w", commonName, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create ca %q: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("create ca %q: parse: %w", commonName, err)
	}
	return &CA{cert: cert, key: key}, nil
}

// LoadCA reads a CA written with CertPEM and KeyPEM, checking that the key
// belongs to the certificate and that the certificate is a CA.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("load ca %q: certificate is not a ca", cert.Subject.CommonName)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca %q: %w", cert.Subject.CommonName, err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("load ca %q: private key does not match certificate", cert.Subject.CommonName)
	}
	return &CA{cert: cert, key: key}, nil
}

// Certificate is the CA certificate, for inspection (expiry, subject).
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM is the CA certificate in PEM: what every node and client is given
// as its only trusted root.
func (ca *CA) CertPEM() []byte { return EncodeCert(ca.cert) }

// KeyPEM is the CA private key in PEM. Only the control plane's credential
// directory may hold it.
func (ca *CA) KeyPEM() ([]byte, error) {
	b, err := EncodeKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("encode ca key: %w", err)
	}
	return b, nil
}

// Pool is a certificate pool holding only this CA, for TLS configurations.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// KeyPair is an issued certificate together with its private key, in PEM (to
// store) and parsed (to use).
type KeyPair struct {
	// CertPEM is the leaf certificate in PEM.
	CertPEM []byte
	// KeyPEM is the private key in PEM; it is secret.
	KeyPEM []byte
	// Cert is the parsed leaf certificate.
	Cert *x509.Certificate
}

// TLSCertificate is the pair in the form crypto/tls serves or presents.
func (kp KeyPair) TLSCertificate() (tls.Certificate, error) {
	c, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load key pair: %w", err)
	}
	return c, nil
}

// Issue creates a key and a certificate for id, valid for validity: the way
// bootstrap makes the first admin, server and etcd peer credentials.
func (ca *CA) Issue(id Identity, validity time.Duration) (KeyPair, error) {
	key, err := GenerateKey()
	if err != nil {
		return KeyPair{}, fmt.Errorf("issue %s: %w", id, err)
	}
	cert, err := ca.Sign(key.Public(), id, validity)
	if err != nil {
		return KeyPair{}, err
	}
	keyPEM, err := EncodeKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("issue %s: %w", id, err)
	}
	return KeyPair{CertPEM: EncodeCert(cert), KeyPEM: keyPEM, Cert: cert}, nil
}

// Sign issues a certificate for id over the public key pub (from a CSR the
// caller has already vetted, or a key it generated), valid from now (less a
// few minutes for clock skew) for validity but never beyond the CA's own
// expiry. The identity, not any requested subject, decides what the
// certificate says. Its serial number is 128 random bits.
func (ca *CA) Sign(pub crypto.PublicKey, id Identity, validity time.Duration) (*x509.Certificate, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("sign %s: %w", id, err)
	}
	if validity <= 0 {
		return nil, fmt.Errorf("sign %s: validity %v is not positive", id, validity)
	}
	subject, err := id.Subject()
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", id, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", id, err)
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           id.extKeyUsage(),
		BasicConstraintsValid: true,
		DNSNames:              id.DNSNames,
		IPAddresses:           id.IPAddresses,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", id, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sign %s: parse: %w", id, err)
	}
	return cert, nil
}

// SignCSR issues a certificate for id over the key in a PEM CSR whose
// signature it checks. It trusts id: use it only for identities the caller
// has authorised (an admin asking for a server certificate); a node's own
// request goes through SignNodeCSR.
func (ca *CA) SignCSR(csrPEM []byte, id Identity, validity time.Duration) ([]byte, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("sign csr for %s: %w", id, err)
	}
	cert, err := ca.Sign(csr.PublicKey, id, validity)
	if err != nil {
		return nil, err
	}
	return EncodeCert(cert), nil
}

// SignNodeCSR signs a node's request for its certificate, returning it in
// PEM. It refuses (ErrCSRNotAllowed) a request whose subject is anything but
// the node identity for nodeName, or that asks for any subject alternative
// name or extension: a joining node may become that node and nothing else.
func (ca *CA) SignNodeCSR(csrPEM []byte, nodeName string, validity time.Duration) ([]byte, error) {
	want := NodeIdentity(nodeName)
	if err := want.Validate(); err != nil {
		return nil, fmt.Errorf("sign node csr: %w", err)
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("sign node csr for %q: %w", nodeName, err)
	}
	if err := checkNodeCSR(csr, want); err != nil {
		return nil, fmt.Errorf("sign node csr for %q: %w: %v", nodeName, ErrCSRNotAllowed, err)
	}
	cert, err := ca.Sign(csr.PublicKey, want, validity)
	if err != nil {
		return nil, err
	}
	return EncodeCert(cert), nil
}

// SignNodeServingCSR signs a node agent's request for its serving
// certificate (RoleNodeServer for nodeName), returning it in PEM. The
// certificate may name IP addresses and DNS names (the node's addresses),
// but it only serves: it cannot authenticate as a client, and clients of the
// API refuse it because it is not a control-plane identity. A request whose
// subject is anything else, or that asks for e-mail or URI names or other
// extensions, is refused with ErrCSRNotAllowed.
func (ca *CA) SignNodeServingCSR(csrPEM []byte, nodeName string, validity time.Duration) ([]byte, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("sign node serving csr for %q: %w", nodeName, err)
	}
	want := NodeServerIdentity(nodeName, csr.DNSNames, csr.IPAddresses)
	if err := want.Validate(); err != nil {
		return nil, fmt.Errorf("sign node serving csr: %w", err)
	}
	subject, err := want.Subject()
	if err != nil {
		return nil, err
	}
	s := csr.Subject
	switch {
	case s.CommonName != subject.CommonName:
		err = fmt.Errorf("common name %q, want %q", s.CommonName, subject.CommonName)
	case !slices.Equal(s.Organization, subject.Organization):
		err = fmt.Errorf("organisation %q, want %q", s.Organization, subject.Organization)
	case len(csr.EmailAddresses)+len(csr.URIs) > 0:
		err = errors.New("e-mail or URI names requested")
	}
	for _, ext := range csr.Extensions {
		// The SAN extension carries the addresses checked above.
		if !ext.Id.Equal(oidSubjectAltName) {
			err = fmt.Errorf("extension %v requested", ext.Id)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sign node serving csr for %q: %w: %v", nodeName, ErrCSRNotAllowed, err)
	}
	cert, err := ca.Sign(csr.PublicKey, want, validity)
	if err != nil {
		return nil, err
	}
	return EncodeCert(cert), nil
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

func checkNodeCSR(csr *x509.CertificateRequest, want Identity) error {
	subject, err := want.Subject()
	if err != nil {
		return err
	}
	s := csr.Subject
	if s.CommonName != subject.CommonName {
		return fmt.Errorf("common name %q, want %q", s.CommonName, subject.CommonName)
	}
	if !slices.Equal(s.Organization, subject.Organization) {
		return fmt.Errorf("organisation %q, want %q", s.Organization, subject.Organization)
	}
	if len(s.OrganizationalUnit)+len(s.Country)+len(s.Province)+len(s.Locality)+
		len(s.StreetAddress)+len(s.PostalCode)+len(s.ExtraNames) > 0 || s.SerialNumber != "" {
		return errors.New("subject has attributes beyond common name and organisation")
	}
	if len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses)+len(csr.URIs) > 0 {
		return errors.New("subject alternative names requested")
	}
	for _, ext := range csr.Extensions {
		return fmt.Errorf("extension %v requested", ext.Id)
	}
	return nil
}

// newSerial draws a positive 128-bit serial number from crypto/rand, so
// serials never repeat and identify a certificate for revocation.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("draw serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// NeedsRenewal reports whether cert should be replaced at now: once two
// thirds of its lifetime (NotBefore to NotAfter) have passed, or once it has
// expired. Renewing at two thirds leaves a third of the lifetime to retry
// through outages (for a 90-day certificate, 30 days). A certificate that
// is not yet valid does not need renewal.
func NeedsRenewal(cert *x509.Certificate, now time.Time) bool {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return !now.Before(cert.NotBefore.Add(life / 3 * 2))
}
