package network

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
)

// cniVersion is the spec version berth speaks to its plugins; the CNI
// plugins of node images (and Debian's 1.1.1) support it.
const cniVersion = "1.0.0"

// loopbackNetwork is the name of the network list that brings up a pod's lo.
const loopbackNetwork = "berth-lo"

// podNetworkConfList renders the CNI network list of the pod network: the
// bridge plugin on c.Bridge with host-local IPAM over the node's pod CIDR.
//
// ipMasq is off: the bridge plugin would need the iptables binary, which
// node images do not carry. The masquerade of pod traffic leaving the
// cluster CIDR lives in berth's own nftables table instead (see Overlay).
// hairpinMode lets a pod reach itself through a service when the kernel
// passes bridged traffic through netfilter.
func podNetworkConfList(c Config) ([]byte, error) {
	if !c.PodCIDR.IsValid() || !c.PodCIDR.Addr().Is4() {
		return nil, fmt.Errorf("pod cidr %s: want an IPv4 prefix", c.PodCIDR)
	}
	if c.PodCIDR.Bits() > 30 {
		return nil, fmt.Errorf("pod cidr %s: too small for a gateway and pods", c.PodCIDR)
	}
	if !c.ClusterCIDR.Contains(c.PodCIDR.Addr()) || c.ClusterCIDR.Bits() > c.PodCIDR.Bits() {
		return nil, fmt.Errorf("pod cidr %s is not inside cluster cidr %s", c.PodCIDR, c.ClusterCIDR)
	}
	cidr := c.PodCIDR.Masked()
	doc := map[string]any{
		"cniVersion": cniVersion,
		"name":       NetworkName,
		"plugins": []any{
			map[string]any{
				"type":             "bridge",
				"bridge":           c.Bridge,
				"isGateway":        true,
				"isDefaultGateway": true,
				"ipMasq":           false,
				"hairpinMode":      true,
				"mtu":              c.PodMTU(),
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": filepath.Join(c.StateDir, "ipam"),
					"ranges": [][]map[string]string{{{
						"subnet":     cidr.String(),
						"rangeStart": Gateway(cidr).Next().String(),
						"rangeEnd":   lastHost(cidr).String(),
						"gateway":    Gateway(cidr).String(),
					}}},
				},
			},
		},
	}
	return json.Marshal(doc)
}

// loopbackConfList renders the network list that brings a pod's lo up.
func loopbackConfList() []byte {
	return []byte(`{"cniVersion":"` + cniVersion + `","name":"` + loopbackNetwork +
		`","plugins":[{"type":"loopback"}]}`)
}

// lastHost is the last address of p before its broadcast address.
func lastHost(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n |= (1 << (32 - p.Bits())) - 1
	n--
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}
