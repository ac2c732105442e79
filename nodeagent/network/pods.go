package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
)

// PodNetwork identifies a pod to attach. The UID names its namespace and
// its CNI attachment; namespace and name travel in the CNI arguments so
// List can report them after an agent restart.
type PodNetwork struct {
	// PodUID is the pod's metadata.uid.
	PodUID string
	// Namespace is the pod's namespace.
	Namespace string
	// Name is the pod's name.
	Name string
}

// Attachment is a pod attached to the pod network.
type Attachment struct {
	// PodUID is the pod's metadata.uid.
	PodUID string
	// Namespace and Name are the pod's, as given to Setup ("" when the
	// CNI cache is gone).
	Namespace, Name string
	// NetNSPath is the pod's network namespace ("" when only the CNI cache
	// remains after a crash: Teardown it).
	NetNSPath string
	// IP is the pod's address (invalid when unknown).
	IP netip.Addr
}

// Pods attaches pods to the node's pod network through CNI. It is safe for
// concurrent use by different pods; calls for one pod must not overlap.
type Pods struct {
	cfg      Config
	cni      *libcni.CNIConfig
	podList  *libcni.NetworkConfigList
	loopList *libcni.NetworkConfigList
}

// uidPattern is what a pod UID may look like: it becomes a file name.
var uidPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// NewPods checks cfg and prepares the CNI configuration. It does no I/O.
func NewPods(cfg Config) (*Pods, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("pod network config: %w", err)
	}
	raw, err := podNetworkConfList(cfg)
	if err != nil {
		return nil, fmt.Errorf("pod network config: %w", err)
	}
	podList, err := libcni.ConfListFromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("parse pod network config: %w", err)
	}
	loopList, err := libcni.ConfListFromBytes(loopbackConfList())
	if err != nil {
		return nil, fmt.Errorf("parse loopback config: %w", err)
	}
	exec := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: nil}}
	return &Pods{
		cfg:      cfg,
		cni:      libcni.NewCNIConfigWithCacheDir([]string{cfg.PluginDir}, filepath.Join(cfg.StateDir, "cache"), exec),
		podList:  podList,
		loopList: loopList,
	}, nil
}

// netnsPath is where the pod's namespace is pinned.
func (p *Pods) netnsPath(uid string) string { return filepath.Join(p.cfg.NetNSDir, uid) }

// runtimeConf is the CNI runtime configuration of a pod's interface.
func (p *Pods) runtimeConf(pod PodNetwork, nsPath, ifName string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: pod.PodUID,
		NetNS:       nsPath,
		IfName:      ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_UID", pod.PodUID},
		},
	}
}

// EnsureBridge creates the pods' bridge with the gateway address if it is
// missing, so the node's DNS server can listen on the gateway before the
// first pod starts, and routes the service CIDR through it (see
// Config.ServiceCIDR). Setup calls it too.
func (p *Pods) EnsureBridge(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ensure bridge %s: %w", p.cfg.Bridge, err)
	}
	ns, err := nsHandle(p.cfg.NodeNetNS)
	if err != nil {
		return fmt.Errorf("ensure bridge %s: open node netns: %w", p.cfg.Bridge, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("ensure bridge %s: netlink: %w", p.cfg.Bridge, err)
	}
	defer h.Close()
	link, err := h.LinkByName(p.cfg.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("ensure bridge %s: %w", p.cfg.Bridge, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: p.cfg.Bridge, MTU: p.cfg.PodMTU(), TxQLen: -1}}
		if err := h.LinkAdd(br); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("ensure bridge %s: create: %w", p.cfg.Bridge, err)
		}
		if link, err = h.LinkByName(p.cfg.Bridge); err != nil {
			return fmt.Errorf("ensure bridge %s: %w", p.cfg.Bridge, err)
		}
		p.cfg.Logger.Debug("created pod bridge", "bridge", p.cfg.Bridge)
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		return fmt.Errorf("ensure bridge %s: link exists with type %s", p.cfg.Bridge, link.Type())
	}
	gw := Gateway(p.cfg.PodCIDR)
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(p.cfg.PodCIDR.Bits(), 32)}}
	if err := h.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("ensure bridge %s: address %s: %w", p.cfg.Bridge, addr, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("ensure bridge %s: up: %w", p.cfg.Bridge, err)
	}
	svc := &netlink.Route{
		LinkIndex: link.Attrs().Index, Dst: prefixIPNet(p.cfg.ServiceCIDR),
		Scope: netlink.SCOPE_LINK, Src: gw.AsSlice(),
	}
	if err := h.RouteReplace(svc); err != nil {
		return fmt.Errorf("ensure bridge %s: route to service cidr %s: %w", p.cfg.Bridge, p.cfg.ServiceCIDR, err)
	}
	return nil
}

