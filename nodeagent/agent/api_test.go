package agent

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/pki"
)

func TestLogsAreServedToTheControlPlaneAndAdminsOnly(t *testing.T) {
	h := newHarness(t, nil)
	a := h.start()
	h.createPod("web-1", nil)
	p := h.waitPod("web-1", "became Ready", api.IsPodReady)
	spec, _ := h.fake.Spec(containerStatus(p).ContainerID)
	if err := os.MkdirAll(filepath.Dir(spec.LogPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec.LogPath+".1", []byte("old 1\nold 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec.LogPath, []byte("new 1\nnew 2\nnew 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("test ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certOf := func(id pki.Identity) *x509.Certificate {
		kp, err := ca.Issue(id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c, err := kp.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	tests := []struct {
		name   string
		caller *x509.Certificate
		path   string
		code   int
		body   string
	}{
		{"admin reads every part oldest first", certOf(pki.AdminIdentity("")), "/v1/logs/default/web-1/web", 200, "old 1\nold 2\nnew 1\nnew 2\nnew 3\n"},
		{"control plane reads the last lines across parts", certOf(pki.ServerIdentity("cp-1", nil, nil)), "/v1/logs/default/web-1/web?tailLines=4", 200, "old 2\nnew 1\nnew 2\nnew 3\n"},
		{"another node is refused", certOf(pki.NodeIdentity("node-b")), "/v1/logs/default/web-1/web", 403, ""},
		{"no certificate is refused", nil, "/v1/logs/default/web-1/web", 403, ""},
		{"unknown pod is not found", certOf(pki.AdminIdentity("")), "/v1/logs/default/nope/web", 404, ""},
		{"unknown container is not found", certOf(pki.AdminIdentity("")), "/v1/logs/default/web-1/db", 404, ""},
		{"bad tailLines is refused", certOf(pki.AdminIdentity("")), "/v1/logs/default/web-1/web?tailLines=x", 400, ""},
	}
	handler := a.handler()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			req.TLS = &tls.ConnectionState{}
			if tc.caller != nil {
				req.TLS.VerifiedChains = [][]*x509.Certificate{{tc.caller}}
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if tc.body != "" && rec.Body.String() != tc.body {
				t.Fatalf("body %q, want %q", rec.Body, tc.body)
			}
		})
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != 200 {
		t.Fatalf("healthz = %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "berth_agent_pods 1") {
		t.Fatalf("metrics = %d %s", rec.Code, rec.Body)
	}
}

func TestConfigRequiresWhatTheAgentCannotGuess(t *testing.T) {
	base := Config{NodeName: "n", InternalIP: "198.18.1.11", ControlPlane: []string{"https://x"}, CACertFile: "/ca"}
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"complete", func(*Config) {}, true},
		{"no node name", func(c *Config) { c.NodeName = "" }, false},
		{"no internal ip", func(c *Config) { c.InternalIP = "" }, false},
		{"no control plane", func(c *Config) { c.ControlPlane = nil }, false},
		{"no ca", func(c *Config) { c.CACertFile = "" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mutate(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(path, []byte(`{"nodeName":"n","internalIP":"198.18.1.11","controlPlane":["https://x"],"caCertFile":"/ca","heartbeatInterval":"2s","restartBackoff":"1s"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.HeartbeatInterval) != 2*time.Second || time.Duration(c.RestartBackoff) != time.Second {
		t.Fatalf("durations = %v %v", c.HeartbeatInterval, c.RestartBackoff)
	}
	if c.withDefaults().ListenAddress != "198.18.1.11:10250" {
		t.Fatalf("listen = %s", c.withDefaults().ListenAddress)
	}
	if err := os.WriteFile(path, []byte(`{"nodeName":"n","typo":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil {
		t.Fatal("an unknown field must be refused")
	}
}
