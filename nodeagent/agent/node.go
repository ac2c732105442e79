package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/internal/version"
)

// HostnameLabel carries the node's name on its Node.
const HostnameLabel = "berth.io/hostname"

// maxPods is the pod capacity every node reports: one /24 pod CIDR leaves
// room for 253 pods; 110 keeps per-pod overhead sane, as Kubernetes does.
const maxPods = 110

// readHostInfo fills zero fields of h from the host.
func readHostInfo(h HostInfo) HostInfo {
	if h.CPUs == 0 {
		h.CPUs = goruntime.NumCPU()
	}
	if h.MemoryBytes == 0 {
		h.MemoryBytes = memTotal()
	}
	if h.KernelVersion == "" {
		if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
			h.KernelVersion = strings.TrimSpace(string(b))
		}
	}
	if h.Architecture == "" {
		h.Architecture = goruntime.GOARCH
	}
	return h
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// nodeImageDigest is the digest of the node image the host runs: from the
// config, else the manifest's digest field, else the name of the image
// directory /opt/berth/current points at.
func (a *Agent) nodeImageDigest() string {
	if a.cfg.NodeImageDigest != "" {
		return a.cfg.NodeImageDigest
	}
	if data, err := os.ReadFile(a.cfg.ManifestFile); err == nil {
		var m struct {
			Digest string `json:"digest"`
		}
		if json.Unmarshal(data, &m) == nil && m.Digest != "" {
			return m.Digest
		}
		if target, err := filepath.EvalSymlinks(filepath.Dir(a.cfg.ManifestFile)); err == nil {
			if base := filepath.Base(target); strings.HasPrefix(base, "sha256") {
				return base
			}
		}
	}
	return ""
}

// capacity returns the node's capacity and allocatable.
func (a *Agent) capacity(h HostInfo) (api.ResourceList, api.ResourceList) {
	cpuMilli := int64(h.CPUs) * 1000
	mem := h.MemoryBytes
	capac := api.ResourceList{
		api.ResourceCPU:    api.Quantity(fmt.Sprintf("%dm", cpuMilli)),
		api.ResourceMemory: api.Quantity(strconv.FormatInt(mem, 10)),
		api.ResourcePods:   api.Quantity(strconv.Itoa(maxPods)),
	}
	if a.cfg.Reserved.CPU != "" {
		if v, err := api.Quantity(a.cfg.Reserved.CPU).MilliValue(); err == nil {
			cpuMilli -= v
		}
	}
	if a.cfg.Reserved.Memory != "" {
		if v, err := api.Quantity(a.cfg.Reserved.Memory).Value(); err == nil {
			mem -= v
		}
	}
	alloc := api.ResourceList{
		api.ResourceCPU:    api.Quantity(fmt.Sprintf("%dm", max(cpuMilli, 0))),
		api.ResourceMemory: api.Quantity(strconv.FormatInt(max(mem, 0), 10)),
		api.ResourcePods:   api.Quantity(strconv.Itoa(maxPods)),
	}
	return capac, alloc
}

// fillNodeStatus writes everything the agent reports into n.
func (a *Agent) fillNodeStatus(ctx context.Context, n *api.Node, h HostInfo) {
	now := a.now().UTC()
	capac, alloc := a.capacity(h)
	n.Status.Addresses = []api.NodeAddress{
		{Type: api.NodeInternalIP, Address: a.cfg.InternalIP},
		{Type: api.NodeHostname, Address: a.cfg.NodeName},
	}
	n.Status.Capacity, n.Status.Allocatable = capac, alloc
	rtVersion := ""
	vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if v, err := a.rt.Version(vctx); err == nil {
		rtVersion = v.Name + "://" + v.Version
	}
	cancel()
	n.Status.NodeInfo = api.NodeInfo{
		NodeImageDigest:         a.nodeImageDigest(),
		BerthVersion:            version.Version,
		ContainerRuntimeVersion: rtVersion,
		KernelVersion:           h.KernelVersion,
		Architecture:            h.Architecture,
	}
	n.Status.LastHeartbeatTime = &now
	n.Status.AgentEndpoint = a.deps.AgentEndpoint
	if rev := a.rulesRevision.Load(); rev > n.Status.ServiceRulesRevision || a.proxy != nil {
		n.Status.ServiceRulesRevision = rev
	}
	ready := api.Condition{Type: api.NodeReady, Status: api.ConditionTrue, Reason: "AgentReady", Message: "the agent is heartbeating and containerd answers"}
	if !a.runtimeHealth.Load() {
		ready = api.Condition{Type: api.NodeReady, Status: api.ConditionFalse, Reason: "RuntimeUnreachable", Message: "containerd does not answer"}
	}
	api.SetCondition(&n.Status.Conditions, ready, now)
}

