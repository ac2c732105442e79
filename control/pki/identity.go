package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
)

// Role says what a certificate's holder may do in the cluster; the API
// server's authoriser branches on it.
type Role string

// The roles berth issues certificates for.
const (
	// RoleAdmin is a person or tool (Terraform, Pulumi, the CLI) with full
	// access to the API.
	RoleAdmin Role = "admin"
	// RoleNode is a node agent, which may act only on its own node and the
	// pods bound to it.
	RoleNode Role = "node"
	// RoleServer is a control-plane host serving the API; it also
	// authenticates as a client to etcd and to other control-plane hosts.
	RoleServer Role = "server"
	// RoleEtcdPeer is an etcd member talking to the other members.
	RoleEtcdPeer Role = "etcd-peer"
	// RoleNodeServer is a node agent's HTTPS server (logs, health), which
	// the control plane calls. Its certificates serve and nothing else: they
	// cannot authenticate a client, so a node's serving key never acts as
	// the node.
	RoleNodeServer Role = "node-server"
)

// Subject names: the common-name prefix and organisation (group) each role's
// certificates carry. An authoriser may match on these directly.
const (
	// AdminCommonName is the common name of an unnamed admin; a named admin
	// is AdminCommonName + ":" + name.
	AdminCommonName = "berth:admin"
	// AdminsGroup is the organisation of every admin certificate.
	AdminsGroup = "berth:admins"
	// NodeCommonNamePrefix precedes the node name in a node's common name.
	NodeCommonNamePrefix = "berth:node:"
	// NodesGroup is the organisation of every node certificate.
	NodesGroup = "berth:nodes"
	// ServerCommonNamePrefix precedes the host name in a control-plane
	// server's common name.
	ServerCommonNamePrefix = "berth:control-plane:"
	// ServersGroup is the organisation of every control-plane certificate.
	ServersGroup = "berth:control-plane"
	// EtcdPeerCommonNamePrefix precedes the member name in an etcd peer's
	// common name.
	EtcdPeerCommonNamePrefix = "berth:etcd:"
	// EtcdPeersGroup is the organisation of every etcd peer certificate.
	EtcdPeersGroup = "berth:etcd-peers"
	// NodeServerCommonNamePrefix precedes the node name in an agent's
	// serving certificate.
	NodeServerCommonNamePrefix = "berth:node-server:"
	// NodeServersGroup is the organisation of every agent serving
	// certificate.
	NodeServersGroup = "berth:node-servers"
)

// ErrNotBerthIdentity is returned by IdentityFromCert for a certificate whose
// subject is not one berth issues; an authoriser must deny such a caller.
var ErrNotBerthIdentity = errors.New("certificate does not carry a berth identity")

// Identity is who a certificate speaks for: its role, the name within that
// role, and (for roles that serve) the DNS names and IP addresses it may
// serve on. It is the single description from which subjects are built and
// to which verified certificates are read back.
type Identity struct {
	// Role is what the holder may do.
	Role Role
	// Name is the node, host or member name; for an admin it may be empty.
	Name string
	// DNSNames and IPAddresses are the subject alternative names of a
	// serving certificate (RoleServer, RoleEtcdPeer); other roles have none.
	DNSNames    []string
	IPAddresses []net.IP
}

// AdminIdentity names an admin. An empty name gives the cluster's default
// admin; a name distinguishes several admins in audit records.
func AdminIdentity(name string) Identity { return Identity{Role: RoleAdmin, Name: name} }

// NodeIdentity names the agent of the node called name.
func NodeIdentity(name string) Identity { return Identity{Role: RoleNode, Name: name} }

// ServerIdentity names a control-plane host that serves the API on the given
// DNS names and addresses.
func ServerIdentity(name string, dnsNames []string, ips []net.IP) Identity {
	return Identity{Role: RoleServer, Name: name, DNSNames: dnsNames, IPAddresses: ips}
}

// NodeServerIdentity names the HTTPS server of the agent on node name,
// reachable on the given DNS names and addresses.
func NodeServerIdentity(name string, dnsNames []string, ips []net.IP) Identity {
	return Identity{Role: RoleNodeServer, Name: name, DNSNames: dnsNames, IPAddresses: ips}
}

// EtcdPeerIdentity names an etcd member reachable by its peers on the given
// DNS names and addresses (etcd checks a connecting peer's address against
// them).
func EtcdPeerIdentity(name string, dnsNames []string, ips []net.IP) Identity {
	return Identity{Role: RoleEtcdPeer, Name: name, DNSNames: dnsNames, IPAddresses: ips}
}

// String formats the identity for messages and audit records, as the
// certificate's common name.
func (id Identity) String() string {
	cn, err := id.commonName()
	if err != nil {
		return fmt.Sprintf("invalid identity (role %q, name %q)", id.Role, id.Name)
	}
	return cn
}

