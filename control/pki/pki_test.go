package pki_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/control/pki"
)

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("berth test ca", 24*time.Hour)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

func TestIdentitiesRoundTripThroughCertificates(t *testing.T) {
	ca := newCA(t)
	ips := []net.IP{net.ParseIP("127.0.0.1").To4(), net.ParseIP("::1")}
	tests := []struct {
		name   string
		id     pki.Identity
		wantCN string
		wantO  string
	}{
		{"default admin", pki.AdminIdentity(""), "berth:admin", "berth:admins"},
		{"named admin", pki.AdminIdentity("terraform"), "berth:admin:terraform", "berth:admins"},
		{"node", pki.NodeIdentity("worker-1"), "berth:node:worker-1", "berth:nodes"},
		{"server with sans", pki.ServerIdentity("cp-1", []string{"cp-1.example", "localhost"}, ips), "berth:control-plane:cp-1", "berth:control-plane"},
		{"etcd peer with sans", pki.EtcdPeerIdentity("cp-1", nil, ips[:1]), "berth:etcd:cp-1", "berth:etcd-peers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp, err := ca.Issue(tt.id, time.Hour)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if kp.Cert.Subject.CommonName != tt.wantCN || !reflect.DeepEqual(kp.Cert.Subject.Organization, []string{tt.wantO}) {
				t.Errorf("subject = %q %q, want %q [%q]", kp.Cert.Subject.CommonName, kp.Cert.Subject.Organization, tt.wantCN, tt.wantO)
			}
			parsed, err := pki.ParseCert(kp.CertPEM)
			if err != nil {
				t.Fatalf("ParseCert: %v", err)
			}
			got, err := pki.IdentityFromCert(parsed)
			if err != nil {
				t.Fatalf("IdentityFromCert: %v", err)
			}
			if got.String() != tt.wantCN {
				t.Errorf("String() = %q, want %q", got.String(), tt.wantCN)
			}
			if got.Role != tt.id.Role || got.Name != tt.id.Name ||
				!reflect.DeepEqual(got.DNSNames, tt.id.DNSNames) || !equalIPs(got.IPAddresses, tt.id.IPAddresses) {
				t.Errorf("IdentityFromCert = %+v, want %+v", got, tt.id)
			}
			if _, err := parsed.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("certificate does not verify as a client against the ca: %v", err)
			}
		})
	}
}

func equalIPs(a, b []net.IP) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

