package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/berth-io/berth/control/api"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Overlay programs the VXLAN overlay that carries pod traffic between nodes,
// and berth's network table (overlay source filter, pod egress masquerade).
// Sync is idempotent and converges from whatever an earlier agent left.
type Overlay struct {
	cfg Config

	mu   sync.Mutex
	last *tableSpec // what this instance last wrote to the kernel
}

// NewOverlay checks cfg; it does no I/O.
func NewOverlay(cfg Config) (*Overlay, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("overlay config: %w", err)
	}
	return &Overlay{cfg: cfg}, nil
}

// peerState is the kernel state one peer needs.
type peerState struct {
	node NodeInfo
	vtep netip.Addr
	mac  net.HardwareAddr
}

// Sync makes the node's overlay match self and peers: the VXLAN device with
// self's VTEP address and MAC; for every peer a forwarding entry (peer MAC
// to peer InternalIP), a permanent neighbour (peer VTEP address to peer
// MAC) and a route to the peer's pod CIDR via its VTEP address; nothing for
// nodes no longer listed; and the network table admitting VXLAN packets only
// from the peers' addresses. Peers without an address or pod CIDR, and self
// if listed among peers, are skipped.
func (o *Overlay) Sync(ctx context.Context, self NodeInfo, peers []NodeInfo) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sync overlay: %w", err)
	}
	if !self.InternalIP.Is4() || !self.PodCIDR.Addr().Is4() {
		return fmt.Errorf("sync overlay: node %q needs an IPv4 internal ip and pod cidr", self.Name)
	}
	self.PodCIDR = self.PodCIDR.Masked()
	var want []peerState
	for _, p := range peers {
		if !p.InternalIP.Is4() || !p.PodCIDR.Addr().Is4() {
			continue
		}
		p.PodCIDR = p.PodCIDR.Masked()
		if p.Name == self.Name || p.InternalIP == self.InternalIP || p.PodCIDR == self.PodCIDR {
			continue
		}
		want = append(want, peerState{node: p, vtep: VTEPAddr(p.PodCIDR), mac: VTEPMAC(p.PodCIDR)})
	}
	slices.SortFunc(want, func(a, b peerState) int { return a.node.InternalIP.Compare(b.node.InternalIP) })

	o.mu.Lock()
	defer o.mu.Unlock()
	if err := inNetNS(o.cfg.NodeNetNS, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}); err != nil {
		return fmt.Errorf("sync overlay: enable ip forwarding: %w", err)
	}
	if err := o.syncLinks(self, want); err != nil {
		return fmt.Errorf("sync overlay: %w", err)
	}
	spec := tableSpec{port: o.cfg.VXLANPort, podCIDR: self.PodCIDR, clusterCIDR: o.cfg.ClusterCIDR}
	for _, p := range want {
		spec.peers = append(spec.peers, p.node.InternalIP)
	}
	if err := o.syncTable(spec); err != nil {
		return fmt.Errorf("sync overlay: %w", err)
	}
	return nil
}

