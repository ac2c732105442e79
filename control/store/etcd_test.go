package store

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-io/berth/internal/prereq"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// The integration tests share one embedded etcd, started on first use;
// each test works under its own key prefix. None of them runs in
// parallel, so the compaction test cannot take a revision from another.
var shared struct {
	once sync.Once
	cli  *clientv3.Client
	err  error
	stop func()
}

var prefixes atomic.Int64

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

// freeURL returns an http URL on a loopback port that was free a moment
// ago.
func freeURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}, nil
}

// startEtcd starts a single-member etcd in dir with short raft timings (so
// leases of one second are allowed) and returns a client and a stop
// function.
func startEtcd(dir string) (*clientv3.Client, func(), error) {
	var last error
	for range 3 { // a port taken between freeURL and the listen is retried
		curl, err := freeURL()
		if err != nil {
			return nil, nil, err
		}
		purl, err := freeURL()
		if err != nil {
			return nil, nil, err
		}
		cfg := embed.NewConfig()
		cfg.Name = "store-test"
		cfg.Dir = dir
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		cfg.ListenClientUrls = []url.URL{curl}
		cfg.AdvertiseClientUrls = []url.URL{curl}
		cfg.ListenPeerUrls = []url.URL{purl}
		cfg.AdvertisePeerUrls = []url.URL{purl}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		cfg.TickMs = 10
		cfg.ElectionMs = 100
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			last = err
			os.RemoveAll(dir)
			continue
		}
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			e.Close()
			return nil, nil, fmt.Errorf("etcd failed while starting: %w", err)
		case <-time.After(60 * time.Second):
			e.Close()
			return nil, nil, fmt.Errorf("etcd not ready after 60s")
		}
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{curl.String()},
			DialTimeout: 10 * time.Second,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			e.Close()
			return nil, nil, err
		}
		return cli, func() { cli.Close(); e.Close() }, nil
	}
	return nil, nil, fmt.Errorf("start etcd: %w", last)
}

// newStore returns a store under a fresh prefix of the shared etcd, with a
// fixed clock. It skips under -short.
func newStore(tb testing.TB) *Store {
	tb.Helper()
	prereq.Integration(tb)
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-store-test-")
		if err != nil {
			shared.err = err
			return
		}
		cli, stop, err := startEtcd(dir)
		if err != nil {
			os.RemoveAll(dir)
			shared.err = err
			return
		}
		shared.cli = cli
		shared.stop = func() { stop(); os.RemoveAll(dir) }
	})
	if shared.err != nil {
		tb.Fatalf("start embedded etcd: %v", shared.err)
	}
	return New(shared.cli, Options{
		Prefix: fmt.Sprintf("/test-%d/", prefixes.Add(1)),
		Now:    func() time.Time { return testNow },
	})
}

// testNow is the clock of test stores.
var testNow = time.Date(2026, 11, 27, 10, 30, 15, 123456789, time.FixedZone("CET", 3600))

// testCtx bounds a test's requests so a hung etcd fails the test instead
// of hanging it.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}
