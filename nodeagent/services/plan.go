package services

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/berth-io/berth/control/api"
)

// Endpoint is one ready pod address and port behind a service port.
type Endpoint struct {
	// IP is the pod's address.
	IP netip.Addr
	// Port is the pod's port.
	Port uint16
}

// PortRule is what one service port becomes in the kernel: DNAT from the
// cluster IP (and the node port, if any) to its ready endpoints, or a reject
// when there are none.
type PortRule struct {
	// Service is "<namespace>/<name>", PortName the service port's name.
	Service, PortName string
	// Protocol is the IP protocol number (6 for TCP, 17 for UDP).
	Protocol uint8
	// ClusterIP and Port are the virtual address and port.
	ClusterIP netip.Addr
	Port      uint16
	// NodePort is the port on the node's addresses, 0 for none.
	NodePort uint16
	// Endpoints are the ready endpoints, sorted; empty means reject.
	Endpoints []Endpoint
}

// Plan is the whole desired rule set of a node, built from the service and
// endpoints lists by BuildPlan; Rules.Sync renders it into the kernel.
type Plan struct {
	// Ports lists every service port with a cluster IP, sorted by service
	// and then in the service's port order.
	Ports []PortRule
	// NodeAddrs are the node's addresses node ports answer on, sorted.
	NodeAddrs []netip.Addr
	// Revision is the highest resourceVersion among the endpoints given:
	// the endpoints revision the rules reflect.
	Revision int64
}

// BuildPlan works out the rules for services and their endpoints. Services
// without a cluster IP (or with an unparsable one) get no rules; node ports
// only for services of type NodePort. A service port's endpoints are the
// ready addresses of the Endpoints subsets that carry a port of the same
// name and protocol.
func BuildPlan(services []api.Service, endpoints []api.Endpoints, nodeAddrs []netip.Addr) Plan {
	var p Plan
	eps := make(map[string]*api.Endpoints, len(endpoints))
	for i := range endpoints {
		e := &endpoints[i]
		eps[e.Metadata.Namespace+"/"+e.Metadata.Name] = e
		p.Revision = max(p.Revision, e.Metadata.ResourceVersion)
	}
	svcs := slices.Clone(services)
	slices.SortFunc(svcs, func(a, b api.Service) int {
		return cmp.Or(cmp.Compare(a.Metadata.Namespace, b.Metadata.Namespace), cmp.Compare(a.Metadata.Name, b.Metadata.Name))
	})
	for _, s := range svcs {
		cip, err := netip.ParseAddr(s.Spec.ClusterIP)
		if err != nil || !cip.Unmap().Is4() {
			continue
		}
		key := s.Metadata.Namespace + "/" + s.Metadata.Name
		for _, sp := range s.Spec.Ports {
			proto, ok := protoNumber(sp.Protocol)
			if !ok || sp.Port <= 0 || sp.Port > 65535 {
				continue
			}
			r := PortRule{Service: key, PortName: sp.Name, Protocol: proto, ClusterIP: cip.Unmap(), Port: uint16(sp.Port)}
			if s.Spec.Type == api.ServiceNodePort && sp.NodePort > 0 && sp.NodePort <= 65535 {
				r.NodePort = uint16(sp.NodePort)
			}
			if e := eps[key]; e != nil {
				r.Endpoints = readyEndpoints(e, sp.Name, proto)
			}
			p.Ports = append(p.Ports, r)
		}
	}
	for _, a := range nodeAddrs {
		if a = a.Unmap(); a.Is4() && !slices.Contains(p.NodeAddrs, a) {
			p.NodeAddrs = append(p.NodeAddrs, a)
		}
	}
	slices.SortFunc(p.NodeAddrs, netip.Addr.Compare)
	return p
}

// readyEndpoints lists the ready addresses of e carrying the port named
// portName with protocol proto, sorted and without duplicates.
func readyEndpoints(e *api.Endpoints, portName string, proto uint8) []Endpoint {
	var out []Endpoint
	for _, sub := range e.Subsets {
		for _, ep := range sub.Ports {
			epProto, ok := protoNumber(ep.Protocol)
			if !ok || ep.Name != portName || epProto != proto || ep.Port <= 0 || ep.Port > 65535 {
				continue
			}
			for _, a := range sub.Addresses {
				ip, err := netip.ParseAddr(a.IP)
				if err != nil || !ip.Unmap().Is4() {
					continue
				}
				out = append(out, Endpoint{IP: ip.Unmap(), Port: uint16(ep.Port)})
			}
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		return cmp.Or(a.IP.Compare(b.IP), cmp.Compare(a.Port, b.Port))
	})
	return slices.Compact(out)
}

// protoNumber maps an API protocol (empty means TCP) to its IP protocol
// number.
func protoNumber(p api.Protocol) (uint8, bool) {
	switch p {
	case "", "TCP":
		return 6, true
	case "UDP":
		return 17, true
	}
	return 0, false
}

// protoName is the lower-case name of an IP protocol number, for comments.
func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	}
	return strconv.Itoa(int(p))
}

// chainName gives a service port's chain a stable, short, unique name.
func (r PortRule) chainName() string {
	return "svc-" + shortHash(r.Service, r.PortName, protoName(r.Protocol))
}

// endpointChainName names the chain that DNATs a service port to one
// endpoint.
func (r PortRule) endpointChainName(e Endpoint) string {
	return "ep-" + shortHash(r.Service, r.PortName, protoName(r.Protocol), e.IP.String(), strconv.Itoa(int(e.Port)))
}

// comment is the human-readable label of a service port's rules.
func (r PortRule) comment() string {
	name := r.PortName
	if name == "" {
		name = strconv.Itoa(int(r.Port))
	}
	return fmt.Sprintf("%s:%s/%s", r.Service, name, protoName(r.Protocol))
}

// shortHash is 12 hex digits of the SHA-256 of parts joined by NULs.
func shortHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
