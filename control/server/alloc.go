package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/store"
)

// Allocation pool names in the store.
const (
	poolClusterIPs = "service-ips"
	poolNodePorts  = "node-ports"
	poolPodCIDRs   = "pod-cidrs"
)

// Defaults for the address ranges.
const (
	// DefaultServiceCIDR is where services' cluster IPs come from.
	DefaultServiceCIDR = "10.96.0.0/16"
	// DefaultClusterCIDR is the pod network, split into one block per node.
	DefaultClusterCIDR = "10.244.0.0/16"
	// DefaultNodeCIDRBits is the prefix length of each node's block (a /24
	// gives a node 254 pod addresses).
	DefaultNodeCIDRBits = 24
)

// DNSServiceIP is the cluster IP reserved for the cluster DNS that every
// agent answers on: the first address after the service CIDR's network
// address (10.96.0.1 by default). The server never allocates it to a
// service and refuses a service asking for it.
func DNSServiceIP(serviceCIDR string) (netip.Addr, error) {
	p, err := parseIPv4Prefix("service CIDR", serviceCIDR)
	if err != nil {
		return netip.Addr{}, err
	}
	return p.Masked().Addr().Next(), nil
}

func parseIPv4Prefix(what, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parse %s %q: %w", what, s, err)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("parse %s %q: only IPv4 is supported", what, s)
	}
	return p.Masked(), nil
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (1<<(32-p.Bits()) - 1)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func addrToUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uintToAddr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// clusterIPCandidates yields every assignable address of the service CIDR
// (not the network, DNS or broadcast address) once, starting at a random
// one so concurrent allocations on several instances rarely contend.
func clusterIPCandidates(p netip.Prefix) func(yield func(string) bool) {
	first := addrToUint(p.Addr()) + 2 // skip network and DNS
	last := addrToUint(lastAddr(p)) - 1
	return func(yield func(string) bool) {
		if last < first {
			return
		}
		n := last - first + 1
		start := rand.Uint32N(n)
		for i := uint32(0); i < n; i++ {
			if !yield(uintToAddr(first + (start+i)%n).String()) {
				return
			}
		}
	}
}

// nodePortCandidates yields every node port once, from a random start.
func nodePortCandidates(yield func(string) bool) {
	lo, hi := api.NodePortRange[0], api.NodePortRange[1]
	n := hi - lo + 1
	start := rand.Int32N(n)
	for i := int32(0); i < n; i++ {
		if !yield(strconv.Itoa(int(lo + (start+i)%n))) {
			return
		}
	}
}

// podCIDRCandidates yields the node blocks of the cluster CIDR in order, so
// the first nodes get the first blocks.
func podCIDRCandidates(cluster netip.Prefix, bits int) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		base := addrToUint(cluster.Addr())
		count := uint64(1) << (bits - cluster.Bits())
		step := uint64(1) << (32 - bits)
		for i := uint64(0); i < count; i++ {
			p := netip.PrefixFrom(uintToAddr(base+uint32(i*step)), bits)
			if !yield(p.String()) {
				return
			}
		}
	}
}

// serviceOwner names a service as the owner of its allocations.
func serviceOwner(svc *api.Service) string { return "services/" + api.Key(svc) }

// nodeOwner names a node as the owner of its pod CIDR.
func nodeOwner(n *api.Node) string { return "nodes/" + n.Metadata.Name }

