package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// Duration is a time.Duration written in JSON as a Go duration string
// ("10s", "5m"), so /etc/berth/agent.json stays readable.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration: want a string such as \"10s\": %w", err)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) or(def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}

// Config is a node agent's configuration: what /etc/berth/agent.json holds
// on a host, written by the provisioning engine. Only NodeName, InternalIP,
// ControlPlane and CACertFile are required; the rest have defaults that
// match the node image layout in DESIGN.md.
type Config struct {
	// NodeName is the name the node registers under and the identity of
	// its certificate. Required.
	NodeName string `json:"nodeName"`
	// InternalIP is the node's address on its vendor network: reported as
	// the Node's InternalIP, the agent API listens on it, and other nodes
	// send overlay traffic to it. Required.
	InternalIP string `json:"internalIP"`
	// ControlPlane lists the control plane's HTTPS base URLs known at
	// install time. After joining, the agent follows the list the control
	// plane publishes and keeps it in CredentialsDir/endpoints.json, so a
	// restart after control-plane hosts changed still finds them; these
	// stay a fallback for when no published endpoint answers.
	ControlPlane []string `json:"controlPlane"`
	// CACertFile is the cluster CA certificate (PEM). Required.
	CACertFile string `json:"caCertFile"`
	// JoinTokenFile holds a join token for the first start. The agent
	// reads it, trades it for certificates and deletes it; it is never
	// logged. Unneeded once CredentialsDir holds certificates.
	JoinTokenFile string `json:"joinTokenFile,omitempty"`
	// CredentialsDir keeps the node's keys and certificates (0600) and the
	// control-plane endpoint list. Default /etc/berth/agent.
	CredentialsDir string `json:"credentialsDir,omitempty"`
	// StateDir keeps per-pod files (resolv.conf) and container logs
	// (StateDir/logs). Default /var/lib/berth/agent.
	StateDir string `json:"stateDir,omitempty"`
	// ListenAddress is the agent API's host:port (logs, health, metrics).
	// Default InternalIP:10250.
	ListenAddress string `json:"listenAddress,omitempty"`
	// Labels are added to the Node's labels (berth.io/hostname is always
	// set to NodeName).
	Labels map[string]string `json:"labels,omitempty"`
	// Reserved is what the host keeps for itself and berth: subtracted
	// from capacity to give allocatable. Quantities such as "100m", "256Mi".
	Reserved ReservedConfig `json:"reserved,omitempty"`
	// NodeImageDigest is the digest of the node image the host runs;
	// default read from ManifestFile's digest, or the name of the
	// directory /opt/berth/current points at.
	NodeImageDigest string `json:"nodeImageDigest,omitempty"`
	// ManifestFile is the running node image's manifest. Default
	// /opt/berth/current/manifest.json.
	ManifestFile string `json:"manifestFile,omitempty"`
	// PreloadDir holds OCI image archives (*.tar) from the node image,
	// imported into the runtime at start. Default /opt/berth/current/images.
	PreloadDir string `json:"preloadDir,omitempty"`
	// Registries says how to reach each registry host ("host:port"):
	// plain HTTP and credentials.
	Registries map[string]RegistryConfig `json:"registries,omitempty"`
	// Containerd says where containerd is and how to use it.
	Containerd ContainerdConfig `json:"containerd,omitempty"`
	// Network configures the pod network and overlay.
	Network NetworkConfig `json:"network,omitempty"`
	// HeartbeatInterval is how often the Node's status is reported.
	// Default 10s.
	HeartbeatInterval Duration `json:"heartbeatInterval,omitempty"`
	// EndpointSyncInterval is how often the control plane's published
	// endpoint list is fetched; it is also fetched soon after any
	// control-plane endpoint fails. Default 5s: while a cluster moves to
	// other hosts, the agent must learn each new control-plane host before
	// the last one it knows leaves, and a host joins in about 15 s.
	EndpointSyncInterval Duration `json:"endpointSyncInterval,omitempty"`
	// HealthSyncWindow is how long the agent may go without reaching the
	// control plane before /healthz fails. Default 60s.
	HealthSyncWindow Duration `json:"healthSyncWindow,omitempty"`
	// RestartBackoff is the first wait before restarting a crashed
	// container; it doubles with each crash in a row. Default 10s.
	RestartBackoff Duration `json:"restartBackoff,omitempty"`
	// MaxRestartBackoff caps the restart wait. Default 5m.
	MaxRestartBackoff Duration `json:"maxRestartBackoff,omitempty"`
	// BackoffReset is how long a container must run before its crash
	// count starts again from zero. Default 10m.
	BackoffReset Duration `json:"backoffReset,omitempty"`
	// StopGateTimeout bounds the wait, before a stopping pod gets SIGTERM,
	// for every Ready node to have removed it from its service rules, so
	// a dead node cannot stall deletion. Default 10s.
	StopGateTimeout Duration `json:"stopGateTimeout,omitempty"`
	// StopGateNodeGrace is how long another node may go without a new
	// heartbeat reaching this agent before the stop gate stops waiting for
	// it: a node that lost power cannot route to the pod, and waiting for
	// it would cost every pod stop the whole StopGateTimeout until the
	// control plane marks it NotReady. Default 3 × HeartbeatInterval.
	StopGateNodeGrace Duration `json:"stopGateNodeGrace,omitempty"`
	// CertificateCheckInterval is how often certificates are checked for
	// renewal. Default 1h.
	CertificateCheckInterval Duration `json:"certificateCheckInterval,omitempty"`
	// APITimeout bounds each control-plane request. Default 15s.
	APITimeout Duration `json:"apiTimeout,omitempty"`
}

