package server_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/pki"
)

func TestIntegrationLogsAreProxiedToThePodsAgent(t *testing.T) {
	c := newCluster(t)
	// A stand-in agent: TLS from the cluster CA, client certificates
	// required, answering the agent log contract.
	kp, err := c.ca.Issue(pki.NodeServerIdentity("n1", nil, []net.IP{net.IPv4(127, 0, 0, 1)}), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := kp.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	type seen struct{ path, query, caller string }
	got := make(chan seen, 1)
	agent := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := pki.IdentityFromCert(r.TLS.PeerCertificates[0])
		got <- seen{r.URL.Path, r.URL.RawQuery, id.String()}
		_, _ = io.WriteString(w, "line 1\nline 2\n")
	}))
	agent.TLS = pki.ServerTLSConfig(c.ca.Pool(), pki.NewCertStore(cert), pki.RequireClientCert)
	agent.TLS.Certificates = []tls.Certificate{cert} // httptest would otherwise serve its own
	agent.StartTLS()
	defer agent.Close()

	var node api.Node
	c.must(c.admin, http.StatusCreated, http.MethodPost, collPath("nodes", ""), &api.Node{Metadata: api.ObjectMeta{Name: "n1"}}, &node)
	node.Status.AgentEndpoint = agent.URL
	c.must(c.admin, http.StatusOK, http.MethodPut, objPath("nodes", "", "n1")+"/status", &node, nil)
	p := newPod("web")
	p.Spec.NodeName = "n1"
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), p, nil)

	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, c.url+objPath("pods", "default", "web")+"/log?follow=true&tailLines=5", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.admin.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "line 1\nline 2\n" {
		t.Fatalf("log: %d %q", resp.StatusCode, body)
	}
	s := <-got
	if s.path != "/v1/logs/default/web/web" || s.query != "follow=true&tailLines=5" {
		t.Errorf("agent asked for %s?%s", s.path, s.query)
	}
	if s.caller != "berth:control-plane:cp1" {
		t.Errorf("agent saw caller %q, want the control plane's identity", s.caller)
	}
	c.expectError(c.admin, api.ReasonNotFound, http.MethodGet, objPath("pods", "default", "web")+"/log?container=nope", nil)

	// Another node pointing at n1's agent: its certificate names n1, so
	// the proxy refuses to treat it as n2's agent.
	var n2 api.Node
	c.must(c.admin, http.StatusCreated, http.MethodPost, collPath("nodes", ""), &api.Node{Metadata: api.ObjectMeta{Name: "n2"}}, &n2)
	n2.Status.AgentEndpoint = agent.URL
	c.must(c.admin, http.StatusOK, http.MethodPut, objPath("nodes", "", "n2")+"/status", &n2, nil)
	p2 := newPod("web2")
	p2.Spec.NodeName = "n2"
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), p2, nil)
	c.expectError(c.admin, api.ReasonUnavailable, http.MethodGet, objPath("pods", "default", "web2")+"/log", nil)
}
