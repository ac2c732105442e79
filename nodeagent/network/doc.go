// Package network attaches pods to the node's pod network and joins the
// node's pods to every other node's through a VXLAN overlay.
//
// # Pods
//
// Pods.Setup pins a new network namespace on NetNSDir/<pod-uid> (default
// /run/berth/netns), then runs CNI ADD through libcni: the loopback plugin
// for lo, and the bridge plugin with host-local IPAM for eth0. The bridge,
// berth0, holds the first address of the node's pod CIDR (10.244.N.1/24)
// and is every pod's default gateway; pods get the rest of the /24. The
// pod's MTU is the underlay's less 50 (VXLAN overhead). Host-local keeps its
// leases in StateDir/ipam and libcni its results in StateDir/cache (default
// /var/lib/berth/cni), so Pods.List finds attached pods, their addresses and
// names after an agent restart, and Teardown releases an address even when
// the namespace is already gone. The bridge plugin's ipMasq is off (it
// would need the iptables binary); see the network table below. hairpinMode
// is on so a pod can reach itself through a service. The bridge also gets a
// route to the service CIDR (10.96.0.0/16 dev berth0 src 10.244.N.1), so
// the node's own processes can connect to cluster IPs on a host without a
// default route; the service rules' output chain translates them.
//
// # Overlay
//
// Overlay.Sync programs one VXLAN device, berth.vx (VNI 1, UDP 8472,
// local address = the node's InternalIP, learning off, no multicast group),
// the flannel way: the device of the node owning pod CIDR P has the MAC
// 0e:62:<P's four network bytes> and the address P.0/32 (the "VTEP
// address", never a pod's). For every peer it sets
//
//   - an FDB entry: peer MAC → peer InternalIP (unicast VXLAN, so nodes may
//     sit in different subnets joined by routers),
//   - a permanent neighbour entry: peer VTEP address → peer MAC,
//   - a route: peer pod CIDR via peer VTEP address dev berth.vx onlink,
//
// and removes entries and routes of nodes no longer listed. SyncNodes does
// the same from the API's node list, leaving out nodes that have no
// InternalIP or pod CIDR yet. Nothing needs to
// be learnt or flooded, so the first packet to a new peer already flows.
// Traffic the node itself sends to a remote pod leaves with the VTEP address
// as its source, which the peer routes back through the overlay.
//
// # The network table
//
// berth owns the nftables table "ip berth-net" in the node's namespace and
// rewrites it whole, in one transaction, when its inputs change:
//
//   - chain input (filter, priority 0): UDP to the VXLAN port from an
//     address outside the set overlay-peers (the peers' InternalIPs) is
//     counted in the counter overlay-dropped and dropped, so only cluster
//     nodes can inject packets into the pod network;
//   - chain postrouting (nat, priority 100): traffic from the node's pod
//     CIDR to anything outside the cluster CIDR is masqueraded to the
//     node's address, so pods can reach node addresses and, on hosts with an
//     uplink, the outside world. Pod-to-pod traffic keeps its addresses.
//
// # Namespaces
//
// Production agents run in the host's namespace and leave Config.NodeNetNS
// empty. Tests (and a testbed running several nodes in one process) point
// it at a node's namespace; the package then runs CNI plugins from a thread
// inside that namespace and binds its netlink and nftables sockets to it.
//
// Subpackage networktest builds simulated clusters (router and node
// namespaces) for this package's and nodeagent/services' integration tests.
//
// This package must never touch an interface, route, neighbour or table it
// did not create (it only changes berth0, berth.vx, pod veths, pod
// namespaces under NetNSDir and the berth-net table), never log (it takes an
// optional *slog.Logger), and never import the control plane beyond its API
// types.
package network
