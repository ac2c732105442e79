package etcd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// ClusterState says whether a member founds a cluster or joins one.
type ClusterState string

const (
	// NewCluster founds a cluster from InitialCluster: the first control
	// host, or a restore.
	NewCluster ClusterState = "new"
	// ExistingCluster joins a cluster the member was already added to
	// (AddLearner), using the initial-cluster string AddLearner returned.
	ExistingCluster ClusterState = "existing"
)

// Defaults applied by Start to zero fields of Config.
const (
	// DefaultHeartbeatInterval is etcd's own default; the testbed, where many
	// members share two cores, raises it.
	DefaultHeartbeatInterval = 100 * time.Millisecond
	// DefaultElectionTimeout is etcd's own default: ten heartbeats.
	DefaultElectionTimeout = 1000 * time.Millisecond
	// DefaultAutoCompactionRetention keeps one hour of history: a watch that
	// falls further behind is told its revision is compacted and relists.
	DefaultAutoCompactionRetention = time.Hour
	// DefaultClusterToken distinguishes berth clusters' raft traffic from
	// any other etcd cluster's; a caller should pass its cluster ID.
	DefaultClusterToken = "berth"
	// DefaultListenClientURL listens on loopback only: each control-plane
	// host talks to its own member, and nothing else reaches etcd's client
	// port.
	DefaultListenClientURL = "127.0.0.1:2379"
	// DefaultListenPeerURL listens on loopback; a multi-member cluster must
	// set a routable peer URL.
	DefaultListenPeerURL = "127.0.0.1:2380"
)

// TLSConfig names the certificate a member serves and presents, and the CA
// it trusts (berth's cluster CA), either as files or as PEM. Files are read
// again on every handshake, so rewriting them rotates the certificate
// without a restart; PEM is written to a private temporary directory for
// the member's lifetime.
type TLSConfig struct {
	// CertFile, KeyFile and CAFile are paths to PEM files.
	CertFile, KeyFile, CAFile string
	// CertPEM, KeyPEM and CAPEM are used when the file paths are empty.
	CertPEM, KeyPEM, CAPEM []byte
	// AllowedCNs, when set, admits only client certificates with one of
	// these common names (the control-plane hosts'), so other identities
	// the cluster CA signed, such as nodes', cannot reach etcd.
	AllowedCNs []string
}

func (t *TLSConfig) files(dir, prefix string) (cert, key, ca string, err error) {
	if t.CertFile != "" || t.KeyFile != "" || t.CAFile != "" {
		if t.CertFile == "" || t.KeyFile == "" || t.CAFile == "" {
			return "", "", "", errors.New("tls needs all of cert, key and ca files")
		}
		return t.CertFile, t.KeyFile, t.CAFile, nil
	}
	if len(t.CertPEM) == 0 || len(t.KeyPEM) == 0 || len(t.CAPEM) == 0 {
		return "", "", "", errors.New("tls needs cert, key and ca as files or pem")
	}
	cert = filepath.Join(dir, prefix+".crt")
	key = filepath.Join(dir, prefix+".key")
	ca = filepath.Join(dir, prefix+"-ca.crt")
	for _, f := range []struct {
		path string
		data []byte
	}{{cert, t.CertPEM}, {key, t.KeyPEM}, {ca, t.CAPEM}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return "", "", "", fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return cert, key, ca, nil
}

// clientConfig builds the client side: the CA as the only root and the
// certificate as the client certificate.
func (t *TLSConfig) clientConfig() (*tls.Config, error) {
	certPEM, keyPEM, caPEM := t.CertPEM, t.KeyPEM, t.CAPEM
	var err error
	if t.CertFile != "" {
		if certPEM, err = os.ReadFile(t.CertFile); err != nil {
			return nil, fmt.Errorf("read client certificate: %w", err)
		}
		if keyPEM, err = os.ReadFile(t.KeyFile); err != nil {
			return nil, fmt.Errorf("read client key: %w", err)
		}
		if caPEM, err = os.ReadFile(t.CAFile); err != nil {
			return nil, fmt.Errorf("read ca: %w", err)
		}
	}
	return ClientTLS(certPEM, keyPEM, caPEM)
}

// ClientTLS builds the TLS configuration of an etcd client that presents the
// given certificate and trusts only caPEM: what Connect needs for a cluster
// secured by berth's CA. Empty certPEM and keyPEM give a client without a
// certificate.
func ClientTLS(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("build etcd client tls: no ca certificate in pem")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if len(certPEM) > 0 || len(keyPEM) > 0 {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("build etcd client tls: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Config describes one embedded etcd member. Zero fields take the defaults
// documented on each.
type Config struct {
	// Name is the member's name, unique in the cluster (the host name).
	Name string
	// DataDir holds the member's data; it is created 0700 if missing. A
	// restart on the same DataDir resumes the same member.
	DataDir string

	// ListenClientURLs are where the member serves clients, as URLs or
	// host:port (default DefaultListenClientURL; scheme https when ClientTLS
	// is set). Port 0 picks a free port, reported by Server.Endpoints; it
	// needs a single listen URL.
	ListenClientURLs []string
	// AdvertiseClientURLs are published in the member list (default: the
	// listen URLs).
	AdvertiseClientURLs []string
	// ListenPeerURLs are where the member talks raft to its peers (default
	// DefaultListenPeerURL). Port 0 picks a free port; it needs a single
	// listen URL, and a default InitialCluster.
	ListenPeerURLs []string
	// AdvertisePeerURLs are what peers dial (default: the listen URLs).
	AdvertisePeerURLs []string

	// InitialCluster is "name=peerURL,..." of every member when the member
	// first starts (default: this member alone). It is ignored on restart.
	InitialCluster string
	// ClusterState is NewCluster (default) or ExistingCluster.
	ClusterState ClusterState
	// ClusterToken makes the cluster's identity unique (default
	// DefaultClusterToken); pass the berth cluster ID.
	ClusterToken string

	// ClientTLS secures the client port and requires client certificates
	// signed by its CA; nil serves plaintext (tests only). The member's own
	// client (Server.Client) presents the same certificate, so it must allow
	// client authentication as well as serving.
	ClientTLS *TLSConfig
	// PeerTLS secures and authenticates peer traffic; nil is plaintext
	// (tests only). Peer certificates need the peer's IP addresses as SANs.
	PeerTLS *TLSConfig

	// HeartbeatInterval is raft's heartbeat (default
	// DefaultHeartbeatInterval).
	HeartbeatInterval time.Duration
	// ElectionTimeout is how long a follower waits for a heartbeat before
	// calling an election (default DefaultElectionTimeout; at least five
	// heartbeats).
	ElectionTimeout time.Duration

	// SnapshotCount is the number of applied entries between raft
	// snapshots (default etcd's, 10,000).
	SnapshotCount uint64
	// QuotaBackendBytes caps the database size (default etcd's, 2 GiB).
	QuotaBackendBytes int64
	// AutoCompactionRetention keeps this much history (default
	// DefaultAutoCompactionRetention), or, with AutoCompactionRevisions
	// set, is ignored.
	AutoCompactionRetention time.Duration
	// AutoCompactionRevisions, when non-zero, keeps this many revisions
	// instead of a time window.
	AutoCompactionRevisions int64

	// ReusePort sets SO_REUSEPORT on the member's listeners, so ports held by
	// a PortReservation (see ReservePort) can be bound while still held.
	ReusePort bool

	// LogOutput receives etcd's JSON log; nil discards it.
	LogOutput io.Writer
}
