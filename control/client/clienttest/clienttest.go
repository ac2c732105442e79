// Package clienttest is an in-memory control-plane API for tests: an
// httptest TLS server that speaks control/api/paths.go (create, get,
// update with resourceVersion compare-and-swap, status updates, graceful
// pod deletion, eviction, label and node-name selectors, and watch streams
// that resume from a revision and answer Gone after [Server.Compact]), so
// the client, the informers and the controllers are unit-tested without
// etcd, root or a network.
//
// It is a fake of the real server, not a second implementation: it keeps
// no authorisation and only the behaviour clients depend on. Production
// code must never import it.
package clienttest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// Server is a running fake API.
type Server struct {
	srv *httptest.Server
	cfg client.Config

	mu        sync.Mutex
	rv        int64
	objects   map[string]map[string]api.Object // resource → key → object
	history   []entry
	compacted int64
	changed   chan struct{}
	endpoints []string
	requests  map[string]int
	hooks     []Hook
	uid       int
	seq       int64
	// bookmarkEvery, when set, is advertised on watches and a BOOKMARK is
	// sent that often, as the real server does.
	bookmarkEvery time.Duration
	// silent watches send nothing at all once their headers are out.
	silent bool
}

type entry struct {
	seq      int64
	rv       int64
	typ      api.EventType
	resource string // "" for a bookmark every watch sees
	obj      api.Object
}

// Hook may intercept a request before the fake serves it: returning a
// non-nil error answers that error instead (an *api.Status keeps its code).
type Hook func(r *http.Request) error

// One CA for every fake server of a process, so one client configuration
// can name several of them (failover tests).
var (
	caOnce sync.Once
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	caPEM  []byte
	caErr  error
)

// NewServer starts a fake API on a loopback TLS listener.
func NewServer() (*Server, error) {
	caOnce.Do(func() { caKey, caCert, caPEM, caErr = newCA() })
	if caErr != nil {
		return nil, caErr
	}
	srvTLS, err := leaf(caKey, caCert, false)
	if err != nil {
		return nil, err
	}
	cliTLS, err := leaf(caKey, caCert, true)
	if err != nil {
		return nil, err
	}
	s := &Server{
		objects:  map[string]map[string]api.Object{},
		changed:  make(chan struct{}),
		requests: map[string]int{},
		rv:       1,
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.EnableHTTP2 = true // as the real server: one connection, many streams
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvTLS}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	s.srv.StartTLS()
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cliTLS.Certificate[0]})
	keyDER, err := x509.MarshalECPrivateKey(cliTLS.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		return nil, fmt.Errorf("clienttest: %w", err)
	}
	s.cfg = client.Config{
		Endpoints:         []string{s.srv.URL},
		CACertificate:     string(caPEM),
		ClientCertificate: string(certPEM),
		ClientKey:         string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})),
	}
	s.endpoints = []string{s.srv.URL}
	return s, nil
}

// Close stops the server and ends every watch.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// DropConnections closes every open connection, ending watches the way a
// control-plane restart or a network cut would.
func (s *Server) DropConnections() { s.srv.CloseClientConnections() }

// URL is the server's https:// base URL.
func (s *Server) URL() string { return s.srv.URL }

// Config returns a client configuration for the server.
func (s *Server) Config() client.Config { return s.cfg }

// Client returns a client of the server.
func (s *Server) Client(opts ...client.Option) *client.Client {
	c, err := client.New(s.cfg, opts...)
	if err != nil {
		panic("clienttest: " + err.Error())
	}
	return c
}

// SetControlPlane sets what GET /v1/controlplane publishes.
func (s *Server) SetControlPlane(endpoints []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints = endpoints
}

// AddHook installs a request interceptor.
func (s *Server) AddHook(h Hook) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, h)
}

// Requests returns how many requests of "METHOD path" the server saw.
func (s *Server) Requests(method, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[method+" "+path]
}

// Compact forgets the change history up to now: a watch from an older
// revision answers an ERROR event with reason Gone, and open watches that
// have not yet delivered older changes end with it too.
func (s *Server) Compact() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compacted = s.rv
	s.history = nil
	s.notify()
}

