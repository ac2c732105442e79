package endpoints

import (
	"reflect"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
)

func svc(ports ...api.ServicePort) *api.Service {
	return &api.Service{
		Metadata: api.ObjectMeta{Name: "web", Namespace: "default", UID: "s1"},
		Spec:     api.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: ports},
	}
}

func pod(name, ip string, ready bool, portName string, port int32) *api.Pod {
	p := &api.Pod{
		Metadata: api.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: api.PodSpec{NodeName: "n-" + name, Containers: []api.Container{{
			Name: "c", Image: "img", Ports: []api.ContainerPort{{Name: portName, ContainerPort: port, Protocol: api.ProtocolTCP}},
		}}},
		Status: api.PodStatus{PodIP: ip, Phase: api.PodRunning},
	}
	if ready {
		p.Status.Conditions = []api.Condition{{Type: api.PodReady, Status: api.ConditionTrue}}
	}
	return p
}

func addr(name, ip string) api.EndpointAddress {
	return api.EndpointAddress{IP: ip, NodeName: "n-" + name, PodName: name}
}

func TestSubsets(t *testing.T) {
	http := api.ServicePort{Name: "http", Port: 80, TargetPort: api.FromString("web"), Protocol: api.ProtocolTCP}
	numeric := api.ServicePort{Name: "http", Port: 80, TargetPort: api.FromInt(8080), Protocol: api.ProtocolTCP}
	terminating := pod("c", "10.0.0.3", true, "web", 8080)
	now := time.Now()
	terminating.Metadata.DeletionTimestamp = &now
	tests := []struct {
		name string
		svc  *api.Service
		pods []*api.Pod
		want []api.EndpointSubset
	}{
		{"ready and not-ready pods are listed apart, sorted by IP",
			svc(numeric),
			[]*api.Pod{pod("b", "10.0.0.2", true, "web", 8080), pod("a", "10.0.0.1", true, "web", 8080), pod("x", "10.0.0.9", false, "web", 8080)},
			[]api.EndpointSubset{{
				Addresses:         []api.EndpointAddress{addr("a", "10.0.0.1"), addr("b", "10.0.0.2")},
				NotReadyAddresses: []api.EndpointAddress{addr("x", "10.0.0.9")},
				Ports:             []api.EndpointPort{{Name: "http", Port: 8080, Protocol: api.ProtocolTCP}},
			}}},
		{"a named target port resolves per pod into separate subsets",
			svc(http),
			[]*api.Pod{pod("a", "10.0.0.1", true, "web", 8080), pod("b", "10.0.0.2", true, "web", 9090)},
			[]api.EndpointSubset{
				{Addresses: []api.EndpointAddress{addr("a", "10.0.0.1")}, Ports: []api.EndpointPort{{Name: "http", Port: 8080, Protocol: api.ProtocolTCP}}},
				{Addresses: []api.EndpointAddress{addr("b", "10.0.0.2")}, Ports: []api.EndpointPort{{Name: "http", Port: 9090, Protocol: api.ProtocolTCP}}},
			}},
		{"terminating pods, pods without an IP and pods without the named port are left out",
			svc(http),
			[]*api.Pod{terminating, pod("d", "", true, "web", 8080), pod("e", "10.0.0.5", true, "other", 8080)},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Subsets(tt.svc, tt.pods); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestSubsetsAreStableWhateverThePodOrder(t *testing.T) {
	s := svc(api.ServicePort{Name: "http", Port: 80, TargetPort: api.FromInt(8080)})
	a, b, c := pod("a", "10.0.0.1", true, "web", 8080), pod("b", "10.0.0.2", false, "web", 8080), pod("c", "10.0.0.3", true, "web", 8080)
	first := Subsets(s, []*api.Pod{a, b, c})
	if second := Subsets(s, []*api.Pod{c, b, a}); !reflect.DeepEqual(first, second) {
		t.Fatalf("order changed the endpoints:\n%+v\n%+v", first, second)
	}
}
