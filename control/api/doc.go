// Package api holds the wire types of berth's control plane: every kind the
// API serves (Namespace, Node, Pod, Deployment, Revision, Service, Endpoints,
// Lease, Event, Member), their defaults, their validation, and the typed
// errors the API returns.
//
// Everything that talks to the control plane — the server, the client, the
// scheduler and controllers, the node agent, the Terraform provider and the
// CLI — shares these types, so there is one definition of what a Pod is and
// one place that decides whether a Pod is valid. Validation and defaulting
// live here and nowhere else: callers run [Default] then [Validate] (the
// server always does), and every problem names the field path and what is
// allowed, for example
//
//	spec.template.containers[0].ports[1].containerPort: must be 1-65535, got 70000
//
// Objects follow one shape: [TypeMeta] (kind and API version), [ObjectMeta]
// (name, namespace, uid, labels, generation, resourceVersion, ...), a spec the
// user owns and a status the system owns. resourceVersion is the etcd
// modification revision of the stored object; updates compare-and-swap on it
// and a stale one is refused with a Conflict error.
//
// This package must never import anything else of berth's: it is the bottom of
// the import graph.
package api