// allocateService gives a service its cluster IP and node ports: the ones
// it asks for when they are free, new ones otherwise. On failure it releases
// what it took, and it returns a function that releases everything it
// allocated, for when the write that follows fails.
func (s *Server) allocateService(ctx context.Context, svc, old *api.Service) (undo func(), err error) {
	var taken []func(context.Context) error
	release := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.requestTimeout)
		defer cancel()
		for _, release := range taken {
			if err := release(ctx); err != nil {
				s.log.Warn("release allocation after a failed write", "service", api.Key(svc), "err", err)
			}
		}
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	owner := serviceOwner(svc)
	spec := &svc.Spec
	if old == nil || old.Spec.ClusterIP == "" || spec.ClusterIP != old.Spec.ClusterIP {
		if spec.ClusterIP != "" {
			ip, perr := netip.ParseAddr(spec.ClusterIP)
			switch {
			case perr != nil || !ip.Is4():
				return nil, invalidField(svc, "spec.clusterIP", "must be an IPv4 address, got %q", spec.ClusterIP)
			case !s.serviceNet.Contains(ip):
				return nil, invalidField(svc, "spec.clusterIP", "must be inside the service CIDR %s, got %s", s.serviceNet, ip)
			case ip == s.serviceNet.Addr() || ip == s.dnsIP || ip == lastAddr(s.serviceNet):
				return nil, invalidField(svc, "spec.clusterIP", "%s is reserved (network, cluster DNS or broadcast address)", ip)
			}
			if err := s.store.Reserve(ctx, poolClusterIPs, ip.String(), owner); err != nil {
				if api.IsAlreadyExists(err) || api.IsConflict(err) {
					return nil, invalidField(svc, "spec.clusterIP", "%s is already allocated to another service", ip)
				}
				return nil, fmt.Errorf("reserve cluster ip %s for service %s: %w", ip, api.Key(svc), err)
			}
		} else {
			ip, err := s.store.Allocate(ctx, poolClusterIPs, clusterIPCandidates(s.serviceNet), owner)
			if errors.Is(err, store.ErrExhausted) {
				return nil, api.NewError(api.ReasonUnavailable,
					"service %s: the service CIDR %s has no free cluster IP left: delete unused services or configure a larger CIDR", api.Key(svc), s.serviceNet)
			}
			if err != nil {
				return nil, fmt.Errorf("allocate a cluster ip for service %s: %w", api.Key(svc), err)
			}
			spec.ClusterIP = ip
		}
		ip := spec.ClusterIP
		taken = append(taken, func(ctx context.Context) error { return s.store.Release(ctx, poolClusterIPs, ip) })
	}
	if spec.Type != api.ServiceNodePort {
		return release, nil
	}
	had := map[int32]bool{}
	if old != nil {
		for _, p := range old.Spec.Ports {
			if p.NodePort != 0 {
				had[p.NodePort] = true
			}
		}
	}
	for i := range spec.Ports {
		port := &spec.Ports[i]
		if port.NodePort != 0 && had[port.NodePort] {
			continue
		}
		if port.NodePort != 0 {
			v := strconv.Itoa(int(port.NodePort))
			if err := s.store.Reserve(ctx, poolNodePorts, v, owner); err != nil {
				if api.IsAlreadyExists(err) || api.IsConflict(err) {
					return nil, invalidField(svc, fmt.Sprintf("spec.ports[%d].nodePort", i), "%d is already allocated to another service", port.NodePort)
				}
				return nil, fmt.Errorf("reserve node port %d for service %s: %w", port.NodePort, api.Key(svc), err)
			}
		} else {
			v, err := s.store.Allocate(ctx, poolNodePorts, nodePortCandidates, owner)
			if errors.Is(err, store.ErrExhausted) {
				return nil, api.NewError(api.ReasonUnavailable,
					"service %s: every node port %d-%d is taken: delete unused NodePort services", api.Key(svc), api.NodePortRange[0], api.NodePortRange[1])
			}
			if err != nil {
				return nil, fmt.Errorf("allocate a node port for service %s: %w", api.Key(svc), err)
			}
			n, _ := strconv.Atoi(v)
			port.NodePort = int32(n)
		}
		v := strconv.Itoa(int(port.NodePort))
		taken = append(taken, func(ctx context.Context) error { return s.store.Release(ctx, poolNodePorts, v) })
	}
	return release, nil
}

// keepServiceAllocations fills what an update left out with what the stored
// service has, so an update that omits the cluster IP or node ports (as IaC
// does) keeps them and never sees a diff.
func keepServiceAllocations(svc, old *api.Service) {
	if svc.Spec.ClusterIP == "" {
		svc.Spec.ClusterIP = old.Spec.ClusterIP
	}
	if svc.Spec.Type != api.ServiceNodePort {
		return
	}
	byName, byPort := map[string]int32{}, map[string]int32{}
	for _, p := range old.Spec.Ports {
		if p.NodePort == 0 {
			continue
		}
		if p.Name != "" {
			byName[p.Name] = p.NodePort
		}
		byPort[fmt.Sprintf("%d/%s", p.Port, p.Protocol)] = p.NodePort
	}
	used := map[int32]bool{}
	for _, p := range svc.Spec.Ports {
		used[p.NodePort] = true
	}
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if p.NodePort != 0 {
			continue
		}
		if n, ok := byName[p.Name]; ok && p.Name != "" && !used[n] {
			p.NodePort, used[n] = n, true
		} else if n, ok := byPort[fmt.Sprintf("%d/%s", p.Port, p.Protocol)]; ok && !used[n] {
			p.NodePort, used[n] = n, true
		}
	}
}

