package server_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/pki"
	"github.com/berth-io/berth/control/server"
)

// mintToken asks the admin API for a join token.
func (c *cluster) mintToken(req api.JoinTokenRequest) string {
	c.t.Helper()
	var tok api.JoinToken
	c.must(c.admin, http.StatusCreated, http.MethodPost, "/v1/jointokens", &req, &tok)
	return tok.Token
}

// joinRequest makes a node key and a join request for it.
func joinRequest(t *testing.T, token, node string) (api.JoinRequest, []byte) {
	t.Helper()
	key, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, pki.NodeIdentity(node))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return api.JoinRequest{Token: token, NodeName: node, ClientCSR: string(csr)}, keyPEM
}

// join trades a fresh token for a node client.
func (c *cluster) join(node string) *http.Client {
	c.t.Helper()
	req, keyPEM := joinRequest(c.t, c.mintToken(api.JoinTokenRequest{}), node)
	var resp api.JoinResponse
	c.must(c.noCert, http.StatusOK, http.MethodPost, "/v1/join", &req, &resp)
	if resp.CACertificate != string(c.ca.CertPEM()) || resp.ControlPlane.ClusterID != "test-cluster" || len(resp.ControlPlane.Endpoints) != 1 {
		c.t.Fatalf("join response lacks the CA or control plane: %+v", resp.ControlPlane)
	}
	cert, err := tls.X509KeyPair([]byte(resp.ClientCertificate), keyPEM)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.httpClient(&cert)
}

func TestIntegrationJoinTokenIsSingleUseAndExpires(t *testing.T) {
	c := newCluster(t)
	token := c.mintToken(api.JoinTokenRequest{TTLSeconds: 60})
	req, _ := joinRequest(t, token, "n1")
	c.must(c.noCert, http.StatusOK, http.MethodPost, "/v1/join", &req, nil)
	again, _ := joinRequest(t, token, "n2")
	c.expectError(c.noCert, api.ReasonUnauthorized, http.MethodPost, "/v1/join", &again)

	expiring := c.mintToken(api.JoinTokenRequest{TTLSeconds: 60})
	c.clock.Add(61 * time.Second)
	late, _ := joinRequest(t, expiring, "n3")
	c.expectError(c.noCert, api.ReasonUnauthorized, http.MethodPost, "/v1/join", &late)

	restricted := c.mintToken(api.JoinTokenRequest{NodeName: "n4"})
	wrong, _ := joinRequest(t, restricted, "n5")
	c.expectError(c.noCert, api.ReasonForbidden, http.MethodPost, "/v1/join", &wrong)
	right, _ := joinRequest(t, restricted, "n4")
	c.must(c.noCert, http.StatusOK, http.MethodPost, "/v1/join", &right, nil)

	// A node's request for more than its own identity is refused.
	greedy, _ := joinRequest(t, c.mintToken(api.JoinTokenRequest{}), "n6")
	greedy.NodeName = "n7"
	c.expectError(c.noCert, api.ReasonForbidden, http.MethodPost, "/v1/join", &greedy)
	// Only admins mint tokens.
	c.expectError(c.join("n8"), api.ReasonForbidden, http.MethodPost, "/v1/jointokens", &api.JoinTokenRequest{})
}

func TestIntegrationNodeMayWriteOnlyItsOwnNodeAndPods(t *testing.T) {
	c := newCluster(t)
	n1 := c.join("n1")
	c.must(n1, http.StatusCreated, http.MethodPost, collPath("nodes", ""), &api.Node{Metadata: api.ObjectMeta{Name: "n1"}}, nil)
	c.expectError(n1, api.ReasonForbidden, http.MethodPost, collPath("nodes", ""), &api.Node{Metadata: api.ObjectMeta{Name: "n2"}})
	c.must(c.admin, http.StatusCreated, http.MethodPost, collPath("nodes", ""), &api.Node{Metadata: api.ObjectMeta{Name: "n2"}}, nil)

	var n2 api.Node
	c.must(n1, http.StatusOK, http.MethodGet, objPath("nodes", "", "n2"), nil, &n2)
	n2.Status.AgentEndpoint = "https://evil:1"
	c.expectError(n1, api.ReasonForbidden, http.MethodPut, objPath("nodes", "", "n2")+"/status", &n2)

	for _, name := range []string{"on-n1", "on-n2"} {
		p := newPod(name)
		p.Spec.NodeName = name[3:]
		c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), p, nil)
	}
	var mine, theirs api.Pod
	c.must(n1, http.StatusOK, http.MethodGet, objPath("pods", "default", "on-n1"), nil, &mine)
	c.must(n1, http.StatusOK, http.MethodGet, objPath("pods", "default", "on-n2"), nil, &theirs)
	mine.Status.Phase = api.PodRunning
	c.must(n1, http.StatusOK, http.MethodPut, objPath("pods", "default", "on-n1")+"/status", &mine, nil)
	theirs.Status.Phase = api.PodFailed
	st := c.expectError(n1, api.ReasonForbidden, http.MethodPut, objPath("pods", "default", "on-n2")+"/status", &theirs)
	if st.Message == "" {
		t.Fatal("403 without a message")
	}
	c.expectError(n1, api.ReasonForbidden, http.MethodDelete, objPath("pods", "default", "on-n2"), nil)
	c.expectError(n1, api.ReasonForbidden, http.MethodPut, objPath("pods", "default", "on-n1"), &mine)
	c.expectError(n1, api.ReasonForbidden, http.MethodGet, collPath("deployments", "default"), nil)
	c.expectError(n1, api.ReasonForbidden, http.MethodGet, "/v1/members", nil)
	c.must(n1, http.StatusOK, http.MethodGet, "/v1/controlplane", nil, nil)
	ev := &api.Event{Metadata: api.ObjectMeta{Name: "e1"}, InvolvedObject: api.ObjectReference{Kind: "Pod", Name: "on-n1"}, Reason: "Started"}
	c.must(n1, http.StatusCreated, http.MethodPost, collPath("events", "default"), ev, nil)
}

