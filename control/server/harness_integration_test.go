package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/pki"
	"github.com/berth-io/berth/control/server"
	"github.com/berth-io/berth/control/store"
	"github.com/berth-io/berth/internal/prereq"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// The integration tests share one embedded etcd, started on first use;
// each test runs its own server under its own key prefix.
var shared struct {
	once sync.Once
	cli  *clientv3.Client
	etcd *embed.Etcd
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

func freeURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}, nil
}

func startEtcd(dir string) (*embed.Etcd, *clientv3.Client, error) {
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
		cfg.Name = "server-test"
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
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{curl.String()}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			e.Close()
			return nil, nil, err
		}
		return e, cli, nil
	}
	return nil, nil, fmt.Errorf("start etcd: %w", last)
}

// cluster is one API server on loopback with its CA and clients for each
// kind of caller.
type cluster struct {
	t      *testing.T
	prefix string
	url    string
	ca     *pki.CA
	store  *store.Store
	srv    *server.Server
	admin  *http.Client
	noCert *http.Client
	clock  *clock
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newCluster starts a server on a fresh prefix of the shared etcd, with the
// default and berth-system namespaces and a cluster ID. It skips under
// -short.
func newCluster(t *testing.T, tweak ...func(*server.Config)) *cluster {
	t.Helper()
	prereq.Integration(t)
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-server-test-")
		if err != nil {
			shared.err = err
			return
		}
		e, cli, err := startEtcd(dir)
		if err != nil {
			os.RemoveAll(dir)
			shared.err = err
			return
		}
		shared.cli, shared.etcd = cli, e
		shared.stop = func() { cli.Close(); e.Close(); os.RemoveAll(dir) }
	})
	if shared.err != nil {
		t.Fatalf("start embedded etcd: %v", shared.err)
	}
	ca, err := pki.NewCA("berth test ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue(pki.ServerIdentity("cp1", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := kp.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("/server-test-%d/", prefixes.Add(1))
	st := store.New(shared.cli, store.Options{Prefix: prefix})
	ctx := testCtx(t)
	for _, ns := range []string{api.DefaultNamespace, api.SystemNamespace} {
		if err := st.Create(ctx, &api.Namespace{Metadata: api.ObjectMeta{Name: ns}, Status: api.NamespaceStatus{Phase: api.NamespaceActive}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.CreateAux(ctx, server.AuxClusterID, "test-cluster", 0); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Now()}
	cfg := server.Config{
		Store:        st,
		CA:           ca,
		ServingCert:  serving,
		Name:         "cp1",
		AdvertiseURL: "https://" + l.Addr().String(),
		Now:          clk.Now,
	}
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, l) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	c := &cluster{t: t, prefix: prefix, url: "https://" + l.Addr().String(), ca: ca, store: st, srv: srv, clock: clk}
	c.admin = c.clientFor(pki.AdminIdentity(""))
	c.noCert = c.httpClient(nil)
	return c
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// httpClient trusts the cluster CA and presents cert when not nil.
func (c *cluster) httpClient(cert *tls.Certificate) *http.Client {
	var certs *pki.CertStore
	if cert != nil {
		certs = pki.NewCertStore(*cert)
	}
	tr := &http.Transport{TLSClientConfig: pki.ClientTLSConfig(c.ca.Pool(), certs, ""), ForceAttemptHTTP2: true}
	c.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// clientFor issues a certificate for id and returns a client presenting it.
func (c *cluster) clientFor(id pki.Identity) *http.Client {
	kp, err := c.ca.Issue(id, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	cert, err := kp.TLSCertificate()
	if err != nil {
		c.t.Fatal(err)
	}
	return c.httpClient(&cert)
}

// do sends a JSON request and decodes a 2xx answer into out (when not nil);
// it returns the status code and, for failures, the Status.
func (c *cluster) do(cli *http.Client, method, path string, body, out any) (int, *api.Status) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(testCtx(c.t), method, c.url+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := cli.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		st := &api.Status{}
		if err := json.Unmarshal(data, st); err != nil {
			c.t.Fatalf("%s %s: %d with a body that is not a Status: %q", method, path, resp.StatusCode, data)
		}
		if st.Code != resp.StatusCode {
			c.t.Errorf("%s %s: Status.code %d differs from HTTP %d", method, path, st.Code, resp.StatusCode)
		}
		return resp.StatusCode, st
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, nil
}

// must is do that fails the test unless the answer is want.
func (c *cluster) must(cli *http.Client, want int, method, path string, body, out any) {
	c.t.Helper()
	code, st := c.do(cli, method, path, body, out)
	if code != want {
		msg := ""
		if st != nil {
			msg = fmt.Sprintf("%s: %s", st.Reason, st.Message)
		}
		c.t.Fatalf("%s %s: got %d (%s), want %d", method, path, code, msg, want)
	}
}

// expectError is do that fails unless the answer is a Status with reason.
func (c *cluster) expectError(cli *http.Client, reason api.Reason, method, path string, body any) *api.Status {
	c.t.Helper()
	code, st := c.do(cli, method, path, body, nil)
	if st == nil {
		c.t.Fatalf("%s %s: got %d, want a %s failure", method, path, code, reason)
	}
	if st.Reason != reason {
		c.t.Fatalf("%s %s: got %d %s (%s), want %s", method, path, code, st.Reason, st.Message, reason)
	}
	return st
}

func podsPath(ns string) string {
	ki, _ := api.LookupKind("pods")
	return api.CollectionPath(ki, ns)
}

func objPath(kind, ns, name string) string {
	ki, ok := api.LookupKind(kind)
	if !ok {
		panic("unknown kind " + kind)
	}
	return api.ObjectPath(ki, ns, name)
}

func collPath(kind, ns string) string {
	ki, ok := api.LookupKind(kind)
	if !ok {
		panic("unknown kind " + kind)
	}
	return api.CollectionPath(ki, ns)
}

func newPod(name string) *api.Pod {
	return &api.Pod{
		Metadata: api.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
		Spec:     api.PodSpec{Containers: []api.Container{{Name: "web", Image: "registry.test/web:v1"}}},
	}
}

// watchStream reads newline-delimited watch events from a response.
type watchStream struct {
	t    *testing.T
	resp *http.Response
	dec  *json.Decoder
}

func (c *cluster) watch(cli *http.Client, path string) *watchStream {
	c.t.Helper()
	ctx, cancel := context.WithCancel(testCtx(c.t))
	c.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := cli.Do(req)
	if err != nil {
		c.t.Fatalf("watch %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.t.Fatalf("watch %s: %d %s", path, resp.StatusCode, body)
	}
	c.t.Cleanup(func() { resp.Body.Close() })
	return &watchStream{t: c.t, resp: resp, dec: json.NewDecoder(resp.Body)}
}

// next returns the next event that is not a BOOKMARK (unless bookmarks are
// wanted).
func (w *watchStream) next(wantBookmarks bool) api.WatchEvent {
	w.t.Helper()
	for {
		var ev api.WatchEvent
		if err := w.dec.Decode(&ev); err != nil {
			w.t.Fatalf("read watch event: %v", err)
		}
		if ev.Type == api.Bookmark && !wantBookmarks {
			continue
		}
		return ev
	}
}

// eventName is "TYPE name" for comparing event sequences.
func eventName(ev api.WatchEvent) string {
	var obj struct {
		Metadata api.ObjectMeta `json:"metadata"`
	}
	_ = json.Unmarshal(ev.Object, &obj)
	return strings.TrimSpace(string(ev.Type) + " " + obj.Metadata.Name)
}
