package etcd_test

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/control/etcd"
)

func TestStartRefusesInvalidConfigurationBeforeStartingEtcd(t *testing.T) {
	dir := t.TempDir()
	valid := func() etcd.Config {
		return etcd.Config{Name: "cp-1", DataDir: filepath.Join(dir, "data"),
			ListenClientURLs: []string{"127.0.0.1:0"}, ListenPeerURLs: []string{"127.0.0.1:0"}}
	}
	tests := []struct {
		name    string
		mutate  func(*etcd.Config)
		wantErr string
	}{
		{"empty name", func(c *etcd.Config) { c.Name = "" }, "empty name"},
		{"empty data dir", func(c *etcd.Config) { c.DataDir = "" }, "empty data dir"},
		{"unknown cluster state", func(c *etcd.Config) { c.ClusterState = "joining" }, "unknown cluster state"},
		{"port 0 among several listen urls", func(c *etcd.Config) {
			c.ListenClientURLs = []string{"127.0.0.1:0", "127.0.0.2:0"}
		}, "single listen url"},
		{"peer port 0 with an explicit initial cluster", func(c *etcd.Config) {
			c.InitialCluster = "cp-1=http://127.0.0.1:0"
		}, "peer port 0"},
		{"advertised port 0 with a fixed listen port", func(c *etcd.Config) {
			c.ListenClientURLs = []string{"127.0.0.1:1"}
			c.AdvertiseClientURLs = []string{"http://127.0.0.1:0"}
		}, "port 0"},
		{"election timeout under five heartbeats", func(c *etcd.Config) {
			c.HeartbeatInterval = time.Second
			c.ElectionTimeout = 2 * time.Second
		}, "heartbeat"},
		{"url without a port", func(c *etcd.Config) { c.ListenPeerURLs = []string{"http://127.0.0.1"} }, "no port"},
		{"tls without a ca", func(c *etcd.Config) {
			c.ClientTLS = &etcd.TLSConfig{CertPEM: []byte("x"), KeyPEM: []byte("y")}
		}, "tls needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.mutate(&cfg)
			s, err := etcd.Start(context.Background(), cfg)
			if err == nil {
				_ = s.Close()
				t.Fatal("Start succeeded, want a configuration error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Start error = %q, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestReservedPortCannotBeTakenUntilReleased(t *testing.T) {
	r, err := etcd.ReservePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if r.Port() == 0 || r.URL("http") != "http://"+r.Addr() {
		t.Fatalf("reservation %s has no usable port", r.Addr())
	}
	if ln, err := net.Listen("tcp", r.Addr()); err == nil {
		ln.Close()
		t.Fatalf("listening on reserved %s succeeded", r.Addr())
	}
	// A reservation accepts no connections: nothing listens.
	if c, err := net.Dial("tcp", r.Addr()); err == nil {
		c.Close()
		t.Fatalf("dialling reserved %s connected", r.Addr())
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	if err := r.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	ln, err := net.Listen("tcp", r.Addr())
	if err != nil {
		t.Fatalf("listening on released %s: %v", r.Addr(), err)
	}
	ln.Close()
	held := map[int]bool{}
	for range 20 {
		other, err := etcd.ReservePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		defer other.Release()
		if held[other.Port()] {
			t.Fatalf("port %d reserved twice while held", other.Port())
		}
		held[other.Port()] = true
	}
	if _, err := etcd.ReservePort("localhost"); err == nil {
		t.Fatal("reserving on a host name succeeded, want an ip address required")
	}
}
