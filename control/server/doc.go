// Package server is berth's control-plane API: HTTPS and JSON over the
// store, with watch streams, mutual-TLS authentication, authorisation of
// admins and nodes, and the policy the store leaves to it (defaulting and
// validation, graceful pod deletion, namespace life, address allocation,
// eviction, rollback, joins and certificate revocation).
//
// # Life of a server
//
// Build one with New from a Config (a store, the cluster CA and this
// host's serving certificate, plus optional address ranges and limits),
// then call Serve with a listener:
//
//	srv, err := server.New(server.Config{Store: st, CA: ca, ServingCert: cert,
//		Name: "cp1", AdvertiseURL: "https://198.18.0.10:6443", Logger: log})
//	...
//	err = srv.Serve(ctx, listener) // blocks until ctx ends
//
// Serve first loads every revoked certificate serial, so a restarted
// server never admits one; then it serves TLS (HTTP/2 and HTTP/1.1), keeps
// the revocation set current through a watch, and publishes AdvertiseURL
// under the aux key AuxEndpointsPrefix+Name for as long as it runs. When
// ctx ends it ends every watch and log stream, waits up to ten seconds for
// other requests, withdraws the endpoint and returns nil. Several
// instances may serve one store at once; they share everything through
// etcd.
//
// # Requests
//
// The paths are those of control/api/paths.go, for every kind of
// api.Kinds(). Every failure answers an api.Status as JSON (reason,
// message, and for Invalid the field causes); unknown paths answer 404.
// Non-streaming requests are bounded by Config.RequestTimeout and bodies by
// Config.MaxBodyBytes (413 RequestEntityTooLarge beyond it).
//
//   - Create and update run api.Default and then api.Validate (create) or
//     api.ValidateUpdate (update); problems answer 422 Invalid naming each
//     field. Updates compare-and-swap on metadata.resourceVersion: a stale
//     one answers 409 Conflict. Status is written only through .../status,
//     and a create's status is dropped.
//   - Objects may be created only in a namespace that exists and is not
//     Terminating (404 or 403 otherwise). Deleting a namespace marks it
//     Terminating (deletionTimestamp set, status.phase Terminating); the
//     garbage collector deletes what it holds and then deletes the
//     namespace again, which removes it once it is empty (a delete while
//     objects remain answers 409 naming them). "default" and
//     "berth-system" cannot be deleted.
//   - Deleting a pod that is bound to a node and not finished begins a
//     graceful deletion: deletionTimestamp and deletionGracePeriodSeconds
//     (?gracePeriodSeconds, else the pod's terminationGracePeriodSeconds,
//     else 30) are set and the pod is answered. Its agent stops it and
//     finalises with ?gracePeriodSeconds=0, which removes any pod at once.
//     Unbound and finished pods are removed at once. Every delete answers
//     the object (its last state when removed).
//   - Services get a cluster IP from the service CIDR (default
//     10.96.0.0/16; its network address, its broadcast address and its
//     first address, DNSServiceIP, which the agents' cluster DNS answers
//     on, are never given out) and, for NodePort services, node ports from
//     30000-32767; requested ones must be free. An update that omits them
//     keeps them, so IaC never sees a diff; deletion releases them. Nodes
//     get a pod CIDR (a /24 of 10.244.0.0/16 by default) when created,
//     released when deleted. Allocation goes through the store's pools, so
//     concurrent instances never hand out one value twice.
//   - POST .../pods/{name}/eviction deletes a pod gracefully unless it is
//     a Ready pod of a deployment that would then have fewer than
//     replicas - maxUnavailable Ready, non-terminating pods: that answers
//     429 TooManyRequests and the caller (a drain) retries.
//   - POST .../deployments/{name}/rollback copies a Revision's template
//     into the deployment (revision 0: the live revision before the
//     desired one) and clears spec.paused; an unknown revision answers 404.
//
// # Watches
//
// GET of a collection with ?watch=true streams newline-delimited
// api.WatchEvents, one flushed per change, starting after
// ?resourceVersion=N (after the current revision when N is 0) and honouring
// the label and field selectors. Every Config.BookmarkInterval (default
// 5 s, advertised in the api.HeaderBookmarkInterval response header) the
// stream carries a BOOKMARK whose metadata.resourceVersion a watcher may
// resume from; clients take a stream silent for three intervals for dead.
// When the revision has been compacted the stream answers one ERROR event
// carrying a Status with reason Gone and ends: list again and watch from
// the list's resourceVersion. A watch ends when its client goes or
// the server stops.
//
// # Security
//
// Every connection is TLS with this host's serving certificate. Callers
// present client certificates from the cluster CA and are named by
// pki.IdentityFromCert; only POST /v1/join, /healthz and /readyz answer
// without one. Admins and control-plane servers may do anything. A node
// (node:<name>) may get, list and watch pods, nodes, services, endpoints
// and namespaces; create and update its own Node and its status; update
// the status of, and delete, pods bound to it; create events; renew its
// own certificates; and read /v1/controlplane and /v1/version. Anything
// else answers 403 naming the identity and what it tried.
//
// Joining: an admin mints a token (POST /v1/jointokens); only its hash is
// stored, under a TTL. POST /v1/join verifies and consumes the token
// (single use, expiry, optional node name), signs the node's client CSR
// (nothing beyond the node's identity is signed) and, when the CA supports
// it, its serving CSR, records the serials under the node, and answers the
// certificates, the CA and the control-plane endpoints. POST /v1/renew
// signs new certificates for the caller's own identity. Deleting a Node
// revokes every certificate recorded for it until it would expire; each
// instance keeps revoked serials in memory (fed by a watch) and refuses
// them at the handshake and on every request of a connection opened
// earlier.
//
// # Node agents
//
// GET .../pods/{name}/log proxies to the agent of the pod's node at
// Node.status.agentEndpoint over TLS, verifying the agent's serving
// certificate against the cluster CA and presenting this host's
// certificate (a server identity). The agent serves
//
//	GET {agentEndpoint}/v1/logs/{namespace}/{pod}/{container}?follow=true&tailLines=N
//
// (AgentLogPath builds the path) answering 200 with the log as it streams,
// or an api.Status, which the server passes on. The agent should accept
// only control-plane server identities.
//
// # Cluster
//
// GET /v1/controlplane answers the published endpoints and the cluster ID
// (aux AuxClusterID, written once by bootstrap). /v1/members lists, adds
// (as learners), promotes and removes etcd members through a Membership,
// refusing removals that would break quorum with 409. GET /v1/snapshot
// streams an etcd snapshot (restore it with etcdutl or control/etcd).
// /healthz answers while the process serves; /readyz answers when etcd
// answers a linearizable read within two seconds; /metrics serves
// Prometheus metrics (requests by verb, resource and code, latency, open
// watches) to admins and servers.
//
// This package must never run controllers, talk to containerd or hosts,
// keep state that is not in etcd (beyond caches rebuilt from it), or log
// except through Config.Logger; it never logs a token, key or certificate
// body.
package server
