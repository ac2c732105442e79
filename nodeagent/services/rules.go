package services

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/berth-io/berth/control/api"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultTable is berth's nftables table (family ip) for service rules.
const DefaultTable = "berth-svc"

// MasqueradeMark is the packet mark bit that asks the postrouting chain to
// masquerade a connection's first packet.
const MasqueradeMark uint32 = 0x4000

// Chain and set names inside the service table.
const (
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPostrouting = "postrouting"
	chainServices    = "services"
	chainRejectPre   = "reject-prerouting"
	chainRejectOut   = "reject-output"
	chainNoEndpoints = "no-endpoints"
	setNodeAddrs     = "node-addrs"
)

// Config is one node's service rules.
type Config struct {
	// PodCIDR is the node's pod CIDR. Connections from a local pod to a
	// local endpoint through a service are masqueraded, so the reply
	// returns through the host (and its conntrack entry) even when the
	// bridge does not pass traffic through netfilter, and a pod can reach
	// itself through its service. Unset, no such masquerade happens.
	PodCIDR netip.Prefix
	// Table names the nftables table; default DefaultTable.
	Table string
	// NodeNetNS, when set, is the path of the node's network namespace
	// (tests and testbeds); empty means the agent's own.
	NodeNetNS string
	// Logger receives a debug record per sync; nil discards them.
	Logger *slog.Logger
}

// Rules programs service rules into the node's kernel. Sync is safe for
// concurrent use and idempotent; a Rules created over a table an earlier
// agent wrote simply replaces it on its first Sync.
type Rules struct {
	cfg Config
	mu  sync.Mutex
}

// NewRules checks cfg; it does no I/O.
func NewRules(cfg Config) (*Rules, error) {
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PodCIDR.IsValid() && !cfg.PodCIDR.Addr().Is4() {
		return nil, fmt.Errorf("service rules config: pod cidr %s: only IPv4 is supported", cfg.PodCIDR)
	}
	cfg.PodCIDR = cfg.PodCIDR.Masked()
	return &Rules{cfg: cfg}, nil
}

// Sync replaces the node's service rules with those for services,
// endpoints and the node's own addresses (where node ports answer), in one
// nftables transaction: there is never a moment without rules, and
// established connections keep their endpoint (conntrack holds the
// translation). It returns the endpoints revision programmed (the highest
// resourceVersion among endpoints) for status.serviceRulesRevision.
// Conntrack entries of UDP service traffic to endpoints no longer ready are
// deleted, so UDP clients move on too (see staleUDPFlows).
func (r *Rules) Sync(ctx context.Context, services []api.Service, endpoints []api.Endpoints, nodeAddrs []netip.Addr) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("sync service rules: %w", err)
	}
	plan := BuildPlan(services, endpoints, nodeAddrs)
	r.mu.Lock()
	defer r.mu.Unlock()
	conn, done, err := r.conn()
	if err != nil {
		return 0, fmt.Errorf("sync service rules: %w", err)
	}
	defer done()
	if err := queuePlan(conn, r.cfg.Table, r.cfg.PodCIDR, plan); err != nil {
		return 0, fmt.Errorf("sync service rules: %w", err)
	}
	if err := conn.Flush(); err != nil {
		return 0, fmt.Errorf("sync service rules: write table %s: %w", r.cfg.Table, err)
	}
	if err := r.flushStaleUDPFlows(plan); err != nil {
		return 0, fmt.Errorf("sync service rules: %w", err)
	}
	r.cfg.Logger.Debug("synced service rules", "ports", len(plan.Ports), "revision", plan.Revision)
	return plan.Revision, nil
}

// Remove deletes the service table. An absent table is not an error.
func (r *Rules) Remove(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove service rules: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	conn, done, err := r.conn()
	if err != nil {
		return fmt.Errorf("remove service rules: %w", err)
	}
	defer done()
	t := &nftables.Table{Name: r.cfg.Table, Family: nftables.TableFamilyIPv4}
	conn.AddTable(t)
	conn.DelTable(t)
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("remove service rules: delete table %s: %w", r.cfg.Table, err)
	}
	return nil
}

// conn opens an nftables connection to the node's namespace.
func (r *Rules) conn() (*nftables.Conn, func(), error) {
	var ns netns.NsHandle
	var err error
	if r.cfg.NodeNetNS == "" {
		ns, err = netns.Get()
	} else {
		ns, err = netns.GetFromPath(r.cfg.NodeNetNS)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open node netns: %w", err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		ns.Close()
		return nil, nil, fmt.Errorf("nftables: %w", err)
	}
	return c, func() { ns.Close() }, nil
}

