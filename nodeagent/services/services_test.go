package services

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/berth-io/berth/control/api"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
)

func svc(ns, name, ip string, typ api.ServiceType, ports ...api.ServicePort) api.Service {
	return api.Service{
		Metadata: api.ObjectMeta{Namespace: ns, Name: name},
		Spec:     api.ServiceSpec{Type: typ, ClusterIP: ip, Ports: ports},
	}
}

func eps(ns, name string, rv int64, subsets ...api.EndpointSubset) api.Endpoints {
	return api.Endpoints{Metadata: api.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: rv}, Subsets: subsets}
}

func addrs(ips ...string) []api.EndpointAddress {
	var out []api.EndpointAddress
	for _, ip := range ips {
		out = append(out, api.EndpointAddress{IP: ip})
	}
	return out
}

// summary renders a plan compactly for comparison.
func summary(p Plan) string {
	var b strings.Builder
	for _, r := range p.Ports {
		fmt.Fprintf(&b, "%s %s %s:%d np=%d ->", r.comment(), protoName(r.Protocol), r.ClusterIP, r.Port, r.NodePort)
		for _, e := range r.Endpoints {
			fmt.Fprintf(&b, " %s:%d", e.IP, e.Port)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "nodes %v rev %d", p.NodeAddrs, p.Revision)
	return b.String()
}

func TestBuildPlanMapsServicePortsToReadyEndpoints(t *testing.T) {
	tcp := api.Protocol("TCP")
	tests := []struct {
		name      string
		services  []api.Service
		endpoints []api.Endpoints
		nodes     []netip.Addr
		want      string
	}{
		{
			name:     "ready addresses only, sorted, with the target port of the same name",
			services: []api.Service{svc("default", "web", "10.96.0.10", api.ServiceClusterIP, api.ServicePort{Name: "http", Port: 80})},
			endpoints: []api.Endpoints{eps("default", "web", 7, api.EndpointSubset{
				Addresses:         addrs("10.244.2.5", "10.244.1.9"),
				NotReadyAddresses: addrs("10.244.1.3"),
				Ports:             []api.EndpointPort{{Name: "http", Port: 8080, Protocol: tcp}},
			})},
			want: "default/web:http/tcp tcp 10.96.0.10:80 np=0 -> 10.244.1.9:8080 10.244.2.5:8080\nnodes [] rev 7",
		},
		{
			name:      "no endpoints object means no endpoints (reject)",
			services:  []api.Service{svc("default", "web", "10.96.0.10", api.ServiceClusterIP, api.ServicePort{Port: 80})},
			endpoints: nil,
			want:      "default/web:80/tcp tcp 10.96.0.10:80 np=0 ->\nnodes [] rev 0",
		},
		{
			name: "node ports only for NodePort services; protocols kept apart",
			services: []api.Service{
				svc("a", "dns", "10.96.0.3", api.ServiceNodePort,
					api.ServicePort{Name: "udp", Protocol: "UDP", Port: 53, NodePort: 30053},
					api.ServicePort{Name: "tcp", Protocol: "TCP", Port: 53, NodePort: 30054}),
				svc("a", "plain", "10.96.0.4", api.ServiceClusterIP, api.ServicePort{Port: 80, NodePort: 30080}),
			},
			endpoints: []api.Endpoints{eps("a", "dns", 3,
				api.EndpointSubset{Addresses: addrs("10.244.1.2"), Ports: []api.EndpointPort{{Name: "udp", Port: 5353, Protocol: "UDP"}, {Name: "tcp", Port: 5353, Protocol: tcp}}},
			)},
			nodes: []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("::ffff:198.18.0.2"), netip.MustParseAddr("fd00::1")},
			want: "a/dns:udp/udp udp 10.96.0.3:53 np=30053 -> 10.244.1.2:5353\n" +
				"a/dns:tcp/tcp tcp 10.96.0.3:53 np=30054 -> 10.244.1.2:5353\n" +
				"a/plain:80/tcp tcp 10.96.0.4:80 np=0 ->\nnodes [198.18.0.2] rev 3",
		},
		{
			name: "services without a usable cluster ip get no rules; revision is the newest endpoints",
			services: []api.Service{
				svc("a", "headless", "None", api.ServiceClusterIP, api.ServicePort{Port: 80}),
				svc("a", "pending", "", api.ServiceClusterIP, api.ServicePort{Port: 80}),
			},
			endpoints: []api.Endpoints{eps("a", "headless", 12), eps("a", "pending", 40)},
			want:      "nodes [] rev 40",
		},
		{
			name:     "duplicate addresses across subsets are programmed once",
			services: []api.Service{svc("b", "s", "10.96.1.1", api.ServiceClusterIP, api.ServicePort{Port: 80})},
			endpoints: []api.Endpoints{eps("b", "s", 1,
				api.EndpointSubset{Addresses: addrs("10.244.1.2"), Ports: []api.EndpointPort{{Port: 80}}},
				api.EndpointSubset{Addresses: addrs("10.244.1.2"), Ports: []api.EndpointPort{{Port: 80}}},
			)},
			want: "b/s:80/tcp tcp 10.96.1.1:80 np=0 -> 10.244.1.2:80\nnodes [] rev 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summary(BuildPlan(tt.services, tt.endpoints, tt.nodes)); got != tt.want {
				t.Errorf("plan:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestChainNamesAreStableAndDistinctPerServicePortAndEndpoint(t *testing.T) {
	a := PortRule{Service: "default/web", PortName: "http", Protocol: 6}
	b := PortRule{Service: "default/web", PortName: "http", Protocol: 17}
	c := PortRule{Service: "default/web2", PortName: "http", Protocol: 6}
	if a.chainName() != (PortRule{Service: "default/web", PortName: "http", Protocol: 6}).chainName() {
		t.Error("chain name changes between calls")
	}
	if a.chainName() == b.chainName() || a.chainName() == c.chainName() {
		t.Error("different service ports share a chain name")
	}
	e1 := Endpoint{IP: netip.MustParseAddr("10.244.1.2"), Port: 80}
	e2 := Endpoint{IP: netip.MustParseAddr("10.244.1.2"), Port: 81}
	if a.endpointChainName(e1) == a.endpointChainName(e2) || a.endpointChainName(e1) == b.endpointChainName(e1) {
		t.Error("different endpoints share a chain name")
	}
	if n := len(a.endpointChainName(e1)); n > 64 {
		t.Errorf("chain name of %d bytes", n)
	}
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func TestDNSAnswersServiceNamesAuthoritativelyAndRefusesTheRest(t *testing.T) {
	d := NewDNS(DNSConfig{})
	d.Update([]api.Service{
		svc("default", "web", "10.96.0.10", api.ServiceClusterIP),
		svc("shop", "Cart", "10.96.3.4", api.ServiceClusterIP),
		svc("shop", "pending", "", api.ServiceClusterIP),
	})
	tests := []struct {
		name   string
		q      *dns.Msg
		rcode  int
		answer string
	}{
		{"service A record", query("web.default.svc.berth.", dns.TypeA), dns.RcodeSuccess, "10.96.0.10"},
		{"names are case-insensitive", query("CART.Shop.svc.BERTH.", dns.TypeA), dns.RcodeSuccess, "10.96.3.4"},
		{"unknown service is NXDOMAIN", query("nope.default.svc.berth.", dns.TypeA), dns.RcodeNameError, ""},
		{"service without a cluster ip is NXDOMAIN", query("pending.shop.svc.berth.", dns.TypeA), dns.RcodeNameError, ""},
		{"search-list miss in the cluster domain is NXDOMAIN", query("example.com.default.svc.berth.", dns.TypeA), dns.RcodeNameError, ""},
		{"AAAA of a service is empty NOERROR", query("web.default.svc.berth.", dns.TypeAAAA), dns.RcodeSuccess, ""},
		{"a namespace name exists without data", query("shop.svc.berth.", dns.TypeA), dns.RcodeSuccess, ""},
		{"outside the cluster domain is REFUSED without upstreams", query("example.com.", dns.TypeA), dns.RcodeRefused, ""},
		{"a name merely ending in berth is outside", query("notberth.", dns.TypeA), dns.RcodeRefused, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := d.Answer(context.Background(), tt.q)
			if resp.Rcode != tt.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
			}
			if resp.Id != tt.q.Id {
				t.Errorf("response id %d, want %d", resp.Id, tt.q.Id)
			}
			var got string
			for _, rr := range resp.Answer {
				if a, ok := rr.(*dns.A); ok {
					got = a.A.String()
				}
			}
			if got != tt.answer {
				t.Errorf("answer %q, want %q", got, tt.answer)
			}
			if tt.rcode != dns.RcodeRefused && !resp.Authoritative {
				t.Error("answer in the cluster domain not authoritative")
			}
		})
	}
}

func TestDNSUpdateReplacesTheServedNames(t *testing.T) {
	d := NewDNS(DNSConfig{})
	d.Update([]api.Service{svc("default", "old", "10.96.0.1", api.ServiceClusterIP)})
	d.Update([]api.Service{svc("default", "new", "10.96.0.2", api.ServiceClusterIP)})
	if r := d.Answer(context.Background(), query("old.default.svc.berth.", dns.TypeA)); r.Rcode != dns.RcodeNameError {
		t.Errorf("removed service still answers: %s", dns.RcodeToString[r.Rcode])
	}
	if r := d.Answer(context.Background(), query("new.default.svc.berth.", dns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("new service has no answer: %v", r)
	}
}

func TestResolvConfPointsPodsAtTheNodeDNSWithSearchDomains(t *testing.T) {
	tests := []struct {
		ns, want string
	}{
		{"shop", "nameserver 10.244.1.1\nsearch shop.svc.berth svc.berth\noptions ndots:5\n"},
		{"", "nameserver 10.244.1.1\nsearch default.svc.berth svc.berth\noptions ndots:5\n"},
	}
	for _, tt := range tests {
		if got := string(ResolvConf("10.244.1.1", tt.ns)); got != tt.want {
			t.Errorf("ResolvConf(%q) = %q, want %q", tt.ns, got, tt.want)
		}
	}
}

func TestDNSForwardsNamesOutsideTheClusterToUpstreams(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		_ = w.WriteMsg(m)
	})}
	go func() { _ = up.ActivateAndServe() }()
	defer up.Shutdown()

	// The first upstream does not answer (nothing listens there); the
	// second does.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.LocalAddr().String()
	dead.Close()
	d := NewDNS(DNSConfig{Upstreams: []string{deadAddr, pc.LocalAddr().String()}})
	resp := d.Answer(context.Background(), query("example.com.", dns.TypeA))
	if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
		t.Fatalf("forwarded answer = %v", resp)
	}
	// Cluster names are still answered locally.
	if r := d.Answer(context.Background(), query("x.default.svc.berth.", dns.TypeA)); r.Rcode != dns.RcodeNameError {
		t.Fatalf("cluster name forwarded or answered: %s", dns.RcodeToString[r.Rcode])
	}
}