// syncLinks converges the VXLAN device and its per-peer entries.
func (o *Overlay) syncLinks(self NodeInfo, want []peerState) error {
	ns, err := nsHandle(o.cfg.NodeNetNS)
	if err != nil {
		return fmt.Errorf("open node netns: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()

	link, err := o.ensureDevice(h, self)
	if err != nil {
		return err
	}
	idx := link.Attrs().Index

	// The device holds exactly self's VTEP address.
	vtep := &netlink.Addr{IPNet: &net.IPNet{IP: VTEPAddr(self.PodCIDR).AsSlice(), Mask: net.CIDRMask(32, 32)}}
	addrs, err := h.AddrList(link, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", o.cfg.VXLANDevice, err)
	}
	for _, a := range addrs {
		if !a.IPNet.IP.Equal(vtep.IP) {
			if err := h.AddrDel(link, &a); err != nil {
				return fmt.Errorf("remove stale address %s from %s: %w", a.IPNet, o.cfg.VXLANDevice, err)
			}
		}
	}
	if err := h.AddrReplace(link, vtep); err != nil {
		return fmt.Errorf("address %s on %s: %w", vtep.IPNet, o.cfg.VXLANDevice, err)
	}

	wantFDB := map[string]bool{}
	wantNeigh := map[netip.Addr]bool{}
	wantRoute := map[netip.Prefix]bool{}
	for _, p := range want {
		fdb := &netlink.Neigh{
			LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
			Flags: netlink.NTF_SELF, HardwareAddr: p.mac, IP: p.node.InternalIP.AsSlice(),
		}
		if err := h.NeighSet(fdb); err != nil {
			return fmt.Errorf("fdb entry for node %q: %w", p.node.Name, err)
		}
		neigh := &netlink.Neigh{
			LinkIndex: idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
			IP: p.vtep.AsSlice(), HardwareAddr: p.mac,
		}
		if err := h.NeighSet(neigh); err != nil {
			return fmt.Errorf("neighbour entry for node %q: %w", p.node.Name, err)
		}
		route := &netlink.Route{
			LinkIndex: idx, Dst: prefixIPNet(p.node.PodCIDR), Gw: p.vtep.AsSlice(),
			Flags: int(netlink.FLAG_ONLINK), Scope: netlink.SCOPE_UNIVERSE,
		}
		if err := h.RouteReplace(route); err != nil {
			return fmt.Errorf("route to node %q pod cidr %s: %w", p.node.Name, p.node.PodCIDR, err)
		}
		wantFDB[p.mac.String()+"/"+p.node.InternalIP.String()] = true
		wantNeigh[p.vtep] = true
		wantRoute[p.node.PodCIDR] = true
	}

	routes, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{LinkIndex: idx, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list routes via %s: %w", o.cfg.VXLANDevice, err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Protocol == unix.RTPROT_KERNEL {
			continue
		}
		if pfx, ok := ipNetPrefix(r.Dst); ok && !wantRoute[pfx] {
			if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("remove stale route %s: %w", r.Dst, err)
			}
			o.cfg.Logger.Debug("removed overlay route", "dst", r.Dst)
		}
	}
	neighs, err := h.NeighList(idx, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("list neighbours on %s: %w", o.cfg.VXLANDevice, err)
	}
	for _, n := range neighs {
		a, ok := netip.AddrFromSlice(n.IP)
		if ok && !wantNeigh[a.Unmap()] {
			if err := h.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("remove stale neighbour %s: %w", n.IP, err)
			}
		}
	}
	fdbs, err := h.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		return fmt.Errorf("list fdb of %s: %w", o.cfg.VXLANDevice, err)
	}
	for _, n := range fdbs {
		a, _ := netip.AddrFromSlice(n.IP)
		if !wantFDB[n.HardwareAddr.String()+"/"+a.Unmap().String()] {
			n.Flags |= netlink.NTF_SELF
			if err := h.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("remove stale fdb entry %s: %w", n.HardwareAddr, err)
			}
			o.cfg.Logger.Debug("removed overlay peer", "mac", n.HardwareAddr, "dst", n.IP)
		}
	}
	return nil
}

