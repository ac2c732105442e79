package cluster

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"time"

	"github.com/berth-io/berth/provider/ssh"
)

// Roles a host has in a cluster.
const (
	RoleControlPlane = "control-plane"
	RoleWorker       = "worker"
)

// Spec is the desired cluster: who its hosts are, which node image they run
// and with which settings.
type Spec struct {
	// CA is the cluster CA, PEM. Empty: Apply creates one on bootstrap
	// (or keeps the one in PriorState) and returns it in State.
	CACertPEM string
	CAKeyPEM  string
	// ControlPlane hosts, in order: the first bootstraps a new cluster.
	// 1, 3 or 5 of them give etcd a clear majority.
	ControlPlane []Host
	// Workers are pools of hosts that run only the agent.
	Workers []WorkerPool
	// Image is the node image every host runs.
	Image Image
	// Settings are the cluster-wide settings written into each host's
	// configuration.
	Settings Settings
	// Rollout tunes the replacement of control-plane hosts (which always
	// go one at a time) and the default for worker pools.
	Rollout RolloutPolicy
	// SnapshotPath is the local file an etcd snapshot is written to before
	// control-plane hosts are upgraded or moved; empty skips the copy (the
	// upgrade still checks quorum).
	SnapshotPath string
}

// Host is one machine in the Spec, keyed by a stable Name which is also
// its node name.
type Host struct {
	// Name is the node name: lower-case letters, digits and '-'.
	Name string
	// SSH says how to reach the host; SSH.Name defaults to Name.
	SSH ssh.HostConfig
	// InternalIP is the address other hosts and the engine reach the
	// host's API and agent at; default SSH.Address.
	InternalIP string
	// Labels are added to the host's Node.
	Labels map[string]string
}

// WorkerPool is a group of workers sharing labels and a rollout policy.
type WorkerPool struct {
	Name   string
	Hosts  []Host
	Labels map[string]string
	// Rollout overrides Spec.Rollout for this pool when non-zero.
	Rollout RolloutPolicy
}

// Image is a node image bundle on the machine running the engine.
type Image struct {
	// Path of the bundle (bin/node-image.tar.gz).
	Path string
	// Digest, when set, must equal the bundle's digest ("sha256:<hex>").
	Digest string
}

// Settings are the cluster's tunables.
type Settings struct {
	// APIPort is the control plane's HTTPS port; default 6443.
	APIPort int
	// EtcdPeerPort is etcd's peer port; default 2380.
	EtcdPeerPort int
	// EtcdHeartbeatMs and EtcdElectionMs are raft timings; defaults 100
	// and 1000. Raise them where many members share slow CPUs.
	EtcdHeartbeatMs int
	EtcdElectionMs  int
	// ClusterCIDR and ServiceCIDR; defaults 10.244.0.0/16, 10.96.0.0/16.
	ClusterCIDR string
	ServiceCIDR string
	// PlainHTTPRegistries are registries ("host:port") reached over
	// plain HTTP.
	PlainHTTPRegistries []string
}

// RolloutPolicy bounds a rolling replacement of hosts.
type RolloutPolicy struct {
	// MaxUnavailable is how many hosts of a pool are replaced at once;
	// default 1. Control-plane hosts always go one at a time.
	MaxUnavailable int
	// DrainTimeout bounds draining one host; default 5 minutes.
	DrainTimeout time.Duration
	// HealthTimeout bounds the wait for a host to become healthy after an
	// install; default 5 minutes.
	HealthTimeout time.Duration
}

func (p RolloutPolicy) or(d RolloutPolicy) RolloutPolicy {
	if p.MaxUnavailable <= 0 {
		p.MaxUnavailable = d.MaxUnavailable
	}
	if p.DrainTimeout <= 0 {
		p.DrainTimeout = d.DrainTimeout
	}
	if p.HealthTimeout <= 0 {
		p.HealthTimeout = d.HealthTimeout
	}
	return p
}

var defaultRollout = RolloutPolicy{MaxUnavailable: 1, DrainTimeout: 5 * time.Minute, HealthTimeout: 5 * time.Minute}

func (s Settings) withDefaults() Settings {
	if s.APIPort == 0 {
		s.APIPort = 6443
	}
	if s.EtcdPeerPort == 0 {
		s.EtcdPeerPort = 2380
	}
	if s.EtcdHeartbeatMs == 0 {
		s.EtcdHeartbeatMs = 100
	}
	if s.EtcdElectionMs == 0 {
		s.EtcdElectionMs = 1000
	}
	if s.ClusterCIDR == "" {
		s.ClusterCIDR = "10.244.0.0/16"
	}
	if s.ServiceCIDR == "" {
		s.ServiceCIDR = "10.96.0.0/16"
	}
	sort.Strings(s.PlainHTTPRegistries)
	return s
}

