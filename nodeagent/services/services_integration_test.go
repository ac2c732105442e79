package services_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/internal/prereq"
	"github.com/berth-io/berth/nodeagent/network"
	"github.com/berth-io/berth/nodeagent/network/networktest"
	"github.com/berth-io/berth/nodeagent/services"
)

// The service under test: cluster IP 10.96.0.50 port 80 (node port
// 30080) in front of three pods listening on 8080.
var (
	webIP    = netip.MustParseAddr("10.96.0.50")
	udpIP    = netip.MustParseAddr("10.96.0.52")
	emptyIP  = netip.MustParseAddr("10.96.0.51")
	webPort  = uint16(80)
	nodePort = uint16(30080)
)

// svcCluster is two nodes with three web pods (two on node 1, one on node
// 2), a client pod on node 1, service rules on both nodes and DNS on node 1.
type svcCluster struct {
	c      *networktest.Cluster
	eps    map[string]*networktest.Pod // by pod name
	client *networktest.Pod
	rules  []*services.Rules
	dns    *services.DNS
}

func integration(t *testing.T) {
	t.Helper()
	prereq.Integration(t)
	prereq.Root(t)
	prereq.Binary(t, "nft")
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(networktest.PluginDir, p)); err != nil {
			prereq.Missing(t, "CNI plugin "+p+" not in "+networktest.PluginDir+" (apt-get install containernetworking-plugins)")
		}
	}
	if err := networktest.Sweep(); err != nil {
		t.Fatalf("sweep leftovers of earlier runs: %v", err)
	}
}

func newSvcCluster(t *testing.T) *svcCluster {
	t.Helper()
	s := &svcCluster{c: networktest.NewCluster(t, 2), eps: map[string]*networktest.Pod{}}
	n1, n2 := s.c.Nodes[0], s.c.Nodes[1]
	for _, p := range []struct {
		node *networktest.Node
		name string
	}{{n1, "web-1"}, {n1, "web-2"}, {n2, "web-3"}} {
		pod := p.node.AddPod(t, p.name)
		serveNamed(t, pod.NS, 8080, p.name)
		serveNamedUDP(t, pod.NS, 5353, p.name)
		s.eps[p.name] = pod
	}
	s.client = n1.AddPod(t, "client")
	for _, n := range s.c.Nodes {
		r, err := services.NewRules(services.Config{PodCIDR: n.PodCIDR, NodeNetNS: n.NS})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := r.Remove(context.Background()); err != nil {
				t.Errorf("remove rules: %v", err)
			}
		})
		s.rules = append(s.rules, r)
	}
	s.sync(t, "web-1", "web-2", "web-3")
	return s
}

// objects returns the service list and endpoints (with the named pods
// ready) the cluster's rules are synced from.
func (s *svcCluster) objects(ready ...string) ([]api.Service, []api.Endpoints) {
	svcs := []api.Service{
		{
			Metadata: api.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: api.ServiceSpec{Type: api.ServiceNodePort, ClusterIP: webIP.String(), Ports: []api.ServicePort{
				{Name: "http", Protocol: "TCP", Port: int32(webPort), NodePort: int32(nodePort)},
			}},
		},
		{
			Metadata: api.ObjectMeta{Namespace: "default", Name: "udp"},
			Spec: api.ServiceSpec{ClusterIP: udpIP.String(), Ports: []api.ServicePort{
				{Name: "dns", Protocol: "UDP", Port: 53},
			}},
		},
		{
			Metadata: api.ObjectMeta{Namespace: "default", Name: "empty"},
			Spec: api.ServiceSpec{Type: api.ServiceNodePort, ClusterIP: emptyIP.String(), Ports: []api.ServicePort{
				{Name: "http", Protocol: "TCP", Port: 80, NodePort: 30081},
			}},
		},
	}
	var addrs []api.EndpointAddress
	for _, name := range ready {
		addrs = append(addrs, api.EndpointAddress{IP: s.eps[name].IP.String(), PodName: name})
	}
	eps := []api.Endpoints{{
		Metadata: api.ObjectMeta{Namespace: "default", Name: "web", ResourceVersion: int64(100 + len(ready))},
		Subsets:  []api.EndpointSubset{{Addresses: addrs, Ports: []api.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}}}},
	}, {
		Metadata: api.ObjectMeta{Namespace: "default", Name: "udp", ResourceVersion: 50},
		Subsets:  []api.EndpointSubset{{Addresses: addrs, Ports: []api.EndpointPort{{Name: "dns", Port: 5353, Protocol: "UDP"}}}},
	}}
	return svcs, eps
}

