package network

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Names inside berth's network table.
const (
	peerSet        = "overlay-peers"
	droppedCounter = "overlay-dropped"
	inputChain     = "input"
	postroutChain  = "postrouting"
)

// tableSpec is everything the network table is built from, so Sync can tell
// whether the kernel already has what it wants.
type tableSpec struct {
	port        int
	podCIDR     netip.Prefix
	clusterCIDR netip.Prefix
	peers       []netip.Addr // sorted
}

// queueTable adds to conn, as one batch, the atomic replacement of the
// network table:
//
//	table ip berth-net {
//	  set overlay-peers { type ipv4_addr; elements = { peers } }
//	  counter overlay-dropped {}
//	  chain input { type filter hook input priority filter; policy accept;
//	    meta l4proto udp udp dport PORT ip saddr != @overlay-peers counter name overlay-dropped drop }
//	  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
//	    ip saddr POD-CIDR ip daddr != CLUSTER-CIDR masquerade }
//	}
//
// The table is added, deleted and added again in the same transaction, so
// the kernel swaps old for new with no moment in between and no error when
// the table did not exist yet.
func queueTable(conn *nftables.Conn, name string, s tableSpec) error {
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(t)
	set := &nftables.Set{Table: t, Name: peerSet, KeyType: nftables.TypeIPAddr}
	elems := make([]nftables.SetElement, 0, len(s.peers))
	for _, p := range s.peers {
		elems = append(elems, nftables.SetElement{Key: p.AsSlice()})
	}
	if err := conn.AddSet(set, elems); err != nil {
		return fmt.Errorf("queue set %s: %w", peerSet, err)
	}
	conn.AddObj(&nftables.CounterObj{Table: t, Name: droppedCounter})
	accept := nftables.ChainPolicyAccept
	in := conn.AddChain(&nftables.Chain{
		Name: inputChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})
	conn.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, uint16(s.port))},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID, Invert: true},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: droppedCounter},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	post := conn.AddChain(&nftables.Chain{
		Name: postroutChain, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept,
	})
	conn.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: prefixMask(s.podCIDR), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: s.podCIDR.Masked().Addr().AsSlice()},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: prefixMask(s.clusterCIDR), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: s.clusterCIDR.Masked().Addr().AsSlice()},
		&expr.Masq{},
	}})
	return nil
}

// prefixMask is the 4-byte network mask of an IPv4 prefix.
func prefixMask(p netip.Prefix) []byte {
	return binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits()))
}
