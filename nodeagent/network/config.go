package network

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/berth-io/berth/control/api"
)

// Defaults a zero Config field takes. They match the control plane's
// defaults and the node image layout in DESIGN.md.
const (
	// DefaultBridge is the Linux bridge every pod's veth attaches to.
	DefaultBridge = "berth0"
	// DefaultVXLANDevice is the overlay device carrying pod traffic to
	// other nodes.
	DefaultVXLANDevice = "berth.vx"
	// DefaultVNI is the overlay's VXLAN network identifier.
	DefaultVNI = 1
	// DefaultVXLANPort is the UDP port of the overlay (the Linux and
	// flannel default, not IANA's 4789, so it never collides with a host
	// that already runs a standard VXLAN).
	DefaultVXLANPort = 8472
	// DefaultUnderlayMTU is the MTU assumed for the node's own network.
	DefaultUnderlayMTU = 1500
	// VXLANOverhead is what VXLAN encapsulation adds to every packet over
	// IPv4 (outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14).
	VXLANOverhead = 50
	// DefaultPluginDir holds the CNI plugins of the running node image.
	DefaultPluginDir = "/opt/berth/current/cni/bin"
	// DefaultNetNSDir holds one bind-mounted network namespace per pod.
	DefaultNetNSDir = "/run/berth/netns"
	// DefaultStateDir holds host-local's address leases and libcni's
	// cache of results, which survive an agent restart.
	DefaultStateDir = "/var/lib/berth/cni"
	// DefaultTable is the nftables table (family ip) of the overlay
	// filter and the pod egress masquerade.
	DefaultTable = "berth-net"
	// NetworkName is the CNI network name of the pod network.
	NetworkName = "berth"
	// PodInterface is the pod's interface name inside its namespace.
	PodInterface = "eth0"
)

// DefaultClusterCIDR is the cluster's pod address space.
var DefaultClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")

// DefaultServiceCIDR is the cluster's service (cluster IP) address space.
var DefaultServiceCIDR = netip.MustParsePrefix("10.96.0.0/16")

