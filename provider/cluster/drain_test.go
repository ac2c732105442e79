package cluster

import (
	"reflect"
	"testing"

	"github.com/berth-io/berth/control/api"
)

func TestStandInsCoverOnlyPodsBeyondWhatMaxUnavailableAllows(t *testing.T) {
	three, ten := int32(3), int32(10)
	zero, one, quarter := api.FromInt(0), api.FromInt(1), api.FromString("25%")
	for _, tc := range []struct {
		name     string
		replicas *int32
		mu       *api.IntOrString
		onNode   int
		want     int
	}{
		{"maxUnavailable 0 needs a stand-in for every pod", &three, &zero, 2, 2},
		{"maxUnavailable 1 lets one pod go", &three, &one, 1, 0},
		{"maxUnavailable 1 with two pods on the node", &three, &one, 2, 1},
		{"25% of 3 rounds down to 0", &three, &quarter, 1, 1},
		{"25% of 10 is 2", &ten, &quarter, 3, 1},
		{"defaults: 1 replica, 25% rounds down to 0", nil, nil, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &api.Deployment{Spec: api.DeploymentSpec{Replicas: tc.replicas, Strategy: api.DeploymentStrategy{MaxUnavailable: tc.mu}}}
			got, err := standInNeed(d, tc.onNode)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("standInNeed = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestStandInPodIsAnUnboundOwnerlessCopyServingTheSamePods(t *testing.T) {
	p := &api.Pod{
		Metadata: api.ObjectMeta{
			Namespace: "shop", Name: "web-abc", UID: "u1", ResourceVersion: 7,
			Labels:          map[string]string{"app": "web"},
			OwnerReferences: []api.OwnerReference{{Kind: "Deployment", Name: "web", UID: "d1", Controller: true}},
		},
		Spec: api.PodSpec{NodeName: "n1", Containers: []api.Container{{Name: "web", Image: "r/web:v1"}}},
	}
	s := standInPod(p, "n1")
	if s.Metadata.Namespace != "shop" || s.Metadata.Name != "" || s.Metadata.GenerateName == "" {
		t.Errorf("stand-in metadata %+v: want the pod's namespace and a generated name", s.Metadata)
	}
	if s.Metadata.UID != "" || s.Metadata.ResourceVersion != 0 || len(s.Metadata.OwnerReferences) != 0 {
		t.Errorf("stand-in keeps identity or owners of the pod: %+v", s.Metadata)
	}
	if s.Metadata.Labels["app"] != "web" || s.Metadata.Labels[LabelStandInFor] != "n1" {
		t.Errorf("stand-in labels %v: want the pod's labels and %s=n1", s.Metadata.Labels, LabelStandInFor)
	}
	if s.Spec.NodeName != "" || len(s.Spec.Containers) != 1 || s.Spec.Containers[0].Image != "r/web:v1" {
		t.Errorf("stand-in spec %+v: want the pod's spec, unbound", s.Spec)
	}
	if _, ok := p.Metadata.Labels[LabelStandInFor]; ok || p.Spec.NodeName != "n1" {
		t.Errorf("standInPod changed the original pod")
	}
}

func TestControlPlaneMoveTakesLeavingHostsInNameOrderAndFollowsBothSets(t *testing.T) {
	prior := stateFor(t, testSpec([]string{"cp-2", "cp-1", "cp-3"}, []string{"w-1", "w-9"}), testDigest)
	moved := testSpec(nil, []string{"w-1"})
	for i, n := range []string{"cp-4", "cp-5", "cp-6"} {
		moved.ControlPlane = append(moved.ControlPlane, host(n, 20+i))
	}
	hosts, err := moved.hosts()
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{spec: moved, settings: moved.Settings.withDefaults(), hosts: hosts, state: prior}
	if got, want := e.leavingControlPlane(), []string{"cp-1", "cp-2", "cp-3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("leaving control plane = %v, want %v (the worker w-9 leaves later)", got, want)
	}
	eps := e.liveEndpoints()
	for _, ip := range []string{"198.18.0.10", "198.18.0.11", "198.18.0.12", "198.18.0.20", "198.18.0.21", "198.18.0.22"} {
		if !contains(eps, apiURL(ip, 6443)) {
			t.Errorf("live endpoints %v lack %s", eps, ip)
		}
	}
	for _, ip := range []string{"198.18.0.50", "198.18.0.51"} {
		if contains(eps, apiURL(ip, 6443)) {
			t.Errorf("live endpoints %v name worker %s", eps, ip)
		}
	}
	delete(e.state.Hosts, "cp-1")
	if got := e.leavingControlPlane(); !reflect.DeepEqual(got, []string{"cp-2", "cp-3"}) {
		t.Errorf("after cp-1 left: leaving = %v", got)
	}
}