// Setup attaches the pod to the pod network and returns the path of its
// network namespace (for the runtime to join) and its address. It is
// idempotent: a pod already attached gets its existing namespace and
// address back; a pod left half attached by a crash is cleaned and attached
// afresh.
func (p *Pods) Setup(ctx context.Context, pod PodNetwork) (string, netip.Addr, error) {
	if !uidPattern.MatchString(pod.PodUID) {
		return "", netip.Addr{}, fmt.Errorf("set up pod network: invalid pod uid %q", pod.PodUID)
	}
	nsPath := p.netnsPath(pod.PodUID)
	if isNetNS(nsPath) {
		if ip, err := p.cachedIP(pod.PodUID); err == nil && ip.IsValid() {
			return nsPath, ip, nil
		}
	}
	if err := p.Teardown(ctx, pod.PodUID); err != nil {
		return "", netip.Addr{}, fmt.Errorf("set up pod %s/%s network: clear partial state: %w", pod.Namespace, pod.Name, err)
	}
	if err := p.EnsureBridge(ctx); err != nil {
		return "", netip.Addr{}, fmt.Errorf("set up pod %s/%s network: %w", pod.Namespace, pod.Name, err)
	}
	if err := createNetNS(nsPath); err != nil {
		return "", netip.Addr{}, fmt.Errorf("set up pod %s/%s network: %w", pod.Namespace, pod.Name, err)
	}
	var res *types100.Result
	err := inNetNS(p.cfg.NodeNetNS, func() error {
		if _, err := p.cni.AddNetworkList(ctx, p.loopList, p.runtimeConf(pod, nsPath, "lo")); err != nil {
			return fmt.Errorf("cni add loopback: %w", err)
		}
		r, err := p.cni.AddNetworkList(ctx, p.podList, p.runtimeConf(pod, nsPath, PodInterface))
		if err != nil {
			return fmt.Errorf("cni add %s: %w", NetworkName, err)
		}
		res, err = types100.NewResultFromResult(r)
		if err != nil {
			return fmt.Errorf("cni result: %w", err)
		}
		return nil
	})
	if err == nil {
		var ip netip.Addr
		if ip, err = resultIP(res); err == nil {
			p.cfg.Logger.Debug("attached pod", "pod", pod.Namespace+"/"+pod.Name, "uid", pod.PodUID, "ip", ip)
			return nsPath, ip, nil
		}
	}
	if terr := p.Teardown(context.WithoutCancel(ctx), pod.PodUID); terr != nil {
		err = errors.Join(err, fmt.Errorf("undo: %w", terr))
	}
	return "", netip.Addr{}, fmt.Errorf("set up pod %s/%s network: %w", pod.Namespace, pod.Name, err)
}

// resultIP picks the pod's IPv4 address from a CNI result.
func resultIP(res *types100.Result) (netip.Addr, error) {
	if res == nil {
		return netip.Addr{}, errors.New("cni result has no addresses")
	}
	for _, ipc := range res.IPs {
		if a, ok := netip.AddrFromSlice(ipc.Address.IP); ok && a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	return netip.Addr{}, errors.New("cni result has no IPv4 address")
}

// cachedIP reads the pod's address from libcni's cache of results.
func (p *Pods) cachedIP(uid string) (netip.Addr, error) {
	r, err := p.cni.GetNetworkListCachedResult(p.podList, p.runtimeConf(PodNetwork{PodUID: uid}, "", PodInterface))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read cni cache of pod %s: %w", uid, err)
	}
	if r == nil {
		return netip.Addr{}, nil
	}
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read cni cache of pod %s: %w", uid, err)
	}
	return resultIP(res)
}