// releaseUnused frees the allocations the stored service old held that the
// updated service svc (nil when deleted) no longer uses.
func (s *Server) releaseUnused(ctx context.Context, old, svc *api.Service) {
	keepIP := ""
	keepPorts := map[int32]bool{}
	if svc != nil {
		keepIP = svc.Spec.ClusterIP
		if svc.Spec.Type == api.ServiceNodePort {
			for _, p := range svc.Spec.Ports {
				keepPorts[p.NodePort] = true
			}
		}
	}
	if old.Spec.ClusterIP != "" && old.Spec.ClusterIP != keepIP {
		if err := s.store.Release(ctx, poolClusterIPs, old.Spec.ClusterIP); err != nil {
			s.log.Warn("release cluster ip", "service", api.Key(old), "ip", old.Spec.ClusterIP, "err", err)
		}
	}
	for _, p := range old.Spec.Ports {
		if p.NodePort != 0 && !keepPorts[p.NodePort] {
			if err := s.store.Release(ctx, poolNodePorts, strconv.Itoa(int(p.NodePort))); err != nil {
				s.log.Warn("release node port", "service", api.Key(old), "port", p.NodePort, "err", err)
			}
		}
	}
}

// allocatePodCIDR gives a registering node its block of the cluster CIDR.
func (s *Server) allocatePodCIDR(ctx context.Context, n *api.Node) (undo func(), err error) {
	owner := nodeOwner(n)
	if n.Spec.PodCIDR != "" {
		p, perr := netip.ParsePrefix(n.Spec.PodCIDR)
		if perr != nil || p.Bits() != s.nodeBits || !s.clusterNet.Contains(p.Addr()) || p.Masked() != p {
			return nil, invalidField(n, "spec.podCIDR", "must be a /%d block of the cluster CIDR %s, got %q (leave it empty to have one allocated)", s.nodeBits, s.clusterNet, n.Spec.PodCIDR)
		}
		if err := s.store.Reserve(ctx, poolPodCIDRs, p.String(), owner); err != nil {
			if api.IsAlreadyExists(err) || api.IsConflict(err) {
				return nil, invalidField(n, "spec.podCIDR", "%s is already allocated to another node", p)
			}
			return nil, fmt.Errorf("reserve pod cidr %s for node %s: %w", p, n.Metadata.Name, err)
		}
	} else {
		v, err := s.store.Allocate(ctx, poolPodCIDRs, podCIDRCandidates(s.clusterNet, s.nodeBits), owner)
		if errors.Is(err, store.ErrExhausted) {
			return nil, api.NewError(api.ReasonUnavailable,
				"node %s: the cluster CIDR %s has no free /%d block left: delete unused nodes or configure a larger cluster CIDR", n.Metadata.Name, s.clusterNet, s.nodeBits)
		}
		if err != nil {
			return nil, fmt.Errorf("allocate a pod cidr for node %s: %w", n.Metadata.Name, err)
		}
		n.Spec.PodCIDR = v
	}
	cidr := n.Spec.PodCIDR
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.requestTimeout)
		defer cancel()
		if err := s.store.Release(ctx, poolPodCIDRs, cidr); err != nil {
			s.log.Warn("release pod cidr after a failed write", "node", n.Metadata.Name, "cidr", cidr, "err", err)
		}
	}, nil
}

// invalidField is an Invalid error about one field of obj.
func invalidField(obj api.Object, field, format string, args ...any) *api.Status {
	var errs api.FieldErrors
	errs.Add(field, format, args...)
	return api.NewInvalid(api.KindOf(obj).Kind, api.Key(obj), errs)
}
