package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// PEM block types this package reads and writes.
const (
	pemCertificate = "CERTIFICATE"
	pemECKey       = "EC PRIVATE KEY"
	pemPKCS8Key    = "PRIVATE KEY"
	pemCSR         = "CERTIFICATE REQUEST"
)

// GenerateKey creates the ECDSA P-256 key every berth certificate uses. A
// node creates its own so its private key never leaves the host.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ecdsa p-256 key: %w", err)
	}
	return key, nil
}

// EncodeKey returns the key as a PEM "EC PRIVATE KEY" block, the form
// written to /etc/berth (mode 0600 is the caller's duty).
func EncodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode ecdsa key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemECKey, Bytes: der}), nil
}

// ParseKey reads an ECDSA private key from PEM, as "EC PRIVATE KEY" or
// PKCS #8 "PRIVATE KEY".
func ParseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("parse private key: no pem block")
	}
	switch block.Type {
	case pemECKey:
		key, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse private key: %w", err)
		}
		return key, nil
	case pemPKCS8Key:
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse private key: %w", err)
		}
		key, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("parse private key: %T is not an ecdsa key", k)
		}
		return key, nil
	default:
		return nil, fmt.Errorf("parse private key: unexpected pem block %q", block.Type)
	}
}

// EncodeCert returns the certificate as a PEM "CERTIFICATE" block.
func EncodeCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: cert.Raw})
}

// ParseCert reads the first certificate from PEM.
func ParseCert(certPEM []byte) (*x509.Certificate, error) {
	certs, err := ParseCerts(certPEM)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseCerts reads every certificate from PEM (a chain or a bundle of CAs),
// failing when there is none or a block is not a certificate.
func ParseCerts(certsPEM []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := certsPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemCertificate {
			return nil, fmt.Errorf("parse certificate: unexpected pem block %q", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("parse certificate: no pem certificate block")
	}
	return certs, nil
}

// NewCSR creates a PEM certificate signing request for the identity, signed
// with key, so a node can ask for a certificate without sending its key.
func NewCSR(key *ecdsa.PrivateKey, id Identity) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	subject, err := id.Subject()
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     subject,
		DNSNames:    id.DNSNames,
		IPAddresses: id.IPAddresses,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create csr for %s: %w", id, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: der}), nil
}

// ParseCSR reads a PEM certificate signing request and checks its
// self-signature, so a request whose key its sender does not hold is refused.
func ParseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		return nil, errors.New("parse csr: no pem block")
	}
	if block.Type != pemCSR {
		return nil, fmt.Errorf("parse csr: unexpected pem block %q", block.Type)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("parse csr: bad signature: %w", err)
	}
	return csr, nil
}

// SerialString formats a certificate's serial number the way berth stores
// revocations: lower-case hexadecimal without leading zeros or separators.
func SerialString(cert *x509.Certificate) string {
	return cert.SerialNumber.Text(16)
}

// ParseSerial reads a serial number written by SerialString (upper case and
// ':' separators, as openssl prints them, are accepted too).
func ParseSerial(s string) (*big.Int, error) {
	clean := strings.ToLower(strings.ReplaceAll(s, ":", ""))
	n, ok := new(big.Int).SetString(clean, 16)
	if !ok || clean == "" || n.Sign() <= 0 {
		return nil, fmt.Errorf("parse serial %q: not a positive hexadecimal number", s)
	}
	return n, nil
}
