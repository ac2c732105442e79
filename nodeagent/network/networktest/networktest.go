// Package networktest builds small simulated clusters for the integration
// tests of the pod network and the service rules: a router namespace and
// node namespaces on different subnets behind it, each node with its pod
// network and overlay from package network, and pods as network namespaces
// attached through CNI. No containers are needed.
//
// Everything it creates lives in network namespaces of its own, pinned
// under /run/bnt with names starting "bnt-<pid>-", and addresses come from
// 198.18.0.0/15 (nodes) and the default pod CIDR. It must never touch the
// root network namespace: no interface, route or table is created there.
// Sweep removes what a crashed test run left behind.
package networktest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/berth-io/berth/nodeagent/network"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Dir holds the pinned namespaces and pod namespace directories.
const Dir = "/run/bnt"

// PluginDir is where Debian's containernetworking-plugins puts the CNI
// plugins.
const PluginDir = "/usr/lib/cni"

// prefix is this process's name prefix.
var prefix = "bnt-" + strconv.Itoa(os.Getpid()) + "-"

var seq atomic.Int64

// Name returns a unique name with this process's prefix.
func Name(what string) string {
	return prefix + strconv.FormatInt(seq.Add(1), 10) + "-" + what
}

// Sweep removes namespaces and directories under Dir left by test processes
// that no longer run. It never touches another live process's objects.
func Sweep() error {
	entries, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sweep %s: %w", Dir, err)
	}
	var errs []error
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "bnt-")
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || unix.Kill(pid, 0) == nil {
			continue
		}
		if err := removeTree(filepath.Join(Dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeTree unmounts every pinned namespace under path and removes it.
func removeTree(path string) error {
	var files []string
	_ = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	files = append(files, path)
	for _, f := range files {
		if err := unix.Unmount(f, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", f, err)
		}
	}
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// NewNS creates and pins a network namespace named name under Dir with lo
// up, and removes it when the test ends.
func NewNS(t testing.TB, name string) string {
	t.Helper()
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(Dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() {
		if err := removeTree(path); err != nil {
			t.Errorf("remove netns %s: %v", name, err)
		}
	})
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread ends in the new namespace and is never unlocked, so
		// the runtime discards it with the goroutine.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		errc <- unix.Mount(src, path, "none", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	if err := WithHandle(path, func(h *netlink.Handle) error {
		lo, err := h.LinkByName("lo")
		if err != nil {
			return err
		}
		return h.LinkSetUp(lo)
	}); err != nil {
		t.Fatalf("lo up in %s: %v", name, err)
	}
	return path
}

// Do runs fn on a thread inside the namespace at path; sockets fn opens
// stay in that namespace after it returns.
func Do(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err) // thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// WithHandle runs fn with a netlink handle bound to the namespace at path.
func WithHandle(path string, fn func(h *netlink.Handle) error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h)
}