// Validate reports whether the identity can be put in a certificate: a known
// role, a name where the role needs one, names free of ':' and whitespace,
// and subject alternative names only for serving roles.
func (id Identity) Validate() error {
	if _, err := id.commonName(); err != nil {
		return err
	}
	if !id.serves() && (len(id.DNSNames) > 0 || len(id.IPAddresses) > 0) {
		return fmt.Errorf("identity %s: role %s may not carry DNS names or IP addresses", id, id.Role)
	}
	for _, d := range id.DNSNames {
		if d == "" || strings.ContainsAny(d, " \t\n/") {
			return fmt.Errorf("identity %s: invalid DNS name %q", id, d)
		}
	}
	for _, ip := range id.IPAddresses {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return fmt.Errorf("identity %s: invalid IP address %v", id, ip)
		}
	}
	return nil
}

func (id Identity) serves() bool {
	return id.Role == RoleServer || id.Role == RoleEtcdPeer || id.Role == RoleNodeServer
}

func validName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 253 {
		return fmt.Errorf("name %.20q... longer than 253 characters", name)
	}
	for _, r := range name {
		if r == ':' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("name %q contains %q", name, r)
		}
	}
	return nil
}

func (id Identity) commonName() (string, error) {
	var prefix string
	switch id.Role {
	case RoleAdmin:
		if id.Name == "" {
			return AdminCommonName, nil
		}
		prefix = AdminCommonName + ":"
	case RoleNode:
		prefix = NodeCommonNamePrefix
	case RoleServer:
		prefix = ServerCommonNamePrefix
	case RoleEtcdPeer:
		prefix = EtcdPeerCommonNamePrefix
	case RoleNodeServer:
		prefix = NodeServerCommonNamePrefix
	default:
		return "", fmt.Errorf("unknown role %q", id.Role)
	}
	if err := validName(id.Name); err != nil {
		return "", fmt.Errorf("%s identity: %w", id.Role, err)
	}
	return prefix + id.Name, nil
}

func (id Identity) group() string {
	switch id.Role {
	case RoleAdmin:
		return AdminsGroup
	case RoleNode:
		return NodesGroup
	case RoleServer:
		return ServersGroup
	case RoleEtcdPeer:
		return EtcdPeersGroup
	case RoleNodeServer:
		return NodeServersGroup
	}
	return ""
}

// Subject is the certificate subject for the identity: its common name and
// its role's group as the only organisation.
func (id Identity) Subject() (pkix.Name, error) {
	cn, err := id.commonName()
	if err != nil {
		return pkix.Name{}, err
	}
	return pkix.Name{CommonName: cn, Organization: []string{id.group()}}, nil
}

func (id Identity) extKeyUsage() []x509.ExtKeyUsage {
	if id.Role == RoleNodeServer {
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if id.serves() {
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
}

// IdentityFromCert reads the identity a certificate was issued for, so the
// API server's authoriser can tell who is calling. It trusts the certificate:
// call it only on a chain the TLS stack has verified against the cluster CA.
// A subject that is not exactly one berth issues yields ErrNotBerthIdentity.
func IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("read identity: %w: no certificate", ErrNotBerthIdentity)
	}
	cn := cert.Subject.CommonName
	var id Identity
	switch {
	case cn == AdminCommonName:
		id = Identity{Role: RoleAdmin}
	case strings.HasPrefix(cn, AdminCommonName+":"):
		id = Identity{Role: RoleAdmin, Name: strings.TrimPrefix(cn, AdminCommonName+":")}
	case strings.HasPrefix(cn, NodeCommonNamePrefix):
		id = Identity{Role: RoleNode, Name: strings.TrimPrefix(cn, NodeCommonNamePrefix)}
	case strings.HasPrefix(cn, ServerCommonNamePrefix):
		id = Identity{Role: RoleServer, Name: strings.TrimPrefix(cn, ServerCommonNamePrefix)}
	case strings.HasPrefix(cn, EtcdPeerCommonNamePrefix):
		id = Identity{Role: RoleEtcdPeer, Name: strings.TrimPrefix(cn, EtcdPeerCommonNamePrefix)}
	case strings.HasPrefix(cn, NodeServerCommonNamePrefix):
		id = Identity{Role: RoleNodeServer, Name: strings.TrimPrefix(cn, NodeServerCommonNamePrefix)}
	default:
		return Identity{}, fmt.Errorf("read identity from %q: %w", cn, ErrNotBerthIdentity)
	}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("read identity from %q: %w: %v", cn, ErrNotBerthIdentity, err)
	}
	if !slices.Equal(cert.Subject.Organization, []string{id.group()}) {
		return Identity{}, fmt.Errorf("read identity from %q: %w: organisation %q, want [%q]",
			cn, ErrNotBerthIdentity, cert.Subject.Organization, id.group())
	}
	if id.serves() {
		id.DNSNames = slices.Clone(cert.DNSNames)
		id.IPAddresses = slices.Clone(cert.IPAddresses)
	}
	return id, nil
}