// Bookmark sends every open watch a BOOKMARK at the current revision.
func (s *Server) Bookmark() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.history = append(s.history, entry{seq: s.seq, rv: s.rv, typ: api.Bookmark})
	s.notify()
}

// SetBookmarkInterval makes watches opened from now on advertise d in the
// api.HeaderBookmarkInterval header and carry a BOOKMARK every d, as the
// real server does; 0 (the default) sends neither.
func (s *Server) SetBookmarkInterval(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bookmarkEvery = d
}

// SilenceWatches makes watches go silent (no events, no bookmarks) while
// their connection stays healthy, as a server whose watch machinery hangs:
// watches opened from now on send their headers and nothing else, and open
// ones fall silent at their next change. It cannot be undone.
func (s *Server) SilenceWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = true
	s.notify()
}

// ResourceVersion returns the current revision.
func (s *Server) ResourceVersion() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rv
}

// Objects returns copies of the stored objects of a kind, by key.
func (s *Server) Objects(ki api.KindInfo) map[string]api.Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]api.Object{}
	for k, o := range s.objects[ki.Resource] {
		out[k] = client.DeepCopy(o)
	}
	return out
}

func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// record stores a change. Callers hold mu.
func (s *Server) record(typ api.EventType, ki api.KindInfo, obj api.Object) {
	s.seq++
	s.history = append(s.history, entry{seq: s.seq, rv: s.rv, typ: typ, resource: ki.Resource, obj: client.DeepCopy(obj)})
	s.notify()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	st, ok := err.(*api.Status)
	if !ok {
		st = api.NewError(api.ReasonInternal, "%v", err)
	}
	writeJSON(w, st.Code, st)
}

type route struct {
	ki        api.KindInfo
	namespace string
	name      string
	sub       string
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.Method+" "+r.URL.Path]++
	hooks := append([]Hook(nil), s.hooks...)
	s.mu.Unlock()
	for _, h := range hooks {
		if err := h(r); err != nil {
			writeErr(w, err)
			return
		}
	}
	switch r.URL.Path {
	case "/healthz", "/readyz":
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok\n"))
		return
	case "/v1/controlplane":
		s.mu.Lock()
		cp := api.ControlPlane{Endpoints: s.endpoints, ClusterID: "clienttest"}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, cp)
		return
	case "/v1/version":
		writeJSON(w, http.StatusOK, client.VersionInfo{Version: "clienttest"})
		return
	}
	rt, err := parseRoute(r.URL.Path)
	if err != nil {
		writeErr(w, err)
		return
	}
	q := r.URL.Query()
	switch {
	case rt.name == "" && r.Method == http.MethodGet && q.Get(api.QueryWatch) == "true":
		s.watch(w, r, rt)
	case rt.name == "" && r.Method == http.MethodGet:
		s.list(w, r, rt)
	case rt.name == "" && r.Method == http.MethodPost:
		s.create(w, r, rt)
	case rt.sub == "" && r.Method == http.MethodGet:
		s.get(w, rt)
	case (rt.sub == "" || rt.sub == "status") && r.Method == http.MethodPut:
		s.update(w, r, rt)
	case rt.sub == "" && r.Method == http.MethodDelete:
		grace := int64(-1)
		if v := q.Get(api.QueryGracePeriod); v != "" {
			grace, _ = strconv.ParseInt(v, 10, 64)
		}
		s.delete(w, rt, grace)
	case rt.sub == "eviction" && r.Method == http.MethodPost && rt.ki.Kind == "Pod":
		var req api.EvictionRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		grace := int64(-1)
		if req.GracePeriodSeconds != nil {
			grace = *req.GracePeriodSeconds
		}
		s.delete(w, rt, grace)
	default:
		writeErr(w, api.NewError(api.ReasonNotFound, "clienttest: no such path %s %s", r.Method, r.URL.Path))
	}
}

