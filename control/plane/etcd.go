package plane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/berth-io/berth/control/pki"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdComponent runs the embedded etcd member (or connects to an external
// cluster) and owns the etcd client everything else uses.
type etcdComponent struct {
	cfg    Config
	ca     *pki.CA
	log    *slog.Logger
	embed  *embed.Config
	etcd   *embed.Etcd
	client *clientv3.Client
	failed chan error
	once   sync.Once
}

func newEtcdComponent(cfg Config, ca *pki.CA, log *slog.Logger) *etcdComponent {
	return &etcdComponent{cfg: cfg, ca: ca, log: log, failed: make(chan error, 1)}
}

func (c *etcdComponent) Name() string         { return "etcd" }
func (c *etcdComponent) Failed() <-chan error { return c.failed }

// devPorts are the loopback ports a Dev control plane's etcd uses, chosen
// on first start and kept so a restart finds its member where it was.
type devPorts struct {
	Client int `json:"client"`
	Peer   int `json:"peer"`
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *etcdComponent) devURLs() (client, peer string, err error) {
	path := filepath.Join(c.cfg.DataDir, "etcd-ports.json")
	var p devPorts
	data, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(data, &p); err != nil {
			return "", "", fmt.Errorf("read %s: %w", path, err)
		}
	} else {
		if p.Client, err = freePort(); err != nil {
			return "", "", err
		}
		if p.Peer, err = freePort(); err != nil {
			return "", "", err
		}
		data, _ := json.Marshal(p)
		if err := writeFileAtomic(path, data, 0o600); err != nil {
			return "", "", err
		}
	}
	return fmt.Sprintf("http://127.0.0.1:%d", p.Client), fmt.Sprintf("http://127.0.0.1:%d", p.Peer), nil
}

func parseURLs(what string, in []string) ([]url.URL, error) {
	out := make([]url.URL, 0, len(in))
	for _, s := range in {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("etcd %s %q: must be an http(s) URL with host and port", what, s)
		}
		out = append(out, *u)
	}
	return out, nil
}

// Init builds the embedded member's configuration (nothing for an
// external cluster).
func (c *etcdComponent) Init(ctx context.Context) error {
	e := c.cfg.Etcd
	if len(e.Endpoints) > 0 {
		return nil
	}
	clientURLs, peerURLs := e.ClientURLs, e.PeerURLs
	if c.cfg.Dev && (len(clientURLs) == 0 || len(peerURLs) == 0) {
		cu, pu, err := c.devURLs()
		if err != nil {
			return err
		}
		if len(clientURLs) == 0 {
			clientURLs = []string{cu}
		}
		if len(peerURLs) == 0 {
			peerURLs = []string{pu}
		}
	}
	if len(clientURLs) == 0 {
		clientURLs = []string{"http://127.0.0.1:2379"}
	}
	if len(peerURLs) == 0 {
		peerURLs = []string{"http://127.0.0.1:2380"}
	}
	cu, err := parseURLs("client URL", clientURLs)
	if err != nil {
		return err
	}
	pu, err := parseURLs("peer URL", peerURLs)
	if err != nil {
		return err
	}
	ec := embed.NewConfig()
	ec.Name = c.cfg.Name
	ec.Dir = filepath.Join(c.cfg.DataDir, "etcd")
	ec.ListenClientUrls, ec.AdvertiseClientUrls = cu, cu
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = pu, pu
	ec.InitialCluster = e.InitialCluster
	if ec.InitialCluster == "" {
		ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	}
	ec.ClusterState = e.InitialClusterState
	ec.TickMs = uint(e.HeartbeatMs)
	ec.ElectionMs = uint(e.ElectionMs)
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(slogCore{log: c.log.With("component", "etcd"), level: zapcore.WarnLevel}))
	if pu[0].Scheme == "https" {
		if err := c.peerTLS(ec, pu); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(ec.Dir, 0o700); err != nil {
		return fmt.Errorf("create etcd data directory: %w", err)
	}
	c.embed = ec
	return nil
}

