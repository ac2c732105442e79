package testbed

import (
	"fmt"
	"net/netip"
)

// Address plan. The testbed range 198.18.0.0/15 (RFC 2544, reserved for
// network test labs) is cut into BlockCount blocks of /20, one per testbed.
// Inside block b (base = 198.18.0.0 + b*4096):
//
//	base+0.0/30    root link: .1 in the root namespace, .2 in the router
//	base+0.10/32   registry (on the router's lo)
//	base+0.11/32   load balancer (on the router's lo)
//	base+v.0/24    vendor v (1..MaxVendors): router gateway .1, hosts .11, .12, ...
const (
	// BlockBits is the prefix length of the block leased to one testbed.
	BlockBits = 20
	// BlockCount is how many testbeds can exist at once on one machine.
	BlockCount = 1 << (BlockBits - 15)
	// MaxVendors is the number of vendor subnets (/24) in one block.
	MaxVendors = 15
	// MaxHostsPerVendor keeps host addresses inside the vendor's /24.
	MaxHostsPerVendor = 200
	// RegistryPort is the TCP port of the testbed registry.
	RegistryPort = 5000
	// LBPort is the TCP port of the testbed load balancer's frontend.
	LBPort = 80
	// SSHPort is the port every host's sshd listens on.
	SSHPort = 22
)

var testRange = netip.MustParsePrefix("198.18.0.0/15")

// plan computes every address of the testbed that leased block.
type plan struct{ block int }

func (p plan) at(sub, host int) netip.Addr {
	b := testRange.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(p.block)<<(32-BlockBits) + uint32(sub)<<8 + uint32(host)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Block is the whole leased prefix; hosts and the root namespace route only it.
func (p plan) Block() netip.Prefix { return netip.PrefixFrom(p.at(0, 0), BlockBits) }

// RootAddr is the root namespace's end of the root link.
func (p plan) RootAddr() netip.Addr { return p.at(0, 1) }

// RouterUplink is the router's end of the root link.
func (p plan) RouterUplink() netip.Addr { return p.at(0, 2) }

// Registry is the registry's address.
func (p plan) Registry() netip.Addr { return p.at(0, 10) }

// LB is the load balancer's address.
func (p plan) LB() netip.Addr { return p.at(0, 11) }

// VendorPrefix is vendor v's subnet (v counts from 1).
func (p plan) VendorPrefix(v int) netip.Prefix { return netip.PrefixFrom(p.at(v, 0), 24) }

// Gateway is the router's address on vendor v's bridge.
func (p plan) Gateway(v int) netip.Addr { return p.at(v, 1) }

// HostAddr is the address of the i-th host (counting from 1) of vendor v.
func (p plan) HostAddr(v, i int) netip.Addr { return p.at(v, 10+i) }

// RootLink names the root namespace's veth of the block (≤ 15 characters).
func (p plan) RootLink() string { return fmt.Sprintf("btb%d", p.block) }