func parseRoute(path string) (route, error) {
	segs := strings.Split(strings.Trim(strings.TrimPrefix(path, "/v1/"), "/"), "/")
	var rt route
	if len(segs) >= 2 && segs[0] == "namespaces" && len(segs) != 2 {
		rt.namespace, segs = segs[1], segs[2:]
	}
	ki, ok := api.LookupKind(segs[0])
	if !ok || ki.Resource != segs[0] {
		return rt, api.NewError(api.ReasonNotFound, "clienttest: unknown resource in %s", path)
	}
	rt.ki = ki
	if len(segs) > 1 {
		rt.name = segs[1]
	}
	if len(segs) > 2 {
		rt.sub = segs[2]
	}
	return rt, nil
}

func key(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

func (s *Server) bucket(ki api.KindInfo) map[string]api.Object {
	b := s.objects[ki.Resource]
	if b == nil {
		b = map[string]api.Object{}
		s.objects[ki.Resource] = b
	}
	return b
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, rt route) {
	obj := rt.ki.New()
	if err := json.NewDecoder(r.Body).Decode(obj); err != nil {
		writeErr(w, api.NewError(api.ReasonBadRequest, "decode: %v", err))
		return
	}
	m := obj.GetMeta()
	if rt.ki.Namespaced {
		if m.Namespace == "" {
			m.Namespace = rt.namespace
		}
		if m.Namespace != rt.namespace {
			writeErr(w, api.NewError(api.ReasonBadRequest, "namespace %q does not match the path's %q", m.Namespace, rt.namespace))
			return
		}
	}
	if m.Name == "" && m.GenerateName != "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		m.Name = m.GenerateName + hex.EncodeToString(b)[:5]
	}
	api.Default(obj)
	if errs := api.Validate(obj); len(errs) > 0 {
		writeErr(w, api.NewInvalid(rt.ki.Kind, api.Key(obj), errs))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bucket(rt.ki)
	k := key(m.Namespace, m.Name)
	if _, ok := b[k]; ok {
		writeErr(w, api.NewAlreadyExists(rt.ki.Kind, k))
		return
	}
	s.rv++
	s.uid++
	m.UID = fmt.Sprintf("uid-%d", s.uid)
	m.ResourceVersion = s.rv
	m.Generation = 1
	m.CreationTimestamp = time.Now().UTC()
	m.DeletionTimestamp = nil
	b[k] = client.DeepCopy(obj)
	s.record(api.Added, rt.ki, obj)
	writeJSON(w, http.StatusCreated, obj)
}

func (s *Server) get(w http.ResponseWriter, rt route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.bucket(rt.ki)[key(rt.namespace, rt.name)]
	if !ok {
		writeErr(w, api.NewNotFound(rt.ki.Kind, key(rt.namespace, rt.name)))
		return
	}
	writeJSON(w, http.StatusOK, o)
}

// fields splits an object's JSON into its top-level fields.
func fields(o api.Object) map[string]json.RawMessage {
	b, _ := json.Marshal(o)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	return m
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, rt route) {
	in := rt.ki.New()
	if err := json.NewDecoder(r.Body).Decode(in); err != nil {
		writeErr(w, api.NewError(api.ReasonBadRequest, "decode: %v", err))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(rt.namespace, rt.name)
	b := s.bucket(rt.ki)
	old, ok := b[k]
	if !ok {
		writeErr(w, api.NewNotFound(rt.ki.Kind, k))
		return
	}
	if have := in.GetMeta().ResourceVersion; have != old.GetMeta().ResourceVersion {
		writeErr(w, api.NewConflict(rt.ki.Kind, k, have, old.GetMeta().ResourceVersion))
		return
	}
	of, nf := fields(old), fields(in)
	merged := map[string]json.RawMessage{}
	if rt.sub == "status" {
		for f, v := range of {
			merged[f] = v
		}
		if v, ok := nf["status"]; ok {
			merged["status"] = v
		}
	} else {
		for f, v := range nf {
			merged[f] = v
		}
		if rt.ki.HasStatus {
			merged["status"] = of["status"]
		}
	}
	data, _ := json.Marshal(merged)
	out := rt.ki.New()
	if err := json.Unmarshal(data, out); err != nil {
		writeErr(w, api.NewError(api.ReasonBadRequest, "decode: %v", err))
		return
	}
	om, nm := old.GetMeta(), out.GetMeta()
	if rt.sub == "status" {
		*nm = *om
	} else {
		nm.UID, nm.CreationTimestamp, nm.DeletionTimestamp = om.UID, om.CreationTimestamp, om.DeletionTimestamp
		nm.DeletionGracePeriodSeconds, nm.Generation = om.DeletionGracePeriodSeconds, om.Generation
		nm.Namespace, nm.Name = om.Namespace, om.Name
	}
	api.Default(out)
	if errs := api.Validate(out); len(errs) > 0 {
		writeErr(w, api.NewInvalid(rt.ki.Kind, k, errs))
		return
	}
	if errs := api.ValidateUpdate(old, out); len(errs) > 0 {
		writeErr(w, api.NewInvalid(rt.ki.Kind, k, errs))
		return
	}
	if rt.sub == "" && specChanged(old, out) {
		nm.Generation++
	}
	s.rv++
	nm.ResourceVersion = s.rv
	b[k] = client.DeepCopy(out)
	s.record(api.Modified, rt.ki, out)
	writeJSON(w, http.StatusOK, out)
}

// specChanged reports whether anything but metadata and status differs.
func specChanged(a, b api.Object) bool {
	fa, fb := fields(a), fields(b)
	for _, f := range []string{"metadata", "status", "kind", "apiVersion"} {
		delete(fa, f)
		delete(fb, f)
	}
	return !reflect.DeepEqual(normalize(fa), normalize(fb))
}

func normalize(m map[string]json.RawMessage) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		var x any
		_ = json.Unmarshal(v, &x)
		out[k] = x
	}
	return out
}

