package cluster

import (
	"reflect"
	"strings"
	"testing"
)

// inOrder reports the first of want missing from text or out of order.
func inOrder(text string, want []string) string {
	last := -1
	for _, w := range want {
		i := strings.Index(text[last+1:], w)
		if i < 0 {
			return w
		}
		last += 1 + i
	}
	return ""
}

func TestPlanOfAMoveToOtherHostsNamesEveryMembershipStepInOrder(t *testing.T) {
	prior := stateFor(t, testSpec([]string{"a-1", "a-2", "a-3"}, []string{"a-4", "a-5", "a-6"}), testDigest)
	tests := []struct {
		name  string
		spec  Spec
		leave []string
		want  []string
	}{
		{
			name:  "three for three: each join is paired with one removal",
			spec:  testSpec([]string{"b-1", "b-2", "b-3"}, []string{"b-4", "b-5", "b-6"}),
			leave: []string{"a-1", "a-2", "a-3", "a-4", "a-5", "a-6"},
			want: []string{
				"control-plane hosts b-1, b-2, b-3 join one at a time as etcd learners",
				"add learner b-1, promote; remove member a-1; add learner b-2, promote; remove member a-2; add learner b-3, promote; remove member a-3",
				"control-plane hosts a-1, a-2, a-3 leave one at a time as their turn comes",
				"endpoints move with them, from a-1, a-2, a-3 to b-1, b-2, b-3",
				"workers b-4, b-5, b-6 join",
				"workers a-4, a-5, a-6 leave one at a time after the new workers are healthy",
				"no longer answers SSH",
			},
		},
		{
			name:  "three to one: the removals without a join come after the workers",
			spec:  testSpec([]string{"b-1"}, []string{"a-4", "a-5", "a-6"}),
			leave: []string{"a-1", "a-2", "a-3"},
			want: []string{
				"add learner b-1, promote; remove member a-1\n",
				"control-plane hosts a-1 leave one at a time as their turn comes",
				"control-plane hosts a-2, a-3 leave one at a time: drained, etcd member removed",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Plan(tc.spec, prior)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Leave, tc.leave) {
				t.Errorf("leave = %v, want %v", p.Leave, tc.leave)
			}
			text := strings.Join(p.Actions, "\n")
			if miss := inOrder(text, tc.want); miss != "" {
				t.Errorf("actions lack %q (or have it out of order):\n%s", miss, text)
			}
		})
	}
}

func TestPoolPlanOfAMoveJoinsNewWorkersBeforeOldOnesLeave(t *testing.T) {
	access := ClusterAccess{Endpoints: []string{"https://198.18.2.11:6443"}, CACertPEM: "ca", AdminCertPEM: "cert", AdminKeyPEM: "key"}
	old := PoolSpec{Cluster: access, Pool: WorkerPool{Name: "workers", Hosts: []Host{host("a-4", 14), host("a-5", 15)}}, Image: Image{Path: "img", Digest: testDigest}}
	e, _, err := poolEngine(old, State{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	prior := State{Hosts: map[string]HostState{}}
	for _, h := range e.hosts {
		if h.Role == RoleWorker {
			hash := renderHost(h, e.settings, access.CACertPEM, "", nil, "", etcdInit{}).hash()
			prior.Hosts[h.Name] = HostState{SSH: h.SSH, Role: RoleWorker, Pool: "workers", InternalIP: h.InternalIP, Digest: testDigest, ConfigHash: hash}
		}
	}
	moved := old
	moved.Pool.Hosts = []Host{host("b-4", 24), host("b-5", 25)}
	p, err := PlanPool(moved, prior)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Join, []string{"b-4", "b-5"}) || !reflect.DeepEqual(p.Leave, []string{"a-4", "a-5"}) {
		t.Errorf("join %v leave %v, want [b-4 b-5] [a-4 a-5]", p.Join, p.Leave)
	}
	text := strings.Join(p.Actions, "\n")
	if miss := inOrder(text, []string{"workers b-4, b-5 join", "workers a-4, a-5 leave one at a time after the new workers are healthy"}); miss != "" {
		t.Errorf("actions lack %q (or have it out of order):\n%s", miss, text)
	}
	if strings.Contains(text, "endpoint-") {
		t.Errorf("the pool plan speaks of the control plane's endpoint stand-ins:\n%s", text)
	}
}
