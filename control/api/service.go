package api

// Service gives a stable virtual address (and optionally node ports) to the
// Ready pods its selector matches.
type Service struct {
	TypeMeta `json:",inline"`
	// Metadata is the service's metadata.
	Metadata ObjectMeta `json:"metadata"`
	// Spec is the desired service.
	Spec ServiceSpec `json:"spec"`
	// Status is empty for now; kept for symmetry and future load balancers.
	Status ServiceStatus `json:"status,omitempty"`
}

// ServiceType is how a service is reached.
type ServiceType string

// The service types.
const (
	// ServiceClusterIP is reachable on a virtual IP inside the cluster.
	ServiceClusterIP ServiceType = "ClusterIP"
	// ServiceNodePort is also reachable on a port of every node.
	ServiceNodePort ServiceType = "NodePort"
)

// ServiceTypes lists the allowed service types.
var ServiceTypes = []ServiceType{ServiceClusterIP, ServiceNodePort}

// NodePortRange is the range node ports are allocated from.
var NodePortRange = [2]int32{30000, 32767}

// ServiceSpec is a service's selector and ports.
type ServiceSpec struct {
	// Type is ClusterIP (default) or NodePort.
	Type ServiceType `json:"type,omitempty"`
	// Selector picks the pods by label.
	Selector map[string]string `json:"selector,omitempty"`
	// Ports the service exposes; at least one.
	Ports []ServicePort `json:"ports"`
	// ClusterIP is allocated from the service CIDR by the server; a user
	// may ask for a specific free one.
	ClusterIP string `json:"clusterIP,omitempty"`
}

// ServicePort maps a service port to a port of the pods.
type ServicePort struct {
	// Name is required when there are several ports.
	Name string `json:"name,omitempty"`
	// Protocol is TCP (default) or UDP.
	Protocol Protocol `json:"protocol,omitempty"`
	// Port on the cluster IP.
	Port int32 `json:"port"`
	// TargetPort is the pods' port, by number or name; defaults to Port.
	TargetPort IntOrString `json:"targetPort,omitempty"`
	// NodePort, for NodePort services, is allocated from 30000-32767
	// unless given.
	NodePort int32 `json:"nodePort,omitempty"`
}

// ServiceStatus is reserved.
type ServiceStatus struct{}

// Endpoints lists the ready addresses behind a service; the endpoints
// controller keeps it current and agents program their rules from it.
type Endpoints struct {
	TypeMeta `json:",inline"`
	// Metadata has the same name and namespace as the service.
	Metadata ObjectMeta `json:"metadata"`
	// Subsets group addresses by their ports.
	Subsets []EndpointSubset `json:"subsets,omitempty"`
}

// EndpointSubset is a set of addresses sharing the same ports.
type EndpointSubset struct {
	// Addresses that are Ready and not terminating.
	Addresses []EndpointAddress `json:"addresses,omitempty"`
	// NotReadyAddresses are known but must not receive traffic.
	NotReadyAddresses []EndpointAddress `json:"notReadyAddresses,omitempty"`
	// Ports, with the service port's name.
	Ports []EndpointPort `json:"ports,omitempty"`
}

// EndpointAddress is one pod behind a service.
type EndpointAddress struct {
	// IP is the pod's IP.
	IP string `json:"ip"`
	// NodeName is where the pod runs.
	NodeName string `json:"nodeName,omitempty"`
	// PodName names the pod.
	PodName string `json:"podName,omitempty"`
}

// EndpointPort is a resolved target port.
type EndpointPort struct {
	// Name of the service port.
	Name string `json:"name,omitempty"`
	// Port number on the pod.
	Port int32 `json:"port"`
	// Protocol of the port.
	Protocol Protocol `json:"protocol,omitempty"`
}
