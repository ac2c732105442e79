package cluster

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/provider/ssh"
)

const testDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func host(name string, i int) Host {
	return Host{Name: name, SSH: ssh.HostConfig{Address: fmt.Sprintf("198.18.0.%d", i)}}
}

func testSpec(cps []string, workers []string) Spec {
	s := Spec{Image: Image{Path: "img.tar.gz", Digest: testDigest}, CACertPEM: "ca", CAKeyPEM: "key"}
	for i, n := range cps {
		s.ControlPlane = append(s.ControlPlane, host(n, 10+i))
	}
	p := WorkerPool{Name: "pool"}
	for i, n := range workers {
		p.Hosts = append(p.Hosts, host(n, 50+i))
	}
	s.Workers = []WorkerPool{p}
	return s
}

// stateFor records spec's hosts as installed on digest with their hashes.
func stateFor(t *testing.T, spec Spec, digest string) State {
	t.Helper()
	hosts, err := spec.hosts()
	if err != nil {
		t.Fatal(err)
	}
	st := State{ClusterID: "c1", CACertPEM: spec.CACertPEM, CAKeyPEM: spec.CAKeyPEM, Hosts: map[string]HostState{}}
	for _, h := range hosts {
		hash := renderHost(h, spec.Settings.withDefaults(), spec.CACertPEM, spec.CAKeyPEM, nil, "", etcdInit{}).hash()
		st.Hosts[h.Name] = HostState{SSH: h.SSH, Role: h.Role, Pool: h.Pool, InternalIP: h.InternalIP, Digest: digest, ConfigHash: hash}
	}
	return st
}

func TestPlanDescribesEveryKindOfChange(t *testing.T) {
	base := testSpec([]string{"cp-1", "cp-2", "cp-3"}, []string{"w-1", "w-2", "w-3"})
	prior := stateFor(t, base, testDigest)
	newImage := base
	newImage.Image.Digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	moved := testSpec([]string{"cp-4", "cp-5", "cp-6"}, []string{"w-1", "w-2", "w-3"})
	labelled := testSpec([]string{"cp-1", "cp-2", "cp-3"}, []string{"w-1", "w-2", "w-3"})
	labelled.Workers[0].Labels = map[string]string{"tier": "web"}
	batched := newImage
	batched.Workers = []WorkerPool{{Name: "pool", Hosts: base.Workers[0].Hosts, Rollout: RolloutPolicy{MaxUnavailable: 2}}}

	tests := []struct {
		name        string
		spec        Spec
		prior       State
		join, repl  []string
		leave       []string
		wantActions []string
	}{
		{name: "empty state bootstraps on the first control-plane host", spec: base, prior: State{},
			join:        []string{"cp-1", "cp-2", "cp-3", "w-1", "w-2", "w-3"},
			wantActions: []string{"cp-1 bootstraps a new cluster", "cp-2, cp-3 join one at a time as etcd learners", "workers w-1, w-2, w-3 join"}},
		{name: "same spec changes nothing", spec: base, prior: prior,
			wantActions: []string{"no changes"}},
		{name: "new image replaces control plane then workers one at a time", spec: newImage, prior: prior,
			repl:        []string{"cp-1", "cp-2", "cp-3", "w-1", "w-2", "w-3"},
			wantActions: []string{"3 control-plane hosts will be replaced one at a time", "3 nodes of pool pool will be replaced one at a time"}},
		{name: "max unavailable two replaces workers two at a time", spec: batched, prior: prior,
			repl:        []string{"cp-1", "cp-2", "cp-3", "w-1", "w-2", "w-3"},
			wantActions: []string{"replaced 2 at a time"}},
		{name: "label change replaces only the pool's workers", spec: labelled, prior: prior,
			repl:        []string{"w-1", "w-2", "w-3"},
			wantActions: []string{"3 nodes of pool pool will be replaced"}},
		{name: "moving the control plane joins new hosts before old ones leave", spec: moved, prior: prior,
			join: []string{"cp-4", "cp-5", "cp-6"}, leave: []string{"cp-1", "cp-2", "cp-3"},
			wantActions: []string{"control-plane hosts cp-4, cp-5, cp-6 join", "members move cp-1, cp-2, cp-3 → cp-4, cp-5, cp-6", "cp-1, cp-2, cp-3 leave one at a time"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Plan(tc.spec, tc.prior)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Join, tc.join) || !reflect.DeepEqual(p.Replace, tc.repl) || !reflect.DeepEqual(p.Leave, tc.leave) {
				t.Errorf("join %v replace %v leave %v; want %v %v %v", p.Join, p.Replace, p.Leave, tc.join, tc.repl, tc.leave)
			}
			text := strings.Join(p.Actions, "\n")
			last := -1
			for _, w := range tc.wantActions {
				i := strings.Index(text, w)
				if i < 0 {
					t.Errorf("actions lack %q:\n%s", w, text)
					continue
				}
				if i < last {
					t.Errorf("action %q out of order:\n%s", w, text)
				}
				last = i
			}
		})
	}
}

func TestPlanRefusesInvalidSpecs(t *testing.T) {
	dup := testSpec([]string{"cp-1"}, []string{"cp-1"})
	bad := testSpec([]string{"CP_1"}, nil)
	none := testSpec(nil, []string{"w-1"})
	noAddr := testSpec([]string{"cp-1"}, nil)
	noAddr.ControlPlane[0].SSH.Address = ""
	for name, s := range map[string]Spec{"duplicate host": dup, "bad name": bad, "no control plane": none, "no address": noAddr} {
		t.Run(name, func(t *testing.T) {
			if _, err := Plan(s, State{}); !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("Plan = %v, want ErrInvalidSpec", err)
			}
		})
	}
}

func TestQuorumProblem(t *testing.T) {
	m := func(id string, started, learner, leader bool) api.Member {
		return api.Member{Status: api.MemberStatus{ID: id, Started: started, IsLearner: learner, IsLeader: leader}}
	}
	tests := []struct {
		name    string
		members []api.Member
		want    string
	}{
		{"three started voters with a leader are healthy", []api.Member{m("a", true, false, true), m("b", true, false, false), m("c", true, false, false)}, ""},
		{"a learner does not count against quorum", []api.Member{m("a", true, false, true), m("l", false, true, false)}, ""},
		{"one voter down of three is reported by ID", []api.Member{m("a", true, false, true), m("b", true, false, false), m("c", false, false, false)}, "members c not started"},
		{"two voters down of three is quorum lost", []api.Member{m("a", true, false, true), m("b", false, false, false), m("c", false, false, false)}, "quorum lost"},
		{"no leader is a problem", []api.Member{m("a", true, false, false)}, "no leader"},
		{"no voters is a problem", nil, "no voting"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := quorumProblem(tc.members)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("quorumProblem = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("quorumProblem = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestInitialClusterOfInterruptedJoinNamesTheLearner(t *testing.T) {
	ms := []api.Member{
		{Metadata: api.ObjectMeta{Name: "cp-1"}, Status: api.MemberStatus{PeerURLs: []string{"https://198.18.0.10:2380"}, Started: true}},
		{Status: api.MemberStatus{PeerURLs: []string{"https://198.18.0.11:2380"}, IsLearner: true}},
	}
	got := initialCluster(ms, "cp-2", "https://198.18.0.11:2380")
	want := "cp-1=https://198.18.0.10:2380,cp-2=https://198.18.0.11:2380"
	if got != want {
		t.Fatalf("initialCluster = %q, want %q", got, want)
	}
}