// register creates or updates the Node and waits for its pod CIDR.
func (a *Agent) register(ctx context.Context) error {
	h := readHostInfo(a.deps.Host)
	a.deps.Host = h
	backoff := 200 * time.Millisecond
	for {
		cidr, err := a.registerOnce(ctx, h)
		if err == nil && cidr.IsValid() {
			a.podCIDR = cidr
			a.markContact()
			a.log.Info("node registered", "node", a.cfg.NodeName, "podCIDR", cidr)
			return nil
		}
		if err != nil {
			a.log.Warn("register node", "node", a.cfg.NodeName, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("register node %s: %w", a.cfg.NodeName, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (a *Agent) registerOnce(ctx context.Context, h HostInfo) (netip.Prefix, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.APITimeout.or(DefaultAPITimeout))
	defer cancel()
	n := &api.Node{}
	err := a.cli.Get(ctx, "", a.cfg.NodeName, n)
	if api.IsNotFound(err) {
		n = &api.Node{Metadata: api.ObjectMeta{Name: a.cfg.NodeName, Labels: a.nodeLabels(nil)}}
		if err := a.cli.Create(ctx, n); err != nil && !api.IsAlreadyExists(err) {
			return netip.Prefix{}, fmt.Errorf("create node: %w", err)
		}
		if err := a.cli.Get(ctx, "", a.cfg.NodeName, n); err != nil {
			return netip.Prefix{}, fmt.Errorf("read node back: %w", err)
		}
	} else if err != nil {
		return netip.Prefix{}, fmt.Errorf("get node: %w", err)
	}
	if want := a.nodeLabels(n.Metadata.Labels); !sameLabels(want, n.Metadata.Labels) {
		n.Metadata.Labels = want
		if err := a.cli.Update(ctx, n); err != nil {
			return netip.Prefix{}, fmt.Errorf("label node: %w", err)
		}
	}
	a.fillNodeStatus(ctx, n, h)
	if err := a.cli.UpdateStatus(ctx, n); err != nil {
		return netip.Prefix{}, fmt.Errorf("report node status: %w", err)
	}
	if n.Spec.PodCIDR == "" {
		return netip.Prefix{}, fmt.Errorf("node %s has no pod CIDR yet", a.cfg.NodeName)
	}
	p, err := netip.ParsePrefix(n.Spec.PodCIDR)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("node %s pod CIDR %q: %w", a.cfg.NodeName, n.Spec.PodCIDR, err)
	}
	return p.Masked(), nil
}

func (a *Agent) nodeLabels(have map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range have {
		out[k] = v
	}
	for k, v := range a.cfg.Labels {
		out[k] = v
	}
	out[HostnameLabel] = a.cfg.NodeName
	return out
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// nodeStatusLoop heartbeats every HeartbeatInterval, and sooner when the
// service rules revision moved.
func (a *Agent) nodeStatusLoop(ctx context.Context) {
	interval := a.cfg.HeartbeatInterval.or(DefaultHeartbeat)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.nodeWake:
		}
		if err := a.heartbeat(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("node heartbeat", "node", a.cfg.NodeName, "err", err)
		}
	}
}

func (a *Agent) heartbeat(ctx context.Context) error {
	for attempt := 0; attempt < 3; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, a.cfg.APITimeout.or(DefaultAPITimeout))
		n := &api.Node{}
		err := a.cli.Get(cctx, "", a.cfg.NodeName, n)
		if err == nil {
			a.fillNodeStatus(cctx, n, a.deps.Host)
			err = a.cli.UpdateStatus(cctx, n)
		}
		cancel()
		if err == nil {
			a.markContact()
			return nil
		}
		if !api.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("update node %s status: conflicts kept recurring", a.cfg.NodeName)
}

// nodeCopy reads this node from the cache (nil before it is seen).
func (a *Agent) nodeCopy() *api.Node {
	if a.nodes == nil {
		return nil
	}
	o, ok := a.nodes.Get("", a.cfg.NodeName)
	if !ok {
		return nil
	}
	return client.DeepCopy(o.(*api.Node))
}
