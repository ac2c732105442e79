package server

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/berth-io/berth/control/api"
)

// objectRoute is a request for objects of one kind, as parsed from its
// path.
type objectRoute struct {
	ki        api.KindInfo
	namespace string // from /v1/namespaces/{ns}/...; "" otherwise
	name      string
	sub       string // "", "status", "eviction", "log", "rollback"
}

// resources maps each kind's path name to its KindInfo.
var resources = func() map[string]api.KindInfo {
	m := map[string]api.KindInfo{}
	for _, k := range api.Kinds() {
		m[k.Resource] = k
	}
	return m
}()

// subresources says which subresources each kind serves.
var subresources = map[string]map[string]bool{
	"pods":        {"status": true, "eviction": true, "log": true},
	"deployments": {"status": true, "rollback": true},
}

func hasSub(ki api.KindInfo, sub string) bool {
	if sub == "status" && ki.HasStatus {
		return true
	}
	return subresources[ki.Resource][sub]
}

// splitPath cuts /v1/a/b/c into its unescaped segments after the version,
// or reports false for anything outside /v1/.
func splitPath(u *url.URL) ([]string, bool) {
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/"+api.Version+"/") {
		return nil, false
	}
	raw := strings.Split(strings.TrimSuffix(strings.TrimPrefix(p, "/"+api.Version+"/"), "/"), "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		v, err := url.PathUnescape(s)
		if err != nil || v == "" {
			return nil, false
		}
		segs[i] = v
	}
	return segs, true
}

// parseObjectRoute reads an object path of paths.go:
//
//	/v1/{resource}[/{name}[/{sub}]]
//	/v1/namespaces/{ns}/{resource}[/{name}[/{sub}]]
func parseObjectRoute(segs []string) (objectRoute, bool) {
	if len(segs) >= 3 && segs[0] == "namespaces" && !(len(segs) == 3 && segs[2] == "status") {
		ki, ok := resources[segs[2]]
		if !ok || !ki.Namespaced {
			return objectRoute{}, false
		}
		rt := objectRoute{ki: ki, namespace: segs[1]}
		switch len(segs) {
		case 3:
		case 4:
			rt.name = segs[3]
		case 5:
			rt.name, rt.sub = segs[3], segs[4]
		default:
			return objectRoute{}, false
		}
		if rt.sub != "" && !hasSub(ki, rt.sub) {
			return objectRoute{}, false
		}
		return rt, true
	}
	ki, ok := resources[segs[0]]
	if !ok {
		return objectRoute{}, false
	}
	rt := objectRoute{ki: ki}
	switch len(segs) {
	case 1:
	case 2:
		rt.name = segs[1]
	case 3:
		rt.name, rt.sub = segs[1], segs[2]
	default:
		return objectRoute{}, false
	}
	if rt.name != "" && ki.Namespaced {
		// Namespaced objects are addressed through their namespace.
		return objectRoute{}, false
	}
	if rt.sub != "" && !hasSub(ki, rt.sub) {
		return objectRoute{}, false
	}
	return rt, true
}

// notFound answers an unknown path.
func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, api.NewError(api.ReasonNotFound, "no such path: %s %s (the API is described in control/api/paths.go)", r.Method, r.URL.Path))
}

// methodNotAllowed answers a known path asked with the wrong method.
func methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed ...string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeJSON(w, http.StatusMethodNotAllowed, &api.Status{
		Code:    http.StatusMethodNotAllowed,
		Reason:  reasonMethodNotAllowed,
		Message: r.Method + " is not allowed on " + r.URL.Path + "; allowed: " + strings.Join(allowed, ", "),
	})
}

// routeAPI dispatches a /v1/ request, authorising it first.
func (s *Server) routeAPI(w http.ResponseWriter, r *http.Request) {
	segs, ok := splitPath(r.URL)
	if !ok || len(segs) == 0 {
		notFound(w, r)
		return
	}
	c := callerFrom(r.Context())
	deny := func(a attributes) bool {
		s.setLabels(r, a)
		if !c.ok {
			writeError(w, api.NewError(api.ReasonUnauthorized, "%s needs a client certificate signed by the cluster CA", a))
			return true
		}
		if err := authorize(c.id, a); err != nil {
			writeError(w, err)
			return true
		}
		return false
	}
	method := r.Method
	switch {
	case len(segs) == 1 && segs[0] == "join":
		s.setLabels(r, attributes{verb: "join"})
		if method != http.MethodPost {
			methodNotAllowed(w, r, http.MethodPost)
			return
		}
		s.handleJoin(w, r)
		return
	case len(segs) == 1 && segs[0] == "jointokens":
		if method != http.MethodPost {
			methodNotAllowed(w, r, http.MethodPost)
			return
		}
		if !deny(attributes{verb: verbMintToken}) {
			s.handleMintToken(w, r)
		}
		return
	case len(segs) == 1 && segs[0] == "renew":
		if method != http.MethodPost {
			methodNotAllowed(w, r, http.MethodPost)
			return
		}
		if !deny(attributes{verb: verbRenew}) {
			s.handleRenew(w, r)
		}
		return
	case len(segs) == 1 && segs[0] == "controlplane":
		if method != http.MethodGet {
			methodNotAllowed(w, r, http.MethodGet)
			return
		}
		if !deny(attributes{verb: verbControlPlane}) {
			s.handleControlPlane(w, r)
		}
		return
	case len(segs) == 1 && segs[0] == "version":
		if method != http.MethodGet {
			methodNotAllowed(w, r, http.MethodGet)
			return
		}
		if !deny(attributes{verb: verbVersion}) {
			s.handleVersion(w, r)
		}
		return
	case len(segs) == 1 && segs[0] == "snapshot":
		if method != http.MethodGet {
			methodNotAllowed(w, r, http.MethodGet)
			return
		}
		if !deny(attributes{verb: verbSnapshot}) {
			s.handleSnapshot(w, r)
		}
		return
	case segs[0] == "members":
		s.routeMembers(w, r, segs, deny)
		return
	}
	rt, ok := parseObjectRoute(segs)
	if !ok {
		notFound(w, r)
		return
	}
	s.routeObjects(w, r, rt, deny)
}

