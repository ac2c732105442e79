package agent

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"sync"

	"github.com/berth-io/berth/control/api"
)

// fakeNetwork is an in-memory pod network: it hands out addresses from a
// /24 and remembers attachments across agent restarts (like the kernel).
type fakeNetwork struct {
	mu       sync.Mutex
	next     int
	attached map[string]PodAttachment
	overlay  [][]string
}

func newFakeNetwork() *fakeNetwork {
	return &fakeNetwork{next: 2, attached: map[string]PodAttachment{}}
}

func (n *fakeNetwork) Setup(_ context.Context, pod PodRef) (string, netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if at, ok := n.attached[pod.UID]; ok {
		return at.NetNSPath, at.IP, nil
	}
	ip := netip.MustParseAddr(fmt.Sprintf("10.244.1.%d", n.next))
	n.next++
	at := PodAttachment{UID: pod.UID, NetNSPath: "/run/netns/" + pod.UID, IP: ip}
	n.attached[pod.UID] = at
	return at.NetNSPath, at.IP, nil
}

func (n *fakeNetwork) Teardown(_ context.Context, uid string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.attached, uid)
	return nil
}

func (n *fakeNetwork) List(context.Context) ([]PodAttachment, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []PodAttachment
	for _, at := range n.attached {
		out = append(out, at)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out, nil
}

func (n *fakeNetwork) SyncOverlay(_ context.Context, nodes []*api.Node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var names []string
	for _, x := range nodes {
		names = append(names, x.Metadata.Name)
	}
	n.overlay = append(n.overlay, names)
	return nil
}

func (n *fakeNetwork) DNSAddress() netip.Addr { return netip.MustParseAddr("10.244.1.1") }

func (n *fakeNetwork) isAttached(uid string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.attached[uid]
	return ok
}

// fakeProxy programs nothing and reports the snapshot's revision, as real
// rules would once applied.
type fakeProxy struct {
	mu    sync.Mutex
	syncs []ServiceSnapshot
}

func (p *fakeProxy) Sync(_ context.Context, s ServiceSnapshot) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.syncs = append(p.syncs, s)
	return s.Revision, nil
}
