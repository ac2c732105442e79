package pki

import (
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"
)

func TestSignNodeServingCSR(t *testing.T) {
	ca, err := NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ips := []net.IP{net.ParseIP("198.18.0.10").To4()}
	tests := []struct {
		name    string
		id      Identity
		node    string
		refused bool
	}{
		{"own serving identity with addresses", NodeServerIdentity("n1", []string{"n1"}, ips), "n1", false},
		{"another node's name", NodeServerIdentity("n2", nil, ips), "n1", true},
		{"a control-plane identity", ServerIdentity("n1", nil, ips), "n1", true},
		{"the node's client identity", NodeIdentity("n1"), "n1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := NewCSR(key, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			certPEM, err := ca.SignNodeServingCSR(csr, tt.node, time.Hour)
			if tt.refused {
				if !errors.Is(err, ErrCSRNotAllowed) {
					t.Fatalf("err = %v, want ErrCSRNotAllowed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cert, err := ParseCert(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			id, err := IdentityFromCert(cert)
			if err != nil || id.Role != RoleNodeServer || id.Name != "n1" || !id.IPAddresses[0].Equal(ips[0]) {
				t.Fatalf("identity = %+v, %v", id, err)
			}
			opts := x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
			if _, err := cert.Verify(opts); err != nil {
				t.Fatalf("does not verify as a server: %v", err)
			}
			opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			if _, err := cert.Verify(opts); err == nil {
				t.Fatal("a serving certificate verifies as a client certificate")
			}
		})
	}
}