// routeMembers serves /v1/members[/{id}[/promote]].
func (s *Server) routeMembers(w http.ResponseWriter, r *http.Request, segs []string, deny func(attributes) bool) {
	switch {
	case len(segs) == 1:
		switch r.Method {
		case http.MethodGet:
			if !deny(attributes{verb: verbMembers, resource: "members"}) {
				s.handleListMembers(w, r)
			}
		case http.MethodPost:
			if !deny(attributes{verb: verbMemberAdd, resource: "members"}) {
				s.handleAddMember(w, r)
			}
		default:
			methodNotAllowed(w, r, http.MethodGet, http.MethodPost)
		}
	case len(segs) == 2:
		if r.Method != http.MethodDelete {
			methodNotAllowed(w, r, http.MethodDelete)
			return
		}
		if !deny(attributes{verb: verbMemberChange, resource: "members", name: segs[1]}) {
			s.handleRemoveMember(w, r, segs[1])
		}
	case len(segs) == 3 && segs[2] == "promote":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r, http.MethodPost)
			return
		}
		if !deny(attributes{verb: verbMemberChange, resource: "members", name: segs[1]}) {
			s.handlePromoteMember(w, r, segs[1])
		}
	default:
		notFound(w, r)
	}
}

// routeObjects serves the object paths of every kind.
func (s *Server) routeObjects(w http.ResponseWriter, r *http.Request, rt objectRoute, deny func(attributes) bool) {
	a := attributes{resource: rt.ki.Resource, namespace: rt.namespace, name: rt.name}
	if rt.ki.ReadOnly {
		notFound(w, r)
		return
	}
	q := r.URL.Query()
	switch {
	case rt.name == "":
		switch r.Method {
		case http.MethodGet:
			a.verb = verbList
			if q.Get(api.QueryWatch) == "true" || q.Get(api.QueryWatch) == "1" {
				a.verb = verbWatch
			}
			if deny(a) {
				return
			}
			if a.verb == verbWatch {
				s.handleWatch(w, r, rt)
			} else {
				s.handleList(w, r, rt)
			}
		case http.MethodPost:
			if rt.ki.Namespaced && rt.namespace == "" {
				methodNotAllowed(w, r, http.MethodGet)
				return
			}
			a.verb = verbCreate
			if !deny(a) {
				s.handleCreate(w, r, rt)
			}
		default:
			if rt.ki.Namespaced && rt.namespace == "" {
				methodNotAllowed(w, r, http.MethodGet)
			} else {
				methodNotAllowed(w, r, http.MethodGet, http.MethodPost)
			}
		}
	case rt.sub == "":
		switch r.Method {
		case http.MethodGet:
			a.verb = verbGet
			if !deny(a) {
				s.handleGet(w, r, rt)
			}
		case http.MethodPut:
			a.verb = verbUpdate
			if !deny(a) {
				s.handleUpdate(w, r, rt)
			}
		case http.MethodDelete:
			a.verb = verbDelete
			if !deny(a) {
				s.handleDelete(w, r, rt)
			}
		default:
			methodNotAllowed(w, r, http.MethodGet, http.MethodPut, http.MethodDelete)
		}
	case rt.sub == "status":
		if r.Method != http.MethodPut {
			methodNotAllowed(w, r, http.MethodPut)
			return
		}
		a.verb = verbUpdateStatus
		if !deny(a) {
			s.handleUpdateStatus(w, r, rt)
		}
	case rt.sub == "eviction":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r, http.MethodPost)
			return
		}
		a.verb = verbEvict
		if !deny(a) {
			s.handleEviction(w, r, rt)
		}
	case rt.sub == "log":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, http.MethodGet)
			return
		}
		a.verb = verbLog
		if !deny(a) {
			s.handleLog(w, r, rt)
		}
	case rt.sub == "rollback":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r, http.MethodPost)
			return
		}
		a.verb = verbRollback
		if !deny(a) {
			s.handleRollback(w, r, rt)
		}
	default:
		notFound(w, r)
	}
}