// Sysctl writes value to /proc/sys/<key> inside the namespace at path.
func Sysctl(path, key, value string) error {
	return Do(path, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
}

// Node is a simulated node: a namespace with an underlay address behind the
// router, a pod network and an overlay.
type Node struct {
	// Name is the node's name.
	Name string
	// NS is the path of its network namespace.
	NS string
	// IP is its underlay (InternalIP) address.
	IP netip.Addr
	// PodCIDR is its pod CIDR.
	PodCIDR netip.Prefix
	// Config is its pod network configuration.
	Config network.Config
	// Pods attaches pods on it.
	Pods *network.Pods
	// Overlay is its overlay.
	Overlay *network.Overlay
}

// Info is the node's overlay identity.
func (n *Node) Info() network.NodeInfo {
	return network.NodeInfo{Name: n.Name, InternalIP: n.IP, PodCIDR: n.PodCIDR}
}

// Cluster is a router namespace and nodes on subnets of their own behind it.
type Cluster struct {
	// Router is the router namespace's path; it has 198.18.<i>.1 towards
	// node i and nothing else.
	Router string
	// Nodes are the nodes, node i (from 1) on 198.18.<i>.0/24 with pod
	// CIDR 10.244.<i>.0/24.
	Nodes []*Node
}

// NewCluster builds a router and n nodes and syncs every node's overlay
// with all the others. Pods, overlays and namespaces are removed when the
// test ends.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ctx := context.Background()
	c := &Cluster{Router: NewNS(t, Name("router"))}
	if err := Sysctl(c.Router, "net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		node := &Node{
			Name:    fmt.Sprintf("node-%d", i),
			NS:      NewNS(t, Name(fmt.Sprintf("node%d", i))),
			IP:      netip.AddrFrom4([4]byte{198, 18, byte(i), 2}),
			PodCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 24),
		}
		if err := c.wire(i, node); err != nil {
			t.Fatalf("wire %s: %v", node.Name, err)
		}
		podDir := filepath.Join(Dir, Name(fmt.Sprintf("pods%d", i)))
		t.Cleanup(func() {
			if err := removeTree(podDir); err != nil {
				t.Errorf("remove %s: %v", podDir, err)
			}
		})
		node.Config = network.Config{
			PodCIDR:   node.PodCIDR,
			PluginDir: PluginDir,
			NetNSDir:  podDir,
			StateDir:  t.TempDir(),
			NodeNetNS: node.NS,
		}
		var err error
		if node.Pods, err = network.NewPods(node.Config); err != nil {
			t.Fatal(err)
		}
		if node.Overlay, err = network.NewOverlay(node.Config); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := node.Pods.Cleanup(context.Background()); err != nil {
				t.Errorf("clean up pods of %s: %v", node.Name, err)
			}
			if err := node.Overlay.Remove(context.Background()); err != nil {
				t.Errorf("remove overlay of %s: %v", node.Name, err)
			}
		})
		if err := node.Pods.EnsureBridge(ctx); err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, node)
	}
	c.SyncOverlays(t, c.Nodes)
	return c
}

// wire connects node i to the router.
func (c *Cluster) wire(i int, node *Node) error {
	nodeNS, err := netns.GetFromPath(node.NS)
	if err != nil {
		return err
	}
	defer nodeNS.Close()
	routerSide := fmt.Sprintf("to-node%d", i)
	gw := netip.AddrFrom4([4]byte{198, 18, byte(i), 1})
	if err := WithHandle(c.Router, func(h *netlink.Handle) error {
		veth := &netlink.Veth{
			LinkAttrs: netlink.LinkAttrs{Name: routerSide},
			PeerName:  "eth0", PeerNamespace: netlink.NsFd(nodeNS),
		}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		l, err := h.LinkByName(routerSide)
		if err != nil {
			return err
		}
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
			return err
		}
		return h.LinkSetUp(l)
	}); err != nil {
		return fmt.Errorf("router side: %w", err)
	}
	return WithHandle(node.NS, func(h *netlink.Handle) error {
		l, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: node.IP.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
			return err
		}
		if err := h.LinkSetUp(l); err != nil {
			return err
		}
		return h.RouteAdd(&netlink.Route{
			Dst: &net.IPNet{IP: net.IPv4(198, 18, 0, 0).To4(), Mask: net.CIDRMask(15, 32)},
			Gw:  gw.AsSlice(), LinkIndex: l.Attrs().Index,
		})
	})
}

// SyncOverlays syncs the overlay of every node with members as its peers.
func (c *Cluster) SyncOverlays(t testing.TB, members []*Node) {
	t.Helper()
	var infos []network.NodeInfo
	for _, m := range members {
		infos = append(infos, m.Info())
	}
	for _, n := range c.Nodes {
		if err := n.Overlay.Sync(context.Background(), n.Info(), infos); err != nil {
			t.Fatalf("sync overlay of %s: %v", n.Name, err)
		}
	}
}

// Pod is a pod attached to a node: just its network namespace.
type Pod struct {
	// UID is the pod's UID.
	UID string
	// NS is the path of its network namespace.
	NS string
	// IP is its address.
	IP netip.Addr
}

// AddPod attaches a pod named name to node.
func (n *Node) AddPod(t testing.TB, name string) *Pod {
	t.Helper()
	uid := fmt.Sprintf("uid-%s-%s", n.Name, name)
	ns, ip, err := n.Pods.Setup(context.Background(), network.PodNetwork{PodUID: uid, Namespace: "default", Name: name})
	if err != nil {
		t.Fatalf("set up pod %s on %s: %v", name, n.Name, err)
	}
	return &Pod{UID: uid, NS: ns, IP: ip}
}
