// Package etcd runs the etcd member that berth's control plane stores its
// state in, or connects to an external etcd cluster, and manages etcd
// membership, health, snapshots and restores.
//
// The life of an embedded member:
//
//   - Start(ctx, cfg) starts the member and returns once it has joined its
//     cluster and serves clients, or returns the error that stopped it; ctx
//     bounds only the start-up.
//   - Server.Client is one client for the life of the member; give every
//     request its own timeout through its context.
//   - Server.Err reports a member that fails or stops on its own (for
//     example because it was removed from the cluster).
//   - Server.Close stops the member; calling it again does nothing.
//
// The first control host starts with ClusterState NewCluster. Each further
// host is first added as a learner by an existing member (AddLearner, which
// returns the initial-cluster string to start with), starts with
// ClusterState ExistingCluster, catches up (WaitCaughtUp) and is promoted to
// a voter (Promote). RemoveMember refuses, with a *QuorumError, a removal
// that would leave fewer healthy voters than a majority. Snapshot streams a
// verified backup; Restore turns one into the data directory of a fresh
// single-member cluster with every key and revision.
//
// Membership, health and snapshot functions take a *clientv3.Client, so they
// work the same against an embedded member and against an external cluster
// reached with Connect.
//
// Errors come in two kinds, as with etcd's own client: context errors
// (context.Canceled, context.DeadlineExceeded, possibly wrapped) mean the
// caller's deadline ended the call and it may be retried; anything else is
// an answer from etcd or a failed check, described by the message and, where
// callers branch on it, a sentinel (ErrWouldBreakQuorum, ErrMemberNotFound,
// ErrLearnerNotReady, ErrStopped, ErrSnapshotCorrupt).
//
// This package never logs on its own: etcd's log goes to Config.LogOutput,
// or nowhere. It never imports other berth packages and never touches files
// outside the data directory it is given and a private temporary directory
// for certificates passed as PEM.
package etcd
