package services

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// staleUDPFlows matches conntrack entries of UDP service traffic whose
// endpoint is no longer among the port's ready endpoints. UDP has no
// connection end, so without this a client that keeps its source port
// would keep talking to a removed endpoint for as long as it sends. TCP
// entries are left alone: established TCP connections finish on their
// endpoint by design.
type staleUDPFlows struct {
	// backends maps a service address (cluster IP or node address, and
	// port) to the endpoints it may be translated to.
	backends map[netip.AddrPort]map[netip.AddrPort]bool
}

// newStaleUDPFlows collects the UDP service addresses of a plan.
func newStaleUDPFlows(p Plan) staleUDPFlows {
	f := staleUDPFlows{backends: map[netip.AddrPort]map[netip.AddrPort]bool{}}
	for _, r := range p.Ports {
		if r.Protocol != unix.IPPROTO_UDP {
			continue
		}
		ok := map[netip.AddrPort]bool{}
		for _, e := range r.Endpoints {
			ok[netip.AddrPortFrom(e.IP, e.Port)] = true
		}
		f.backends[netip.AddrPortFrom(r.ClusterIP, r.Port)] = ok
		if r.NodePort != 0 {
			for _, a := range p.NodeAddrs {
				f.backends[netip.AddrPortFrom(a, r.NodePort)] = ok
			}
		}
	}
	return f
}

// MatchConntrackFlow reports whether flow is UDP to a service address and
// answered by something other than one of its current endpoints.
func (f staleUDPFlows) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if flow.Forward.Protocol != unix.IPPROTO_UDP {
		return false
	}
	ok, isService := f.backends[addrPort(flow.Forward.DstIP, flow.Forward.DstPort)]
	if !isService {
		return false
	}
	return !ok[addrPort(flow.Reverse.SrcIP, flow.Reverse.SrcPort)]
}

// addrPort converts a conntrack tuple end.
func addrPort(ip net.IP, port uint16) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), port)
}

// flushStaleUDPFlows deletes the stale UDP service flows of the node's
// conntrack table.
func (r *Rules) flushStaleUDPFlows(p Plan) error {
	f := newStaleUDPFlows(p)
	if len(f.backends) == 0 {
		return nil
	}
	var ns netns.NsHandle
	var err error
	if r.cfg.NodeNetNS == "" {
		ns, err = netns.Get()
	} else {
		ns, err = netns.GetFromPath(r.cfg.NodeNetNS)
	}
	if err != nil {
		return fmt.Errorf("open node netns: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	n, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, f)
	if err != nil {
		return fmt.Errorf("delete stale udp conntrack entries: %w", err)
	}
	if n > 0 {
		r.cfg.Logger.Debug("deleted stale udp conntrack entries", "count", n)
	}
	return nil
}