// State is what the caller keeps between runs (sensitive: it holds the CA
// key and the admin credentials).
type State struct {
	// ClusterID is the ID the control plane reported at bootstrap.
	ClusterID string
	// Endpoints are the control plane's HTTPS URLs.
	Endpoints []string
	// CACertPEM and CAKeyPEM are the cluster CA.
	CACertPEM string
	CAKeyPEM  string
	// AdminCertPEM and AdminKeyPEM are an admin client identity.
	AdminCertPEM string
	AdminKeyPEM  string
	// Hosts records each host the engine installed, by name.
	Hosts map[string]HostState
}

// HostState is what the engine knows about one installed host.
type HostState struct {
	// SSH is the effective connection settings, host key pinned, so the
	// host can be reached after it has left the Spec.
	SSH ssh.HostConfig
	// Role is RoleControlPlane or RoleWorker; Pool names the worker pool.
	Role string
	Pool string
	// InternalIP as in Host.
	InternalIP string
	// Digest of the node image installed and healthy.
	Digest string
	// ConfigHash identifies the configuration written to the host.
	ConfigHash string
}

// Event is one step of progress: which host, what step, how long since
// the run began.
type Event struct {
	Host    string
	Step    string
	Elapsed time.Duration
}

// Options tune a run.
type Options struct {
	// Progress receives events; it must be quick.
	Progress func(Event)
	// HostKeys records and enforces host keys of hosts without a pinned
	// key (trust on first use). Keys recorded in PriorState are always
	// enforced. Nil refuses hosts without a pinned or recorded key.
	HostKeys ssh.HostKeyStore
	// Parallelism bounds hosts worked on at once where order does not
	// matter (uploads, preflight, new workers); default 4.
	Parallelism int
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ErrInvalidSpec marks a Spec that cannot be applied as given.
var ErrInvalidSpec = errors.New("invalid cluster spec")

// desiredHost is a host of the Spec with its role and effective settings.
type desiredHost struct {
	Host
	Role    string
	Pool    string
	Labels  map[string]string
	Rollout RolloutPolicy
}

// hosts flattens the Spec into its hosts in order (control plane first),
// with defaults applied, and validates it.
func (s Spec) hosts() ([]desiredHost, error) {
	var out []desiredHost
	seen := map[string]bool{}
	add := func(h Host, role, pool string, labels map[string]string, rp RolloutPolicy) error {
		if !nameRE.MatchString(h.Name) {
			return fmt.Errorf("%w: host name %q must be lower-case letters, digits and '-'", ErrInvalidSpec, h.Name)
		}
		if seen[h.Name] {
			return fmt.Errorf("%w: host %q appears twice", ErrInvalidSpec, h.Name)
		}
		seen[h.Name] = true
		if h.SSH.Address == "" {
			return fmt.Errorf("%w: host %q has no SSH address", ErrInvalidSpec, h.Name)
		}
		if h.SSH.Name == "" {
			h.SSH.Name = h.Name
		}
		if h.InternalIP == "" {
			h.InternalIP = h.SSH.Address
		}
		if _, err := netip.ParseAddr(h.InternalIP); err != nil {
			return fmt.Errorf("%w: host %q: internal IP %q is not an IP address", ErrInvalidSpec, h.Name, h.InternalIP)
		}
		merged := map[string]string{}
		for k, v := range labels {
			merged[k] = v
		}
		for k, v := range h.Labels {
			merged[k] = v
		}
		out = append(out, desiredHost{Host: h, Role: role, Pool: pool, Labels: merged, Rollout: rp})
		return nil
	}
	if len(s.ControlPlane) == 0 {
		return nil, fmt.Errorf("%w: at least one control-plane host is needed", ErrInvalidSpec)
	}
	base := s.Rollout.or(defaultRollout)
	for _, h := range s.ControlPlane {
		if err := add(h, RoleControlPlane, "", nil, RolloutPolicy{MaxUnavailable: 1, DrainTimeout: base.DrainTimeout, HealthTimeout: base.HealthTimeout}); err != nil {
			return nil, err
		}
	}
	for _, p := range s.Workers {
		if !nameRE.MatchString(p.Name) {
			return nil, fmt.Errorf("%w: worker pool name %q must be lower-case letters, digits and '-'", ErrInvalidSpec, p.Name)
		}
		for _, h := range p.Hosts {
			if err := add(h, RoleWorker, p.Name, p.Labels, p.Rollout.or(base)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
