package plane

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berth-io/berth/control/etcd"
	"github.com/berth-io/berth/control/pki"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdComponent runs the embedded etcd member (through control/etcd) or
// connects to an external cluster, and owns the etcd client everything
// else uses.
type etcdComponent struct {
	cfg     Config
	ca      *pki.CA
	serving pki.KeyPair
	log     *slog.Logger
	member  etcd.Config
	server  *etcd.Server
	client  *clientv3.Client
	failed  chan error
	once    sync.Once
}

func newEtcdComponent(cfg Config, ca *pki.CA, serving pki.KeyPair, log *slog.Logger) *etcdComponent {
	return &etcdComponent{cfg: cfg, ca: ca, serving: serving, log: log, failed: make(chan error, 1)}
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
	return fmt.Sprintf("https://127.0.0.1:%d", p.Client), fmt.Sprintf("http://127.0.0.1:%d", p.Peer), nil
}

// Init builds the embedded member's configuration (nothing for an
// external cluster): the client port serves TLS with this host's server
// certificate and admits only this host's server identity; https peer URLs
// get a peer certificate from the cluster CA.
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
		clientURLs = []string{"https://" + etcd.DefaultListenClientURL}
	}
	caPEM := c.ca.CertPEM()
	self, err := pki.ServerIdentity(c.cfg.Name, nil, nil).Subject()
	if err != nil {
		return fmt.Errorf("etcd client identity: %w", err)
	}
	m := etcd.Config{
		Name:              c.cfg.Name,
		DataDir:           filepath.Join(c.cfg.DataDir, "etcd"),
		ListenClientURLs:  clientURLs,
		ListenPeerURLs:    peerURLs,
		InitialCluster:    e.InitialCluster,
		ClusterState:      etcd.ClusterState(e.InitialClusterState),
		HeartbeatInterval: time.Duration(e.HeartbeatMs) * time.Millisecond,
		ElectionTimeout:   time.Duration(e.ElectionMs) * time.Millisecond,
		LogOutput:         &etcdLog{log: c.log.With("component", "etcd")},
		ClientTLS: &etcd.TLSConfig{
			CertPEM: c.serving.CertPEM, KeyPEM: c.serving.KeyPEM, CAPEM: caPEM,
			AllowedCNs: []string{self.CommonName},
		},
	}
	if len(peerURLs) > 0 && strings.HasPrefix(peerURLs[0], "https://") {
		var dns []string
		var ips []net.IP
		for _, s := range peerURLs {
			u, err := url.Parse(s)
			if err != nil {
				return fmt.Errorf("etcd peer URL %q: %w", s, err)
			}
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
		m.PeerTLS = &etcd.TLSConfig{CertPEM: kp.CertPEM, KeyPEM: kp.KeyPEM, CAPEM: caPEM}
	}
	c.member = m
	return nil
}

// Start starts the member (or connects to the external cluster) and
// returns once etcd answers.
func (c *etcdComponent) Start(ctx context.Context) error {
	if e := c.cfg.Etcd; len(e.Endpoints) > 0 {
		var tlsCfg *tls.Config
		if e.CAFile != "" {
			ca, err := os.ReadFile(e.CAFile)
			if err != nil {
				return fmt.Errorf("read etcd ca: %w", err)
			}
			var cert, key []byte
			if e.CertFile != "" {
				if cert, err = os.ReadFile(e.CertFile); err != nil {
					return fmt.Errorf("read etcd client certificate: %w", err)
				}
				if key, err = os.ReadFile(e.KeyFile); err != nil {
					return fmt.Errorf("read etcd client key: %w", err)
				}
			}
			if tlsCfg, err = etcd.ClientTLS(cert, key, ca); err != nil {
				return err
			}
		}
		cli, err := etcd.Connect(ctx, etcd.ExternalConfig{Endpoints: e.Endpoints, TLS: tlsCfg,
			LogOutput: &etcdLog{log: c.log.With("component", "etcd-client")}})
		if err != nil {
			return err
		}
		c.client = cli
		return nil
	}
	srv, err := etcd.Start(ctx, c.member)
	if err != nil {
		return err
	}
	c.server = srv
	c.client = srv.Client()
	go func() {
		if err, ok := <-srv.Err(); ok && err != nil {
			c.failed <- err
		}
	}()
	return nil
}

// Stop closes the client (external) or the member.
func (c *etcdComponent) Stop() error {
	var err error
	c.once.Do(func() {
		switch {
		case c.server != nil:
			err = c.server.Close()
		case c.client != nil:
			err = c.client.Close()
		}
		if errors.Is(err, context.Canceled) {
			err = nil
		}
	})
	return err
}

// etcdLog forwards etcd's JSON log lines at warning level and above to
// the control plane's logger, so there is one log stream.
type etcdLog struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (l *etcdLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *etcdLog) line(b []byte) {
	var entry map[string]any
	if err := json.Unmarshal(b, &entry); err != nil {
		l.log.Warn(string(b))
		return
	}
	level, _ := entry["level"].(string)
	var lv slog.Level
	switch level {
	case "warn":
		lv = slog.LevelWarn
	case "error", "dpanic", "panic", "fatal":
		lv = slog.LevelError
	default:
		return
	}
	msg, _ := entry["msg"].(string)
	attrs := make([]slog.Attr, 0, len(entry))
	for k, v := range entry {
		if k != "level" && k != "msg" && k != "ts" {
			attrs = append(attrs, slog.Any(k, v))
		}
	}
	l.log.LogAttrs(context.Background(), lv, msg, attrs...)
}
