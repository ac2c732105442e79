// Package plane assembles the control-plane process that `berth control`
// runs: embedded etcd (or an external cluster), the typed store, the HTTPS
// API server and the scheduler and controllers, as components started in
// order and stopped in reverse.
//
// # Life of a control plane
//
// A host's configuration is a Config, stored as JSON in
// /etc/berth/control.json (LoadConfig reads it):
//
//	{"name": "cp1", "dataDir": "/var/lib/berth/control",
//	 "listenAddress": ":6443", "advertiseURL": "https://198.18.0.10:6443",
//	 "etcd": {"peerURLs": ["https://198.18.0.10:2380"], "initialClusterState": "new"},
//	 "pki": {"caCertFile": "/etc/berth/pki/ca.crt", "caKeyFile": "/etc/berth/pki/ca.key"}}
//
// Run(ctx, cfg, logger) then runs it until ctx ends:
//
//  1. Credentials: the CA is loaded from the PKI files; the serving
//     certificate is loaded, or issued from the CA (and written) when it
//     is absent, expiring or missing one of the host's names.
//  2. Components, each with the Init/Start/Stop contract of Component, are
//     started in this order: etcd (an embedded member under DataDir/etcd
//     through control/etcd, its client port serving TLS with this host's
//     certificate to this host's identity only, its peers over TLS with a
//     peer certificate from the CA when the peer URLs are https; or a
//     client of Etcd.Endpoints); the store, which
//     bootstraps the cluster on first start (the cluster ID, aux
//     "cluster/id", created once and never replaced, and the namespaces
//     "default" and "berth-system"), idempotently on every start; the API
//     server on ListenAddress, publishing AdvertiseURL; and, unless
//     DisableControllers is set, the scheduler and controllers
//     (control/controller's Run, leader-elected through a Lease, with the
//     LeaderElection timings; Config.RunControllers replaces it in tests),
//     given a client configuration for a certificate minted at start for
//     this control plane's own server identity (which the API treats as
//     admin) and pointed at this host's API.
//  3. When ctx ends, or a component fails (etcd stopping, the listener
//     breaking, the controllers returning), the components stop in reverse
//     order and Run returns (nil after a stop caused by ctx).
//
// A second control-plane host joins as an etcd learner: an admin adds it
// through POST /v1/members, and its Config names the returned initial
// cluster with initialClusterState "existing"; it is promoted once caught
// up. Raft timings (etcd.heartbeatMs, etcd.electionMs) are settings because
// hosts sharing slow CPUs need longer ones.
//
// # Dev mode
//
// With Dev set, only DataDir and ListenAddress are needed: the CA is
// created under DataDir/pki on first start and reused afterwards, etcd runs
// under DataDir/etcd on loopback ports chosen once (DataDir/etcd-ports.json),
// and an admin client configuration is written to DataDir/admin.json
// (mode 0600, the JSON of control/client.Config: endpoints, caCertificate,
// clientCertificate, clientKey) pointing at the API. A restart on the same
// directory keeps the CA, the admin certificate, the cluster ID and every
// object.
//
// This package must never implement API, store or controller logic of its
// own (it wires the packages that do), never log except through the logger
// given to Run, and never write credentials with modes wider than 0600 for
// keys.
package plane