// sync programs both nodes with the named pods as ready endpoints.
func (s *svcCluster) sync(t *testing.T, ready ...string) {
	t.Helper()
	svcs, eps := s.objects(ready...)
	for i, r := range s.rules {
		rev, err := r.Sync(context.Background(), svcs, eps, []netip.Addr{s.c.Nodes[i].IP})
		if err != nil {
			t.Fatalf("sync rules of %s: %v", s.c.Nodes[i].Name, err)
		}
		if want := int64(100 + len(ready)); rev != want {
			t.Fatalf("Sync returned revision %d, want %d", rev, want)
		}
	}
}

// serveNamed accepts TCP connections in ns on port; each gets name and a
// newline, then every line it sends echoed back.
func serveNamed(t *testing.T, ns string, port int, name string) {
	t.Helper()
	var l net.Listener
	if err := networktest.Do(ns, func() (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", ns, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := fmt.Fprintln(c, name); err != nil {
					return
				}
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := fmt.Fprintln(c, sc.Text()); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// serveNamedUDP answers every datagram to port in ns with name.
func serveNamedUDP(t *testing.T, ns string, port int, name string) {
	t.Helper()
	var pc net.PacketConn
	if err := networktest.Do(ns, func() (err error) {
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("listen udp in %s: %v", ns, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(name), from)
		}
	}()
}

// conn is an open connection to a named endpoint.
type conn struct {
	net.Conn
	r    *bufio.Reader
	name string
}

// dial connects from ns to addr and reads the responder's name.
func dial(ns, addr string) (*conn, error) {
	var c net.Conn
	if err := networktest.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
		return err
	}); err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	name, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("read responder name from %s: %w", addr, err)
	}
	return &conn{Conn: c, r: r, name: strings.TrimSpace(name)}, nil
}

// responders opens n fresh connections from ns to addr and counts the
// answers by responder.
func responders(t *testing.T, ns, addr string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		c, err := dial(ns, addr)
		if err != nil {
			t.Fatalf("connect to %s: %v", addr, err)
		}
		got[c.name]++
		c.Close()
	}
	return got
}

func allThree(got map[string]int) bool {
	return len(got) == 3 && got["web-1"] > 0 && got["web-2"] > 0 && got["web-3"] > 0
}

func TestIntegrationServiceSpreadsNewConnectionsOverEndpointsOnBothNodes(t *testing.T) {
	integration(t)
	s := newSvcCluster(t)
	n1, n2 := s.c.Nodes[0], s.c.Nodes[1]
	cluster := netip.AddrPortFrom(webIP, webPort).String()
	tests := []struct {
		name, from, addr string
	}{
		{"cluster ip from a pod", s.client.NS, cluster},
		{"cluster ip from an endpoint pod itself (hairpin)", s.eps["web-1"].NS, cluster},
		{"cluster ip from a pod on the other node", s.eps["web-3"].NS, cluster},
		{"cluster ip from the node itself", n1.NS, cluster},
		{"node port of node 1 from outside", s.c.Router, netip.AddrPortFrom(n1.IP, nodePort).String()},
		{"node port of node 2 from outside", s.c.Router, netip.AddrPortFrom(n2.IP, nodePort).String()},
		{"node port from a pod", s.client.NS, netip.AddrPortFrom(n2.IP, nodePort).String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := responders(t, tt.from, tt.addr, 60); !allThree(got) {
				t.Fatalf("60 connections to %s reached %v, want all of web-1, web-2, web-3", tt.addr, got)
			}
		})
	}
}