func TestIdentityFromCertRejectsSubjectsBerthDoesNotIssue(t *testing.T) {
	tests := []struct {
		name    string
		subject pkix.Name
	}{
		{"foreign common name", pkix.Name{CommonName: "alice", Organization: []string{"berth:admins"}}},
		{"node name claiming the admin group", pkix.Name{CommonName: "berth:node:n1", Organization: []string{"berth:admins"}}},
		{"admin name without its group", pkix.Name{CommonName: "berth:admin"}},
		{"node with an extra group", pkix.Name{CommonName: "berth:node:n1", Organization: []string{"berth:nodes", "berth:admins"}}},
		{"node with an empty name", pkix.Name{CommonName: "berth:node:", Organization: []string{"berth:nodes"}}},
		{"node name with a colon", pkix.Name{CommonName: "berth:node:a:b", Organization: []string{"berth:nodes"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pki.IdentityFromCert(&x509.Certificate{Subject: tt.subject})
			if !errors.Is(err, pki.ErrNotBerthIdentity) {
				t.Fatalf("IdentityFromCert(%v) error = %v, want ErrNotBerthIdentity", tt.subject, err)
			}
		})
	}
}

func TestIssueRefusesInvalidIdentities(t *testing.T) {
	ca := newCA(t)
	tests := []struct {
		name string
		id   pki.Identity
	}{
		{"unknown role", pki.Identity{Role: "root", Name: "x"}},
		{"node without a name", pki.NodeIdentity("")},
		{"node name with whitespace", pki.NodeIdentity("a b")},
		{"node with an ip san", pki.Identity{Role: pki.RoleNode, Name: "n1", IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}}},
		{"admin with a dns san", pki.Identity{Role: pki.RoleAdmin, DNSNames: []string{"evil.example"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ca.Issue(tt.id, time.Hour); err == nil {
				t.Fatalf("Issue(%+v) succeeded, want an error", tt.id)
			}
		})
	}
}

func TestCAPEMRoundTripsAndRefusesAForeignKey(t *testing.T) {
	ca := newCA(t)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := pki.LoadCA(ca.CertPEM(), keyPEM)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	kp, err := loaded.Issue(pki.NodeIdentity("n1"), time.Hour)
	if err != nil {
		t.Fatalf("Issue with loaded ca: %v", err)
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("certificate from loaded ca does not verify against the original: %v", err)
	}
	other := newCA(t)
	otherKey, err := other.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.LoadCA(ca.CertPEM(), otherKey); err == nil {
		t.Error("LoadCA with another ca's key succeeded")
	}
	if _, err := pki.LoadCA(kp.CertPEM, kp.KeyPEM); err == nil {
		t.Error("LoadCA with a leaf certificate succeeded")
	}
}

func TestCertificatesDoNotOutliveTheCA(t *testing.T) {
	ca := newCA(t)
	kp, err := ca.Issue(pki.NodeIdentity("n1"), 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if kp.Cert.NotAfter.After(ca.Certificate().NotAfter) {
		t.Errorf("leaf expires %v, after the ca %v", kp.Cert.NotAfter, ca.Certificate().NotAfter)
	}
	kp2, err := ca.Issue(pki.NodeIdentity("n1"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if pki.SerialString(kp.Cert) == pki.SerialString(kp2.Cert) {
		t.Error("two certificates share a serial number")
	}
}

func TestSignNodeCSRGrantsOnlyThatNodesIdentity(t *testing.T) {
	ca := newCA(t)
	key, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csrFor := func(t *testing.T, tmpl *x509.CertificateRequest) []byte {
		t.Helper()
		der, err := x509.CreateCertificateRequest(nil, tmpl, key)
		if err != nil {
			t.Fatal(err)
		}
		return pemCSR(der)
	}
	nodeCSR, err := pki.NewCSR(key, pki.NodeIdentity("worker-1"))
	if err != nil {
		t.Fatal(err)
	}
	adminCSR, err := pki.NewCSR(key, pki.AdminIdentity(""))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		csr        func(t *testing.T) []byte
		wantErr    error // nil means success
		wantAnyErr bool
	}{
		{"own node identity is signed", func(*testing.T) []byte { return nodeCSR }, nil, false},
		{"another node's name is refused", func(t *testing.T) []byte {
			c, err := pki.NewCSR(key, pki.NodeIdentity("worker-2"))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, pki.ErrCSRNotAllowed, true},
		{"the admin identity is refused", func(*testing.T) []byte { return adminCSR }, pki.ErrCSRNotAllowed, true},
		{"own name in the admin group is refused", func(t *testing.T) []byte {
			return csrFor(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "berth:node:worker-1", Organization: []string{"berth:admins"}}})
		}, pki.ErrCSRNotAllowed, true},
		{"own name plus the admin group is refused", func(t *testing.T) []byte {
			return csrFor(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "berth:node:worker-1", Organization: []string{"berth:nodes", "berth:admins"}}})
		}, pki.ErrCSRNotAllowed, true},
		{"a dns san is refused", func(t *testing.T) []byte {
			return csrFor(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "berth:node:worker-1", Organization: []string{"berth:nodes"}}, DNSNames: []string{"api.berth"}})
		}, pki.ErrCSRNotAllowed, true},
		{"an ip san is refused", func(t *testing.T) []byte {
			return csrFor(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "berth:node:worker-1", Organization: []string{"berth:nodes"}}, IPAddresses: []net.IP{net.ParseIP("10.96.0.1")}})
		}, pki.ErrCSRNotAllowed, true},
		{"an organisational unit is refused", func(t *testing.T) []byte {
			return csrFor(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "berth:node:worker-1", Organization: []string{"berth:nodes"}, OrganizationalUnit: []string{"berth:admins"}}})
		}, pki.ErrCSRNotAllowed, true},
		{"a tampered request is refused", func(*testing.T) []byte {
			c, _ := pki.ParseCSR(nodeCSR)
			raw := append([]byte(nil), c.Raw...)
			raw[len(raw)-5] ^= 0xff
			return pemCSR(raw)
		}, nil, true},
		{"garbage is refused", func(*testing.T) []byte { return []byte("not a csr") }, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, err := ca.SignNodeCSR(tt.csr(t), "worker-1", time.Hour)
			if !tt.wantAnyErr {
				if err != nil {
					t.Fatalf("SignNodeCSR: %v", err)
				}
				cert, err := pki.ParseCert(certPEM)
				if err != nil {
					t.Fatal(err)
				}
				id, err := pki.IdentityFromCert(cert)
				if err != nil || id.Role != pki.RoleNode || id.Name != "worker-1" {
					t.Fatalf("signed certificate identity = %+v, %v; want node worker-1", id, err)
				}
				if !cert.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
					t.Error("signed certificate does not carry the requester's key")
				}
				return
			}
			if err == nil {
				t.Fatal("SignNodeCSR succeeded, want a refusal")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("SignNodeCSR error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func pemCSR(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestNeedsRenewalAfterTwoThirdsOfTheLifetime(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cert := &x509.Certificate{NotBefore: start, NotAfter: start.Add(90 * time.Hour)}
	tests := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"before validity", start.Add(-time.Hour), false},
		{"just issued", start, false},
		{"just before two thirds", start.Add(60*time.Hour - time.Nanosecond), false},
		{"at two thirds", start.Add(60 * time.Hour), true},
		{"at expiry", start.Add(90 * time.Hour), true},
		{"after expiry", start.Add(100 * time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pki.NeedsRenewal(cert, tt.now); got != tt.want {
				t.Errorf("NeedsRenewal at %v = %v, want %v", tt.now.Sub(start), got, tt.want)
			}
		})
	}
}

