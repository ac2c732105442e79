package server

import (
	"strings"
	"testing"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/pki"
)

func TestAuthorizeGivesNodesOnlyWhatTheirAgentNeeds(t *testing.T) {
	node := pki.NodeIdentity("n1")
	cases := []struct {
		name  string
		id    pki.Identity
		attrs attributes
		allow bool
	}{
		{"admin deletes a node", pki.AdminIdentity(""), attributes{verb: verbDelete, resource: "nodes", name: "n2"}, true},
		{"server mints a token", pki.ServerIdentity("cp1", nil, nil), attributes{verb: verbMintToken}, true},
		{"etcd peer reads pods", pki.EtcdPeerIdentity("e1", nil, nil), attributes{verb: verbList, resource: "pods"}, false},
		{"node watches pods", node, attributes{verb: verbWatch, resource: "pods"}, true},
		{"node lists endpoints", node, attributes{verb: verbList, resource: "endpoints"}, true},
		{"node gets a namespace", node, attributes{verb: verbGet, resource: "namespaces", name: "default"}, true},
		{"node lists deployments", node, attributes{verb: verbList, resource: "deployments"}, false},
		{"node reads leases", node, attributes{verb: verbGet, resource: "leases", namespace: "berth-system", name: "x"}, false},
		{"node creates a node (name checked by the handler)", node, attributes{verb: verbCreate, resource: "nodes"}, true},
		{"node updates its own node", node, attributes{verb: verbUpdate, resource: "nodes", name: "n1"}, true},
		{"node updates its own node status", node, attributes{verb: verbUpdateStatus, resource: "nodes", name: "n1"}, true},
		{"node updates another node", node, attributes{verb: verbUpdate, resource: "nodes", name: "n2"}, false},
		{"node deletes its own node", node, attributes{verb: verbDelete, resource: "nodes", name: "n1"}, false},
		{"node updates a pod's status (binding checked by the handler)", node, attributes{verb: verbUpdateStatus, resource: "pods", namespace: "default", name: "p"}, true},
		{"node updates a pod's spec", node, attributes{verb: verbUpdate, resource: "pods", namespace: "default", name: "p"}, false},
		{"node creates a pod", node, attributes{verb: verbCreate, resource: "pods", namespace: "default"}, false},
		{"node deletes a pod (binding checked by the handler)", node, attributes{verb: verbDelete, resource: "pods", namespace: "default", name: "p"}, true},
		{"node evicts a pod", node, attributes{verb: verbEvict, resource: "pods", namespace: "default", name: "p"}, false},
		{"node creates an event", node, attributes{verb: verbCreate, resource: "events", namespace: "default"}, true},
		{"node updates an event", node, attributes{verb: verbUpdate, resource: "events", namespace: "default", name: "e"}, false},
		{"node renews", node, attributes{verb: verbRenew}, true},
		{"node reads the control plane", node, attributes{verb: verbControlPlane}, true},
		{"node mints a join token", node, attributes{verb: verbMintToken}, false},
		{"node takes a snapshot", node, attributes{verb: verbSnapshot}, false},
		{"node reads metrics", node, attributes{verb: verbMetrics}, false},
		{"node reads logs", node, attributes{verb: verbLog, resource: "pods", namespace: "default", name: "p"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := authorize(tc.id, tc.attrs)
			if tc.allow && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.allow {
				if !api.IsForbidden(err) {
					t.Fatalf("got %v, want Forbidden", err)
				}
				if want := tc.id.String(); !strings.Contains(err.Error(), want) {
					t.Fatalf("message %q does not name %s", err, want)
				}
			}
		})
	}
}

func TestCheckPodBindingAllowsNodesOnlyTheirOwnPods(t *testing.T) {
	cases := []struct {
		name  string
		id    pki.Identity
		bound string
		allow bool
	}{
		{"node and its pod", pki.NodeIdentity("n1"), "n1", true},
		{"node and another node's pod", pki.NodeIdentity("n1"), "n2", false},
		{"node and an unbound pod", pki.NodeIdentity("n1"), "", false},
		{"admin and any pod", pki.AdminIdentity(""), "n2", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := &api.Pod{Metadata: api.ObjectMeta{Namespace: "default", Name: "p"}, Spec: api.PodSpec{NodeName: tc.bound}}
			err := checkPodBinding(tc.id, "delete", pod)
			if (err == nil) != tc.allow {
				t.Fatalf("got %v, allow %v", err, tc.allow)
			}
		})
	}
}