// ensureDevice returns the VXLAN device, creating it, or re-creating it when
// its identity (VNI, port, local address, learning) differs from what is
// wanted: those cannot be changed in place.
func (o *Overlay) ensureDevice(h *netlink.Handle, self NodeInfo) (netlink.Link, error) {
	name := o.cfg.VXLANDevice
	mtu := o.cfg.UnderlayMTU - VXLANOverhead
	mac := VTEPMAC(self.PodCIDR)
	link, err := h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	switch {
	case err == nil:
		vx, ok := link.(*netlink.Vxlan)
		if !ok || vx.VxlanId != o.cfg.VNI || vx.Port != o.cfg.VXLANPort || vx.Learning ||
			!vx.SrcAddr.Equal(self.InternalIP.AsSlice()) {
			if err := h.LinkDel(link); err != nil {
				return nil, fmt.Errorf("replace %s: delete: %w", name, err)
			}
			o.cfg.Logger.Debug("deleted overlay device with stale settings", "device", name)
			link = nil
		}
	case errors.As(err, &nf):
		link = nil
	default:
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	if link == nil {
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu, HardwareAddr: mac, TxQLen: -1},
			VxlanId:   o.cfg.VNI,
			SrcAddr:   self.InternalIP.AsSlice(),
			Port:      o.cfg.VXLANPort,
			Learning:  false,
		}
		if err := h.LinkAdd(vx); err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		o.cfg.Logger.Debug("created overlay device", "device", name, "vni", o.cfg.VNI, "local", self.InternalIP)
		if link, err = h.LinkByName(name); err != nil {
			return nil, fmt.Errorf("look up %s: %w", name, err)
		}
	}
	if link.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(link, mtu); err != nil {
			return nil, fmt.Errorf("set mtu of %s: %w", name, err)
		}
	}
	if link.Attrs().HardwareAddr.String() != mac.String() {
		if err := h.LinkSetHardwareAddr(link, mac); err != nil {
			return nil, fmt.Errorf("set mac of %s: %w", name, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("set %s up: %w", name, err)
	}
	return link, nil
}

// syncTable writes the network table unless this instance already wrote
// the same one and it still exists.
func (o *Overlay) syncTable(spec tableSpec) error {
	conn, closeConn, err := o.nftConn()
	if err != nil {
		return err
	}
	defer closeConn()
	if o.last != nil && specEqual(*o.last, spec) {
		if _, err := conn.ListTableOfFamily(o.cfg.Table, nftables.TableFamilyIPv4); err == nil {
			return nil
		}
	}
	if err := queueTable(conn, o.cfg.Table, spec); err != nil {
		return fmt.Errorf("table %s: %w", o.cfg.Table, err)
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("write table %s: %w", o.cfg.Table, err)
	}
	o.last = &spec
	return nil
}

// DroppedOverlayPackets reports how many VXLAN packets from addresses that
// are not cluster nodes the filter dropped since the table was last
// written: a signal of a stale peer list or of someone probing the port.
func (o *Overlay) DroppedOverlayPackets(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("read overlay drop counter: %w", err)
	}
	conn, closeConn, err := o.nftConn()
	if err != nil {
		return 0, err
	}
	defer closeConn()
	obj, err := conn.GetObject(&nftables.CounterObj{
		Table: &nftables.Table{Name: o.cfg.Table, Family: nftables.TableFamilyIPv4}, Name: droppedCounter,
	})
	if err != nil {
		return 0, fmt.Errorf("read overlay drop counter: %w", err)
	}
	c, ok := obj.(*nftables.CounterObj)
	if !ok {
		return 0, fmt.Errorf("read overlay drop counter: unexpected object %T", obj)
	}
	return c.Packets, nil
}

// Remove deletes the VXLAN device (with its routes and entries) and the
// network table. Absent pieces are not an error.
func (o *Overlay) Remove(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove overlay: %w", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last = nil
	var errs []error
	if err := deleteLink(o.cfg.NodeNetNS, o.cfg.VXLANDevice); err != nil {
		errs = append(errs, err)
	}
	conn, closeConn, err := o.nftConn()
	if err != nil {
		errs = append(errs, err)
	} else {
		defer closeConn()
		t := &nftables.Table{Name: o.cfg.Table, Family: nftables.TableFamilyIPv4}
		conn.AddTable(t)
		conn.DelTable(t)
		if err := conn.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("delete table %s: %w", o.cfg.Table, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove overlay: %w", err)
	}
	return nil
}

// nftConn opens an nftables connection to the node's namespace.
func (o *Overlay) nftConn() (*nftables.Conn, func(), error) {
	ns, err := nsHandle(o.cfg.NodeNetNS)
	if err != nil {
		return nil, nil, fmt.Errorf("open node netns: %w", err)
	}
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		ns.Close()
		return nil, nil, fmt.Errorf("nftables: %w", err)
	}
	return conn, func() { ns.Close() }, nil
}

// specEqual compares two table specs.
func specEqual(a, b tableSpec) bool {
	return a.port == b.port && a.podCIDR == b.podCIDR && a.clusterCIDR == b.clusterCIDR && slices.Equal(a.peers, b.peers)
}

// prefixIPNet converts a prefix to the net package's form.
func prefixIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// ipNetPrefix converts an IPv4 net.IPNet to a prefix.
func ipNetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones).Masked(), true
}

// SyncNodes is Sync driven by the API's node list: self is the node named
// selfName, and every other node with an InternalIP and pod CIDR is a
// peer (nodes still lacking either are left out until they have both).
func (o *Overlay) SyncNodes(ctx context.Context, selfName string, nodes []*api.Node) error {
	var self *NodeInfo
	peers := make([]NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		info, err := NodeInfoFromAPI(n)
		if n.Metadata.Name == selfName {
			if err != nil {
				return fmt.Errorf("sync overlay: %w", err)
			}
			self = &info
			continue
		}
		if err == nil {
			peers = append(peers, info)
		}
	}
	if self == nil {
		return fmt.Errorf("sync overlay: node %q is not in the node list", selfName)
	}
	return o.Sync(ctx, *self, peers)
}