// ReservedConfig is what is kept back from the host's capacity.
type ReservedConfig struct {
	// CPU kept back, e.g. "100m". Default none.
	CPU string `json:"cpu,omitempty"`
	// Memory kept back, e.g. "256Mi". Default none.
	Memory string `json:"memory,omitempty"`
}

// RegistryConfig is how to reach one registry.
type RegistryConfig struct {
	// PlainHTTP speaks HTTP instead of HTTPS to this registry (test
	// registries, registries on a private network).
	PlainHTTP bool `json:"plainHTTP,omitempty"`
	// Username for the registry.
	Username string `json:"username,omitempty"`
	// PasswordFile holds the password or token (so the config file itself
	// holds no secret); it is read at start and never logged.
	PasswordFile string `json:"passwordFile,omitempty"`
}

// ContainerdConfig says where containerd is and how to use it.
type ContainerdConfig struct {
	// Address is containerd's socket. Default /run/containerd/containerd.sock.
	Address string `json:"address,omitempty"`
	// Namespace is the containerd namespace of berth's containers.
	// Default "berth".
	Namespace string `json:"namespace,omitempty"`
	// CgroupParent is the cgroup every container sits under; nodes that
	// share a kernel (test hosts) need distinct ones. Default "/berth".
	CgroupParent string `json:"cgroupParent,omitempty"`
	// Snapshotter unpacks images. Default overlayfs.
	Snapshotter string `json:"snapshotter,omitempty"`
}

// NetworkConfig configures the pod network; zero fields take the
// nodeagent/network defaults.
type NetworkConfig struct {
	// ClusterCIDR is every pod address of the cluster. Default 10.244.0.0/16.
	ClusterCIDR string `json:"clusterCIDR,omitempty"`
	// ServiceCIDR is where cluster IPs come from. Default 10.96.0.0/16.
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
	// PluginDir holds the CNI plugins. Default /opt/berth/current/cni/bin.
	PluginDir string `json:"pluginDir,omitempty"`
	// UnderlayMTU is the MTU of the node's own network. Default 1500.
	UnderlayMTU int `json:"underlayMTU,omitempty"`
	// VXLANPort is the overlay's UDP port. Default 8472.
	VXLANPort int `json:"vxlanPort,omitempty"`
	// DNSDomain is the cluster domain: services answer as
	// <service>.<namespace>.svc.<domain>. Default "berth".
	DNSDomain string `json:"dnsDomain,omitempty"`
}

// Defaults of Config's zero fields.
const (
	DefaultCredentialsDir  = "/etc/berth/agent"
	DefaultStateDir        = "/var/lib/berth/agent"
	DefaultManifestFile    = "/opt/berth/current/manifest.json"
	DefaultPreloadDir      = "/opt/berth/current/images"
	DefaultAgentPort       = "10250"
	DefaultHeartbeat       = 10 * time.Second
	DefaultEndpointSync    = 5 * time.Second
	DefaultHealthWindow    = 60 * time.Second
	DefaultRestartBackoff  = 10 * time.Second
	DefaultMaxBackoff      = 5 * time.Minute
	DefaultBackoffReset    = 10 * time.Minute
	DefaultStopGateTimeout = 10 * time.Second
	DefaultCertCheck       = time.Hour
	DefaultAPITimeout      = 15 * time.Second
	DefaultDNSDomain       = "berth"
)

// LoadConfig reads a Config from a JSON file and checks it.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read agent config: %w", err)
	}
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("parse agent config %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("agent config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate reports the first required field that is missing, in words a
// person can act on.
func (c Config) Validate() error {
	switch {
	case c.NodeName == "":
		return fmt.Errorf("nodeName is required")
	case c.InternalIP == "":
		return fmt.Errorf("internalIP is required: the node's address on its network")
	case len(c.ControlPlane) == 0:
		return fmt.Errorf("controlPlane is required: at least one https:// control-plane URL")
	case c.CACertFile == "":
		return fmt.Errorf("caCertFile is required: the cluster CA certificate")
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.CredentialsDir, DefaultCredentialsDir)
	def(&c.StateDir, DefaultStateDir)
	def(&c.ManifestFile, DefaultManifestFile)
	def(&c.PreloadDir, DefaultPreloadDir)
	def(&c.Network.DNSDomain, DefaultDNSDomain)
	if c.ListenAddress == "" && c.InternalIP != "" {
		c.ListenAddress = c.InternalIP + ":" + DefaultAgentPort
	}
	return c
}