// Teardown detaches the pod (CNI DEL, which releases its address) and
// removes its network namespace. It tolerates every partial state, and a
// pod that was never attached, so it can be repeated until it succeeds.
func (p *Pods) Teardown(ctx context.Context, podUID string) error {
	if !uidPattern.MatchString(podUID) {
		return fmt.Errorf("tear down pod network: invalid pod uid %q", podUID)
	}
	nsPath := p.netnsPath(podUID)
	cniNS := ""
	if isNetNS(nsPath) {
		cniNS = nsPath
	}
	pod := PodNetwork{PodUID: podUID}
	err := inNetNS(p.cfg.NodeNetNS, func() error {
		var errs []error
		if err := p.cni.DelNetworkList(ctx, p.podList, p.runtimeConf(pod, cniNS, PodInterface)); err != nil {
			errs = append(errs, fmt.Errorf("cni del %s: %w", NetworkName, err))
		}
		if err := p.cni.DelNetworkList(ctx, p.loopList, p.runtimeConf(pod, cniNS, "lo")); err != nil {
			errs = append(errs, fmt.Errorf("cni del loopback: %w", err))
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("tear down pod %s network: %w", podUID, err)
	}
	if err := removeNetNS(nsPath); err != nil {
		return fmt.Errorf("tear down pod %s network: %w", podUID, err)
	}
	p.cfg.Logger.Debug("detached pod", "uid", podUID)
	return nil
}

// List reports every pod with a network namespace or a cached CNI result on
// this node, so a restarted agent adopts attached pods and tears down those
// no longer wanted. It sorts by pod UID.
func (p *Pods) List(ctx context.Context) ([]Attachment, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list pod networks: %w", err)
	}
	uids := map[string]bool{}
	entries, err := os.ReadDir(p.cfg.NetNSDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list pod networks: %w", err)
	}
	for _, e := range entries {
		if uidPattern.MatchString(e.Name()) {
			uids[e.Name()] = true
		}
	}
	results, err := os.ReadDir(filepath.Join(p.cfg.StateDir, "cache", "results"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list pod networks: %w", err)
	}
	prefix, suffix := NetworkName+"-", "-"+PodInterface
	for _, e := range results {
		n := e.Name()
		if strings.HasPrefix(n, prefix) && strings.HasSuffix(n, suffix) && len(n) > len(prefix)+len(suffix) {
			if uid := n[len(prefix) : len(n)-len(suffix)]; uidPattern.MatchString(uid) {
				uids[uid] = true
			}
		}
	}
	out := make([]Attachment, 0, len(uids))
	for uid := range uids {
		a := Attachment{PodUID: uid}
		if nsPath := p.netnsPath(uid); isNetNS(nsPath) {
			a.NetNSPath = nsPath
		}
		if ip, err := p.cachedIP(uid); err == nil {
			a.IP = ip
		}
		if _, rt, err := p.cni.GetNetworkListCachedConfig(p.podList, p.runtimeConf(PodNetwork{PodUID: uid}, "", PodInterface)); err == nil && rt != nil {
			for _, kv := range rt.Args {
				switch kv[0] {
				case "K8S_POD_NAMESPACE":
					a.Namespace = kv[1]
				case "K8S_POD_NAME":
					a.Name = kv[1]
				}
			}
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PodUID < out[j].PodUID })
	return out, nil
}

// Cleanup tears down every attached pod and deletes the bridge: what a node
// leaving the cluster runs. The overlay has its own Remove.
func (p *Pods) Cleanup(ctx context.Context) error {
	pods, err := p.List(ctx)
	if err != nil {
		return fmt.Errorf("clean up pod network: %w", err)
	}
	var errs []error
	for _, a := range pods {
		if err := p.Teardown(ctx, a.PodUID); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteLink(p.cfg.NodeNetNS, p.cfg.Bridge); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up pod network: %w", err)
	}
	return nil
}

// deleteLink deletes the named link in the namespace at nsPath, if present.
func deleteLink(nsPath, name string) error {
	ns, err := nsHandle(nsPath)
	if err != nil {
		return fmt.Errorf("delete link %s: open netns: %w", name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("delete link %s: netlink: %w", name, err)
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	if err := h.LinkDel(link); err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}
