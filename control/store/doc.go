// Package store keeps berth's objects in etcd: typed create, get, update,
// delete, list and watch with optimistic concurrency on resourceVersion,
// plus the small auxiliary records and allocation pools the control plane
// keeps beside the objects.
//
// # Objects
//
// Each object is stored as JSON (with kind and apiVersion filled) under
//
//	<prefix>registry/<resource>/<namespace>/<name>   (namespaced kinds)
//	<prefix>registry/<resource>/<name>               (cluster-scoped kinds)
//
// The resourceVersion is never stored: it is the etcd modification revision
// of the key and is set on every object read. Updates compare-and-swap on
// it, so two writers that read the same version cannot both win; the loser
// gets an api Conflict error (HTTP 409) and re-reads. [Store.GuaranteedUpdate]
// wraps that read-modify-write loop.
//
// The store owns some metadata: uid, creationTimestamp and generation are
// set on create and kept on update, and generation counts changes outside
// metadata and status. The status of kinds that have one is written only by
// [Store.UpdateStatus]; [Store.Update] keeps the stored status, so a user
// editing the spec never overwrites what a controller reported.
//
// # Reads and watches
//
// [Store.List] is one range read at one revision (the latest or a given
// one), and sets the list's resourceVersion to that revision. A watch from
// it ([Store.Watch] with FromRevision) sees every later change exactly once.
// When etcd has compacted the revision asked for, both answer with an api
// Gone error: the caller lists again and watches from the new list.
//
// # Aux records and pools
//
// Aux records (<prefix>aux/...) hold small JSON values: join-token records,
// certificate serials, the cluster ID, published endpoints; they may carry
// a time to live. Pools (<prefix>alloc/<pool>/<value>) reserve values such as
// cluster IPs, node ports and node pod CIDRs, each key holding its owner.
//
// # Contracts
//
// Every method does I/O against etcd and is bounded only by the context it
// is given: callers pass a context with a deadline. A Store is safe for
// concurrent use and holds no state besides its etcd client, so several
// control-plane instances may share one etcd. The store never logs, never
// validates or defaults objects (the server does that through package api)
// and never decides policy such as graceful deletion: it stores what it is
// told, atomically.
package store
