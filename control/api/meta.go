package api

import "time"

// Version is the API version every object carries in apiVersion, and the
// path prefix of the HTTP API (/v1/...).
const Version = "v1"

// TypeMeta says which kind an object is, so a file of mixed objects can be
// applied and a JSON document decoded without knowing its type in advance.
type TypeMeta struct {
	// Kind is the object's kind, for example "Pod".
	Kind string `json:"kind,omitempty"`
	// APIVersion is always "v1" for now.
	APIVersion string `json:"apiVersion,omitempty"`
}

// ObjectMeta is the metadata every object has. Users set name, namespace
// (for namespaced kinds), labels, annotations and, for generated names,
// generateName; the server sets the rest.
type ObjectMeta struct {
	// Name is unique per kind (and namespace, for namespaced kinds) and
	// follows DNS label rules.
	Name string `json:"name,omitempty"`
	// GenerateName asks the server to make a unique name with this prefix
	// when Name is empty.
	GenerateName string `json:"generateName,omitempty"`
	// Namespace is set for namespaced kinds; it defaults to "default".
	Namespace string `json:"namespace,omitempty"`
	// UID identifies this incarnation of the object: a deleted and
	// re-created object gets a new one.
	UID string `json:"uid,omitempty"`
	// Labels select objects (services select pods, deployments own pods).
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations carry free-form data for tools.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Generation counts changes to the spec; status.observedGeneration says
	// which generation a controller has acted on.
	Generation int64 `json:"generation,omitempty"`
	// ResourceVersion is the etcd modification revision of the stored
	// object. An update must carry the current one or it is refused with a
	// Conflict.
	ResourceVersion int64 `json:"resourceVersion,omitempty"`
	// CreationTimestamp is when the object was first stored.
	CreationTimestamp time.Time `json:"creationTimestamp,omitempty"`
	// DeletionTimestamp is set when a graceful deletion has begun: a pod
	// bound to a node keeps existing until its agent has stopped it.
	DeletionTimestamp *time.Time `json:"deletionTimestamp,omitempty"`
	// DeletionGracePeriodSeconds is the time the pod's containers get
	// between SIGTERM and SIGKILL once deletion has begun.
	DeletionGracePeriodSeconds *int64 `json:"deletionGracePeriodSeconds,omitempty"`
	// OwnerReferences name the objects this one belongs to; when every
	// owner is gone the garbage collector deletes it.
	OwnerReferences []OwnerReference `json:"ownerReferences,omitempty"`
}

// OwnerReference points at the object that owns another one (a Deployment
// owns its Revisions and Pods).
type OwnerReference struct {
	// Kind of the owner.
	Kind string `json:"kind"`
	// Name of the owner, in the same namespace as the owned object.
	Name string `json:"name"`
	// UID of the owner, so an owner re-created under the same name does not
	// adopt the old one's objects.
	UID string `json:"uid"`
	// Controller is true for the one owner that manages the object.
	Controller bool `json:"controller,omitempty"`
}

// Condition is one aspect of an object's state, in the style users know from
// Kubernetes: a type, a status, and why.
type Condition struct {
	// Type names the aspect, for example "Ready".
	Type string `json:"type"`
	// Status is "True", "False" or "Unknown".
	Status ConditionStatus `json:"status"`
	// Reason is a CamelCase word for machines.
	Reason string `json:"reason,omitempty"`
	// Message explains the state to a person.
	Message string `json:"message,omitempty"`
	// LastTransitionTime is when Status last changed.
	LastTransitionTime time.Time `json:"lastTransitionTime,omitempty"`
}

// ConditionStatus is the value of a Condition.
type ConditionStatus string

// The values a condition can take.
const (
	ConditionTrue    ConditionStatus = "True"
	ConditionFalse   ConditionStatus = "False"
	ConditionUnknown ConditionStatus = "Unknown"
)

// FindCondition returns the condition of the given type, or nil.
func FindCondition(conds []Condition, typ string) *Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// SetCondition sets a condition, keeping LastTransitionTime when the status
// does not change, and reports whether anything changed.
func SetCondition(conds *[]Condition, c Condition, now time.Time) bool {
	if old := FindCondition(*conds, c.Type); old != nil {
		if old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
			return false
		}
		if old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		} else {
			c.LastTransitionTime = now
		}
		*old = c
		return true
	}
	c.LastTransitionTime = now
	*conds = append(*conds, c)
	return true
}

// IsControlledBy reports whether meta names owner as its controller.
func IsControlledBy(meta *ObjectMeta, owner *ObjectMeta) bool {
	for _, r := range meta.OwnerReferences {
		if r.Controller && r.UID == owner.UID {
			return true
		}
	}
	return false
}

// ControllerOf returns the controller owner reference, or nil.
func ControllerOf(meta *ObjectMeta) *OwnerReference {
	for i := range meta.OwnerReferences {
		if meta.OwnerReferences[i].Controller {
			return &meta.OwnerReferences[i]
		}
	}
	return nil
}
