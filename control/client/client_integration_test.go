package client_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/pki"
	"github.com/berth-io/berth/control/plane"
	"github.com/berth-io/berth/internal/prereq"
)

// devPlane runs a Dev control plane without controllers and returns the
// admin client configuration it wrote.
func devPlane(t *testing.T) client.Config {
	t.Helper()
	prereq.Integration(t)
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- plane.Run(ctx, plane.Config{Name: "cp1", DataDir: dir, ListenAddress: "127.0.0.1:0", Dev: true, DisableControllers: true}, nil)
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("control plane stopped with %v", err)
		}
	})
	path := filepath.Join(dir, "admin.json")
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("control plane stopped while starting: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cfg, err := client.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestIntegrationClientSpeaksTheRealAPI(t *testing.T) {
	cfg := devPlane(t)
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	t.Run("health, version and control plane", func(t *testing.T) {
		if err := c.Healthz(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Readyz(ctx); err != nil {
			t.Fatal(err)
		}
		v, err := c.Version(ctx)
		if err != nil || v.APIVersion != api.Version {
			t.Fatalf("version %+v, %v", v, err)
		}
		cp, err := c.ControlPlane(ctx)
		if err != nil || len(cp.Endpoints) == 0 || cp.ClusterID == "" {
			t.Fatalf("control plane %+v, %v", cp, err)
		}
		if err := c.SyncEndpoints(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Healthz(ctx); err != nil {
			t.Fatalf("after following the published endpoints %v: %v", c.Endpoints(), err)
		}
	})

	t.Run("members and snapshot", func(t *testing.T) {
		ms, err := c.Members(ctx)
		if err != nil || len(ms) != 1 || !ms[0].Status.Started {
			t.Fatalf("members %+v, %v", ms, err)
		}
		var buf bytes.Buffer
		n, err := c.Snapshot(ctx, &buf)
		if err != nil || n == 0 || int64(buf.Len()) != n {
			t.Fatalf("snapshot of %d bytes: %v", n, err)
		}
	})

	t.Run("errors are statuses", func(t *testing.T) {
		var p api.Pod
		if err := c.Get(ctx, "default", "missing", &p); !api.IsNotFound(err) {
			t.Fatalf("got %v, want NotFound", err)
		}
		if _, err := c.Rollback(ctx, "default", "missing", 0); api.ReasonOf(err) == "" {
			t.Fatalf("rollback of a missing deployment: got %v, want an API status", err)
		}
	})

	t.Run("eviction of an unbound pod removes it", func(t *testing.T) {
		p := pod("evictee", "", nil)
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := c.Evict(ctx, "default", "evictee", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, "default", "evictee", p); !api.IsNotFound(err) {
			t.Fatalf("evicted pod: got %v, want NotFound", err)
		}
	})

	t.Run("a node joins with a token and uses its own certificate", func(t *testing.T) {
		tok, err := c.CreateJoinToken(ctx, api.JoinTokenRequest{TTLSeconds: 60, NodeName: "w1"})
		if err != nil {
			t.Fatal(err)
		}
		key, err := pki.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		csr, err := pki.NewCSR(key, pki.NodeIdentity("w1"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Join(ctx, cfg.CACertificate, cfg.Endpoints[0], api.JoinRequest{Token: tok.Token, NodeName: "w1", ClientCSR: string(csr)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err := pki.EncodeKey(key)
		if err != nil {
			t.Fatal(err)
		}
		node, err := client.New(client.Config{Endpoints: resp.ControlPlane.Endpoints, CACertificate: resp.CACertificate, ClientCertificate: resp.ClientCertificate, ClientKey: string(keyPEM)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := node.ControlPlane(ctx); err != nil {
			t.Fatalf("the joined node's certificate is refused: %v", err)
		}
		if _, err := client.Join(ctx, cfg.CACertificate, cfg.Endpoints[0], api.JoinRequest{Token: "bogus.token", NodeName: "w2", ClientCSR: string(csr)}, 0); api.ReasonOf(err) == "" {
			t.Fatalf("a bogus token: got %v, want an API refusal", err)
		}
	})
}
