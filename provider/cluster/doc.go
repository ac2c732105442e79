// Package cluster is berth's provisioning engine: it makes a set of
// SSH-reachable hosts into a berth cluster and keeps it matching a
// declarative Spec. The Terraform provider and the Pulumi bridge call Apply,
// Plan and Destroy; nothing else of the engine is needed.
//
// # Life of an Apply
//
// Apply(ctx, spec, prior, opts) compares the Spec with the State the caller
// kept from the last run and then, in this order:
//
//  1. bootstraps the cluster on the first control-plane host when there is
//     none yet (etcd initial-cluster-state "new", exactly once: a re-run
//     recognises the cluster by the ID GET /v1/controlplane returns, and a
//     host that should join is never configured with "new");
//  2. joins new control-plane hosts one at a time as etcd learners, promoted
//     once caught up, and new workers with a join token minted for that join
//     and written only to the host's token file;
//  3. replaces, one host (or MaxUnavailable hosts) at a time, every host
//     whose node image or configuration changed: cordon, drain, install,
//     wait until healthy, uncordon; control-plane hosts one at a time after
//     an etcd snapshot, with quorum checked before and after each. A drain
//     never takes a deployment below what its maxUnavailable allows: pods
//     it may not lose get stand-ins (ownerless copies the service selects,
//     labelled LabelStandInFor) that are Ready before the pods are evicted
//     and deleted once the deployment has its own pods back;
//  4. removes hosts that left the Spec: drained, their etcd member removed
//     by ID (through the members that stay), their services stopped and
//     berth's files and network state wiped, reached with the SSH settings
//     recorded in State. When control-plane hosts leave while others join
//     (a move), each join is followed by one removal, so etcd never has
//     more than one extra member.
//
// Installing on a host uploads the bundle (its sha256 verified on the host),
// unpacks it under /opt/berth/images/<hex>, writes /etc/berth, switches
// /opt/berth/current atomically keeping /opt/berth/previous, restarts the
// services through `berth node restart`, and waits until the host is healthy
// (its Node Ready on the new digest, its API answering /readyz, its etcd
// member started and voting). A host that does not become healthy is switched
// back to its previous image and configuration, and the error names the host,
// the cause and the last lines of its service logs. Each host keeps a journal
// (/var/lib/berth/journal.json) so a run cut short is finished by the next.
// A host already on the desired image and configuration is not touched.
//
// This package must never log (progress goes to Options.Progress), never
// put a join token or private key into an error, an event or State beyond
// the CA and admin credentials the caller must keep, and never touch a host
// other than those named in the Spec or the prior State.
package cluster
