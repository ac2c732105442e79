package testbed

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
)

// Host is one simulated machine as a client (the provider, Terraform, a
// test) sees it: where to dial SSH and which keys to use.
type Host struct {
	// Name is the host's name and hostname, e.g. "vendor-a-1".
	Name string `json:"name"`
	// Vendor names the vendor whose subnet the host sits on.
	Vendor string `json:"vendor"`
	// Address is the host's IPv4 address, reachable from the root namespace.
	Address string `json:"address"`
	// SSHPort is the port its sshd listens on.
	SSHPort int `json:"ssh_port"`
	// User is the login user (root, by key only).
	User string `json:"user"`
	// PrivateKeyPath is the file holding the testbed's client key
	// (OpenSSH format), authorised on every host.
	PrivateKeyPath string `json:"private_key_path"`
	// HostPublicKey is the host's SSH host key in authorized_keys format,
	// for pinning.
	HostPublicKey string `json:"host_public_key"`
}

// SSHAddr is the host's "address:port" for dialling SSH.
func (h Host) SSHAddr() string { return net.JoinHostPort(h.Address, strconv.Itoa(h.SSHPort)) }

// Inventory describes a running testbed to programs that did not make it:
// the demo, the Terraform tests and the Pulumi example read it.
type Inventory struct {
	// Name is the testbed's name.
	Name string `json:"name"`
	// Hosts lists every host, vendor by vendor.
	Hosts []Host `json:"hosts"`
	// Registry is the "address:port" of the plain-HTTP OCI registry.
	Registry string `json:"registry"`
	// LoadBalancer is the "address:port" of the load balancer's frontend.
	LoadBalancer string `json:"load_balancer"`
	// Block is the address block leased to the testbed.
	Block string `json:"block"`
	// StateDir is the testbed's state directory.
	StateDir string `json:"state_dir"`
}

// LoadInventory reads an inventory file written by the CLI's up --out.
func LoadInventory(path string) (*Inventory, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read testbed inventory: %w", err)
	}
	var inv Inventory
	if err := json.Unmarshal(b, &inv); err != nil {
		return nil, fmt.Errorf("parse testbed inventory %s: %w", path, err)
	}
	if len(inv.Hosts) == 0 {
		return nil, fmt.Errorf("testbed inventory %s lists no hosts", path)
	}
	return &inv, nil
}

// WriteFile writes the inventory as indented JSON.
func (inv *Inventory) WriteFile(path string) error {
	b, err := json.MarshalIndent(inv, "", "  ")
	if err != nil {
		return fmt.Errorf("encode testbed inventory: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write testbed inventory: %w", err)
	}
	return nil
}

// Host finds a host by name.
func (inv *Inventory) Host(name string) (Host, error) {
	for _, h := range inv.Hosts {
		if h.Name == name {
			return h, nil
		}
	}
	return Host{}, fmt.Errorf("testbed %q: %w: %q", inv.Name, ErrNoHost, name)
}
