package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/pki"
)

// File names under Config.CredentialsDir.
const (
	clientKeyFile   = "client.key"
	clientCertFile  = "client.crt"
	servingKeyFile  = "serving.key"
	servingCertFile = "serving.crt"
	endpointsFile   = "endpoints.json"
)

// credentials are the node's keys and certificates, live-swappable.
type credentials struct {
	cfg       Config
	caPEM     []byte
	roots     *x509.CertPool
	client    *pki.CertStore
	serving   *pki.CertStore
	clientPEM clientPair
	log       *slog.Logger
}

type clientPair struct{ cert, key []byte }

func (c Config) credPath(name string) string { return filepath.Join(c.CredentialsDir, name) }

// writeSecret writes a file readable by its owner only, atomically.
func writeSecret(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
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

// servingCSR asks for the agent's serving certificate: the node's serving
// identity with its address and name as subject alternative names.
func servingCSR(key *ecdsa.PrivateKey, cfg Config) ([]byte, error) {
	var ips []net.IP
	if ip := net.ParseIP(cfg.InternalIP); ip != nil {
		ips = []net.IP{ip}
	}
	csr, err := pki.NewCSR(key, pki.NodeServerIdentity(cfg.NodeName, []string{cfg.NodeName}, ips))
	if err != nil {
		return nil, fmt.Errorf("serving csr: %w", err)
	}
	return csr, nil
}

// newKeys makes fresh client and serving keys and their requests.
func newKeys(cfg Config) (clientKey, servingKey *ecdsa.PrivateKey, clientReq, servingReq []byte, err error) {
	if clientKey, err = pki.GenerateKey(); err != nil {
		return
	}
	if servingKey, err = pki.GenerateKey(); err != nil {
		return
	}
	if clientReq, err = pki.NewCSR(clientKey, pki.NodeIdentity(cfg.NodeName)); err != nil {
		return
	}
	servingReq, err = servingCSR(servingKey, cfg)
	return
}

// storeIssued writes keys and certificates from a join or renew answer. A
// control plane that cannot sign serving certificates yet returns none;
// the agent then serves with a certificate it signs itself, which only an
// admin skipping verification can read logs from.
func storeIssued(cfg Config, ck, sk *ecdsa.PrivateKey, resp *api.JoinResponse) error {
	ckPEM, err := pki.EncodeKey(ck)
	if err != nil {
		return err
	}
	if err := writeSecret(cfg.credPath(clientKeyFile), ckPEM); err != nil {
		return err
	}
	if err := writeSecret(cfg.credPath(clientCertFile), []byte(resp.ClientCertificate)); err != nil {
		return err
	}
	skPEM, err := pki.EncodeKey(sk)
	if err != nil {
		return err
	}
	serving := []byte(resp.ServingCertificate)
	if len(serving) == 0 {
		if serving, err = selfSigned(sk, cfg); err != nil {
			return err
		}
	}
	if err := writeSecret(cfg.credPath(servingKeyFile), skPEM); err != nil {
		return err
	}
	return writeSecret(cfg.credPath(servingCertFile), serving)
}

func selfSigned(key *ecdsa.PrivateKey, cfg Config) ([]byte, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetInt64(now.UnixNano()), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(30 * 24 * time.Hour),
		DNSNames: []string{cfg.NodeName}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if ip := net.ParseIP(cfg.InternalIP); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("self-sign serving certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// ensureCredentials joins with the token when the node has no certificate
// yet, then loads what is stored.
func ensureCredentials(ctx context.Context, cfg Config, log *slog.Logger) (*credentials, error) {
	caPEM, err := os.ReadFile(cfg.CACertFile)
	if err != nil {
		return nil, fmt.Errorf("read cluster ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("cluster ca %s holds no PEM certificate", cfg.CACertFile)
	}
	if _, err := os.Stat(cfg.credPath(clientCertFile)); errors.Is(err, os.ErrNotExist) {
		if err := join(ctx, cfg, string(caPEM), log); err != nil {
			return nil, err
		}
	}
	c := &credentials{cfg: cfg, caPEM: caPEM, roots: roots, log: log}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func join(ctx context.Context, cfg Config, caPEM string, log *slog.Logger) error {
	if cfg.JoinTokenFile == "" {
		return fmt.Errorf("node %s has no certificate in %s and no joinTokenFile to join with: mint a join token and name its file in the config", cfg.NodeName, cfg.CredentialsDir)
	}
	raw, err := os.ReadFile(cfg.JoinTokenFile)
	if err != nil {
		return fmt.Errorf("read join token file: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	ck, sk, creq, sreq, err := newKeys(cfg)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	req := api.JoinRequest{Token: token, NodeName: cfg.NodeName, ClientCSR: string(creq), ServingCSR: string(sreq)}
	var resp *api.JoinResponse
	for _, ep := range cfg.ControlPlane {
		resp, err = client.Join(ctx, caPEM, ep, req, cfg.APITimeout.or(DefaultAPITimeout))
		if err != nil && api.ReasonOf(err) == api.ReasonBadRequest && strings.Contains(err.Error(), "servingCSR") {
			// This control plane cannot sign serving certificates: join
			// for the client certificate alone.
			req.ServingCSR = ""
			resp, err = client.Join(ctx, caPEM, ep, req, cfg.APITimeout.or(DefaultAPITimeout))
		}
		if err == nil {
			break
		}
		log.Warn("join failed", "endpoint", ep, "err", err)
	}
	if err != nil {
		return fmt.Errorf("join as node %s: %w", cfg.NodeName, err)
	}
	if err := storeIssued(cfg, ck, sk, resp); err != nil {
		return fmt.Errorf("store node credentials: %w", err)
	}
	if len(resp.ControlPlane.Endpoints) > 0 {
		saveEndpoints(cfg, resp.ControlPlane.Endpoints, log)
	}
	if err := os.Remove(cfg.JoinTokenFile); err != nil {
		log.Warn("could not delete the used join token file", "file", cfg.JoinTokenFile, "err", err)
	}
	log.Info("joined the cluster", "node", cfg.NodeName, "servingCertificateFromCA", resp.ServingCertificate != "")
	return nil
}

func (c *credentials) load() error {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(c.cfg.credPath(name))
		if err != nil {
			return nil, fmt.Errorf("read node credentials: %w", err)
		}
		return b, nil
	}
	cc, err := read(clientCertFile)
	if err != nil {
		return err
	}
	ck, err := read(clientKeyFile)
	if err != nil {
		return err
	}
	sc, err := read(servingCertFile)
	if err != nil {
		return err
	}
	sk, err := read(servingKeyFile)
	if err != nil {
		return err
	}
	cpair, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		return fmt.Errorf("load node client certificate: %w", err)
	}
	spair, err := tls.X509KeyPair(sc, sk)
	if err != nil {
		return fmt.Errorf("load agent serving certificate: %w", err)
	}
	if c.client == nil {
		c.client, c.serving = pki.NewCertStore(cpair), pki.NewCertStore(spair)
	} else {
		c.client.Set(cpair)
		c.serving.Set(spair)
	}
	c.clientPEM = clientPair{cert: cc, key: ck}
	return nil
}

// clientConfig is the client configuration of the node's identity, with the
// persisted endpoint list when there is one.
func (c *credentials) clientConfig() client.Config {
	eps := loadEndpoints(c.cfg)
	if len(eps) == 0 {
		eps = c.cfg.ControlPlane
	}
	return client.Config{Endpoints: eps, CACertificate: string(c.caPEM),
		ClientCertificate: string(c.clientPEM.cert), ClientKey: string(c.clientPEM.key)}
}

// renewIfDue renews both certificates once the client certificate needs it.
func (c *credentials) renewIfDue(ctx context.Context, cli *client.Client) (bool, error) {
	leaf := c.client.Current().Leaf
	if leaf == nil || !pki.NeedsRenewal(leaf, time.Now()) {
		return false, nil
	}
	ck, sk, creq, sreq, err := newKeys(c.cfg)
	if err != nil {
		return false, fmt.Errorf("renew: %w", err)
	}
	resp, err := cli.Renew(ctx, api.RenewRequest{ClientCSR: string(creq), ServingCSR: string(sreq)})
	if err != nil && api.ReasonOf(err) == api.ReasonBadRequest {
		resp, err = cli.Renew(ctx, api.RenewRequest{ClientCSR: string(creq)})
	}
	if err != nil {
		return false, err
	}
	if err := storeIssued(c.cfg, ck, sk, resp); err != nil {
		return false, err
	}
	return true, c.load()
}

type endpointList struct {
	Endpoints []string `json:"endpoints"`
}

func loadEndpoints(cfg Config) []string {
	data, err := os.ReadFile(cfg.credPath(endpointsFile))
	if err != nil {
		return nil
	}
	var l endpointList
	if json.Unmarshal(data, &l) != nil {
		return nil
	}
	return l.Endpoints
}

func saveEndpoints(cfg Config, eps []string, log *slog.Logger) {
	data, _ := json.Marshal(endpointList{Endpoints: eps})
	if err := writeSecret(cfg.credPath(endpointsFile), data); err != nil {
		log.Warn("persist control-plane endpoints", "err", err)
	}
}