func TestJoinTokenVerification(t *testing.T) {
	now := time.Now()
	token, rec := pki.NewJoinToken(10 * time.Minute)
	otherToken, otherRec := pki.NewJoinToken(10 * time.Minute)
	used := rec
	used.Used = true
	id, _ := pki.JoinTokenID(token)
	wrongSecret := id + "." + strings.Repeat("A", 26)
	tests := []struct {
		name   string
		token  string
		record pki.JoinTokenRecord
		now    time.Time
		want   error
	}{
		{"fresh token is accepted", token, rec, now, nil},
		{"accepted just before expiry", token, rec, rec.ExpiresAt.Add(-time.Nanosecond), nil},
		{"expired at its expiry", token, rec, rec.ExpiresAt, pki.ErrTokenExpired},
		{"expired long after", token, rec, rec.ExpiresAt.Add(time.Hour), pki.ErrTokenExpired},
		{"used token is refused", token, used, now, pki.ErrTokenUsed},
		{"another token's record is unknown", token, otherRec, now, pki.ErrTokenUnknown},
		{"another token against this record is unknown", otherToken, rec, now, pki.ErrTokenUnknown},
		{"wrong secret is unknown", wrongSecret, rec, now, pki.ErrTokenUnknown},
		{"wrong secret on a used token does not reveal use", wrongSecret, used, now, pki.ErrTokenUnknown},
		{"empty record is unknown", token, pki.JoinTokenRecord{}, now, pki.ErrTokenUnknown},
		{"empty text is malformed", "", rec, now, pki.ErrTokenMalformed},
		{"missing separator is malformed", strings.Replace(token, ".", "", 1), rec, now, pki.ErrTokenMalformed},
		{"lower-case secret is malformed", strings.ToLower(token), rec, now, pki.ErrTokenMalformed},
		{"truncated secret is malformed", token[:len(token)-1], rec, now, pki.ErrTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pki.VerifyJoinToken(tt.token, tt.record, tt.now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("VerifyJoinToken: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyJoinToken error = %v, want %v", err, tt.want)
			}
			if _, secret, _ := strings.Cut(tt.token, "."); secret != "" && strings.Contains(err.Error(), secret) {
				t.Errorf("error %q reveals the secret", err)
			}
		})
	}
}

