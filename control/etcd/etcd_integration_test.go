package etcd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-io/berth/control/etcd"
	"github.com/berth-io/berth/control/pki"
	"github.com/berth-io/berth/internal/prereq"
)

// Raised raft timings: several members share two cores in one test process.
const (
	testHeartbeat = 200 * time.Millisecond
	testElection  = 2 * time.Second
	// testTimeout only keeps a broken test from hanging; no assertion
	// depends on it.
	testTimeout = 2 * time.Minute
)

// syncBuffer collects a member's log, shown only when the test fails.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// baseConfig is a member on loopback with free ports and raised timings,
// whose log is printed if the test fails.
func baseConfig(t *testing.T, name, dir string) etcd.Config {
	t.Helper()
	log := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("etcd log of %s:\n%s", name, log.String())
		}
	})
	return etcd.Config{
		Name:              name,
		DataDir:           dir,
		ListenClientURLs:  []string{"http://127.0.0.1:0"},
		ListenPeerURLs:    []string{"http://127.0.0.1:0"},
		HeartbeatInterval: testHeartbeat,
		ElectionTimeout:   testElection,
		LogOutput:         log,
	}
}

func start(t *testing.T, ctx context.Context, cfg etcd.Config) *etcd.Server {
	t.Helper()
	s, err := etcd.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func reserve(t *testing.T) *etcd.PortReservation {
	t.Helper()
	r, err := etcd.ReservePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Release() })
	return r
}