// delete removes an object; a pod bound to a node with a grace period
// starts terminating instead, and its node (the test) finishes it with a
// delete of grace period 0.
func (s *Server) delete(w http.ResponseWriter, rt route, grace int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(rt.namespace, rt.name)
	b := s.bucket(rt.ki)
	old, ok := b[k]
	if !ok {
		writeErr(w, api.NewNotFound(rt.ki.Kind, k))
		return
	}
	if p, isPod := old.(*api.Pod); isPod && p.Spec.NodeName != "" && grace != 0 {
		if p.Metadata.DeletionTimestamp != nil {
			writeJSON(w, http.StatusOK, p)
			return
		}
		if grace < 0 {
			grace = api.DefaultTerminationGracePeriodSeconds
			if p.Spec.TerminationGracePeriodSeconds != nil {
				grace = *p.Spec.TerminationGracePeriodSeconds
			}
		}
		cp := client.DeepCopy(p)
		now := time.Now().UTC()
		cp.Metadata.DeletionTimestamp = &now
		cp.Metadata.DeletionGracePeriodSeconds = &grace
		s.rv++
		cp.Metadata.ResourceVersion = s.rv
		b[k] = cp
		s.record(api.Modified, rt.ki, cp)
		writeJSON(w, http.StatusOK, cp)
		return
	}
	delete(b, k)
	s.rv++
	gone := client.DeepCopy(old)
	gone.GetMeta().ResourceVersion = s.rv
	s.record(api.Deleted, rt.ki, gone)
	writeJSON(w, http.StatusOK, gone)
}

type filter struct {
	ns     string
	labels map[string]string
	node   string
}

func parseFilter(r *http.Request, rt route) (filter, error) {
	f := filter{ns: rt.namespace}
	q := r.URL.Query()
	sel, err := api.ParseSelector(q.Get(api.QueryLabelSelector))
	if err != nil {
		return f, err
	}
	f.labels = sel
	if fs := q.Get(api.QueryFieldSelector); fs != "" {
		k, v, _ := strings.Cut(fs, "=")
		if k != api.FieldNodeName {
			return f, api.NewError(api.ReasonBadRequest, "unsupported field selector %q", fs)
		}
		f.node = v
	}
	return f, nil
}

