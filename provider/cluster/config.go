package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
)

// Paths on a host (DESIGN.md, Host layout).
const (
	pathImages     = "/opt/berth/images"
	pathCurrent    = "/opt/berth/current"
	pathPrevious   = "/opt/berth/previous"
	pathNodeConfig = "/etc/berth/node.json"
	pathAgent      = "/etc/berth/agent.json"
	pathControl    = "/etc/berth/control.json"
	pathCACert     = "/etc/berth/pki/ca.crt"
	pathCAKey      = "/etc/berth/pki/ca.key"
	pathJoinToken  = "/etc/berth/join-token"
	pathConfigHash = "/etc/berth/config.sha256"
	pathJournal    = "/var/lib/berth/journal.json"
	// pathLogs keeps service logs with the host's other berth state, so
	// they are wiped with it and stay private to the host where /var/log
	// is shared (the testbed's hosts share the machine's /var/log).
	pathLogs  = "/var/lib/berth/log"
	hostBerth = pathCurrent + "/bin/berth"
)

// nodeConfig mirrors cmd/berth/internal/supervise.Config (node.json).
type nodeConfig struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	LogDir string `json:"logDir,omitempty"`
}

// agentConfig mirrors the fields of nodeagent/agent.Config the engine sets
// (agent.json); the agent refuses unknown fields, so names must match.
type agentConfig struct {
	NodeName        string                   `json:"nodeName"`
	InternalIP      string                   `json:"internalIP"`
	ControlPlane    []string                 `json:"controlPlane"`
	CACertFile      string                   `json:"caCertFile"`
	JoinTokenFile   string                   `json:"joinTokenFile,omitempty"`
	Labels          map[string]string        `json:"labels,omitempty"`
	NodeImageDigest string                   `json:"nodeImageDigest,omitempty"`
	Registries      map[string]agentRegistry `json:"registries,omitempty"`
	Containerd      agentContainerd          `json:"containerd"`
	Network         agentNetwork             `json:"network"`
}

type agentRegistry struct {
	PlainHTTP bool `json:"plainHTTP,omitempty"`
}

type agentContainerd struct {
	Address      string `json:"address"`
	CgroupParent string `json:"cgroupParent"`
}

type agentNetwork struct {
	ClusterCIDR string `json:"clusterCIDR,omitempty"`
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
}

// controlConfig mirrors control/plane.Config (control.json).
type controlConfig struct {
	Name          string      `json:"name"`
	DataDir       string      `json:"dataDir"`
	ListenAddress string      `json:"listenAddress"`
	AdvertiseURL  string      `json:"advertiseURL"`
	Etcd          controlEtcd `json:"etcd"`
	PKI           controlPKI  `json:"pki"`
	ServiceCIDR   string      `json:"serviceCIDR,omitempty"`
	ClusterCIDR   string      `json:"clusterCIDR,omitempty"`
}

type controlEtcd struct {
	PeerURLs            []string `json:"peerURLs"`
	InitialCluster      string   `json:"initialCluster,omitempty"`
	InitialClusterState string   `json:"initialClusterState,omitempty"`
	HeartbeatMs         int      `json:"heartbeatMs,omitempty"`
	ElectionMs          int      `json:"electionMs,omitempty"`
}

type controlPKI struct {
	CACertFile string `json:"caCertFile"`
	CAKeyFile  string `json:"caKeyFile"`
}

// etcdInit is how a control-plane member first starts: "new" for the
// bootstrap host only, "existing" (with the cluster AddMember returned) for
// every host that joins. It is fixed once the member has data, so it is
// not part of the configuration hash.
type etcdInit struct {
	Cluster string
	State   string
}

// hostFiles is everything written to a host's /etc/berth.
type hostFiles struct {
	node    nodeConfig
	agent   agentConfig
	control *controlConfig
	caCert  string
	caKey   string
}

func apiURL(ip string, port int) string {
	return "https://" + net.JoinHostPort(ip, strconv.Itoa(port))
}

func peerURL(ip string, port int) string {
	return "https://" + net.JoinHostPort(ip, strconv.Itoa(port))
}

// renderHost builds a host's files. endpoints are the control plane's URLs
// at the time of writing; digest the image the host is to run.
func renderHost(h desiredHost, s Settings, caCert, caKey string, endpoints []string, digest string, init etcdInit) hostFiles {
	f := hostFiles{
		node: nodeConfig{Name: h.Name, Role: h.Role, LogDir: pathLogs},
		agent: agentConfig{
			NodeName: h.Name, InternalIP: h.InternalIP, ControlPlane: endpoints,
			CACertFile: pathCACert, JoinTokenFile: pathJoinToken, Labels: h.Labels,
			NodeImageDigest: digest,
			Containerd:      agentContainerd{Address: "/run/berth/containerd/containerd.sock", CgroupParent: "/berth-" + h.Name},
			Network:         agentNetwork{ClusterCIDR: s.ClusterCIDR, ServiceCIDR: s.ServiceCIDR},
		},
		caCert: caCert,
	}
	if len(s.PlainHTTPRegistries) > 0 {
		f.agent.Registries = map[string]agentRegistry{}
		for _, r := range s.PlainHTTPRegistries {
			f.agent.Registries[r] = agentRegistry{PlainHTTP: true}
		}
	}
	if h.Role == RoleControlPlane {
		f.caKey = caKey
		f.control = &controlConfig{
			Name: h.Name, DataDir: "/var/lib/berth/control",
			ListenAddress: ":" + strconv.Itoa(s.APIPort),
			AdvertiseURL:  apiURL(h.InternalIP, s.APIPort),
			Etcd: controlEtcd{
				PeerURLs:       []string{peerURL(h.InternalIP, s.EtcdPeerPort)},
				InitialCluster: init.Cluster, InitialClusterState: init.State,
				HeartbeatMs: s.EtcdHeartbeatMs, ElectionMs: s.EtcdElectionMs,
			},
			PKI:         controlPKI{CACertFile: pathCACert, CAKeyFile: pathCAKey},
			ServiceCIDR: s.ServiceCIDR, ClusterCIDR: s.ServiceCIDR,
		}
		f.control.ClusterCIDR = s.ClusterCIDR
	}
	return f
}

// hash identifies the configuration a host must run with. It leaves out
// what changes without the host needing a restart: the control-plane
// endpoint list (agents follow the published one), the image digest
// (compared on its own) and etcd's first-start settings.
func (f hostFiles) hash() string {
	c := f
	c.agent.ControlPlane = nil
	c.agent.NodeImageDigest = ""
	if f.control != nil {
		cc := *f.control
		cc.Etcd.InitialCluster, cc.Etcd.InitialClusterState = "", ""
		c.control = &cc
	}
	h := sha256.New()
	for _, v := range []any{c.node, c.agent, c.control, c.caCert, c.caKey != ""} {
		b, _ := json.Marshal(v)
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// files returns path → (content, mode) for every file to write.
func (f hostFiles) files() (map[string][]byte, error) {
	out := map[string][]byte{}
	add := func(path string, v any) error {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encode %s: %w", path, err)
		}
		out[path] = append(b, '\n')
		return nil
	}
	if err := add(pathNodeConfig, f.node); err != nil {
		return nil, err
	}
	if err := add(pathAgent, f.agent); err != nil {
		return nil, err
	}
	if f.control != nil {
		if err := add(pathControl, f.control); err != nil {
			return nil, err
		}
		out[pathCAKey] = []byte(f.caKey)
	}
	out[pathCACert] = []byte(f.caCert)
	out[pathConfigHash] = []byte(f.hash() + "\n")
	return out, nil
}
