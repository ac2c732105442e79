package testbed

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// StateDir holds every testbed's state, keys and host disks, and the lock
// that guards address leases; one per machine. It lives on persistent
// storage, outside every namespace, so a host's disk survives a simulated
// power cut.
const StateDir = "/var/lib/berth-testbed"

// Vendor is one simulated hosting vendor: its own bridge and subnet.
type Vendor struct {
	// Name names the vendor; its hosts are called Name-1, Name-2, ...
	Name string `json:"name"`
	// Hosts is how many hosts the vendor has.
	Hosts int `json:"hosts"`
}

// Options say what testbed Up makes.
type Options struct {
	// Name identifies the testbed across processes (the CLI's --name);
	// lower-case letters, digits and '-', at most 24 characters.
	Name string
	// Vendors lists the vendors in order; at least one.
	Vendors []Vendor
	// Latency, when non-zero, delays every packet crossing from one vendor
	// to another by this much, so a round trip between hosts of different
	// vendors takes at least twice as long. Traffic within a vendor, from the
	// root namespace and to or from the registry and the load balancer is
	// not delayed. The router does it with a TUN device and the keeper
	// process (no netem needed).
	Latency time.Duration
	// Detach makes the testbed's keeper process its owner, so the testbed
	// outlives the process that called Up (the CLI does this). Otherwise the
	// calling process owns it, and the next Up after it dies cleans it up.
	Detach bool
	// Progress, when set, receives one line per step.
	Progress io.Writer
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,23}$`)
	vendorRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}$`)
)

func (o Options) validate() error {
	if !nameRE.MatchString(o.Name) {
		return fmt.Errorf("testbed name %q: want lower-case letters, digits and '-', at most 24 characters", o.Name)
	}
	if len(o.Vendors) == 0 {
		return fmt.Errorf("testbed %q: no vendors", o.Name)
	}
	if len(o.Vendors) > MaxVendors {
		return fmt.Errorf("testbed %q: %d vendors, at most %d", o.Name, len(o.Vendors), MaxVendors)
	}
	seen := map[string]bool{}
	for _, v := range o.Vendors {
		if !vendorRE.MatchString(v.Name) {
			return fmt.Errorf("vendor name %q: want a lower-case letter, then letters, digits and '-', at most 20 characters", v.Name)
		}
		if seen[v.Name] {
			return fmt.Errorf("vendor %q listed twice", v.Name)
		}
		seen[v.Name] = true
		if v.Hosts < 1 || v.Hosts > MaxHostsPerVendor {
			return fmt.Errorf("vendor %q: %d hosts, want 1 to %d", v.Name, v.Hosts, MaxHostsPerVendor)
		}
	}
	if o.Latency < 0 {
		return fmt.Errorf("testbed %q: negative latency %s", o.Name, o.Latency)
	}
	return nil
}

// ParseVendors reads the CLI's --hosts syntax, "vendor-a=3,vendor-b=3",
// keeping the order given.
func ParseVendors(s string) ([]Vendor, error) {
	var vs []Vendor
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, count, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("parse vendor %q: want NAME=COUNT", part)
		}
		n, err := strconv.Atoi(count)
		if err != nil {
			return nil, fmt.Errorf("parse host count of vendor %q: %w", name, err)
		}
		vs = append(vs, Vendor{Name: name, Hosts: n})
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("parse vendors %q: none given", s)
	}
	return vs, nil
}
