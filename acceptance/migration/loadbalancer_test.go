package migration

import (
	"slices"
	"testing"

	"github.com/berth-io/berth/control/api"
)

func node(name string, ready, cordoned bool) api.Node {
	status := api.ConditionFalse
	if ready {
		status = api.ConditionTrue
	}
	n := api.Node{Metadata: api.ObjectMeta{Name: name}}
	n.Spec.Unschedulable = cordoned
	n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: status}}
	return n
}

func TestTargetsAreTheReadyUncordonedNodesAmongTheHostsGiven(t *testing.T) {
	nodes := []api.Node{
		node("b-2", true, false),
		node("a-1", true, true),   // cordoned to be drained: no new connections
		node("a-2", true, false),  // still serving
		node("b-1", false, false), // joining, not Ready yet
		node("cp-1", true, false), // not among the hosts given
	}
	got := Targets(nodes, []string{"a-1", "a-2", "b-1", "b-2"})
	if want := []string{"a-2", "b-2"}; !slices.Equal(got, want) {
		t.Fatalf("Targets = %v, want %v", got, want)
	}
}