func TestIntegrationServiceIsReachableByItsDNSNameFromAPod(t *testing.T) {
	integration(t)
	s := newSvcCluster(t)
	n1 := s.c.Nodes[0]
	dnsAddr := netip.AddrPortFrom(network.Gateway(n1.PodCIDR), 53).String()
	s.dns = services.NewDNS(services.DNSConfig{})
	svcs, _ := s.objects()
	s.dns.Update(svcs)
	var pc net.PacketConn
	var l net.Listener
	if err := networktest.Do(n1.NS, func() (err error) {
		if pc, err = net.ListenPacket("udp", dnsAddr); err != nil {
			return err
		}
		l, err = net.Listen("tcp", dnsAddr)
		return err
	}); err != nil {
		t.Fatalf("listen for dns on %s: %v", dnsAddr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.dns.Serve(ctx, pc, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dns server: %v", err)
		}
	})

	// The pod resolves through the node's DNS server, as its resolv.conf
	// (nameserver = the gateway) says, over UDP and TCP.
	for _, netw := range []string{"udp", "tcp"} {
		t.Run(netw, func(t *testing.T) {
			res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (c net.Conn, err error) {
				err = networktest.Do(s.client.NS, func() (err error) {
					var d net.Dialer
					c, err = d.DialContext(ctx, netw, dnsAddr)
					return err
				})
				return c, err
			}}
			ips, err := res.LookupNetIP(context.Background(), "ip4", "web.default.svc.berth.")
			if err != nil || len(ips) != 1 || ips[0] != webIP {
				t.Fatalf("lookup web.default.svc.berth = %v, %v; want %s", ips, err, webIP)
			}
			_, err = res.LookupNetIP(context.Background(), "ip4", "nothing.default.svc.berth.")
			var dnsErr *net.DNSError
			if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
				t.Fatalf("lookup of an unknown service: %v, want not found", err)
			}
			got := responders(t, s.client.NS, netip.AddrPortFrom(ips[0], webPort).String(), 60)
			if !allThree(got) {
				t.Fatalf("60 connections by DNS name reached %v", got)
			}
		})
	}
}

func TestIntegrationServiceWithoutEndpointsRefusesConnectionsAtOnce(t *testing.T) {
	integration(t)
	s := newSvcCluster(t)
	n1 := s.c.Nodes[0]
	for _, tt := range []struct{ name, from, addr string }{
		{"cluster ip from a pod", s.client.NS, netip.AddrPortFrom(emptyIP, 80).String()},
		{"cluster ip from the node", n1.NS, netip.AddrPortFrom(emptyIP, 80).String()},
		{"node port from outside", s.c.Router, netip.AddrPortFrom(n1.IP, 30081).String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dial(tt.from, tt.addr)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("connect to %s = %v, want connection refused", tt.addr, err)
			}
		})
	}
}

func TestIntegrationRemovedEndpointGetsNoNewConnectionsButKeepsEstablishedOnes(t *testing.T) {
	integration(t)
	s := newSvcCluster(t)
	addr := netip.AddrPortFrom(webIP, webPort).String()
	// Open connections until one lands on web-3 (each does with
	// probability 1/3) and keep it.
	var held *conn
	for i := 0; held == nil; i++ {
		if i == 200 {
			t.Fatal("200 connections never reached web-3")
		}
		c, err := dial(s.client.NS, addr)
		if err != nil {
			t.Fatal(err)
		}
		if c.name == "web-3" {
			held = c
		} else {
			c.Close()
		}
	}
	defer held.Close()

	s.sync(t, "web-1", "web-2")
	got := responders(t, s.client.NS, addr, 60)
	if got["web-3"] != 0 || got["web-1"] == 0 || got["web-2"] == 0 {
		t.Fatalf("after removing web-3, 60 new connections reached %v", got)
	}
	if _, err := fmt.Fprintln(held, "still there?"); err != nil {
		t.Fatalf("write on the established connection: %v", err)
	}
	line, err := held.r.ReadString('\n')
	if err != nil || line != "still there?\n" {
		t.Fatalf("established connection to web-3 after its removal: %q, %v", line, err)
	}
}

