package server

import (
	"net/netip"
	"testing"

	"github.com/berth-io/berth/control/api"
)

func collect(seq func(func(string) bool)) []string {
	var out []string
	seq(func(v string) bool { out = append(out, v); return true })
	return out
}

func TestClusterIPCandidatesSkipNetworkDNSAndBroadcast(t *testing.T) {
	got := collect(clusterIPCandidates(netip.MustParsePrefix("10.96.0.0/29")))
	seen := map[string]bool{}
	for _, ip := range got {
		seen[ip] = true
	}
	if len(got) != 5 || len(seen) != 5 {
		t.Fatalf("got %v, want the 5 addresses 10.96.0.2-10.96.0.6 once each", got)
	}
	for _, reserved := range []string{"10.96.0.0", "10.96.0.1", "10.96.0.7"} {
		if seen[reserved] {
			t.Errorf("candidate %s is reserved", reserved)
		}
	}
	dns, err := DNSServiceIP("10.96.0.0/16")
	if err != nil || dns.String() != "10.96.0.1" {
		t.Fatalf("DNSServiceIP = %v, %v; want 10.96.0.1", dns, err)
	}
}

func TestPodCIDRCandidatesCoverTheClusterCIDRInOrder(t *testing.T) {
	got := collect(podCIDRCandidates(netip.MustParsePrefix("10.244.0.0/22"), 24))
	want := []string{"10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestNodePortCandidatesCoverTheRangeOnce(t *testing.T) {
	got := collect(nodePortCandidates)
	seen := map[string]bool{}
	for _, p := range got {
		seen[p] = true
	}
	n := int(api.NodePortRange[1] - api.NodePortRange[0] + 1)
	if len(got) != n || len(seen) != n || !seen["30000"] || !seen["32767"] {
		t.Fatalf("got %d candidates (%d distinct), want %d covering 30000-32767", len(got), len(seen), n)
	}
}

func TestKeepServiceAllocationsFillsWhatAnUpdateOmits(t *testing.T) {
	old := &api.Service{Spec: api.ServiceSpec{
		Type: api.ServiceNodePort, ClusterIP: "10.96.0.9",
		Ports: []api.ServicePort{{Name: "http", Port: 80, Protocol: api.ProtocolTCP, NodePort: 30080}, {Name: "https", Port: 443, Protocol: api.ProtocolTCP, NodePort: 30443}},
	}}
	cases := []struct {
		name      string
		ports     []api.ServicePort
		wantPorts []int32
	}{
		{"same ports", []api.ServicePort{{Name: "http", Port: 80, Protocol: api.ProtocolTCP}, {Name: "https", Port: 443, Protocol: api.ProtocolTCP}}, []int32{30080, 30443}},
		{"renumbered port keeps its node port by name", []api.ServicePort{{Name: "http", Port: 8080, Protocol: api.ProtocolTCP}}, []int32{30080}},
		{"new port gets none yet", []api.ServicePort{{Name: "admin", Port: 9000, Protocol: api.ProtocolTCP}}, []int32{0}},
		{"explicit node port kept", []api.ServicePort{{Name: "http", Port: 80, Protocol: api.ProtocolTCP, NodePort: 31000}}, []int32{31000}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := &api.Service{Spec: api.ServiceSpec{Type: api.ServiceNodePort, Ports: tc.ports}}
			keepServiceAllocations(svc, old)
			if svc.Spec.ClusterIP != "10.96.0.9" {
				t.Errorf("cluster ip %q, want 10.96.0.9", svc.Spec.ClusterIP)
			}
			for i, want := range tc.wantPorts {
				if got := svc.Spec.Ports[i].NodePort; got != want {
					t.Errorf("port %d: node port %d, want %d", i, got, want)
				}
			}
		})
	}
}