// peerTLS gives the member a peer certificate from the cluster CA and
// makes it require one from its peers.
func (c *etcdComponent) peerTLS(ec *embed.Config, peers []url.URL) error {
	var dns []string
	var ips []net.IP
	for _, u := range peers {
		if ip := net.ParseIP(u.Hostname()); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, u.Hostname())
		}
	}
	kp, err := c.ca.Issue(pki.EtcdPeerIdentity(c.cfg.Name, dns, ips), servingValidity)
	if err != nil {
		return fmt.Errorf("issue the etcd peer certificate: %w", err)
	}
	dir := filepath.Join(c.cfg.DataDir, "pki")
	certFile, keyFile := filepath.Join(dir, "etcd-peer.crt"), filepath.Join(dir, "etcd-peer.key")
	if err := writeFileAtomic(keyFile, kp.KeyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(certFile, kp.CertPEM, 0o644); err != nil {
		return err
	}
	ec.PeerTLSInfo.CertFile, ec.PeerTLSInfo.KeyFile = certFile, keyFile
	ec.PeerTLSInfo.TrustedCAFile = c.cfg.PKI.CACertFile
	ec.PeerTLSInfo.ClientCertAuth = true
	return nil
}

// Start starts the member and waits until it serves, then connects.
func (c *etcdComponent) Start(ctx context.Context) error {
	endpoints := c.cfg.Etcd.Endpoints
	var tlsCfg *tls.Config
	if c.embed != nil {
		e, err := embed.StartEtcd(c.embed)
		if err != nil {
			return fmt.Errorf("start embedded etcd in %s: %w", c.embed.Dir, err)
		}
		c.etcd = e
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			return fmt.Errorf("embedded etcd failed while starting: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("embedded etcd not ready: %w", ctx.Err())
		}
		go func() {
			if err, ok := <-e.Err(); ok && err != nil {
				c.failed <- err
			}
		}()
		endpoints = nil
		for _, u := range c.embed.AdvertiseClientUrls {
			endpoints = append(endpoints, u.String())
		}
	} else if c.cfg.Etcd.CAFile != "" || c.cfg.Etcd.CertFile != "" {
		var err error
		if tlsCfg, err = externalTLS(c.cfg.Etcd); err != nil {
			return err
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 10 * time.Second,
		TLS:         tlsCfg,
		Logger:      zap.New(slogCore{log: c.log.With("component", "etcd-client"), level: zapcore.ErrorLevel}),
		Context:     context.WithoutCancel(ctx),
	})
	if err != nil {
		return fmt.Errorf("connect to etcd %v: %w", endpoints, err)
	}
	c.client = cli
	if _, err := cli.Get(ctx, "/berth-startup-probe", clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd %v does not answer: %w", endpoints, err)
	}
	return nil
}

func externalTLS(e EtcdConfig) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CAFile != "" {
		data, err := os.ReadFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read etcd ca: %w", err)
		}
		certs, err := pki.ParseCerts(data)
		if err != nil {
			return nil, fmt.Errorf("read etcd ca %s: %w", e.CAFile, err)
		}
		pool := x509.NewCertPool()
		for _, c := range certs {
			pool.AddCert(c)
		}
		cfg.RootCAs = pool
	}
	if e.CertFile != "" || e.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load etcd client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Stop closes the client and the member.
func (c *etcdComponent) Stop() error {
	var err error
	c.once.Do(func() {
		if c.client != nil {
			err = c.client.Close()
			if errors.Is(err, context.Canceled) {
				err = nil
			}
		}
		if c.etcd != nil {
			c.etcd.Close()
		}
	})
	return err
}

// slogCore sends etcd's zap logs at level or above to a slog logger, so
// the control plane has one log stream.
type slogCore struct {
	log    *slog.Logger
	level  zapcore.Level
	fields []zapcore.Field
}

func (s slogCore) Enabled(l zapcore.Level) bool { return l >= s.level }

func (s slogCore) With(fields []zapcore.Field) zapcore.Core {
	s.fields = append(append([]zapcore.Field(nil), s.fields...), fields...)
	return s
}

func (s slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if s.Enabled(e.Level) {
		return ce.AddCore(e, s)
	}
	return ce
}

func (s slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field(nil), s.fields...), fields...) {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	level := slog.LevelInfo
	switch {
	case e.Level >= zapcore.ErrorLevel:
		level = slog.LevelError
	case e.Level >= zapcore.WarnLevel:
		level = slog.LevelWarn
	case e.Level < zapcore.InfoLevel:
		level = slog.LevelDebug
	}
	s.log.LogAttrs(context.Background(), level, e.Message, attrs...)
	return nil
}

func (s slogCore) Sync() error { return nil }
