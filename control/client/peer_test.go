package client_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/pki"
)

// A certificate the cluster CA signed is not enough: only a control-plane
// host may answer as the API, so a node agent's serving certificate (or a
// node's client certificate) cannot pose as it.
func TestClientAcceptsOnlyControlPlaneServers(t *testing.T) {
	ca, err := pki.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := ca.Issue(pki.AdminIdentity(""), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	tests := []struct {
		name string
		id   pki.Identity
		ok   bool
	}{
		{"control-plane host", pki.ServerIdentity("cp1", nil, loopback), true},
		{"node agent serving certificate", pki.NodeServerIdentity("n1", nil, loopback), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp, err := ca.Issue(tt.id, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := kp.TLSCertificate()
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"kind":"Namespace","metadata":{"name":"default"}}`))
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			srv.StartTLS()
			defer srv.Close()
			c, err := client.New(client.Config{
				Endpoints: []string{srv.URL}, CACertificate: string(ca.CertPEM()),
				ClientCertificate: string(admin.CertPEM), ClientKey: string(admin.KeyPEM),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = c.Get(ctx, "", "default", &api.Namespace{})
			if tt.ok && err != nil {
				t.Fatalf("control-plane server refused: %v", err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "not a berth control-plane host")) {
				t.Fatalf("err = %v, want a refusal naming the wrong identity", err)
			}
		})
	}
}
