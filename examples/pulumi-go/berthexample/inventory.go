package berthexample

import (
	"encoding/json"
	"fmt"
	"os"
)

// Inventory is the part of a testbed inventory file (acceptance/testbed's
// Inventory, written by `testbed up --out FILE`) the program reads. It is
// copied rather than imported so the program depends on the SDK alone.
type Inventory struct {
	// Name of the testbed.
	Name string `json:"name"`
	// Hosts lists every host, vendor by vendor.
	Hosts []Host `json:"hosts"`
	// Registry is the "address:port" of the testbed's plain-HTTP registry.
	Registry string `json:"registry"`
	// LoadBalancer is the "address:port" of the testbed's load balancer.
	LoadBalancer string `json:"load_balancer"`
}

// Host is one machine: where SSH reaches it and with which keys.
type Host struct {
	Name           string `json:"name"`
	Vendor         string `json:"vendor"`
	Address        string `json:"address"`
	SSHPort        int    `json:"ssh_port"`
	User           string `json:"user"`
	PrivateKeyPath string `json:"private_key_path"`
	HostPublicKey  string `json:"host_public_key"`
}

// LoadInventory reads an inventory file.
func LoadInventory(path string) (*Inventory, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	var inv Inventory
	if err := json.Unmarshal(b, &inv); err != nil {
		return nil, fmt.Errorf("parse inventory %s: %w", path, err)
	}
	if len(inv.Hosts) == 0 {
		return nil, fmt.Errorf("inventory %s lists no hosts", path)
	}
	return &inv, nil
}
