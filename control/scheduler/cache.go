package scheduler

import (
	"fmt"
	"sort"
	"strings"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// defaultMaxPods is a node's pod capacity when it reports none.
const defaultMaxPods = 110

// Cache is the scheduler's picture of the cluster: per node, its
// allocatable resources and the sum of the requests of the pods bound to
// it, kept up to date incrementally from informer events and from the
// scheduler's own bindings. A scheduling decision therefore costs work in
// proportion to the number of nodes, never to the number of pods.
//
// Cache is not safe for concurrent use; the Scheduler guards it.
type Cache struct {
	nodes map[string]*nodeState
	names []string // sorted names of nodes with a Node object
	pods  map[string]podAccount

	// evaluations counts node evaluations (filters and score) made while
	// scheduling: the instrument that proves the cost of a binding does
	// not grow with the number of pods.
	evaluations int64
}

type nodeState struct {
	node      *api.Node // nil while pods name a node we have not seen
	allocCPU  int64     // millicores; 0 means not reported (no limit)
	allocMem  int64     // bytes; 0 means not reported (no limit)
	allocPods int64
	reqCPU    int64
	reqMem    int64
	pods      int64
	byOwner   map[string]int64
}

// podAccount is what one pod adds to its node.
type podAccount struct {
	node    string
	cpu     int64
	mem     int64
	owner   string
	assumed bool // bound by us; the informer has not shown it bound yet
}

// NewCache makes an empty cache.
func NewCache() *Cache {
	return &Cache{nodes: map[string]*nodeState{}, pods: map[string]podAccount{}}
}

func (c *Cache) state(name string) *nodeState {
	s := c.nodes[name]
	if s == nil {
		s = &nodeState{byOwner: map[string]int64{}, allocPods: defaultMaxPods}
		c.nodes[name] = s
	}
	return s
}

// SetNode records a node's current state.
func (c *Cache) SetNode(n *api.Node) {
	s := c.state(n.Metadata.Name)
	isNew := s.node == nil
	s.node = n
	alloc := n.Status.Allocatable
	if len(alloc) == 0 {
		alloc = n.Status.Capacity
	}
	s.allocCPU, s.allocMem, s.allocPods = 0, 0, defaultMaxPods
	if q, ok := alloc[api.ResourceCPU]; ok {
		s.allocCPU, _ = q.MilliValue()
	}
	if q, ok := alloc[api.ResourceMemory]; ok {
		s.allocMem, _ = q.Value()
	}
	if q, ok := alloc[api.ResourcePods]; ok {
		s.allocPods, _ = q.Value()
	}
	if isNew {
		c.names = append(c.names, n.Metadata.Name)
		sort.Strings(c.names)
	}
}

// RemoveNode forgets a node (its pods' accounting stays until they go).
func (c *Cache) RemoveNode(name string) {
	s := c.nodes[name]
	if s == nil || s.node == nil {
		return
	}
	s.node = nil
	i := sort.SearchStrings(c.names, name)
	if i < len(c.names) && c.names[i] == name {
		c.names = append(c.names[:i], c.names[i+1:]...)
	}
	if s.pods == 0 {
		delete(c.nodes, name)
	}
}

// SetPod records a pod's current state: a bound pod that has not finished
// counts against its node.
func (c *Cache) SetPod(p *api.Pod) {
	k := client.ObjectKey(p)
	old, had := c.pods[k]
	if p.Spec.NodeName == "" || api.IsPodFinished(p) {
		if had && old.assumed && p.Spec.NodeName == "" && !api.IsPodFinished(p) {
			return // our binding has not come back through the watch yet
		}
		c.RemovePod(k)
		return
	}
	acc := account(p)
	if had {
		if old.node == acc.node && old.cpu == acc.cpu && old.mem == acc.mem && old.owner == acc.owner {
			if old.assumed {
				old.assumed = false
				c.pods[k] = old
			}
			return
		}
		c.RemovePod(k)
	}
	c.add(k, acc)
}

// Assume counts p against node before the binding is confirmed, so the
// next decision already sees it.
func (c *Cache) Assume(p *api.Pod, node string) {
	k := client.ObjectKey(p)
	c.RemovePod(k)
	acc := account(p)
	acc.node, acc.assumed = node, true
	c.add(k, acc)
}

// RemovePod forgets a pod's accounting (deleted, finished, or a failed
// binding).
func (c *Cache) RemovePod(key string) {
	acc, ok := c.pods[key]
	if !ok {
		return
	}
	delete(c.pods, key)
	s := c.nodes[acc.node]
	if s == nil {
		return
	}
	s.reqCPU -= acc.cpu
	s.reqMem -= acc.mem
	s.pods--
	if acc.owner != "" {
		if s.byOwner[acc.owner]--; s.byOwner[acc.owner] <= 0 {
			delete(s.byOwner, acc.owner)
		}
	}
	if s.node == nil && s.pods == 0 {
		delete(c.nodes, acc.node)
	}
}

func (c *Cache) add(k string, acc podAccount) {
	c.pods[k] = acc
	s := c.state(acc.node)
	s.reqCPU += acc.cpu
	s.reqMem += acc.mem
	s.pods++
	if acc.owner != "" {
		s.byOwner[acc.owner]++
	}
}

// account computes what p requests.
func account(p *api.Pod) podAccount {
	acc := podAccount{node: p.Spec.NodeName}
	for _, ctr := range p.Spec.Containers {
		if q, ok := ctr.Resources.Requests[api.ResourceCPU]; ok {
			v, _ := q.MilliValue()
			acc.cpu += v
		}
		if q, ok := ctr.Resources.Requests[api.ResourceMemory]; ok {
			v, _ := q.Value()
			acc.mem += v
		}
	}
	if r := api.ControllerOf(&p.Metadata); r != nil {
		acc.owner = r.UID
	}
	return acc
}

// The filters a node can fail, in the order they are checked; their names
// appear in the PodScheduled=False message.
const (
	failNotReady      = "not ready"
	failUnschedulable = "unschedulable (cordoned)"
	failSelector      = "did not match the pod's node selector"
	failPods          = "too many pods"
	failCPU           = "insufficient cpu"
	failMemory        = "insufficient memory"
)

var failOrder = []string{failNotReady, failUnschedulable, failSelector, failPods, failCPU, failMemory}

// FitError says why no node fits a pod: how many nodes failed each filter.
type FitError struct {
	// Nodes is how many nodes were considered.
	Nodes int
	// Failures counts nodes by the first filter they failed.
	Failures map[string]int
}

// Error renders the reason the way users know it from Kubernetes:
// "0/3 nodes are available: 1 not ready, 2 insufficient cpu".
func (e *FitError) Error() string {
	if e.Nodes == 0 {
		return "0/0 nodes are available: the cluster has no nodes"
	}
	var parts []string
	for _, f := range failOrder {
		if n := e.Failures[f]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, f))
		}
	}
	return fmt.Sprintf("0/%d nodes are available: %s", e.Nodes, strings.Join(parts, ", "))
}