// Config is one node's pod network. Pods need PodCIDR; the overlay needs
// none of the per-node fields, because Sync is told the node's own data.
type Config struct {
	// PodCIDR is the node's slice of the cluster CIDR (spec.podCIDR); the
	// bridge takes its first address as the pods' gateway.
	PodCIDR netip.Prefix
	// ClusterCIDR is every pod address of the cluster; pod traffic to
	// anything outside it is masqueraded to the node's address.
	ClusterCIDR netip.Prefix
	// ServiceCIDR is every cluster IP. The bridge gets a route to it, so
	// the node's own processes can open connections to cluster IPs (the
	// service rules' output chain then translates them) even on a host
	// without a default route.
	ServiceCIDR netip.Prefix
	// UnderlayMTU is the MTU of the node's own network; pods and the VXLAN
	// device get UnderlayMTU-VXLANOverhead so encapsulated packets fit.
	UnderlayMTU int
	// PluginDir holds the bridge, host-local and loopback plugins.
	PluginDir string
	// NetNSDir holds the pods' network namespaces, one file per pod UID.
	NetNSDir string
	// StateDir holds the IPAM leases (StateDir/ipam) and libcni's cache
	// (StateDir/cache).
	StateDir string
	// Bridge names the pods' bridge.
	Bridge string
	// VXLANDevice names the overlay device.
	VXLANDevice string
	// VNI is the overlay's VXLAN network identifier.
	VNI int
	// VXLANPort is the overlay's UDP port.
	VXLANPort int
	// Table names berth's nftables table (family ip) for the network.
	Table string
	// NodeNetNS, when set, is the path of the network namespace holding the
	// node's own network (bridge, overlay, tables). Empty means the
	// agent's own namespace, as in production; tests and the testbed set
	// it to run several nodes' networks from one process.
	NodeNetNS string
	// Logger receives debug records of changes made; nil discards them.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if !c.ClusterCIDR.IsValid() {
		c.ClusterCIDR = DefaultClusterCIDR
	}
	if !c.ServiceCIDR.IsValid() {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	if c.UnderlayMTU == 0 {
		c.UnderlayMTU = DefaultUnderlayMTU
	}
	if c.PluginDir == "" {
		c.PluginDir = DefaultPluginDir
	}
	if c.NetNSDir == "" {
		c.NetNSDir = DefaultNetNSDir
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if c.VXLANDevice == "" {
		c.VXLANDevice = DefaultVXLANDevice
	}
	if c.VNI == 0 {
		c.VNI = DefaultVNI
	}
	if c.VXLANPort == 0 {
		c.VXLANPort = DefaultVXLANPort
	}
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate checks the fields both pods and overlay rely on.
func (c Config) validate() error {
	if !c.ClusterCIDR.Addr().Is4() {
		return fmt.Errorf("cluster cidr %s: only IPv4 is supported", c.ClusterCIDR)
	}
	if !c.ServiceCIDR.Addr().Is4() {
		return fmt.Errorf("service cidr %s: only IPv4 is supported", c.ServiceCIDR)
	}
	if c.ServiceCIDR.Overlaps(c.ClusterCIDR) {
		return fmt.Errorf("service cidr %s overlaps cluster cidr %s", c.ServiceCIDR, c.ClusterCIDR)
	}
	if c.UnderlayMTU-VXLANOverhead < 576 {
		return fmt.Errorf("underlay mtu %d leaves less than 576 bytes for pods", c.UnderlayMTU)
	}
	if c.VNI < 1 || c.VNI > 1<<24-1 {
		return fmt.Errorf("vni %d out of range 1-16777215", c.VNI)
	}
	if c.VXLANPort < 1 || c.VXLANPort > 65535 {
		return fmt.Errorf("vxlan port %d out of range", c.VXLANPort)
	}
	for _, n := range []string{c.Bridge, c.VXLANDevice} {
		if len(n) > 15 {
			return fmt.Errorf("interface name %q longer than 15 bytes", n)
		}
	}
	return nil
}

// PodMTU is the MTU of pod interfaces and the VXLAN device: the underlay's
// less the VXLAN overhead, so a full-size pod packet still fits once
// encapsulated for another node.
func (c Config) PodMTU() int {
	return c.withDefaults().UnderlayMTU - VXLANOverhead
}

// Gateway returns the pods' gateway in podCIDR: its first host address,
// which the bridge carries (and the node's DNS server listens on).
func Gateway(podCIDR netip.Prefix) netip.Addr {
	return podCIDR.Masked().Addr().Next()
}

// NodeInfo is what the overlay needs to know about a node.
type NodeInfo struct {
	// Name is the node's name, used in errors.
	Name string
	// InternalIP is the node's underlay address: VXLAN packets for the
	// node's pods go there, and only these addresses may send them.
	InternalIP netip.Addr
	// PodCIDR is the node's pod address range.
	PodCIDR netip.Prefix
}

// ErrNodeNotReadyForOverlay is returned for a node that has no InternalIP
// or pod CIDR yet; the caller leaves it out until it has both.
var ErrNodeNotReadyForOverlay = errors.New("node has no internal ip or pod cidr yet")

// NodeInfoFromAPI extracts a node's overlay data from its API object. The
// error matches ErrNodeNotReadyForOverlay while the node lacks an InternalIP
// or pod CIDR.
func NodeInfoFromAPI(n *api.Node) (NodeInfo, error) {
	ip := api.NodeInternalAddress(n)
	if ip == "" || n.Spec.PodCIDR == "" {
		return NodeInfo{}, fmt.Errorf("node %q: %w", n.Metadata.Name, ErrNodeNotReadyForOverlay)
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return NodeInfo{}, fmt.Errorf("node %q internal ip: %w", n.Metadata.Name, err)
	}
	cidr, err := netip.ParsePrefix(n.Spec.PodCIDR)
	if err != nil {
		return NodeInfo{}, fmt.Errorf("node %q pod cidr: %w", n.Metadata.Name, err)
	}
	return NodeInfo{Name: n.Metadata.Name, InternalIP: addr.Unmap(), PodCIDR: cidr.Masked()}, nil
}

// VTEPAddr is the overlay address of the node owning podCIDR: the network
// address of its pod CIDR (never given to a pod), held as a /32 on that
// node's VXLAN device. Other nodes route the pod CIDR via it.
func VTEPAddr(podCIDR netip.Prefix) netip.Addr {
	return podCIDR.Masked().Addr()
}

// VTEPMAC is the VXLAN device MAC of the node owning podCIDR, derived from
// the pod CIDR so every node computes every peer's MAC without asking:
// 0e:62 (locally administered, unicast) followed by the four bytes of the
// pod CIDR's network address.
func VTEPMAC(podCIDR netip.Prefix) net.HardwareAddr {
	a := podCIDR.Masked().Addr().As4()
	return net.HardwareAddr{0x0e, 0x62, a[0], a[1], a[2], a[3]}
}
