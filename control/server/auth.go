package server

import (
	"context"
	"crypto/x509"
	"net/http"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/pki"
)

// The verbs the authoriser decides on. Object verbs follow the HTTP method
// and path; the others name the endpoint.
const (
	verbGet          = "get"
	verbList         = "list"
	verbWatch        = "watch"
	verbCreate       = "create"
	verbUpdate       = "update"
	verbUpdateStatus = "update-status"
	verbDelete       = "delete"
	verbEvict        = "evict"
	verbLog          = "log"
	verbRollback     = "rollback"
	verbMintToken    = "mint-join-token"
	verbRenew        = "renew"
	verbControlPlane = "get-controlplane"
	verbMembers      = "list-members"
	verbMemberAdd    = "add-member"
	verbMemberChange = "change-member"
	verbSnapshot     = "snapshot"
	verbVersion      = "get-version"
	verbMetrics      = "read-metrics"
)

// attributes are what a request asks to do, as the authoriser sees it.
type attributes struct {
	verb      string
	resource  string // "" for non-object endpoints
	namespace string
	name      string
}

func (a attributes) String() string {
	if a.resource == "" {
		return a.verb
	}
	s := a.verb + " " + a.resource
	if a.namespace != "" {
		s += " in namespace " + a.namespace
	}
	if a.name != "" {
		s += " named " + a.name
	}
	return s
}

// nodeReadable are the resources a node's agent reads to do its work.
var nodeReadable = map[string]bool{"pods": true, "nodes": true, "services": true, "endpoints": true, "namespaces": true}

// authorize decides whether id may do a. Admins and control-plane servers
// may do anything. A node may read what its agent needs, write its own Node,
// create events, renew its own certificates and read the control-plane
// endpoints; writes to pods are allowed here and narrowed to pods bound to
// the node by the handlers ([Server.checkPodBinding]), which hold the pod.
func authorize(id pki.Identity, a attributes) error {
	switch id.Role {
	case pki.RoleAdmin, pki.RoleServer:
		return nil
	case pki.RoleNode:
	default:
		return forbidden(id.String(), "%s: role %s has no access to the API", a, id.Role)
	}
	switch a.verb {
	case verbRenew, verbControlPlane, verbVersion:
		return nil
	case verbGet, verbList, verbWatch:
		if nodeReadable[a.resource] {
			return nil
		}
	case verbCreate, verbUpdate, verbUpdateStatus:
		if a.resource == "nodes" && (a.name == "" || a.name == id.Name) {
			// create carries the name in the body: the handler checks it.
			return nil
		}
		if a.resource == "pods" && a.verb == verbUpdateStatus {
			return nil
		}
		if a.resource == "events" && a.verb == verbCreate {
			return nil
		}
		if a.resource == "nodes" {
			return forbidden(id.String(), "%s: a node may write only its own Node %q", a, id.Name)
		}
	case verbDelete:
		if a.resource == "pods" {
			return nil
		}
	}
	return forbidden(id.String(), "%s", a)
}

// checkPodBinding narrows a node's pod writes to pods bound to it.
func checkPodBinding(id pki.Identity, verb string, pod *api.Pod) error {
	if id.Role != pki.RoleNode {
		return nil
	}
	if pod.Spec.NodeName != id.Name {
		bound := "is not bound to any node"
		if pod.Spec.NodeName != "" {
			bound = "is bound to node " + pod.Spec.NodeName
		}
		return forbidden(id.String(), "%s pod %s: it %s, and a node may write only pods bound to it", verb, api.Key(pod), bound)
	}
	return nil
}

// checkNodeName narrows a node's Node writes to its own Node.
func checkNodeName(id pki.Identity, verb, name string) error {
	if id.Role == pki.RoleNode && name != id.Name {
		return forbidden(id.String(), "%s node %s: a node may write only its own Node %q", verb, name, id.Name)
	}
	return nil
}

type ctxKey int

const identityKey ctxKey = iota

// caller is who sent a request: the identity from its verified client
// certificate, or none (join, health).
type caller struct {
	id   pki.Identity
	cert *x509.Certificate
	ok   bool
}

func callerFrom(ctx context.Context) caller {
	c, _ := ctx.Value(identityKey).(caller)
	return c
}

// unauthenticatedPaths may be used without a client certificate: a joining
// node has only its token, and probes carry no credentials.
var unauthenticatedPaths = map[string]bool{"/v1/join": true, "/healthz": true, "/readyz": true}

// authenticate reads the caller's identity from the verified client
// certificate, refuses revoked certificates on every request (a connection
// opened before the revocation stays open, so the handshake check alone is
// not enough), and lets only the join and probe endpoints through without
// a certificate.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c caller
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			leaf := r.TLS.PeerCertificates[0]
			serial := pki.SerialString(leaf)
			if s.revoked.has(serial) {
				writeError(w, api.NewError(api.ReasonUnauthorized,
					"client certificate %q (serial %s) has been revoked: join the cluster again", leaf.Subject.CommonName, serial))
				return
			}
			id, err := pki.IdentityFromCert(leaf)
			if err != nil {
				writeError(w, api.NewError(api.ReasonUnauthorized, "client certificate: %v", err))
				return
			}
			c = caller{id: id, cert: leaf, ok: true}
		}
		if !c.ok && !unauthenticatedPaths[r.URL.Path] {
			writeError(w, api.NewError(api.ReasonUnauthorized,
				"%s %s needs a client certificate signed by the cluster CA", r.Method, r.URL.Path))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey, c)))
	})
}

// revocations is the in-memory set of revoked certificate serials, fed from
// etcd so every control-plane instance refuses a revoked certificate within
// moments of its revocation. Entries leave when the certificate would have
// expired anyway.
type revocations struct {
	mu      sync.RWMutex
	serials map[string]time.Time // serial -> expiry
}

func newRevocations() *revocations { return &revocations{serials: map[string]time.Time{}} }

func (r *revocations) has(serial string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.serials[serial]
	return ok
}

func (r *revocations) add(serial string, expires time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.serials[serial] = expires
}

func (r *revocations) remove(serial string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.serials, serial)
}
