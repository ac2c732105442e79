// Package services makes a node answer for the cluster's services: nftables
// DNAT rules from cluster IPs and node ports to ready endpoints, and a small
// DNS server for <service>.<namespace>.svc.berth.
//
// # Rules
//
// Rules.Sync builds, from the full service and endpoints lists, one
// nftables table of berth's own, "ip berth-svc", and swaps it for the
// previous one in a single transaction (add table, delete table, add table
// with everything, commit), so there is never a moment without rules and a
// restarted agent converges by simply syncing again. The rules live in the
// kernel: they keep working while the agent is stopped or upgraded.
//
//   - chains prerouting and output (nat, priority dstnat) jump to services,
//     which has one rule per service port with ready endpoints: cluster IP,
//     protocol and port go to the port's chain svc-<hash>; the node port on
//     any of the node's addresses (set node-addrs) sets the masquerade mark
//     and goes there too. prerouting catches traffic from other nodes, load
//     balancers and local pods (their packets to a cluster IP are routed
//     through the bridge gateway because the service CIDR is off-link for
//     them); output catches the host's own.
//   - svc-<hash> picks one endpoint chain ep-<hash> for each new connection:
//     rule i of N matches `numgen random mod (N-i) == 0`, the last always,
//     giving each endpoint 1/N. Later packets follow conntrack, so
//     established connections keep their endpoint across syncs, even after
//     the endpoint has left the Endpoints (that is how a draining pod
//     finishes its requests).
//   - ep-<hash> DNATs to the endpoint. When the endpoint is on this node and
//     the client is a pod of this node, it sets the masquerade mark first:
//     the reply then returns through the host's conntrack even if bridged
//     traffic bypasses netfilter, and a pod reaching itself through its
//     service (hairpin) works.
//   - postrouting (nat, priority srcnat) masquerades marked packets. Node
//     port traffic is always masqueraded, so a reply from an endpoint on a
//     third node comes back through the node the client reached.
//   - reject-prerouting and reject-output (filter, priority 0, after DNAT)
//     jump to no-endpoints, which rejects traffic to a service port without
//     ready endpoints (TCP reset, ICMP port unreachable for UDP), so clients
//     fail at once instead of waiting for a timeout.
//
// After writing the table Sync deletes the conntrack entries of UDP service
// traffic answered by endpoints that are no longer ready: UDP has no end
// of connection, so a client keeping its source port would otherwise stay
// on a removed endpoint. TCP entries are left to finish.
//
// Node ports answer on the addresses Sync is given (the node's InternalIP
// and any other address a load balancer may target), not on 127.0.0.1.
//
// The mark bit is MasqueradeMark (0x4000). Sync returns the highest
// endpoints resourceVersion it programmed, for status.serviceRulesRevision.
//
// # DNS
//
// DNS answers A queries for <service>.<namespace>.svc.berth with the
// cluster IP, authoritatively; other names in the cluster domain get
// NXDOMAIN (or an empty NOERROR for existing names such as
// <namespace>.svc.berth); names outside it are forwarded to
// DNSConfig.Upstreams if any, else REFUSED (testbeds have no uplink, and a
// quick refusal beats a timeout). The agent serves it on the pod gateway
// address (the bridge's 10.244.N.1) port 53, UDP and TCP, and gives pods
// ResolvConf: that nameserver, `search <ns>.svc.berth svc.berth`,
// `options ndots:5`.
//
// This package must never touch a table other than its own, never log (it
// takes an optional *slog.Logger) and never need the control plane: it is
// fed lists and answers from memory.
package services
