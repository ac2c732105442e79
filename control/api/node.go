package api

import "time"

// Node is a host that runs pods, as its agent registers it.
type Node struct {
	TypeMeta `json:",inline"`
	// Metadata is the node's metadata; labels include berth.io/hostname.
	Metadata ObjectMeta `json:"metadata"`
	// Spec is the desired state of the node.
	Spec NodeSpec `json:"spec"`
	// Status is what the agent reports.
	Status NodeStatus `json:"status,omitempty"`
}

// NodeSpec is what the control plane decides about a node.
type NodeSpec struct {
	// PodCIDR is the node's slice of the cluster CIDR, allocated by the
	// control plane when the node registers.
	PodCIDR string `json:"podCIDR,omitempty"`
	// Unschedulable stops new pods from being bound to the node (cordon).
	Unschedulable bool `json:"unschedulable,omitempty"`
}

// Node condition types.
const (
	// NodeReady is true while the agent heartbeats and is healthy.
	NodeReady = "Ready"
)

// NodeAddressType is the kind of a node address.
type NodeAddressType string

// The node address types.
const (
	NodeInternalIP NodeAddressType = "InternalIP"
	NodeHostname   NodeAddressType = "Hostname"
)

// NodeAddress is one address of a node.
type NodeAddress struct {
	// Type of address.
	Type NodeAddressType `json:"type"`
	// Address itself.
	Address string `json:"address"`
}

// NodeStatus is what a node's agent reports.
type NodeStatus struct {
	// Addresses of the node; the InternalIP carries overlay traffic.
	Addresses []NodeAddress `json:"addresses,omitempty"`
	// Capacity is what the node has (cpu, memory, pods).
	Capacity ResourceList `json:"capacity,omitempty"`
	// Allocatable is what pods may request (capacity minus reserves).
	Allocatable ResourceList `json:"allocatable,omitempty"`
	// Conditions include Ready.
	Conditions []Condition `json:"conditions,omitempty"`
	// NodeInfo describes the software.
	NodeInfo NodeInfo `json:"nodeInfo,omitempty"`
	// LastHeartbeatTime is when the agent last reported.
	LastHeartbeatTime *time.Time `json:"lastHeartbeatTime,omitempty"`
	// AgentEndpoint is the agent's HTTPS address for logs.
	AgentEndpoint string `json:"agentEndpoint,omitempty"`
	// ServiceRulesRevision is the endpoints revision the node's service
	// rules reflect; a stopping pod waits for every node to pass it.
	ServiceRulesRevision int64 `json:"serviceRulesRevision,omitempty"`
}

// NodeInfo is the software a node runs.
type NodeInfo struct {
	// NodeImageDigest is the digest of the node image the host runs.
	NodeImageDigest string `json:"nodeImageDigest,omitempty"`
	// BerthVersion is the agent's version.
	BerthVersion string `json:"berthVersion,omitempty"`
	// ContainerRuntimeVersion is containerd's version.
	ContainerRuntimeVersion string `json:"containerRuntimeVersion,omitempty"`
	// KernelVersion of the host.
	KernelVersion string `json:"kernelVersion,omitempty"`
	// Architecture of the host, for example amd64.
	Architecture string `json:"architecture,omitempty"`
}

// IsNodeReady reports whether the node's Ready condition is true.
func IsNodeReady(n *Node) bool {
	c := FindCondition(n.Status.Conditions, NodeReady)
	return c != nil && c.Status == ConditionTrue
}