// queuePlan adds to conn the atomic replacement of the service table:
//
//	table ip berth-svc {
//	  set node-addrs { type ipv4_addr }
//	  chain prerouting  { type nat hook prerouting priority dstnat; jump services }
//	  chain output      { type nat hook output priority dstnat; jump services }
//	  chain postrouting { type nat hook postrouting priority srcnat; meta mark & 0x4000 != 0 masquerade }
//	  chain services {
//	    ip daddr CIP meta l4proto P th dport PORT goto svc-H                           (per port with endpoints)
//	    ip daddr @node-addrs meta l4proto P th dport NODEPORT meta mark set mark | 0x4000 goto svc-H
//	  }
//	  chain svc-H { numgen random mod N == 0 goto ep-1; numgen random mod N-1 == 0 goto ep-2; ...; goto ep-N }
//	  chain ep-E  { [ip saddr POD-CIDR meta mark set mark | 0x4000]  dnat to IP:PORT }
//	  chain reject-prerouting { type filter hook prerouting priority filter; jump no-endpoints }
//	  chain reject-output     { type filter hook output priority filter; jump no-endpoints }
//	  chain no-endpoints {
//	    ip daddr CIP meta l4proto tcp th dport PORT reject with tcp reset    (per port without endpoints)
//	    ip daddr @node-addrs meta l4proto udp th dport NODEPORT reject       (icmp port unreachable)
//	  }
//	}
//
// The cascade in svc-H picks each of N endpoints with probability 1/N for a
// new connection; later packets follow conntrack, not the rules.
func queuePlan(conn *nftables.Conn, name string, podCIDR netip.Prefix, p Plan) error {
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(t)

	addrs := &nftables.Set{Table: t, Name: setNodeAddrs, KeyType: nftables.TypeIPAddr}
	elems := make([]nftables.SetElement, 0, len(p.NodeAddrs))
	for _, a := range p.NodeAddrs {
		elems = append(elems, nftables.SetElement{Key: a.AsSlice()})
	}
	if err := conn.AddSet(addrs, elems); err != nil {
		return fmt.Errorf("queue set %s: %w", setNodeAddrs, err)
	}

	accept := nftables.ChainPolicyAccept
	base := func(n string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return conn.AddChain(&nftables.Chain{Name: n, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept})
	}
	regular := func(n string) *nftables.Chain { return conn.AddChain(&nftables.Chain{Name: n, Table: t}) }

	services := regular(chainServices)
	noEndpoints := regular(chainNoEndpoints)
	pre := base(chainPrerouting, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	out := base(chainOutput, nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	post := base(chainPostrouting, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	rejPre := base(chainRejectPre, nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityFilter)
	rejOut := base(chainRejectOut, nftables.ChainTypeFilter, nftables.ChainHookOutput, nftables.ChainPriorityFilter)

	jump := func(c *nftables.Chain, to string) {
		conn.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: to}}})
	}
	jump(pre, chainServices)
	jump(out, chainServices)
	jump(rejPre, chainNoEndpoints)
	jump(rejOut, chainNoEndpoints)
	conn.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(MasqueradeMark), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Masq{},
	}})

	for _, pr := range p.Ports {
		comment := userdata.AppendString(nil, userdata.TypeComment, pr.comment())
		if len(pr.Endpoints) == 0 {
			conn.AddRule(&nftables.Rule{Table: t, Chain: noEndpoints, UserData: comment,
				Exprs: concat(matchDst(pr.ClusterIP), matchPort(pr.Protocol, pr.Port), reject(pr.Protocol))})
			if pr.NodePort != 0 {
				conn.AddRule(&nftables.Rule{Table: t, Chain: noEndpoints, UserData: comment,
					Exprs: concat(matchDstSet(addrs), matchPort(pr.Protocol, pr.NodePort), reject(pr.Protocol))})
			}
			continue
		}
		svc := regular(pr.chainName())
		conn.AddRule(&nftables.Rule{Table: t, Chain: services, UserData: comment,
			Exprs: concat(matchDst(pr.ClusterIP), matchPort(pr.Protocol, pr.Port), gotoChain(svc.Name))})
		if pr.NodePort != 0 {
			conn.AddRule(&nftables.Rule{Table: t, Chain: services, UserData: comment,
				Exprs: concat(matchDstSet(addrs), matchPort(pr.Protocol, pr.NodePort), setMasqMark(), gotoChain(svc.Name))})
		}
		n := len(pr.Endpoints)
		for i, ep := range pr.Endpoints {
			epc := regular(pr.endpointChainName(ep))
			if podCIDR.IsValid() && podCIDR.Contains(ep.IP) {
				conn.AddRule(&nftables.Rule{Table: t, Chain: epc, Exprs: concat(matchSrcPrefix(podCIDR), setMasqMark())})
			}
			conn.AddRule(&nftables.Rule{Table: t, Chain: epc,
				UserData: userdata.AppendString(nil, userdata.TypeComment, pr.comment()+" "+netip.AddrPortFrom(ep.IP, ep.Port).String()),
				Exprs:    dnat(ep)})
			if i == n-1 {
				conn.AddRule(&nftables.Rule{Table: t, Chain: svc, Exprs: gotoChain(epc.Name)})
			} else {
				conn.AddRule(&nftables.Rule{Table: t, Chain: svc, Exprs: concat(randomOneIn(uint32(n-i)), gotoChain(epc.Name))})
			}
		}
	}
	return nil
}

// concat joins expression lists.
func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// matchDst is `ip daddr A`.
func matchDst(a netip.Addr) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()},
	}
}

// matchDstSet is `ip daddr @set`.
func matchDstSet(s *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
	}
}

// matchSrcPrefix is `ip saddr P`.
func matchSrcPrefix(p netip.Prefix) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits())), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

// matchPort is `meta l4proto P th dport PORT`.
func matchPort(proto uint8, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
	}
}

// setMasqMark is `meta mark set mark | MasqueradeMark`.
func setMasqMark() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^MasqueradeMark), Xor: binaryutil.NativeEndian.PutUint32(MasqueradeMark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}
}

// randomOneIn is `numgen random mod n == 0`: true for one packet in n.
func randomOneIn(n uint32) []expr.Any {
	return []expr.Any{
		&expr.Numgen{Register: 1, Modulus: n, Type: unix.NFT_NG_RANDOM},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// gotoChain is `goto name`.
func gotoChain(name string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictGoto, Chain: name}}
}

// dnat is `dnat to IP:PORT`.
func dnat(ep Endpoint) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: ep.IP.AsSlice()},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, ep.Port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

// reject is `reject with tcp reset` for TCP and `reject` (ICMP port
// unreachable) otherwise, so clients of a service without endpoints fail at
// once instead of timing out.
func reject(proto uint8) []expr.Any {
	if proto == unix.IPPROTO_TCP {
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}
	}
	return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3}}
}