func TestJoinTokenRecordStoresOnlyAHashAndSurvivesJSON(t *testing.T) {
	token, rec := pki.NewJoinToken(time.Minute)
	_, secret, _ := strings.Cut(token, ".")
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), secret) {
		t.Fatalf("record %s contains the secret", b)
	}
	var back pki.JoinTokenRecord
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := pki.VerifyJoinToken(token, back, time.Now()); err != nil {
		t.Fatalf("VerifyJoinToken after a JSON round trip: %v", err)
	}
	if id, err := pki.JoinTokenID(token); err != nil || id != rec.ID {
		t.Fatalf("JoinTokenID = %q, %v; want %q", id, err, rec.ID)
	}
}

func TestSerialStringRoundTrips(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"1f", "1f"},
		{"1F", "1f"},
		{"01:1f", "11f"},
	}
	for _, tt := range tests {
		n, err := pki.ParseSerial(tt.in)
		if err != nil {
			t.Fatalf("ParseSerial(%q): %v", tt.in, err)
		}
		if got := pki.SerialString(&x509.Certificate{SerialNumber: n}); got != tt.want {
			t.Errorf("SerialString(ParseSerial(%q)) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "zz", "-1", "0"} {
		if _, err := pki.ParseSerial(bad); err == nil {
			t.Errorf("ParseSerial(%q) succeeded", bad)
		}
	}
}

// handshake runs one TLS handshake over loopback between a server and a
// client configuration, then the server sends one byte the client must read.
// It returns the server's view of the client certificate, or the first error
// either side saw.
func handshake(t *testing.T, server, client *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		peer *x509.Certificate
		err  error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer conn.Close()
		tc := tls.Server(conn, server)
		if err := tc.HandshakeContext(context.Background()); err != nil {
			done <- result{err: err}
			return
		}
		var peer *x509.Certificate
		if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
			peer = pc[0]
		}
		_, err = tc.Write([]byte("x"))
		done <- result{peer: peer, err: err}
	}()
	var clientErr error
	conn, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		clientErr = err
	} else {
		// With TLS 1.3 a refused client certificate surfaces on the first read.
		_, clientErr = conn.Read(make([]byte, 1))
		_ = conn.Close()
	}
	r := <-done
	if r.err != nil {
		return nil, r.err
	}
	return r.peer, clientErr
}

