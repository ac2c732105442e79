package api

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Object is implemented by a pointer to every kind: it gives generic code
// (the store, the client, the CLI) the metadata of any object.
type Object interface {
	// GetMeta returns the object's metadata, for reading and writing.
	GetMeta() *ObjectMeta
	// GetTypeMeta returns the object's kind and API version.
	GetTypeMeta() *TypeMeta
}

// ObjectList is implemented by a pointer to every kind's list type.
type ObjectList interface {
	// GetResourceVersion is the store revision the list was read at; a
	// watch from it sees every later change.
	GetResourceVersion() int64
	// SetResourceVersion sets it.
	SetResourceVersion(int64)
	// ObjectItems returns pointers to the list's items.
	ObjectItems() []Object
	// SetObjectItems replaces the items; each must be of the list's kind.
	SetObjectItems([]Object)
}

// KindInfo describes a kind: how it is named in paths and on the command
// line, whether it is namespaced, and how to make an empty one.
type KindInfo struct {
	// Kind is the CamelCase name, for example "Deployment".
	Kind string
	// Resource is the plural lower-case name used in paths: "deployments".
	Resource string
	// ShortNames are CLI abbreviations: "deploy".
	ShortNames []string
	// Namespaced kinds live in a namespace.
	Namespaced bool
	// HasStatus kinds have a status only the status subresource writes.
	HasStatus bool
	// ReadOnly kinds are views the API serves but nobody writes (Member).
	ReadOnly bool
	// New returns an empty object of the kind.
	New func() Object
	// NewList returns an empty list of the kind.
	NewList func() ObjectList
}

// The kinds, in the order documentation lists them.
var kinds = []KindInfo{
	{Kind: "Namespace", Resource: "namespaces", ShortNames: []string{"ns"}, HasStatus: true,
		New: func() Object { return &Namespace{} }, NewList: func() ObjectList { return &NamespaceList{} }},
	{Kind: "Node", Resource: "nodes", ShortNames: []string{"no"}, HasStatus: true,
		New: func() Object { return &Node{} }, NewList: func() ObjectList { return &NodeList{} }},
	{Kind: "Pod", Resource: "pods", ShortNames: []string{"po"}, Namespaced: true, HasStatus: true,
		New: func() Object { return &Pod{} }, NewList: func() ObjectList { return &PodList{} }},
	{Kind: "Deployment", Resource: "deployments", ShortNames: []string{"deploy"}, Namespaced: true, HasStatus: true,
		New: func() Object { return &Deployment{} }, NewList: func() ObjectList { return &DeploymentList{} }},
	{Kind: "Revision", Resource: "revisions", ShortNames: []string{"rev"}, Namespaced: true,
		New: func() Object { return &Revision{} }, NewList: func() ObjectList { return &RevisionList{} }},
	{Kind: "Service", Resource: "services", ShortNames: []string{"svc"}, Namespaced: true, HasStatus: true,
		New: func() Object { return &Service{} }, NewList: func() ObjectList { return &ServiceList{} }},
	{Kind: "Endpoints", Resource: "endpoints", ShortNames: []string{"ep"}, Namespaced: true,
		New: func() Object { return &Endpoints{} }, NewList: func() ObjectList { return &EndpointsList{} }},
	{Kind: "Lease", Resource: "leases", Namespaced: true,
		New: func() Object { return &Lease{} }, NewList: func() ObjectList { return &LeaseList{} }},
	{Kind: "Event", Resource: "events", ShortNames: []string{"ev"}, Namespaced: true,
		New: func() Object { return &Event{} }, NewList: func() ObjectList { return &EventList{} }},
	{Kind: "Member", Resource: "members", ReadOnly: true,
		New: func() Object { return &Member{} }, NewList: func() ObjectList { return &MemberList{} }},
}

// Kinds returns every kind the API serves.
func Kinds() []KindInfo { return append([]KindInfo(nil), kinds...) }

// LookupKind finds a kind by its name, resource, singular or short name,
// case-insensitively, as the CLI accepts them ("pods", "pod", "po", "Pod").
func LookupKind(name string) (KindInfo, bool) {
	n := strings.ToLower(name)
	for _, k := range kinds {
		if n == strings.ToLower(k.Kind) || n == k.Resource || n == strings.TrimSuffix(k.Resource, "s") {
			return k, true
		}
		for _, s := range k.ShortNames {
			if n == s {
				return k, true
			}
		}
	}
	return KindInfo{}, false
}