// Schedule picks the best node for p, or says why none fits. Among nodes
// that pass every filter it prefers the one with the fewest pods of p's
// controller (spreading a deployment's replicas), then the least loaded,
// then the first by name.
func (c *Cache) Schedule(p *api.Pod) (string, *FitError) {
	req := account(p)
	fe := &FitError{Nodes: len(c.names), Failures: map[string]int{}}
	best := ""
	var bestOwned int64
	var bestLoad float64
	for _, name := range c.names {
		s := c.nodes[name]
		c.evaluations++
		if f := s.filter(p, req); f != "" {
			fe.Failures[f]++
			continue
		}
		owned := int64(0)
		if req.owner != "" {
			owned = s.byOwner[req.owner]
		}
		load := s.load(req)
		if best == "" || owned < bestOwned || owned == bestOwned && load < bestLoad {
			best, bestOwned, bestLoad = name, owned, load
		}
	}
	if best == "" {
		return "", fe
	}
	return best, nil
}

// filter returns the first filter the node fails for a pod, or "".
func (s *nodeState) filter(p *api.Pod, req podAccount) string {
	n := s.node
	switch {
	case !api.IsNodeReady(n):
		return failNotReady
	case n.Spec.Unschedulable:
		return failUnschedulable
	case !api.SelectorMatches(p.Spec.NodeSelector, n.Metadata.Labels):
		return failSelector
	case s.pods+1 > s.allocPods:
		return failPods
	case s.allocCPU > 0 && s.reqCPU+req.cpu > s.allocCPU || s.allocCPU == 0 && req.cpu > 0 && hasResource(n, api.ResourceCPU):
		return failCPU
	case s.allocMem > 0 && s.reqMem+req.mem > s.allocMem || s.allocMem == 0 && req.mem > 0 && hasResource(n, api.ResourceMemory):
		return failMemory
	}
	return ""
}

// hasResource reports whether the node reports the resource at all (a
// node reporting 0 has none; one reporting nothing is not limited).
func hasResource(n *api.Node, r api.ResourceName) bool {
	if _, ok := n.Status.Allocatable[r]; ok {
		return true
	}
	_, ok := n.Status.Capacity[r]
	return ok
}

// load is the node's fraction of resources in use once req is added,
// summed over pods, cpu and memory.
func (s *nodeState) load(req podAccount) float64 {
	l := float64(s.pods+1) / float64(max(s.allocPods, 1))
	if s.allocCPU > 0 {
		l += float64(s.reqCPU+req.cpu) / float64(s.allocCPU)
	}
	if s.allocMem > 0 {
		l += float64(s.reqMem+req.mem) / float64(s.allocMem)
	}
	return l
}
