package server

import (
	"net/url"
	"testing"
)

func TestParseObjectRouteFollowsPathsGo(t *testing.T) {
	cases := []struct {
		path                    string
		ok                      bool
		resource, ns, name, sub string
	}{
		{"/v1/pods", true, "pods", "", "", ""},
		{"/v1/nodes", true, "nodes", "", "", ""},
		{"/v1/nodes/n1", true, "nodes", "", "n1", ""},
		{"/v1/nodes/n1/status", true, "nodes", "", "n1", "status"},
		{"/v1/namespaces", true, "namespaces", "", "", ""},
		{"/v1/namespaces/team", true, "namespaces", "", "team", ""},
		{"/v1/namespaces/team/status", true, "namespaces", "", "team", "status"},
		{"/v1/namespaces/team/pods", true, "pods", "team", "", ""},
		{"/v1/namespaces/team/pods/web", true, "pods", "team", "web", ""},
		{"/v1/namespaces/team/pods/web/status", true, "pods", "team", "web", "status"},
		{"/v1/namespaces/team/pods/web/eviction", true, "pods", "team", "web", "eviction"},
		{"/v1/namespaces/team/pods/web/log", true, "pods", "team", "web", "log"},
		{"/v1/namespaces/team/deployments/d/rollback", true, "deployments", "team", "d", "rollback"},
		{"/v1/namespaces/team/deployments/d/eviction", false, "", "", "", ""},
		{"/v1/namespaces/team/revisions/r/status", false, "", "", "", ""},
		{"/v1/namespaces/team/nodes", false, "", "", "", ""},
		{"/v1/pods/web", false, "", "", "", ""},
		{"/v1/widgets", false, "", "", "", ""},
		{"/v1/namespaces/team/pods/web/status/extra", false, "", "", "", ""},
		{"/v1/namespaces/te%2Fam/pods", true, "pods", "te/am", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			u, err := url.Parse(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			segs, ok := splitPath(u)
			if !ok {
				t.Fatalf("splitPath refused %s", tc.path)
			}
			rt, ok := parseObjectRoute(segs)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if rt.ki.Resource != tc.resource || rt.namespace != tc.ns || rt.name != tc.name || rt.sub != tc.sub {
				t.Fatalf("got %s ns=%q name=%q sub=%q", rt.ki.Resource, rt.namespace, rt.name, rt.sub)
			}
		})
	}
}