// NodeInternalAddress returns the node's InternalIP, or "".
func NodeInternalAddress(n *Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// Namespace scopes names; deleting one deletes everything in it.
type Namespace struct {
	TypeMeta `json:",inline"`
	// Metadata is the namespace's metadata.
	Metadata ObjectMeta `json:"metadata"`
	// Status says whether the namespace is being deleted.
	Status NamespaceStatus `json:"status,omitempty"`
}

// NamespaceStatus is a namespace's phase.
type NamespaceStatus struct {
	// Phase is Active or Terminating.
	Phase string `json:"phase,omitempty"`
}

// DefaultNamespace is used when an object names none.
const DefaultNamespace = "default"

// SystemNamespace holds berth's own objects (leases, events about nodes).
const SystemNamespace = "berth-system"

// Lease is held by one control-plane instance at a time, so only the leader
// of several runs the scheduler and controllers.
type Lease struct {
	TypeMeta `json:",inline"`
	// Metadata is the lease's metadata.
	Metadata ObjectMeta `json:"metadata"`
	// Spec is who holds the lease and until when.
	Spec LeaseSpec `json:"spec"`
}

// LeaseSpec is a lease's holder and term.
type LeaseSpec struct {
	// HolderIdentity names the holder.
	HolderIdentity string `json:"holderIdentity,omitempty"`
	// LeaseDurationSeconds is how long the lease lasts without renewal.
	LeaseDurationSeconds int32 `json:"leaseDurationSeconds,omitempty"`
	// AcquireTime is when the holder took it.
	AcquireTime *time.Time `json:"acquireTime,omitempty"`
	// RenewTime is when the holder last renewed it.
	RenewTime *time.Time `json:"renewTime,omitempty"`
	// LeaseTransitions counts changes of holder.
	LeaseTransitions int32 `json:"leaseTransitions,omitempty"`
}

// Event records something that happened to an object, for people reading
// `berth describe` and for rollout failure evidence.
type Event struct {
	TypeMeta `json:",inline"`
	// Metadata is the event's metadata.
	Metadata ObjectMeta `json:"metadata"`
	// InvolvedObject is what the event is about.
	InvolvedObject ObjectReference `json:"involvedObject"`
	// Type is Normal or Warning.
	Type string `json:"type"`
	// Reason is a CamelCase word, for example FailedPull.
	Reason string `json:"reason"`
	// Message explains what happened.
	Message string `json:"message"`
	// Source names the component (node name, controller).
	Source string `json:"source,omitempty"`
	// Count is how many times it happened.
	Count int32 `json:"count,omitempty"`
	// FirstTimestamp is the first occurrence.
	FirstTimestamp time.Time `json:"firstTimestamp,omitempty"`
	// LastTimestamp is the latest occurrence.
	LastTimestamp time.Time `json:"lastTimestamp,omitempty"`
}

// The event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// ObjectReference points at an object.
type ObjectReference struct {
	// Kind of the object.
	Kind string `json:"kind"`
	// Namespace of the object, for namespaced kinds.
	Namespace string `json:"namespace,omitempty"`
	// Name of the object.
	Name string `json:"name"`
	// UID of the object.
	UID string `json:"uid,omitempty"`
}

// Member is a read-only view of an etcd member of the control plane.
type Member struct {
	TypeMeta `json:",inline"`
	// Metadata.Name is the member's name.
	Metadata ObjectMeta `json:"metadata"`
	// Status is what etcd reports.
	Status MemberStatus `json:"status"`
}

// MemberStatus is an etcd member as etcd reports it.
type MemberStatus struct {
	// ID is the member ID in hex, used to promote and remove it.
	ID string `json:"id"`
	// PeerURLs the member talks raft on.
	PeerURLs []string `json:"peerURLs,omitempty"`
	// ClientURLs the member serves clients on.
	ClientURLs []string `json:"clientURLs,omitempty"`
	// IsLearner is true until the member is promoted to a voter.
	IsLearner bool `json:"isLearner,omitempty"`
	// Started is false for a member added but not yet running.
	Started bool `json:"started"`
	// IsLeader is true for the raft leader.
	IsLeader bool `json:"isLeader,omitempty"`
}

// ControlPlane lists the API endpoints of the control plane, so agents and
// clients follow control-plane hosts as they change.
type ControlPlane struct {
	// Endpoints are HTTPS base URLs, for example https://198.18.0.10:6443.
	Endpoints []string `json:"endpoints"`
	// ClusterID identifies the cluster; a bootstrap re-run recognises it.
	ClusterID string `json:"clusterID"`
}
