package network

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/berth-io/berth/control/api"
)

func TestPodNetworkConfigGivesPodsTheNodeCIDRBehindTheBridgeGateway(t *testing.T) {
	cfg := Config{PodCIDR: netip.MustParsePrefix("10.244.7.0/24"), StateDir: "/state", UnderlayMTU: 1400}.withDefaults()
	raw, err := podNetworkConfList(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
		Plugins    []struct {
			Type        string `json:"type"`
			Bridge      string `json:"bridge"`
			IsGateway   bool   `json:"isGateway"`
			IsDefaultGW bool   `json:"isDefaultGateway"`
			IPMasq      bool   `json:"ipMasq"`
			Hairpin     bool   `json:"hairpinMode"`
			MTU         int    `json:"mtu"`
			IPAM        struct {
				Type    string                `json:"type"`
				DataDir string                `json:"dataDir"`
				Ranges  [][]map[string]string `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	p := doc.Plugins[0]
	r := p.IPAM.Ranges[0][0]
	checks := []struct{ what, got, want string }{
		{"name", doc.Name, "berth"},
		{"plugin", p.Type, "bridge"},
		{"bridge", p.Bridge, "berth0"},
		{"ipam", p.IPAM.Type, "host-local"},
		{"ipam dir", p.IPAM.DataDir, "/state/ipam"},
		{"subnet", r["subnet"], "10.244.7.0/24"},
		{"gateway", r["gateway"], "10.244.7.1"},
		{"first pod", r["rangeStart"], "10.244.7.2"},
		{"last pod", r["rangeEnd"], "10.244.7.254"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if !p.IsGateway || !p.IsDefaultGW || p.IPMasq || !p.Hairpin {
		t.Errorf("gateway %v default %v ipMasq %v hairpin %v; want true true false true", p.IsGateway, p.IsDefaultGW, p.IPMasq, p.Hairpin)
	}
	if p.MTU != 1350 {
		t.Errorf("mtu = %d, want underlay 1400 - 50", p.MTU)
	}
}

func TestPodNetworkConfigRejectsUnusablePodCIDRs(t *testing.T) {
	tests := []struct {
		name, cidr, want string
	}{
		{"outside the cluster cidr", "10.250.1.0/24", "not inside cluster cidr"},
		{"too small", "10.244.1.0/31", "too small"},
		{"ipv6", "fd00::/64", "want an IPv4 prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPods(Config{PodCIDR: netip.MustParsePrefix(tt.cidr)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewPods(%s) error = %v, want %q", tt.cidr, err, tt.want)
			}
		})
	}
}

func TestConfigValidationRejectsSettingsThatCannotWork(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"underlay mtu leaves too little", Config{UnderlayMTU: 600}, "underlay mtu"},
		{"vni too large", Config{VNI: 1 << 24}, "vni"},
		{"service cidr overlaps cluster cidr", Config{ServiceCIDR: netip.MustParsePrefix("10.244.128.0/17")}, "overlaps"},
		{"device name too long", Config{VXLANDevice: "berth-overlay-dev"}, "longer than 15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewOverlay(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestVTEPAddressAndMACAreDerivedFromThePodCIDR(t *testing.T) {
	tests := []struct {
		cidr, addr, mac string
	}{
		{"10.244.1.0/24", "10.244.1.0", "0e:62:0a:f4:01:00"},
		{"10.244.200.0/24", "10.244.200.0", "0e:62:0a:f4:c8:00"},
		{"10.244.3.77/24", "10.244.3.0", "0e:62:0a:f4:03:00"},
	}
	for _, tt := range tests {
		p := netip.MustParsePrefix(tt.cidr)
		if got := VTEPAddr(p).String(); got != tt.addr {
			t.Errorf("VTEPAddr(%s) = %s, want %s", tt.cidr, got, tt.addr)
		}
		if got := VTEPMAC(p).String(); got != tt.mac {
			t.Errorf("VTEPMAC(%s) = %s, want %s", tt.cidr, got, tt.mac)
		}
	}
}

func TestGatewayAndLastHostBoundThePodRange(t *testing.T) {
	tests := []struct{ cidr, gw, last string }{
		{"10.244.1.0/24", "10.244.1.1", "10.244.1.254"},
		{"10.244.0.0/23", "10.244.0.1", "10.244.1.254"},
		{"10.244.4.0/30", "10.244.4.1", "10.244.4.2"},
	}
	for _, tt := range tests {
		p := netip.MustParsePrefix(tt.cidr)
		if got := Gateway(p).String(); got != tt.gw {
			t.Errorf("Gateway(%s) = %s, want %s", tt.cidr, got, tt.gw)
		}
		if got := lastHost(p).String(); got != tt.last {
			t.Errorf("lastHost(%s) = %s, want %s", tt.cidr, got, tt.last)
		}
	}
}

func TestNodeInfoFromAPIWaitsForAddressAndPodCIDR(t *testing.T) {
	node := func(ip, cidr string) *api.Node {
		n := &api.Node{Metadata: api.ObjectMeta{Name: "n1"}, Spec: api.NodeSpec{PodCIDR: cidr}}
		if ip != "" {
			n.Status.Addresses = []api.NodeAddress{{Type: api.NodeHostname, Address: "n1"}, {Type: api.NodeInternalIP, Address: ip}}
		}
		return n
	}
	got, err := NodeInfoFromAPI(node("198.18.0.5", "10.244.3.0/24"))
	if err != nil || got != (NodeInfo{Name: "n1", InternalIP: netip.MustParseAddr("198.18.0.5"), PodCIDR: netip.MustParsePrefix("10.244.3.0/24")}) {
		t.Fatalf("NodeInfoFromAPI = %+v, %v", got, err)
	}
	for _, n := range []*api.Node{node("", "10.244.3.0/24"), node("198.18.0.5", "")} {
		if _, err := NodeInfoFromAPI(n); !errors.Is(err, ErrNodeNotReadyForOverlay) {
			t.Errorf("NodeInfoFromAPI(%+v) error = %v, want ErrNodeNotReadyForOverlay", n.Status.Addresses, err)
		}
	}
	if _, err := NodeInfoFromAPI(node("not-an-ip", "10.244.3.0/24")); err == nil || errors.Is(err, ErrNodeNotReadyForOverlay) {
		t.Errorf("a malformed address must be an error of its own, got %v", err)
	}
}

func TestSetupAndTeardownRefuseUIDsThatAreNotSafeFileNames(t *testing.T) {
	p, err := NewPods(Config{PodCIDR: netip.MustParsePrefix("10.244.1.0/24"), NetNSDir: t.TempDir(), StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, uid := range []string{"", "../etc", "a/b", ".hidden"} {
		if _, _, err := p.Setup(t.Context(), PodNetwork{PodUID: uid}); err == nil || !strings.Contains(err.Error(), "invalid pod uid") {
			t.Errorf("Setup(%q) error = %v", uid, err)
		}
		if err := p.Teardown(t.Context(), uid); err == nil || !strings.Contains(err.Error(), "invalid pod uid") {
			t.Errorf("Teardown(%q) error = %v", uid, err)
		}
	}
}
