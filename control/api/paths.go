package api

import (
	"net/url"
	"sort"
	"strings"
)

// The HTTP API, shared by the server and the client so they never disagree.
//
//	GET    /v1/{resource}                                   list (namespaced kinds: across namespaces)
//	POST   /v1/{resource}                                   create (cluster-scoped kinds)
//	GET    /v1/{resource}/{name}                            get (cluster-scoped)
//	PUT    /v1/{resource}/{name}                            update (cluster-scoped)
//	PUT    /v1/{resource}/{name}/status                     update status (cluster-scoped)
//	DELETE /v1/{resource}/{name}                            delete (cluster-scoped)
//	GET    /v1/namespaces/{ns}/{resource}                   list in a namespace
//	POST   /v1/namespaces/{ns}/{resource}                   create
//	GET    /v1/namespaces/{ns}/{resource}/{name}            get
//	PUT    /v1/namespaces/{ns}/{resource}/{name}            update (spec and metadata; status kept)
//	PUT    /v1/namespaces/{ns}/{resource}/{name}/status     update status (spec kept)
//	DELETE /v1/namespaces/{ns}/{resource}/{name}            delete (?gracePeriodSeconds=N)
//	POST   /v1/namespaces/{ns}/pods/{name}/eviction         evict, respecting availability
//	GET    /v1/namespaces/{ns}/pods/{name}/log              logs (?container=&follow=true&tailLines=N)
//	POST   /v1/namespaces/{ns}/deployments/{name}/rollback  roll back to a revision
//	POST   /v1/jointokens                                   mint a join token (admin)
//	POST   /v1/join                                         trade a token for node certificates
//	POST   /v1/renew                                        renew the caller's certificates
//	GET    /v1/controlplane                                 API endpoints and cluster ID
//	GET    /v1/members                                      etcd members
//	POST   /v1/members                                      add an etcd learner (admin)
//	POST   /v1/members/{id}/promote                         promote a learner (admin)
//	DELETE /v1/members/{id}                                 remove a member, refusing to break quorum (admin)
//	GET    /v1/snapshot                                     stream an etcd snapshot (admin)
//	GET    /v1/version                                      server version
//	GET    /healthz, /readyz, /metrics
//
// Lists and gets answer with the object or list as JSON. A list or watch
// takes ?labelSelector=k=v,k2=v2 and, for pods, ?fieldSelector=spec.nodeName=NAME.
// ?watch=true turns a list into a stream of newline-delimited [WatchEvent]s
// starting after ?resourceVersion=N (or after the current revision when N is
// 0); a revision that etcd has compacted answers an Error event with reason
// Gone, and the watcher must list again. A watch response carries the
// [HeaderBookmarkInterval] header, and the stream a BOOKMARK event at least
// that often, so a watcher can tell a silent stream from a dead one. Failed
// requests answer a [Status].

// Query parameter names.
const (
	QueryWatch           = "watch"
	QueryResourceVersion = "resourceVersion"
	QueryLabelSelector   = "labelSelector"
	QueryFieldSelector   = "fieldSelector"
	QueryGracePeriod     = "gracePeriodSeconds"
	QueryContainer       = "container"
	QueryFollow          = "follow"
	QueryTailLines       = "tailLines"
)

// HeaderBookmarkInterval is the watch response header in which the server
// says how often the stream carries a BOOKMARK, in seconds (a decimal
// number, for example "5"). A watcher that hears nothing, not even a
// bookmark, for several intervals knows the stream is dead even when the
// connection under it has not noticed, and watches again from its last
// revision.
const HeaderBookmarkInterval = "Berth-Bookmark-Interval"

// FieldNodeName is the one field selector the API supports: pods bound to a
// node.
const FieldNodeName = "spec.nodeName"

// CollectionPath returns the path of a kind's collection in a namespace
// (or across namespaces when ns is "", or for cluster-scoped kinds).
func CollectionPath(ki KindInfo, ns string) string {
	if ki.Namespaced && ns != "" {
		return "/" + Version + "/namespaces/" + url.PathEscape(ns) + "/" + ki.Resource
	}
	return "/" + Version + "/" + ki.Resource
}

// ObjectPath returns the path of one object.
func ObjectPath(ki KindInfo, ns, name string) string {
	return CollectionPath(ki, ns) + "/" + url.PathEscape(name)
}

// FormatSelector renders a label selector for ?labelSelector=, sorted so the
// same selector always gives the same string.
func FormatSelector(sel map[string]string) string {
	keys := make([]string, 0, len(sel))
	for k := range sel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + sel[k]
	}
	return strings.Join(parts, ",")
}

// ParseSelector reads a label selector of the form k=v,k2=v2.
func ParseSelector(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, NewError(ReasonBadRequest, "label selector %q: each term must be key=value", s)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// SelectorMatches reports whether labels carry every key=value of sel. An
// empty selector matches everything.
func SelectorMatches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}