func TestIntegrationRulesSyncIsIdempotentAndConvergesAfterARestart(t *testing.T) {
	integration(t)
	s := newSvcCluster(t)
	n1 := s.c.Nodes[0]
	dump := func() string {
		t.Helper()
		var out []byte
		err := networktest.Do(n1.NS, func() (err error) {
			out, err = exec.Command("nft", "list", "table", "ip", services.DefaultTable).CombinedOutput()
			return err
		})
		if err != nil {
			t.Fatalf("nft list: %v\n%s", err, out)
		}
		return string(out)
	}
	first := dump()
	for _, want := range []string{webIP.String(), "30080", "numgen random mod 3", "reject with tcp reset", "masquerade", "default/web:http/tcp"} {
		if !strings.Contains(first, want) {
			t.Errorf("rules lack %q:\n%s", want, first)
		}
	}
	s.sync(t, "web-1", "web-2", "web-3")
	if again := dump(); again != first {
		t.Fatalf("second sync changed the rules:\n%s\nvs\n%s", first, again)
	}

	// A new agent (new Rules) over rules an older one left with other
	// endpoints converges to the same rules.
	s.sync(t, "web-1")
	restarted, err := services.NewRules(services.Config{PodCIDR: n1.PodCIDR, NodeNetNS: n1.NS})
	if err != nil {
		t.Fatal(err)
	}
	svcs, eps := s.objects("web-1", "web-2", "web-3")
	if _, err := restarted.Sync(context.Background(), svcs, eps, []netip.Addr{n1.IP}); err != nil {
		t.Fatal(err)
	}
	if again := dump(); again != first {
		t.Fatalf("restarted sync did not converge:\n%s\nvs\n%s", first, again)
	}
	if got := responders(t, s.client.NS, netip.AddrPortFrom(webIP, webPort).String(), 60); !allThree(got) {
		t.Fatalf("after the restart 60 connections reached %v", got)
	}

	// Remove deletes the table (twice without error).
	for range 2 {
		if err := restarted.Remove(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var out []byte
	_ = networktest.Do(n1.NS, func() (err error) {
		out, err = exec.Command("nft", "list", "tables").CombinedOutput()
		return err
	})
	if strings.Contains(string(out), services.DefaultTable) {
		t.Fatalf("table remains after Remove: %s", out)
	}
}

func TestIntegrationSameNodeServiceTrafficWorksWhenTheBridgeBypassesNetfilter(t *testing.T) {
	integration(t)
	s := newSvcCluster(t)
	n1 := s.c.Nodes[0]
	// Without br_netfilter (or with it switched off), replies between pods
	// on one bridge skip the host's conntrack; the rules must not depend
	// on it.
	if err := networktest.Sysctl(n1.NS, "net/bridge/bridge-nf-call-iptables", "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	cluster := netip.AddrPortFrom(webIP, webPort).String()
	for _, tt := range []struct{ name, from string }{
		{"from a pod on the node", s.client.NS},
		{"from an endpoint to itself", s.eps["web-2"].NS},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := responders(t, tt.from, cluster, 60); !allThree(got) {
				t.Fatalf("60 connections reached %v", got)
			}
		})
	}
}

func TestIntegrationUDPClientMovesOffARemovedEndpoint(t *testing.T) {
	integration(t)
	s := newSvcCluster(t)
	// One socket, one source port: conntrack would pin it to its first
	// endpoint for as long as it keeps sending.
	var c net.Conn
	if err := networktest.Do(s.client.NS, func() (err error) {
		c, err = net.Dial("udp", netip.AddrPortFrom(udpIP, 53).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func() string {
		t.Helper()
		if _, err := c.Write([]byte("who?")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("udp service answer: %v", err)
		}
		return string(buf[:n])
	}
	first := ask()
	for range 5 {
		if got := ask(); got != first {
			t.Fatalf("one udp flow answered by %s and then %s", first, got)
		}
	}
	var rest []string
	for _, n := range []string{"web-1", "web-2", "web-3"} {
		if n != first {
			rest = append(rest, n)
		}
	}
	s.sync(t, rest...)
	if got := ask(); got == first {
		t.Fatalf("udp flow still answered by removed endpoint %s", first)
	}
}
