// Package agent holds the node agent's end-to-end tests: a dev control plane
// runs inside one testbed host, `berth agent` with Debian's containerd runs
// on others, and the tests drive pods through the API and check what
// happens on the hosts over SSH (ctr) and through the API (status, logs).
// It has no production code and must never be imported.
package agent
