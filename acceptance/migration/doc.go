// Package migration tests moving a live berth cluster from one hosting
// vendor to another by changing configuration only: the real terraform
// binary (scripts/terraform.sh) with the provider from the local mirror,
// on a testbed with two vendors on different subnets and latency between
// them, while a prober counts failed requests through the testbed load
// balancer. The move is interrupted (terraform gets SIGINT once the first
// new control-plane host votes) and resumed; midway through the resumed
// apply a leaving control-plane host dies, and the apply finishes the move
// all the same. The same move through the Pulumi SDK is in ./pulumi (its
// own module).
//
// What happens to a leaving host that is dead: the engine cannot reach it
// over SSH, so it removes its etcd member by ID, deletes its pods and its
// Node (which revokes the Node's identity) and leaves it out of state
// without a wipe. Its disk keeps berth's files; nothing brings it back into
// the cluster.
package migration