func TestStaleUDPFlowsAreThoseToServicesAnsweredByRemovedEndpoints(t *testing.T) {
	plan := BuildPlan(
		[]api.Service{
			svc("d", "u", "10.96.0.5", api.ServiceNodePort, api.ServicePort{Protocol: "UDP", Port: 53, NodePort: 30053}),
			svc("d", "t", "10.96.0.6", api.ServiceClusterIP, api.ServicePort{Protocol: "TCP", Port: 53}),
		},
		[]api.Endpoints{
			eps("d", "u", 1, api.EndpointSubset{Addresses: addrs("10.244.1.2"), Ports: []api.EndpointPort{{Port: 5353, Protocol: "UDP"}}}),
			eps("d", "t", 1, api.EndpointSubset{Addresses: addrs("10.244.1.9"), Ports: []api.EndpointPort{{Port: 5353, Protocol: "TCP"}}}),
		},
		[]netip.Addr{netip.MustParseAddr("198.18.0.2")},
	)
	f := newStaleUDPFlows(plan)
	flow := func(proto uint8, dst string, dport uint16, backend string, bport uint16) *netlink.ConntrackFlow {
		return &netlink.ConntrackFlow{
			Forward: netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP("10.244.1.7"), SrcPort: 40000, DstIP: net.ParseIP(dst), DstPort: dport},
			Reverse: netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP(backend), SrcPort: bport, DstIP: net.ParseIP("10.244.1.7"), DstPort: 40000},
		}
	}
	tests := []struct {
		name  string
		flow  *netlink.ConntrackFlow
		stale bool
	}{
		{"to a current endpoint", flow(17, "10.96.0.5", 53, "10.244.1.2", 5353), false},
		{"to a removed endpoint", flow(17, "10.96.0.5", 53, "10.244.2.4", 5353), true},
		{"through the node port to a removed endpoint", flow(17, "198.18.0.2", 30053, "10.244.2.4", 5353), true},
		{"through the node port to a current endpoint", flow(17, "198.18.0.2", 30053, "10.244.1.2", 5353), false},
		{"tcp to a removed endpoint is left to finish", flow(6, "10.96.0.6", 53, "10.244.2.4", 5353), false},
		{"udp that is not service traffic", flow(17, "10.244.2.8", 53, "10.244.2.8", 53), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.MatchConntrackFlow(tt.flow); got != tt.stale {
				t.Errorf("stale = %v, want %v", got, tt.stale)
			}
		})
	}
}
