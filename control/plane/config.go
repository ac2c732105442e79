package plane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-io/berth/control/client"
)

// Config is a control-plane host's configuration: what
// /etc/berth/control.json holds. Only DataDir and ListenAddress are needed
// in Dev mode; everything else has a default or is derived.
type Config struct {
	// Name of this control-plane host: its etcd member name, the name its
	// API endpoint is published under and its server identity. Default:
	// the host name.
	Name string `json:"name,omitempty"`
	// DataDir holds etcd's data (DataDir/etcd) and, in Dev mode, the PKI
	// (DataDir/pki) and admin.json. Required.
	DataDir string `json:"dataDir"`
	// ListenAddress is where the API listens, host:port (":6443" for every
	// address). Required.
	ListenAddress string `json:"listenAddress"`
	// AdvertiseURL is the HTTPS URL clients and agents reach this host's
	// API at. Default: https:// plus the listen address (127.0.0.1 when it
	// listens on every address).
	AdvertiseURL string `json:"advertiseURL,omitempty"`
	// Etcd says which etcd to use: an embedded member (default) or an
	// external cluster.
	Etcd EtcdConfig `json:"etcd"`
	// PKI names the credential files. In Dev mode they default to files
	// under DataDir/pki and the CA is created on first start.
	PKI PKIConfig `json:"pki"`
	// ServiceCIDR is where service cluster IPs come from; default
	// 10.96.0.0/16 (its first address is the cluster DNS).
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
	// ClusterCIDR is the pod network; default 10.244.0.0/16, one /24 per
	// node.
	ClusterCIDR string `json:"clusterCIDR,omitempty"`
	// LeaderElection tunes the lease through which one control-plane host
	// at a time runs the scheduler and controllers.
	LeaderElection LeaderElectionConfig `json:"leaderElection"`
	// Dev runs a single self-contained control plane for development and
	// tests: CA, etcd and an admin client config (DataDir/admin.json) all
	// under DataDir.
	Dev bool `json:"dev,omitempty"`
	// Version is reported by GET /v1/version.
	Version string `json:"-"`
	// NodeLifecycle times how a silent node is noticed and emptied.
	NodeLifecycle NodeLifecycleConfig `json:"nodeLifecycle"`
	// DisableControllers runs an API-only control plane: no scheduler and
	// no controllers on this host.
	DisableControllers bool `json:"disableControllers,omitempty"`
	// RunControllers runs the scheduler and controllers (with leader
	// election) until ctx ends, talking to the API through cfg, an
	// admin-level client configuration minted for this control plane's
	// own identity. Nil runs control/controller's Run with the
	// LeaderElection settings; tests replace it.
	RunControllers func(ctx context.Context, cfg client.Config) error `json:"-"`
}

// EtcdConfig chooses and tunes etcd.
type EtcdConfig struct {
	// Endpoints of an external etcd cluster; empty runs an embedded member.
	Endpoints []string `json:"endpoints,omitempty"`
	// CAFile, CertFile and KeyFile are the TLS credentials for an external
	// cluster (optional).
	CAFile   string `json:"caFile,omitempty"`
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// Prefix is the key prefix of berth's data; default "/berth/".
	Prefix string `json:"prefix,omitempty"`

	// PeerURLs the embedded member listens and is reached on by other
	// members. https URLs get a peer certificate from the cluster CA and
	// require one from peers. Default http://127.0.0.1:2380 (a free port
	// in Dev mode).
	PeerURLs []string `json:"peerURLs,omitempty"`
	// ClientURLs the embedded member serves clients on; default
	// http://127.0.0.1:2379 (a free port in Dev mode). Keep them on
	// loopback: only this host's API server talks to its member.
	ClientURLs []string `json:"clientURLs,omitempty"`
	// InitialCluster is etcd's --initial-cluster; default this member
	// alone.
	InitialCluster string `json:"initialCluster,omitempty"`
	// InitialClusterState is "new" (bootstrap) or "existing" (join as the
	// learner that POST /v1/members added). Default "new".
	InitialClusterState string `json:"initialClusterState,omitempty"`
	// HeartbeatMs and ElectionMs are raft timings; defaults 100 and 1000.
	// Raise them where many members share slow CPUs.
	HeartbeatMs int `json:"heartbeatMs,omitempty"`
	ElectionMs  int `json:"electionMs,omitempty"`
}

// PKIConfig names credential files (PEM).
type PKIConfig struct {
	// CACertFile and CAKeyFile are the cluster CA. Required unless Dev.
	CACertFile string `json:"caCertFile,omitempty"`
	CAKeyFile  string `json:"caKeyFile,omitempty"`
	// ServingCertFile and ServingKeyFile are this host's server identity;
	// generated from the CA when absent.
	ServingCertFile string `json:"servingCertFile,omitempty"`
	ServingKeyFile  string `json:"servingKeyFile,omitempty"`
}