// KindOf returns the kind of an object from its Go type (TypeMeta may be
// empty on objects made in code).
func KindOf(obj Object) KindInfo {
	name := kindName(obj)
	for _, k := range kinds {
		if k.Kind == name {
			return k
		}
	}
	panic(fmt.Sprintf("api: unknown object type %T", obj))
}

func kindName(obj Object) string {
	switch obj.(type) {
	case *Namespace:
		return "Namespace"
	case *Node:
		return "Node"
	case *Pod:
		return "Pod"
	case *Deployment:
		return "Deployment"
	case *Revision:
		return "Revision"
	case *Service:
		return "Service"
	case *Endpoints:
		return "Endpoints"
	case *Lease:
		return "Lease"
	case *Event:
		return "Event"
	case *Member:
		return "Member"
	}
	return ""
}

// SetTypeMeta fills an object's kind and API version from its Go type.
func SetTypeMeta(obj Object) {
	tm := obj.GetTypeMeta()
	tm.Kind = KindOf(obj).Kind
	tm.APIVersion = Version
}

// Decode reads one JSON object whose kind is given by its "kind" field.
func Decode(data []byte) (Object, error) {
	var tm TypeMeta
	if err := json.Unmarshal(data, &tm); err != nil {
		return nil, fmt.Errorf("decode object: %w", err)
	}
	if tm.Kind == "" {
		return nil, fmt.Errorf("decode object: kind is missing")
	}
	ki, ok := LookupKind(tm.Kind)
	if !ok || ki.Kind != tm.Kind {
		return nil, fmt.Errorf("decode object: unknown kind %q (known kinds: %s)", tm.Kind, kindNames())
	}
	if tm.APIVersion != "" && tm.APIVersion != Version {
		return nil, fmt.Errorf("decode %s: apiVersion must be %q, got %q", tm.Kind, Version, tm.APIVersion)
	}
	obj := ki.New()
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", tm.Kind, err)
	}
	SetTypeMeta(obj)
	return obj, nil
}

func kindNames() string {
	var names []string
	for _, k := range kinds {
		names = append(names, k.Kind)
	}
	return strings.Join(names, ", ")
}

// Key returns "namespace/name" for namespaced objects and "name" otherwise,
// the form used in messages and imports.
func Key(obj Object) string {
	m := obj.GetMeta()
	if m.Namespace == "" {
		return m.Name
	}
	return m.Namespace + "/" + m.Name
}

// The GetMeta and GetTypeMeta methods of every kind.

func (o *Namespace) GetMeta() *ObjectMeta    { return &o.Metadata }
func (o *Namespace) GetTypeMeta() *TypeMeta  { return &o.TypeMeta }
func (o *Node) GetMeta() *ObjectMeta         { return &o.Metadata }
func (o *Node) GetTypeMeta() *TypeMeta       { return &o.TypeMeta }
func (o *Pod) GetMeta() *ObjectMeta          { return &o.Metadata }
func (o *Pod) GetTypeMeta() *TypeMeta        { return &o.TypeMeta }
func (o *Deployment) GetMeta() *ObjectMeta   { return &o.Metadata }
func (o *Deployment) GetTypeMeta() *TypeMeta { return &o.TypeMeta }
func (o *Revision) GetMeta() *ObjectMeta     { return &o.Metadata }
func (o *Revision) GetTypeMeta() *TypeMeta   { return &o.TypeMeta }
func (o *Service) GetMeta() *ObjectMeta      { return &o.Metadata }
func (o *Service) GetTypeMeta() *TypeMeta    { return &o.TypeMeta }
func (o *Endpoints) GetMeta() *ObjectMeta    { return &o.Metadata }
func (o *Endpoints) GetTypeMeta() *TypeMeta  { return &o.TypeMeta }
func (o *Lease) GetMeta() *ObjectMeta        { return &o.Metadata }
func (o *Lease) GetTypeMeta() *TypeMeta      { return &o.TypeMeta }
func (o *Event) GetMeta() *ObjectMeta        { return &o.Metadata }
func (o *Event) GetTypeMeta() *TypeMeta      { return &o.TypeMeta }
func (o *Member) GetMeta() *ObjectMeta       { return &o.Metadata }
func (o *Member) GetTypeMeta() *TypeMeta     { return &o.TypeMeta }