func TestTLSHandshakeTrustsOnlyTheClusterCA(t *testing.T) {
	ca := newCA(t)
	foreign := newCA(t)
	serverKP, err := ca.Issue(pki.ServerIdentity("cp-1", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	store := func(kp pki.KeyPair) *pki.CertStore {
		c, err := kp.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		return pki.NewCertStore(c)
	}
	nodeKP, err := ca.Issue(pki.NodeIdentity("n1"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreignNodeKP, err := foreign.Issue(pki.NodeIdentity("n1"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreignServerKP, err := foreign.Issue(pki.ServerIdentity("cp-1", nil, []net.IP{net.ParseIP("127.0.0.1")}), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	revoked := map[string]bool{}
	tests := []struct {
		name     string
		server   *tls.Config
		client   *tls.Config
		wantPeer string // "" with wantErr false: no client certificate
		wantErr  bool
	}{
		{"node certificate from the cluster ca is accepted",
			pki.ServerTLSConfig(ca.Pool(), store(serverKP), pki.RequireClientCert),
			pki.ClientTLSConfig(ca.Pool(), store(nodeKP), ""), "berth:node:n1", false},
		{"client certificate from another ca is refused",
			pki.ServerTLSConfig(ca.Pool(), store(serverKP), pki.RequireClientCert),
			pki.ClientTLSConfig(ca.Pool(), store(foreignNodeKP), ""), "", true},
		{"server certificate from another ca is refused",
			pki.ServerTLSConfig(ca.Pool(), store(foreignServerKP), pki.RequireClientCert),
			pki.ClientTLSConfig(ca.Pool(), store(nodeKP), ""), "", true},
		{"missing client certificate is refused when required",
			pki.ServerTLSConfig(ca.Pool(), store(serverKP), pki.RequireClientCert),
			pki.ClientTLSConfig(ca.Pool(), nil, ""), "", true},
		{"missing client certificate is accepted when optional",
			pki.ServerTLSConfig(ca.Pool(), store(serverKP), pki.OptionalClientCert),
			pki.ClientTLSConfig(ca.Pool(), nil, ""), "", false},
		{"foreign client certificate is refused even when optional",
			pki.ServerTLSConfig(ca.Pool(), store(serverKP), pki.OptionalClientCert),
			pki.ClientTLSConfig(ca.Pool(), store(foreignNodeKP), ""), "", true},
		{"server name not in the certificate is refused",
			pki.ServerTLSConfig(ca.Pool(), store(serverKP), pki.RequireClientCert),
			pki.ClientTLSConfig(ca.Pool(), store(nodeKP), "other.example"), "", true},
		{"revoked client certificate is refused", func() *tls.Config {
			cfg := pki.ServerTLSConfig(ca.Pool(), store(serverKP), pki.RequireClientCert)
			pki.CheckRevocation(cfg, func(serial string) bool { return revoked[serial] })
			revoked[pki.SerialString(nodeKP.Cert)] = true
			return cfg
		}(), pki.ClientTLSConfig(ca.Pool(), store(nodeKP), ""), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer, err := handshake(t, tt.server, tt.client)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("handshake succeeded (peer %v), want a failure", peer)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			got := ""
			if peer != nil {
				id, err := pki.IdentityFromCert(peer)
				if err != nil {
					t.Fatal(err)
				}
				got = id.String()
			}
			if got != tt.wantPeer {
				t.Errorf("server saw client %q, want %q", got, tt.wantPeer)
			}
		})
	}
}

func TestCertStoreServesARenewedCertificateOnTheNextHandshake(t *testing.T) {
	ca := newCA(t)
	issue := func(name string) pki.KeyPair {
		kp, err := ca.Issue(pki.ServerIdentity(name, nil, []net.IP{net.ParseIP("127.0.0.1")}), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	first, second := issue("first"), issue("second")
	c1, _ := first.TLSCertificate()
	c2, _ := second.TLSCertificate()
	certs := pki.NewCertStore(c1)
	server := pki.ServerTLSConfig(ca.Pool(), certs, pki.OptionalClientCert)
	var seen []string
	client := pki.ClientTLSConfig(ca.Pool(), nil, "")
	client.VerifyConnection = func(cs tls.ConnectionState) error {
		seen = append(seen, cs.PeerCertificates[0].Subject.CommonName)
		return nil
	}
	if _, err := handshake(t, server, client); err != nil {
		t.Fatal(err)
	}
	certs.Set(c2)
	if _, err := handshake(t, server, client); err != nil {
		t.Fatal(err)
	}
	want := []string{"berth:control-plane:first", "berth:control-plane:second"}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("client saw server certificates %q, want %q", seen, want)
	}
}