// LeaderElectionConfig tunes leader election of the controllers.
type LeaderElectionConfig struct {
	// LeaseDurationSeconds is how long a leader's lease lasts unrenewed;
	// default 15.
	LeaseDurationSeconds int `json:"leaseDurationSeconds,omitempty"`
	// RenewDeadlineSeconds is how long a leader tries to renew before it
	// steps down; default 10.
	RenewDeadlineSeconds int `json:"renewDeadlineSeconds,omitempty"`
	// RetryPeriodSeconds is how often candidates try; default 2.
	RetryPeriodSeconds int `json:"retryPeriodSeconds,omitempty"`
}

// NodeLifecycleConfig times the node lifecycle controller. Testbeds and
// small clusters shorten them; the defaults suit real networks.
type NodeLifecycleConfig struct {
	// GracePeriodSeconds is how long a node may miss heartbeats before it
	// is marked NotReady; default 40.
	GracePeriodSeconds int `json:"gracePeriodSeconds,omitempty"`
	// PodEvictionTimeoutSeconds is how long a NotReady node keeps its pods
	// before they are re-created elsewhere; default 60.
	PodEvictionTimeoutSeconds int `json:"podEvictionTimeoutSeconds,omitempty"`
}

// LoadConfig reads a Config from a JSON file, refusing unknown fields so a
// misspelt setting is an error rather than a silent default.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read control-plane config: %w", err)
	}
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("parse control-plane config %s: %w", path, err)
	}
	return cfg, nil
}

// withDefaults fills what cfg leaves empty and checks the rest.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.DataDir == "" {
		return cfg, errors.New("control-plane config: dataDir is required")
	}
	if cfg.ListenAddress == "" {
		return cfg, errors.New("control-plane config: listenAddress is required (host:port, for example :6443)")
	}
	if _, _, err := net.SplitHostPort(cfg.ListenAddress); err != nil {
		return cfg, fmt.Errorf("control-plane config: listenAddress %q: %w", cfg.ListenAddress, err)
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return cfg, fmt.Errorf("control-plane config: dataDir %q: %w", cfg.DataDir, err)
	}
	cfg.DataDir = abs
	if cfg.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			return cfg, fmt.Errorf("control-plane config: name is empty and the host name is unknown: %w", err)
		}
		cfg.Name = strings.ToLower(strings.Split(host, ".")[0])
	}
	if cfg.AdvertiseURL != "" {
		u, err := url.Parse(cfg.AdvertiseURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return cfg, fmt.Errorf("control-plane config: advertiseURL %q must be an https URL with a host", cfg.AdvertiseURL)
		}
	}
	if cfg.Dev {
		pkiDir := filepath.Join(cfg.DataDir, "pki")
		def := func(p *string, name string) {
			if *p == "" {
				*p = filepath.Join(pkiDir, name)
			}
		}
		def(&cfg.PKI.CACertFile, "ca.crt")
		def(&cfg.PKI.CAKeyFile, "ca.key")
	}
	if cfg.PKI.CACertFile == "" || cfg.PKI.CAKeyFile == "" {
		return cfg, errors.New("control-plane config: pki.caCertFile and pki.caKeyFile are required (or set dev)")
	}
	if cfg.PKI.ServingCertFile == "" {
		cfg.PKI.ServingCertFile = filepath.Join(cfg.DataDir, "pki", "server.crt")
	}
	if cfg.PKI.ServingKeyFile == "" {
		cfg.PKI.ServingKeyFile = filepath.Join(cfg.DataDir, "pki", "server.key")
	}
	e := &cfg.Etcd
	if e.InitialClusterState == "" {
		e.InitialClusterState = "new"
	}
	if e.InitialClusterState != "new" && e.InitialClusterState != "existing" {
		return cfg, fmt.Errorf("control-plane config: etcd.initialClusterState must be new or existing, got %q", e.InitialClusterState)
	}
	if e.HeartbeatMs == 0 {
		e.HeartbeatMs = 100
	}
	if e.ElectionMs == 0 {
		e.ElectionMs = 1000
	}
	if e.ElectionMs < 5*e.HeartbeatMs {
		return cfg, fmt.Errorf("control-plane config: etcd.electionMs (%d) must be at least 5 heartbeats (%d)", e.ElectionMs, 5*e.HeartbeatMs)
	}
	le := &cfg.LeaderElection
	if le.LeaseDurationSeconds == 0 {
		le.LeaseDurationSeconds = 15
	}
	if le.RenewDeadlineSeconds == 0 {
		le.RenewDeadlineSeconds = 10
	}
	if le.RetryPeriodSeconds == 0 {
		le.RetryPeriodSeconds = 2
	}
	if le.RenewDeadlineSeconds >= le.LeaseDurationSeconds {
		return cfg, fmt.Errorf("control-plane config: leaderElection.renewDeadlineSeconds (%d) must be shorter than leaseDurationSeconds (%d)",
			le.RenewDeadlineSeconds, le.LeaseDurationSeconds)
	}
	return cfg, nil
}