func TestIntegrationDeletingANodeRevokesItsCertificates(t *testing.T) {
	c := newCluster(t)
	n1 := c.join("n1")
	c.must(n1, http.StatusCreated, http.MethodPost, collPath("nodes", ""), &api.Node{Metadata: api.ObjectMeta{Name: "n1"}}, nil)
	c.must(c.admin, http.StatusOK, http.MethodDelete, objPath("nodes", "", "n1"), nil, nil)
	// The open connection is refused per request...
	c.expectError(n1, api.ReasonUnauthorized, http.MethodGet, collPath("nodes", ""), nil)
	// ...and a new connection at the handshake.
	n1.Transport.(*http.Transport).CloseIdleConnections()
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, c.url+collPath("nodes", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := n1.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("revoked certificate on a new connection: %d, want a refusal", resp.StatusCode)
		}
	}
}

func TestIntegrationRevocationReachesEveryInstance(t *testing.T) {
	c := newCluster(t)
	n1 := c.join("n1")
	c.must(n1, http.StatusCreated, http.MethodPost, collPath("nodes", ""), &api.Node{Metadata: api.ObjectMeta{Name: "n1"}}, nil)
	other := c.secondInstance()
	get := func() int {
		req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, other+collPath("nodes", ""), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := n1.Do(req)
		if err != nil {
			t.Fatalf("request to the other instance over the open connection: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("other instance answered %d before the revocation", code)
	}
	c.must(c.admin, http.StatusOK, http.MethodDelete, objPath("nodes", "", "n1"), nil, nil)
	// The other instance learns through its watch; poll until it refuses.
	for {
		switch code := get(); code {
		case http.StatusUnauthorized:
			return
		case http.StatusOK:
			time.Sleep(10 * time.Millisecond)
		default:
			t.Fatalf("other instance answered %d", code)
		}
	}
}

func TestIntegrationRenewSignsTheCallersOwnIdentity(t *testing.T) {
	c := newCluster(t)
	n1 := c.join("n1")
	req, _ := joinRequest(t, "", "n1")
	var resp api.JoinResponse
	c.must(n1, http.StatusOK, http.MethodPost, "/v1/renew", &api.RenewRequest{ClientCSR: req.ClientCSR}, &resp)
	cert, err := pki.ParseCert([]byte(resp.ClientCertificate))
	if err != nil {
		t.Fatal(err)
	}
	id, err := pki.IdentityFromCert(cert)
	if err != nil || id.Role != pki.RoleNode || id.Name != "n1" {
		t.Fatalf("renewed certificate is for %v (%v), want node n1", id, err)
	}
	other, _ := joinRequest(t, "", "n2")
	c.expectError(n1, api.ReasonForbidden, http.MethodPost, "/v1/renew", &api.RenewRequest{ClientCSR: other.ClientCSR})
}

// secondInstance starts another server over the same store and returns its
// URL.
func (c *cluster) secondInstance() string {
	c.t.Helper()
	kp, err := c.ca.Issue(pki.ServerIdentity("cp2", nil, []net.IP{net.IPv4(127, 0, 0, 1)}), time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	serving, err := kp.TLSCertificate()
	if err != nil {
		c.t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: c.store, CA: c.ca, ServingCert: serving, Name: "cp2"})
	if err != nil {
		c.t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c.t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			c.t.Errorf("serve second instance: %v", err)
		}
	})
	return "https://" + l.Addr().String()
}
