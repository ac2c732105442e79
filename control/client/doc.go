// Package client is the one typed Go client of berth's control-plane API:
// the node agent, the Terraform provider, the CLI, the scheduler and the
// controllers all talk to the control plane through it.
//
// Make one [Client] with [New] from a [Config] (the JSON file the control
// plane writes as admin.json, or the one a node gets when it joins) and
// reuse it: it is safe for concurrent use and keeps its connections. Every
// request carries a timeout (default 30 s, see [WithTimeout]) on top of the
// caller's context; watches, log follows and snapshots are bounded by the
// caller's context only, once their response has begun.
//
// Objects are read and written generically, in the style of
// controller-runtime: [Client.Create], [Client.Get], [Client.Update],
// [Client.UpdateStatus], [Client.Delete], [Client.List] and [Client.Watch]
// take any [api.Object] or [api.ObjectList]. Updates compare-and-swap on
// metadata.resourceVersion.
//
// There are two kinds of error. A request the API answered with a failure
// returns an *[api.Status]: branch on it with [api.IsNotFound],
// [api.IsConflict], [api.IsGone] and friends. A request that never reached
// a control plane (every endpoint refused the connection, or the context
// ended) returns a wrapped transport error. The client holds a list of
// endpoints and moves on to the next one on transport errors only, never on
// API errors (a 5xx answer is not retried, but the client's next requests
// try another endpoint first); [Client.SyncEndpoints] (or [Client.RunEndpointSync] in the
// background, periodically and soon after any endpoint fails) replaces the
// list with the one the control plane publishes, so long-lived clients
// follow control-plane hosts as they change.
//
// A control-plane host that loses power sends nothing, not even a FIN, so
// the client checks for dead connections itself: an HTTP/2 PING after 5 s
// of silence, unanswered for 5 s, closes the connection and fails every
// request and watch on it ([WithConnectionCheck]); a watch that hears
// nothing, not even a bookmark, for [WatchIdleIntervals] of the bookmark
// intervals the server advertises ends as well. An endpoint that failed
// that way, or could not be reached, is tried after all the others for
// 30 s, so the retry goes to a live host instead of waiting on the dead
// one again; [WithFallbackEndpoints] names endpoints to try when none of
// the list answers (a node agent's install-time ones).
//
// [Informer] keeps an indexed in-memory copy of one kind, fed by a list and
// then a watch that resumes from the last revision and lists again when
// etcd has compacted it; controllers and the node agent build on it.
// [WorkQueue], [EventRecorder] and [Drain] are small helpers every control
// loop needs.
//
// This package must never import anything of berth's but control/api, and
// it must never log secrets (keys, join tokens) or retry a request that the
// API refused.
package client
