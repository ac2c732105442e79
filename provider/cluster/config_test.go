package cluster

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestConfigHash(t *testing.T) {
	s := Settings{}.withDefaults()
	h := desiredHost{Host: host("cp-1", 10), Role: RoleControlPlane}
	h.InternalIP = "198.18.0.10"
	base := renderHost(h, s, "ca", "key", []string{"https://198.18.0.10:6443"}, testDigest, etcdInit{Cluster: "cp-1=https://198.18.0.10:2380", State: "new"})
	relabelled := h
	relabelled.Labels = map[string]string{"zone": "a"}
	slower := s
	slower.EtcdElectionMs = 5000
	tests := []struct {
		name string
		f    hostFiles
		same bool
	}{
		{"other control-plane endpoints keep the hash", renderHost(h, s, "ca", "key", []string{"https://198.18.0.99:6443"}, testDigest, etcdInit{State: "new"}), true},
		{"another image digest keeps the hash", renderHost(h, s, "ca", "key", nil, "sha256:22", etcdInit{}), true},
		{"etcd first-start settings keep the hash", renderHost(h, s, "ca", "key", nil, testDigest, etcdInit{Cluster: "x", State: "existing"}), true},
		{"new labels change the hash", renderHost(relabelled, s, "ca", "key", nil, testDigest, etcdInit{}), false},
		{"new etcd timings change the hash", renderHost(h, slower, "ca", "key", nil, testDigest, etcdInit{}), false},
		{"another CA changes the hash", renderHost(h, s, "ca2", "key", nil, testDigest, etcdInit{}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f.hash() == base.hash(); got != tc.same {
				t.Fatalf("same hash = %v, want %v", got, tc.same)
			}
		})
	}
}

func TestWorkersGetNoCAKeyAndControlPlaneHostsDo(t *testing.T) {
	s := Settings{}.withDefaults()
	for _, role := range []string{RoleWorker, RoleControlPlane} {
		h := desiredHost{Host: host("h-1", 10), Role: role}
		h.InternalIP = "198.18.0.10"
		files, err := renderHost(h, s, "ca", "secret-key", nil, testDigest, etcdInit{State: "new"}).files()
		if err != nil {
			t.Fatal(err)
		}
		_, hasKey := files[pathCAKey]
		_, hasControl := files[pathControl]
		if want := role == RoleControlPlane; hasKey != want || hasControl != want {
			t.Errorf("%s: CA key written %v, control.json written %v; want %v", role, hasKey, hasControl, want)
		}
		for p, b := range files {
			if p != pathCAKey && json.Valid(b) && strings.Contains(string(b), "secret-key") {
				t.Errorf("%s: %s contains the CA key", role, p)
			}
		}
	}
}

func TestControlConfigJoinsWithExistingState(t *testing.T) {
	s := Settings{EtcdHeartbeatMs: 500, EtcdElectionMs: 5000}.withDefaults()
	h := desiredHost{Host: host("cp-2", 11), Role: RoleControlPlane}
	h.InternalIP = "198.18.0.11"
	f := renderHost(h, s, "ca", "key", nil, testDigest, etcdInit{Cluster: "cp-1=https://198.18.0.10:2380,cp-2=https://198.18.0.11:2380", State: "existing"})
	c := f.control
	if c.Etcd.InitialClusterState != "existing" || c.Etcd.HeartbeatMs != 500 || c.Etcd.ElectionMs != 5000 {
		t.Fatalf("etcd settings %+v", c.Etcd)
	}
	if c.AdvertiseURL != "https://198.18.0.11:6443" || c.Etcd.PeerURLs[0] != "https://198.18.0.11:2380" {
		t.Fatalf("urls %s %v", c.AdvertiseURL, c.Etcd.PeerURLs)
	}
	if c.ClusterCIDR != "10.244.0.0/16" || c.ServiceCIDR != "10.96.0.0/16" {
		t.Fatalf("cidrs %s %s", c.ClusterCIDR, c.ServiceCIDR)
	}
}

func TestDigestOfLinkReadsTheImageDirectory(t *testing.T) {
	for in, want := range map[string]string{"images/abc\n": "sha256:abc", "/opt/berth/images/def": "sha256:def", "": ""} {
		if got := digestOfLink(in); got != want {
			t.Errorf("digestOfLink(%q) = %q, want %q", in, got, want)
		}
	}
}
