package network_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/internal/prereq"
	"github.com/berth-io/berth/nodeagent/network"
	"github.com/berth-io/berth/nodeagent/network/networktest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// integration checks what every integration test here needs.
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

// serveEcho accepts TCP connections in ns on port and answers each with
// reply, until the test ends.
func serveEcho(t *testing.T, ns string, port int, reply string) {
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
				_, _ = io.WriteString(c, reply)
			}()
		}
	}()
}

// dialRead connects from ns to addr and reads the whole reply.
func dialRead(ns string, addr string) (string, error) {
	var c net.Conn
	if err := networktest.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// nftDump lists table in ns with the nft command.
func nftDump(t *testing.T, ns, table string) string {
	t.Helper()
	var out []byte
	err := networktest.Do(ns, func() (err error) {
		out, err = exec.Command("nft", "list", "table", "ip", table).CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("nft list table %s: %v\n%s", table, err, out)
	}
	return string(out)
}

func TestIntegrationPodsOnDifferentNodesReachEachOtherThroughTheOverlay(t *testing.T) {
	integration(t)
	c := networktest.NewCluster(t, 2)
	a := c.Nodes[0].AddPod(t, "a")
	b := c.Nodes[1].AddPod(t, "b")
	if !c.Nodes[0].PodCIDR.Contains(a.IP) || !c.Nodes[1].PodCIDR.Contains(b.IP) {
		t.Fatalf("pod addresses %s, %s outside their nodes' pod cidrs", a.IP, b.IP)
	}
	serveEcho(t, b.NS, 8080, "hello from b")
	got, err := dialRead(a.NS, netip.AddrPortFrom(b.IP, 8080).String())
	if err != nil || got != "hello from b" {
		t.Fatalf("pod a -> pod b across nodes: %q, %v", got, err)
	}
	serveEcho(t, a.NS, 8080, "hello from a")
	got, err = dialRead(b.NS, netip.AddrPortFrom(a.IP, 8080).String())
	if err != nil || got != "hello from a" {
		t.Fatalf("pod b -> pod a across nodes: %q, %v", got, err)
	}
	// The node itself reaches remote pods too (its source is its VTEP
	// address, which the peer routes back through the overlay).
	got, err = dialRead(c.Nodes[0].NS, netip.AddrPortFrom(b.IP, 8080).String())
	if err != nil || got != "hello from b" {
		t.Fatalf("node 1 -> pod b: %q, %v", got, err)
	}

	want := c.Nodes[0].Config.PodMTU()
	if err := networktest.WithHandle(a.NS, func(h *netlink.Handle) error {
		l, err := h.LinkByName(network.PodInterface)
		if err != nil {
			return err
		}
		if l.Attrs().MTU != want {
			return fmt.Errorf("pod mtu %d, want %d", l.Attrs().MTU, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// vxlanPacket is a VXLAN payload (VNI 1) carrying an Ethernet frame with an
// IPv4/UDP datagram from src to dst:port.
func vxlanPacket(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, port uint16, payload []byte) []byte {
	udp := binary.BigEndian.AppendUint16(nil, 40000)
	udp = binary.BigEndian.AppendUint16(udp, port)
	udp = binary.BigEndian.AppendUint16(udp, uint16(8+len(payload)))
	udp = append(udp, 0, 0) // no checksum
	udp = append(udp, payload...)
	ip := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, unix.IPPROTO_UDP, 0, 0}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
	ip = append(ip, src.AsSlice()...)
	ip = append(ip, dst.AsSlice()...)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	frame := append(append(append([]byte{}, dstMAC...), srcMAC...), 0x08, 0x00)
	frame = append(frame, ip...)
	frame = append(frame, udp...)
	vx := []byte{0x08, 0, 0, 0, 0, 0, byte(network.DefaultVNI), 0}
	return append(vx, frame...)
}

func TestIntegrationOverlayDropsVXLANFromAddressesThatAreNotNodes(t *testing.T) {
	integration(t)
	c := networktest.NewCluster(t, 2)
	n1, n2 := c.Nodes[0], c.Nodes[1]
	a := n1.AddPod(t, "a")

	var pc net.PacketConn
	if err := networktest.Do(a.NS, func() (err error) {
		pc, err = net.ListenPacket("udp", ":9999")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	send := func(fromNS string, payload string) {
		t.Helper()
		pkt := vxlanPacket(network.VTEPMAC(n1.PodCIDR), network.VTEPMAC(n2.PodCIDR),
			netip.MustParseAddr("10.244.2.77"), a.IP, 9999, []byte(payload))
		if err := networktest.Do(fromNS, func() error {
			conn, err := net.Dial("udp", netip.AddrPortFrom(n1.IP, network.DefaultVXLANPort).String())
			if err != nil {
				return err
			}
			defer conn.Close()
			_, err = conn.Write(pkt)
			return err
		}); err != nil {
			t.Fatalf("send vxlan packet: %v", err)
		}
	}

	before, err := n1.Overlay.DroppedOverlayPackets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	send(c.Router, "from-router")
	// Wait for the drop to be counted (the packet crosses a veth queue).
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := n1.Overlay.DroppedOverlayPackets(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the vxlan packet from the router was never counted as dropped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The same packet from a node's address is decapsulated and delivered:
	// the filter, not a malformed packet, stopped the first one.
	send(n2.NS, "from-node")
	_ = pc.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 100)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("pod a never received the packet sent from a node: %v", err)
	}
	if got := string(buf[:n]); got != "from-node" {
		t.Fatalf("pod a received %q first; the packet from the router must have been dropped", got)
	}
}

func TestIntegrationPodSetupIsIdempotentAndPodsAreFoundAfterARestart(t *testing.T) {
	integration(t)
	ctx := context.Background()
	c := networktest.NewCluster(t, 1)
	node := c.Nodes[0]
	pod := network.PodNetwork{PodUID: "uid-web-1", Namespace: "shop", Name: "web-1"}
	ns1, ip1, err := node.Pods.Setup(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	ns2, ip2, err := node.Pods.Setup(ctx, pod)
	if err != nil || ns2 != ns1 || ip2 != ip1 {
		t.Fatalf("second Setup = %s %s %v, want %s %s", ns2, ip2, err, ns1, ip1)
	}
	if ip1 != network.Gateway(node.PodCIDR).Next() {
		t.Errorf("first pod got %s, want the first address after the gateway", ip1)
	}

	restarted, err := network.NewPods(node.Config)
	if err != nil {
		t.Fatal(err)
	}
	list, err := restarted.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []network.Attachment{{PodUID: pod.PodUID, Namespace: "shop", Name: "web-1", NetNSPath: ns1, IP: ip1}}
	if fmt.Sprint(list) != fmt.Sprint(want) {
		t.Fatalf("List after restart = %+v, want %+v", list, want)
	}

	// A second pod gets another address; tearing down the first frees its
	// namespace and address, twice without error.
	other := node.AddPod(t, "other")
	if other.IP == ip1 {
		t.Fatalf("two pods share %s", ip1)
	}
	for i := range 2 {
		if err := restarted.Teardown(ctx, pod.PodUID); err != nil {
			t.Fatalf("teardown %d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(ns1); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pod netns %s still exists after teardown: %v", ns1, err)
	}
	list, err = restarted.List(ctx)
	if err != nil || len(list) != 1 || list[0].PodUID != other.UID {
		t.Fatalf("List after teardown = %+v, %v; want only %s", list, err, other.UID)
	}
	// The released address is handed out again.
	_, ip3, err := restarted.Setup(ctx, network.PodNetwork{PodUID: "uid-web-2", Namespace: "shop", Name: "web-2"})
	if err != nil {
		t.Fatal(err)
	}
	if !node.PodCIDR.Contains(ip3) || ip3 == other.IP {
		t.Fatalf("third pod got %s", ip3)
	}
}

func TestIntegrationPodSetupRecoversFromAHalfAttachedPod(t *testing.T) {
	integration(t)
	ctx := context.Background()
	c := networktest.NewCluster(t, 1)
	node := c.Nodes[0]
	pod := network.PodNetwork{PodUID: "uid-half", Namespace: "default", Name: "half"}
	nsPath, _, err := node.Pods.Setup(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a crash between CNI ADD and the cache write: the namespace
	// and veth exist but libcni's cached result is gone.
	if err := os.RemoveAll(filepath.Join(node.Config.StateDir, "cache")); err != nil {
		t.Fatal(err)
	}
	nsPath2, ip2, err := node.Pods.Setup(ctx, pod)
	if err != nil {
		t.Fatalf("Setup over a half-attached pod: %v", err)
	}
	if nsPath2 != nsPath || !node.PodCIDR.Contains(ip2) {
		t.Fatalf("Setup = %s %s, want %s and an address in %s", nsPath2, ip2, nsPath, node.PodCIDR)
	}
	list, err := node.Pods.List(ctx)
	if err != nil || len(list) != 1 || list[0].IP != ip2 {
		t.Fatalf("List = %+v, %v; want the one pod with %s", list, err, ip2)
	}
}

func TestIntegrationOverlaySyncRemovesStalePeersAndIsIdempotent(t *testing.T) {
	integration(t)
	ctx := context.Background()
	c := networktest.NewCluster(t, 3)
	n1 := c.Nodes[0]

	type state struct{ routes, neighs, fdb, table string }
	read := func() state {
		t.Helper()
		var s state
		if err := networktest.WithHandle(n1.NS, func(h *netlink.Handle) error {
			l, err := h.LinkByName(network.DefaultVXLANDevice)
			if err != nil {
				return err
			}
			rs, err := h.RouteList(l, unix.AF_INET)
			if err != nil {
				return err
			}
			for _, r := range rs {
				s.routes += fmt.Sprintf("%s via %s;", r.Dst, r.Gw)
			}
			ns, err := h.NeighList(l.Attrs().Index, unix.AF_INET)
			if err != nil {
				return err
			}
			for _, n := range ns {
				s.neighs += fmt.Sprintf("%s=%s;", n.IP, n.HardwareAddr)
			}
			fs, err := h.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
			if err != nil {
				return err
			}
			for _, n := range fs {
				s.fdb += fmt.Sprintf("%s->%s;", n.HardwareAddr, n.IP)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		s.table = nftDump(t, n1.NS, network.DefaultTable)
		return s
	}
	all := read()
	for _, peer := range c.Nodes[1:] {
		mac := network.VTEPMAC(peer.PodCIDR).String()
		for what, text := range map[string]string{"route": all.routes, "neighbour": all.neighs, "fdb": all.fdb, "table": all.table} {
			needle := map[string]string{"route": peer.PodCIDR.String(), "neighbour": mac, "fdb": mac + "->" + peer.IP.String(), "table": peer.IP.String()}[what]
			if !bytes.Contains([]byte(text), []byte(needle)) {
				t.Errorf("%s of %s missing from %s: %s", needle, peer.Name, what, text)
			}
		}
	}

	// Node 3 leaves the node list (and node 4 registers without a pod CIDR
	// yet): node 1 forgets node 3 and waits for node 4.
	apiNode := func(name string, ip netip.Addr, cidr string) *api.Node {
		return &api.Node{
			Metadata: api.ObjectMeta{Name: name}, Spec: api.NodeSpec{PodCIDR: cidr},
			Status: api.NodeStatus{Addresses: []api.NodeAddress{{Type: api.NodeInternalIP, Address: ip.String()}}},
		}
	}
	nodes := []*api.Node{
		apiNode(n1.Name, n1.IP, n1.PodCIDR.String()),
		apiNode(c.Nodes[1].Name, c.Nodes[1].IP, c.Nodes[1].PodCIDR.String()),
		apiNode("node-4", netip.MustParseAddr("198.18.9.2"), ""),
	}
	if err := n1.Overlay.SyncNodes(ctx, n1.Name, nodes); err != nil {
		t.Fatal(err)
	}
	two := read()
	n3 := c.Nodes[2]
	for what, text := range map[string]string{"route": two.routes, "neighbour": two.neighs, "fdb": two.fdb, "table": two.table} {
		for _, needle := range []string{n3.PodCIDR.String(), network.VTEPMAC(n3.PodCIDR).String(), n3.IP.String()} {
			if bytes.Contains([]byte(text), []byte(needle)) {
				t.Errorf("%s still mentions departed node 3 (%s): %s", what, needle, text)
			}
		}
	}

	// Syncing again, and from a new Overlay over the same kernel state (an
	// agent restart), changes nothing.
	if err := n1.Overlay.Sync(ctx, n1.Info(), []network.NodeInfo{c.Nodes[1].Info()}); err != nil {
		t.Fatal(err)
	}
	restarted, err := network.NewOverlay(n1.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := restarted.Sync(ctx, n1.Info(), []network.NodeInfo{c.Nodes[1].Info()}); err != nil {
		t.Fatal(err)
	}
	if again := read(); again != two {
		t.Fatalf("resync changed state:\nbefore %+v\nafter  %+v", two, again)
	}
}

func TestIntegrationCleanupRemovesEverythingTheNetworkCreated(t *testing.T) {
	integration(t)
	ctx := context.Background()
	c := networktest.NewCluster(t, 2)
	n1 := c.Nodes[0]
	p := n1.AddPod(t, "a")
	if err := n1.Pods.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n1.Overlay.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.NS); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod netns remains: %v", err)
	}
	if err := networktest.WithHandle(n1.NS, func(h *netlink.Handle) error {
		links, err := h.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if n := l.Attrs().Name; n != "lo" && n != "eth0" {
				return fmt.Errorf("link %s (%s) remains", n, l.Type())
			}
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	var out []byte
	_ = networktest.Do(n1.NS, func() (err error) {
		out, err = exec.Command("nft", "list", "ruleset").CombinedOutput()
		return err
	})
	if len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("nftables ruleset not empty after cleanup:\n%s", out)
	}
	// Cleaning up twice is fine.
	if err := n1.Pods.Cleanup(ctx); err != nil {
		t.Error(err)
	}
	if err := n1.Overlay.Remove(ctx); err != nil {
		t.Error(err)
	}
}
