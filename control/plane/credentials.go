package plane

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/pki"
)

// Certificate lifetimes.
const (
	caValidity      = 10 * 365 * 24 * time.Hour
	servingValidity = 365 * 24 * time.Hour
	adminValidity   = 365 * 24 * time.Hour
	selfValidity    = 365 * 24 * time.Hour
)

// writeFileAtomic replaces path with data (mode perm) so a reader never
// sees half a file, creating the directory (0700) when needed.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create directory of %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// loadOrCreateCA loads the cluster CA; in Dev mode it creates one on first
// start.
func loadOrCreateCA(cfg Config) (*pki.CA, error) {
	certPEM, err := os.ReadFile(cfg.PKI.CACertFile)
	if err == nil {
		keyPEM, err := os.ReadFile(cfg.PKI.CAKeyFile)
		if err != nil {
			return nil, fmt.Errorf("read ca key: %w", err)
		}
		return pki.LoadCA(certPEM, keyPEM)
	}
	if !errors.Is(err, fs.ErrNotExist) || !cfg.Dev {
		return nil, fmt.Errorf("read ca certificate: %w", err)
	}
	ca, err := pki.NewCA("berth cluster ca "+cfg.Name, caValidity)
	if err != nil {
		return nil, err
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(cfg.PKI.CAKeyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(cfg.PKI.CACertFile, ca.CertPEM(), 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// servingHosts are the names and addresses this host's API is reached at.
func servingHosts(cfg Config) ([]string, []net.IP) {
	dns := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	add := func(h string) {
		if h == "" {
			return
		}
		if ip := net.ParseIP(h); ip != nil {
			if ip.IsUnspecified() {
				return
			}
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			return
		}
		if !slices.Contains(dns, h) {
			dns = append(dns, h)
		}
	}
	if host, _, err := net.SplitHostPort(cfg.ListenAddress); err == nil {
		add(host)
	}
	if u, err := url.Parse(cfg.AdvertiseURL); err == nil {
		add(u.Hostname())
	}
	if h, err := os.Hostname(); err == nil {
		add(h)
	}
	add(cfg.Name)
	return dns, ips
}

// covers reports whether cert names every host.
func covers(cert *tls.Certificate, dns []string, ips []net.IP) bool {
	leaf := cert.Leaf
	for _, d := range dns {
		if leaf.VerifyHostname(d) != nil {
			return false
		}
	}
	for _, ip := range ips {
		if leaf.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}

// loadOrIssueServing loads this host's serving certificate, issuing (and
// writing) a new one when it is absent, not from this CA, due for renewal
// or missing one of the host's names.
func loadOrIssueServing(cfg Config, ca *pki.CA, now time.Time) (pki.KeyPair, tls.Certificate, error) {
	dns, ips := servingHosts(cfg)
	certPEM, cerr := os.ReadFile(cfg.PKI.ServingCertFile)
	keyPEM, kerr := os.ReadFile(cfg.PKI.ServingKeyFile)
	if cerr == nil && kerr == nil {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return pki.KeyPair{}, tls.Certificate{}, fmt.Errorf("load serving certificate %s: %w", cfg.PKI.ServingCertFile, err)
		}
		if _, verr := cert.Leaf.Verify(verifyOpts(ca)); verr == nil && !pki.NeedsRenewal(cert.Leaf, now) && covers(&cert, dns, ips) {
			return pki.KeyPair{CertPEM: certPEM, KeyPEM: keyPEM, Cert: cert.Leaf}, cert, nil
		}
	} else if !errors.Is(cerr, fs.ErrNotExist) && cerr != nil {
		return pki.KeyPair{}, tls.Certificate{}, fmt.Errorf("read serving certificate: %w", cerr)
	}
	kp, err := ca.Issue(pki.ServerIdentity(cfg.Name, dns, ips), servingValidity)
	if err != nil {
		return pki.KeyPair{}, tls.Certificate{}, err
	}
	if err := writeFileAtomic(cfg.PKI.ServingKeyFile, kp.KeyPEM, 0o600); err != nil {
		return pki.KeyPair{}, tls.Certificate{}, err
	}
	if err := writeFileAtomic(cfg.PKI.ServingCertFile, kp.CertPEM, 0o644); err != nil {
		return pki.KeyPair{}, tls.Certificate{}, err
	}
	cert, err := kp.TLSCertificate()
	return kp, cert, err
}

func verifyOpts(ca *pki.CA) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
}

// selfClientConfig mints a client configuration for the control plane's
// own identity (a server identity, which the API treats as admin), for the
// controllers. It lives only in memory.
func selfClientConfig(cfg Config, ca *pki.CA, endpoint string) (client.Config, error) {
	kp, err := ca.Issue(pki.ServerIdentity(cfg.Name, nil, nil), selfValidity)
	if err != nil {
		return client.Config{}, fmt.Errorf("issue the control plane's client certificate: %w", err)
	}
	return client.Config{
		Endpoints:         []string{endpoint},
		CACertificate:     string(ca.CertPEM()),
		ClientCertificate: string(kp.CertPEM),
		ClientKey:         string(kp.KeyPEM),
	}, nil
}

// writeAdminConfig writes DataDir/admin.json (0600) for Dev mode, keeping
// the existing admin certificate while it is from this CA and not due for
// renewal, and pointing it at endpoint.
func writeAdminConfig(cfg Config, ca *pki.CA, endpoint string, now time.Time) (string, error) {
	path := filepath.Join(cfg.DataDir, "admin.json")
	ac, err := client.LoadConfig(path)
	keep := false
	if err == nil {
		if cert, err := tls.X509KeyPair([]byte(ac.ClientCertificate), []byte(ac.ClientKey)); err == nil {
			_, verr := cert.Leaf.Verify(verifyOpts(ca))
			keep = verr == nil && !pki.NeedsRenewal(cert.Leaf, now)
		}
	}
	if !keep {
		kp, err := ca.Issue(pki.AdminIdentity(""), adminValidity)
		if err != nil {
			return "", fmt.Errorf("issue the admin certificate: %w", err)
		}
		ac.ClientCertificate, ac.ClientKey = string(kp.CertPEM), string(kp.KeyPEM)
	}
	ac.Endpoints = []string{endpoint}
	ac.CACertificate = string(ca.CertPEM())
	if err := ac.Save(path); err != nil {
		return "", fmt.Errorf("write admin config: %w", err)
	}
	return path, nil
}
