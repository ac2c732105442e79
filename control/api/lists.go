package api

// ListMeta is the metadata of a list: the store revision it was read at.
type ListMeta struct {
	// ResourceVersion is the store revision of the read; watch from it to
	// see every later change.
	ResourceVersion int64 `json:"resourceVersion,omitempty"`
}

// NamespaceList is a list of namespaces.
type NamespaceList struct {
	ListMeta `json:"metadata"`
	// Items of the list.
	Items []Namespace `json:"items"`
}

// NodeList is a list of nodes.
type NodeList struct {
	ListMeta `json:"metadata"`
	// Items of the list.
	Items []Node `json:"items"`
}

// PodList is a list of pods.
type PodList struct {
	ListMeta `json:"metadata"`
	// Items of the list.
	Items []Pod `json:"items"`
}

// DeploymentList is a list of deployments.
type DeploymentList struct {
	ListMeta `json:"metadata"`
	// Items of the list.
	Items []Deployment `json:"items"`
}

// RevisionList is a list of revisions.
type RevisionList struct {
	ListMeta `json:"metadata"`
	// Items of the list.
	Items []Revision `json:"items"`
}

// ServiceList is a list of services.
type ServiceList struct {
	ListMeta `json:"metadata"`
	// Items of the list.
	Items []Service `json:"items"`
}

// EndpointsList is a list of endpoints.
type EndpointsList struct {
	ListMeta `json:"metadata"`
	// Items of the list.
	Items []Endpoints `json:"items"`
}

// LeaseList is a list of leases.
type LeaseList struct {
	ListMeta `json:"metadata"`
	// Items of the list.
	Items []Lease `json:"items"`
}

// EventList is a list of events.
type EventList struct {
	ListMeta `json:"metadata"`
	// Items of the list.
	Items []Event `json:"items"`
}

// MemberList is a list of etcd members.
type MemberList struct {
	ListMeta `json:"metadata"`
	// Items of the list.
	Items []Member `json:"items"`
}

// GetResourceVersion returns the list's revision.
func (l *ListMeta) GetResourceVersion() int64 { return l.ResourceVersion }

// SetResourceVersion sets the list's revision.
func (l *ListMeta) SetResourceVersion(v int64) { l.ResourceVersion = v }

func items[T any, PT interface {
	*T
	Object
}](in []T) []Object {
	out := make([]Object, len(in))
	for i := range in {
		out[i] = PT(&in[i])
	}
	return out
}

func setItems[T any](objs []Object) []T {
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		out = append(out, *any(o).(*T))
	}
	return out
}

// ObjectItems returns the items.
func (l *NamespaceList) ObjectItems() []Object { return items[Namespace](l.Items) }

// SetObjectItems replaces the items.
func (l *NamespaceList) SetObjectItems(o []Object) { l.Items = setItems[Namespace](o) }

// ObjectItems returns the items.
func (l *NodeList) ObjectItems() []Object { return items[Node](l.Items) }

// SetObjectItems replaces the items.
func (l *NodeList) SetObjectItems(o []Object) { l.Items = setItems[Node](o) }

// ObjectItems returns the items.
func (l *PodList) ObjectItems() []Object { return items[Pod](l.Items) }

// SetObjectItems replaces the items.
func (l *PodList) SetObjectItems(o []Object) { l.Items = setItems[Pod](o) }

// ObjectItems returns the items.
func (l *DeploymentList) ObjectItems() []Object { return items[Deployment](l.Items) }

// SetObjectItems replaces the items.
func (l *DeploymentList) SetObjectItems(o []Object) { l.Items = setItems[Deployment](o) }

// ObjectItems returns the items.
func (l *RevisionList) ObjectItems() []Object { return items[Revision](l.Items) }

// SetObjectItems replaces the items.
func (l *RevisionList) SetObjectItems(o []Object) { l.Items = setItems[Revision](o) }

// ObjectItems returns the items.
func (l *ServiceList) ObjectItems() []Object { return items[Service](l.Items) }

// SetObjectItems replaces the items.
func (l *ServiceList) SetObjectItems(o []Object) { l.Items = setItems[Service](o) }

// ObjectItems returns the items.
func (l *EndpointsList) ObjectItems() []Object { return items[Endpoints](l.Items) }

// SetObjectItems replaces the items.
func (l *EndpointsList) SetObjectItems(o []Object) { l.Items = setItems[Endpoints](o) }

// ObjectItems returns the items.
func (l *LeaseList) ObjectItems() []Object { return items[Lease](l.Items) }

// SetObjectItems replaces the items.
func (l *LeaseList) SetObjectItems(o []Object) { l.Items = setItems[Lease](o) }

// ObjectItems returns the items.
func (l *EventList) ObjectItems() []Object { return items[Event](l.Items) }

// SetObjectItems replaces the items.
func (l *EventList) SetObjectItems(o []Object) { l.Items = setItems[Event](o) }

// ObjectItems returns the items.
func (l *MemberList) ObjectItems() []Object { return items[Member](l.Items) }

// SetObjectItems replaces the items.
func (l *MemberList) SetObjectItems(o []Object) { l.Items = setItems[Member](o) }