func get(t *testing.T, ctx context.Context, cli *clientv3.Client, key string) string {
	t.Helper()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

func TestIntegrationSingleMemberKeepsDataAcrossRestart(t *testing.T) {
	prereq.Integration(t)
	ctx := testContext(t)
	dir := filepath.Join(t.TempDir(), "data")
	cfg := baseConfig(t, "cp-1", dir)

	s := start(t, ctx, cfg)
	firstID := s.MemberID()
	if _, err := s.Client().Put(ctx, "/berth/greeting", "hello"); err != nil {
		t.Fatalf("put: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, ok := <-s.Err(); ok {
		t.Fatal("Err channel delivered an error after a clean Close")
	}

	s2 := start(t, ctx, cfg)
	if got := get(t, ctx, s2.Client(), "/berth/greeting"); got != "hello" {
		t.Fatalf("after restart /berth/greeting = %q, want %q", got, "hello")
	}
	if s2.MemberID() != firstID {
		t.Errorf("member ID after restart = %x, want %x", s2.MemberID(), firstID)
	}
}

func TestIntegrationStartRefusesADataDirInUse(t *testing.T) {
	prereq.Integration(t)
	ctx := testContext(t)
	dir := filepath.Join(t.TempDir(), "data")
	start(t, ctx, baseConfig(t, "cp-1", dir))
	s, err := etcd.Start(ctx, baseConfig(t, "cp-1", dir))
	if err == nil {
		_ = s.Close()
	}
	if !errors.Is(err, etcd.ErrDataDirInUse) {
		t.Fatalf("second member on the same data dir: Start = %v, want ErrDataDirInUse", err)
	}
}

// joinMember adds a learner through cli, starts it, waits for it to catch
// up and promotes it.
func joinMember(t *testing.T, ctx context.Context, cli *clientv3.Client, name string) *etcd.Server {
	t.Helper()
	peer, client := reserve(t), reserve(t)
	m, initial, err := etcd.AddLearner(ctx, cli, name, []string{peer.URL("http")})
	if err != nil {
		t.Fatalf("AddLearner %s: %v", name, err)
	}
	if !m.IsLearner || m.Started {
		t.Fatalf("added member = %+v, want an unstarted learner", m)
	}
	// A re-run of the same join finds the same member.
	again, initialAgain, err := etcd.AddLearner(ctx, cli, name, []string{peer.URL("http")})
	if err != nil || again.ID != m.ID || initialAgain != initial {
		t.Fatalf("repeated AddLearner = %+v %q, %v; want member %x and %q", again, initialAgain, err, m.ID, initial)
	}
	cfg := baseConfig(t, name, filepath.Join(t.TempDir(), name))
	cfg.ListenPeerURLs = []string{peer.URL("http")}
	cfg.ListenClientURLs = []string{client.URL("http")}
	cfg.InitialCluster = initial
	cfg.ClusterState = etcd.ExistingCluster
	cfg.ReusePort = true
	s := start(t, ctx, cfg)
	if err := peer.Release(); err != nil {
		t.Fatal(err)
	}
	if err := client.Release(); err != nil {
		t.Fatal(err)
	}
	if s.MemberID() != m.ID {
		t.Fatalf("started member ID %x, want %x", s.MemberID(), m.ID)
	}
	if err := etcd.WaitCaughtUp(ctx, cli, m.ID); err != nil {
		t.Fatalf("WaitCaughtUp %s: %v", name, err)
	}
	if err := etcd.Promote(ctx, cli, m.ID); err != nil {
		t.Fatalf("Promote %s: %v", name, err)
	}
	if err := etcd.Promote(ctx, cli, m.ID); err != nil {
		t.Fatalf("Promote %s again: %v", name, err)
	}
	return s
}

func voters(t *testing.T, ctx context.Context, cli *clientv3.Client) map[string]bool {
	t.Helper()
	ms, err := etcd.ListMembers(ctx, cli)
	if err != nil {
		t.Fatalf("ListMembers: %v", err)
	}
	out := map[string]bool{}
	for _, m := range ms {
		if m.IsLearner || !m.Started {
			t.Errorf("member %+v is a learner or not started", m)
		}
		out[m.Name] = true
	}
	return out
}

// waitHealth polls Health until want holds (an election may be under way
// after a member stops), failing with the last report when ctx ends.
func waitHealth(t *testing.T, ctx context.Context, cli *clientv3.Client, what string, want func(etcd.ClusterHealth) bool) {
	t.Helper()
	var last etcd.ClusterHealth
	var lastErr error
	for {
		last, lastErr = etcd.Health(ctx, cli)
		if lastErr == nil && want(last) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Health never showed %s; last %+v, %v", what, last, lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestIntegrationClusterGrowsByLearnersAndRemovalGuardsQuorum(t *testing.T) {
	prereq.Integration(t)
	ctx := testContext(t)
	s1 := start(t, ctx, baseConfig(t, "cp-1", filepath.Join(t.TempDir(), "cp-1")))
	cli := s1.Client()
	s2 := joinMember(t, ctx, cli, "cp-2")
	s3 := joinMember(t, ctx, cli, "cp-3")

	if got := voters(t, ctx, cli); len(got) != 3 || !got["cp-1"] || !got["cp-2"] || !got["cp-3"] {
		t.Fatalf("voters = %v, want cp-1, cp-2, cp-3", got)
	}
	waitHealth(t, ctx, cli, "3 healthy voters with a leader", func(h etcd.ClusterHealth) bool {
		return h.Quorum && h.Voters == 3 && h.HealthyVoters == 3 && h.Leader != 0
	})
	if _, err := s3.Client().Put(ctx, "/written/through/cp-3", "yes"); err != nil {
		t.Fatalf("put through the promoted member: %v", err)
	}

	// With cp-3 down, removing healthy cp-2 would leave cp-1 alone of two
	// voters: refused.
	if err := s3.Close(); err != nil {
		t.Fatalf("Close cp-3: %v", err)
	}
	err := etcd.RemoveMember(ctx, cli, s2.MemberID())
	var qe *etcd.QuorumError
	if !errors.Is(err, etcd.ErrWouldBreakQuorum) || !errors.As(err, &qe) {
		t.Fatalf("RemoveMember cp-2 with cp-3 down = %v, want a QuorumError", err)
	}
	if qe.Voters != 2 || qe.Healthy > 1 || qe.Member != s2.MemberID() {
		t.Errorf("QuorumError = %+v, want cp-2 refused with at most 1 of 2 remaining voters healthy", qe)
	}
	waitHealth(t, ctx, cli, "quorum with 2 of 3 voters healthy", func(h etcd.ClusterHealth) bool {
		return h.Quorum && h.Voters == 3 && h.HealthyVoters == 2 && h.Leader != 0
	})

	// Removing the stopped member leaves two healthy voters: allowed.
	if err := etcd.RemoveMember(ctx, cli, s3.MemberID()); err != nil {
		t.Fatalf("RemoveMember cp-3 (stopped): %v", err)
	}
	if got := voters(t, ctx, cli); len(got) != 2 || got["cp-3"] {
		t.Fatalf("voters after removing cp-3 = %v", got)
	}
	if _, err := cli.Put(ctx, "/after/removal", "ok"); err != nil {
		t.Fatalf("put after removal: %v", err)
	}

	// Removing running cp-2 leaves cp-1, a majority of one: allowed, and
	// cp-2 reports that it stopped.
	if err := etcd.RemoveMember(ctx, cli, s2.MemberID()); err != nil {
		t.Fatalf("RemoveMember cp-2: %v", err)
	}
	select {
	case err := <-s2.Err():
		if !errors.Is(err, etcd.ErrStopped) {
			t.Errorf("cp-2 Err() = %v, want ErrStopped", err)
		}
	case <-ctx.Done():
		t.Fatal("removed member cp-2 never reported that it stopped")
	}
	if got := get(t, ctx, cli, "/written/through/cp-3"); got != "yes" {
		t.Fatalf("after shrinking, /written/through/cp-3 = %q", got)
	}
	if err := etcd.RemoveMember(ctx, cli, s2.MemberID()); !errors.Is(err, etcd.ErrMemberNotFound) {
		t.Fatalf("removing cp-2 twice = %v, want ErrMemberNotFound", err)
	}
	if err := etcd.RemoveMember(ctx, cli, s1.MemberID()); !errors.Is(err, etcd.ErrWouldBreakQuorum) {
		t.Fatalf("removing the last member = %v, want ErrWouldBreakQuorum", err)
	}
}

func TestIntegrationSnapshotRestoresEveryKeyAndRevision(t *testing.T) {
	prereq.Integration(t)
	ctx := testContext(t)
	s := start(t, ctx, baseConfig(t, "cp-1", filepath.Join(t.TempDir(), "cp-1")))
	cli := s.Client()
	for i := range 200 {
		key := fmt.Sprintf("/berth/pods/default/p%03d", i)
		if _, err := cli.Put(ctx, key, "v1"); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if _, err := cli.Put(ctx, key, "v2"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := cli.Delete(ctx, "/berth/pods/default/p007"); err != nil {
		t.Fatal(err)
	}
	before, err := cli.Get(ctx, "/berth/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}

	snapPath := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(snapPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := etcd.Snapshot(ctx, cli, f); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	peer := reserve(t)
	dir := filepath.Join(t.TempDir(), "restored")
	if err := etcd.Restore(ctx, snapPath, etcd.RestoreConfig{Name: "cp-new", DataDir: dir, PeerURL: peer.URL("http")}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if err := etcd.Restore(ctx, snapPath, etcd.RestoreConfig{Name: "cp-new", DataDir: dir, PeerURL: peer.URL("http")}); err == nil {
		t.Fatal("Restore over an existing data dir succeeded")
	}
	cfg := baseConfig(t, "cp-new", dir)
	cfg.ListenPeerURLs = []string{peer.URL("http")}
	cfg.ReusePort = true
	restored := start(t, ctx, cfg)
	_ = peer.Release()

	after, err := restored.Client().Get(ctx, "/berth/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Kvs) != len(before.Kvs) || len(before.Kvs) != 199 {
		t.Fatalf("restored %d keys, snapshot had %d (want 199)", len(after.Kvs), len(before.Kvs))
	}
	for i, kv := range before.Kvs {
		got := after.Kvs[i]
		if string(got.Key) != string(kv.Key) || string(got.Value) != string(kv.Value) ||
			got.ModRevision != kv.ModRevision || got.CreateRevision != kv.CreateRevision || got.Version != kv.Version {
			t.Errorf("restored %s=%s (mod %d, create %d, version %d), want %s=%s (mod %d, create %d, version %d)",
				got.Key, got.Value, got.ModRevision, got.CreateRevision, got.Version,
				kv.Key, kv.Value, kv.ModRevision, kv.CreateRevision, kv.Version)
		}
	}
	if after.Header.Revision < before.Header.Revision {
		t.Errorf("restored revision %d is behind the snapshot's %d", after.Header.Revision, before.Header.Revision)
	}
	ms, err := etcd.ListMembers(ctx, restored.Client())
	if err != nil || len(ms) != 1 || ms[0].Name != "cp-new" {
		t.Fatalf("restored members = %+v, %v; want only cp-new", ms, err)
	}
}

func TestIntegrationClientTLSWithClusterCertificates(t *testing.T) {
	prereq.Integration(t)
	ctx := testContext(t)
	ca, err := pki.NewCA("berth test ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1")}
	serverKP, err := ca.Issue(pki.ServerIdentity("cp-1", []string{"localhost"}, loopback), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	peerKP, err := ca.Issue(pki.EtcdPeerIdentity("cp-1", []string{"localhost"}, loopback), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t, "cp-1", filepath.Join(t.TempDir(), "cp-1"))
	cfg.ListenClientURLs = []string{"https://127.0.0.1:0"}
	cfg.ListenPeerURLs = []string{"https://127.0.0.1:0"}
	cfg.ClientTLS = &etcd.TLSConfig{CertPEM: serverKP.CertPEM, KeyPEM: serverKP.KeyPEM, CAPEM: ca.CertPEM(),
		AllowedCNs: []string{serverKP.Cert.Subject.CommonName}}
	cfg.PeerTLS = &etcd.TLSConfig{CertPEM: peerKP.CertPEM, KeyPEM: peerKP.KeyPEM, CAPEM: ca.CertPEM()}
	s := start(t, ctx, cfg)
	if _, err := s.Client().Put(ctx, "/secure", "yes"); err != nil {
		t.Fatalf("put over tls: %v", err)
	}

	foreign, err := pki.NewCA("another ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreignKP, err := foreign.Issue(pki.ServerIdentity("cp-1", nil, loopback), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	nodeKP, err := ca.Issue(pki.NodeIdentity("worker-1"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		cert, key  []byte
		caPEM      []byte
		wantAccess bool
	}{
		{"control-plane certificate from the cluster ca is accepted", serverKP.CertPEM, serverKP.KeyPEM, ca.CertPEM(), true},
		{"certificate from another ca is refused", foreignKP.CertPEM, foreignKP.KeyPEM, ca.CertPEM(), false},
		{"node certificate is refused by the allowed common names", nodeKP.CertPEM, nodeKP.KeyPEM, ca.CertPEM(), false},
		{"client without a certificate is refused", nil, nil, ca.CertPEM(), false},
		{"client not trusting the cluster ca refuses the server", serverKP.CertPEM, serverKP.KeyPEM, foreign.CertPEM(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // a refused client waits for its deadline
			tc, err := etcd.ClientTLS(tt.cert, tt.key, tt.caPEM)
			if err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			cli, err := etcd.Connect(cctx, etcd.ExternalConfig{Endpoints: s.Endpoints(), TLS: tc})
			if !tt.wantAccess {
				if err == nil {
					_ = cli.Close()
					t.Fatal("Connect succeeded, want a refusal")
				}
				if !strings.Contains(err.Error(), "tls:") {
					t.Errorf("refusal %q does not explain the tls failure", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer cli.Close()
			if got := get(t, cctx, cli, "/secure"); got != "yes" {
				t.Fatalf("/secure = %q, want yes", got)
			}
		})
	}
}

func TestIntegrationMembersJoinOverMutualTLS(t *testing.T) {
	prereq.Integration(t)
	ctx := testContext(t)
	ca, err := pki.NewCA("berth test ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1")}
	names := []string{"cp-1", "cp-2"}
	allowed := []string{pki.ServerIdentity("cp-1", nil, nil).String(), pki.ServerIdentity("cp-2", nil, nil).String()}
	tlsFor := func(name string) (client, peer *etcd.TLSConfig) {
		serverKP, err := ca.Issue(pki.ServerIdentity(name, nil, loopback), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		peerKP, err := ca.Issue(pki.EtcdPeerIdentity(name, nil, loopback), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return &etcd.TLSConfig{CertPEM: serverKP.CertPEM, KeyPEM: serverKP.KeyPEM, CAPEM: ca.CertPEM(), AllowedCNs: allowed},
			&etcd.TLSConfig{CertPEM: peerKP.CertPEM, KeyPEM: peerKP.KeyPEM, CAPEM: ca.CertPEM()}
	}

	cfg1 := baseConfig(t, names[0], filepath.Join(t.TempDir(), names[0]))
	cfg1.ListenClientURLs = []string{"https://127.0.0.1:0"}
	cfg1.ListenPeerURLs = []string{"https://127.0.0.1:0"}
	cfg1.ClientTLS, cfg1.PeerTLS = tlsFor(names[0])
	s1 := start(t, ctx, cfg1)
	cli := s1.Client()

	peer, client := reserve(t), reserve(t)
	m, initial, err := etcd.AddLearner(ctx, cli, names[1], []string{peer.URL("https")})
	if err != nil {
		t.Fatalf("AddLearner: %v", err)
	}
	cfg2 := baseConfig(t, names[1], filepath.Join(t.TempDir(), names[1]))
	cfg2.ListenClientURLs = []string{client.URL("https")}
	cfg2.ListenPeerURLs = []string{peer.URL("https")}
	cfg2.InitialCluster = initial
	cfg2.ClusterState = etcd.ExistingCluster
	cfg2.ReusePort = true
	cfg2.ClientTLS, cfg2.PeerTLS = tlsFor(names[1])
	s2 := start(t, ctx, cfg2)
	_, _ = peer.Release(), client.Release()

	if err := etcd.WaitCaughtUp(ctx, cli, m.ID); err != nil {
		t.Fatalf("WaitCaughtUp: %v", err)
	}
	if err := etcd.Promote(ctx, cli, m.ID); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	if _, err := s2.Client().Put(ctx, "/over/tls", "replicated"); err != nil {
		t.Fatalf("put through cp-2: %v", err)
	}
	if got := get(t, ctx, cli, "/over/tls"); got != "replicated" {
		t.Fatalf("cp-1 reads /over/tls = %q, want replicated", got)
	}
	waitHealth(t, ctx, cli, "two healthy voters", func(h etcd.ClusterHealth) bool {
		return h.Quorum && h.Voters == 2 && h.HealthyVoters == 2
	})
}