func (f filter) matches(o api.Object) bool {
	m := o.GetMeta()
	if f.ns != "" && m.Namespace != f.ns {
		return false
	}
	if !api.SelectorMatches(f.labels, m.Labels) {
		return false
	}
	if f.node != "" {
		p, ok := o.(*api.Pod)
		if !ok || p.Spec.NodeName != f.node {
			return false
		}
	}
	return true
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, rt route) {
	f, err := parseFilter(r, rt)
	if err != nil {
		writeErr(w, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var items []api.Object
	for _, k := range api.SortedKeys(s.bucket(rt.ki)) {
		o := s.bucket(rt.ki)[k]
		if f.matches(o) {
			items = append(items, client.DeepCopy(o))
		}
	}
	l := rt.ki.NewList()
	l.SetObjectItems(items)
	l.SetResourceVersion(s.rv)
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) watch(w http.ResponseWriter, r *http.Request, rt route) {
	f, err := parseFilter(r, rt)
	if err != nil {
		writeErr(w, err)
		return
	}
	from, _ := strconv.ParseInt(r.URL.Query().Get(api.QueryResourceVersion), 10, 64)
	s.mu.Lock()
	if from == 0 {
		from = s.rv
	}
	every := s.bookmarkEvery
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	var tick <-chan time.Time
	if every > 0 {
		w.Header().Set(api.HeaderBookmarkInterval, strconv.FormatFloat(every.Seconds(), 'f', -1, 64))
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	enc := json.NewEncoder(w)
	send := func(typ api.EventType, obj any) bool {
		raw, _ := json.Marshal(obj)
		if err := enc.Encode(api.WatchEvent{Type: typ, Object: raw}); err != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	// Entries are consumed by sequence number; a watch whose next entry
	// was compacted away ends with Gone.
	var next int64 = -1
	last := from // the revision a periodic bookmark may resume from
	for {
		s.mu.Lock()
		if s.silent {
			s.mu.Unlock()
			<-r.Context().Done()
			return
		}
		if next < 0 {
			if from < s.compacted {
				s.mu.Unlock()
				send(api.Error, api.NewError(api.ReasonGone, "resourceVersion %d has been compacted (oldest available %d): list again", from, s.compacted))
				return
			}
			next = s.seq + 1
			for _, e := range s.history {
				if e.typ != api.Bookmark && e.rv > from {
					next = e.seq
					break
				}
			}
		}
		if len(s.history) > 0 && s.history[0].seq > next || len(s.history) == 0 && s.seq >= next {
			s.mu.Unlock()
			send(api.Error, api.NewError(api.ReasonGone, "the watch fell behind a compaction at revision %d: list again", s.compacted))
			return
		}
		var batch []entry
		for _, e := range s.history {
			if e.seq >= next {
				batch = append(batch, e)
			}
		}
		next = s.seq + 1
		ch := s.changed
		s.mu.Unlock()
		for _, e := range batch {
			last = max(last, e.rv)
			if e.typ == api.Bookmark {
				if !send(api.Bookmark, map[string]any{"metadata": map[string]int64{"resourceVersion": e.rv}}) {
					return
				}
				continue
			}
			if e.resource != rt.ki.Resource || !f.matches(e.obj) {
				continue
			}
			if !send(e.typ, e.obj) {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-ch:
		case <-tick:
			s.mu.Lock()
			silent := s.silent
			s.mu.Unlock()
			if !silent && !send(api.Bookmark, map[string]any{"metadata": map[string]int64{"resourceVersion": last}}) {
				return
			}
		}
	}
}

func newCA() (*ecdsa.PrivateKey, *x509.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("clienttest: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "clienttest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("clienttest: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func leaf(signer *ecdsa.PrivateKey, ca *x509.Certificate, isClient bool) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("clienttest: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "admin"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if isClient {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		// Clients accept only control-plane serving certificates.
		tmpl.Subject = pkix.Name{CommonName: "berth:control-plane:clienttest", Organization: []string{"berth:control-plane"}}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, signer)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("clienttest: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// WaitFor polls cond every few milliseconds until it returns true or ctx
// ends, for tests waiting on asynchronous control loops (bound ctx with
// the test's deadline, never with a guess of how fast the loop is).
func WaitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
