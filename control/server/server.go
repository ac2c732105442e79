package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/pki"
	"github.com/berth-io/berth/control/store"
)

// Defaults for Config fields left zero.
const (
	// DefaultMaxBodyBytes bounds request bodies (3 MiB).
	DefaultMaxBodyBytes = 3 << 20
	// DefaultRequestTimeout bounds every request that is not a stream.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultBookmarkInterval is how often every watch gets a BOOKMARK.
	// Short, because clients take a watch that stays silent for a few
	// intervals for dead (a control-plane host that lost power sends no
	// FIN), and a bookmark is one small line: 5 s bounds that detection
	// to about 15 s.
	DefaultBookmarkInterval = 5 * time.Second
	// DefaultNodeCertValidity is the life of certificates issued at join.
	DefaultNodeCertValidity = 90 * 24 * time.Hour
	// DefaultEndpointTTL is how long a stopped instance's endpoint stays
	// published when it could not withdraw it.
	DefaultEndpointTTL = 15 * time.Second
)

// Config configures a Server. Store, CA and ServingCert are required.
type Config struct {
	// Store is where objects live; the Server never closes it.
	Store *store.Store
	// CA is the cluster CA: client certificates are verified against it
	// and join and renew requests are signed with it.
	CA *pki.CA
	// ServingCert is the control plane's own certificate (a server
	// identity): served to API clients and presented to node agents when
	// proxying logs.
	ServingCert tls.Certificate
	// Name is this control-plane instance's name (its host), under which
	// it publishes its endpoint.
	Name string
	// AdvertiseURL is the HTTPS base URL clients reach this instance at;
	// empty publishes nothing.
	AdvertiseURL string
	// ServiceCIDR is where cluster IPs come from; default 10.96.0.0/16.
	// Its first address is reserved for the cluster DNS.
	ServiceCIDR string
	// ClusterCIDR is the pod network; default 10.244.0.0/16.
	ClusterCIDR string
	// NodeCIDRBits is the prefix length of each node's pod CIDR; default 24.
	NodeCIDRBits int
	// MaxBodyBytes bounds request bodies; default 3 MiB.
	MaxBodyBytes int64
	// RequestTimeout bounds requests that are not streams; default 30 s.
	RequestTimeout time.Duration
	// BookmarkInterval is how often watches get a BOOKMARK; default 5 s.
	// Each watch response advertises it (api.HeaderBookmarkInterval), so
	// clients adapt their idle timeout to it.
	BookmarkInterval time.Duration
	// NodeCertValidity is the life of node certificates issued at join;
	// default 90 days.
	NodeCertValidity time.Duration
	// Version is what GET /v1/version reports.
	Version string
	// Membership changes etcd membership for /v1/members; default
	// EtcdMembership over the store's client.
	Membership Membership
	// Logger receives the server's logs; default discards them.
	Logger *slog.Logger
	// Now is the clock (join token expiry, deletion timestamps); default
	// time.Now.
	Now func() time.Time
}

// Server is the control plane's HTTPS API. Create it with New, serve it
// with Serve.
type Server struct {
	cfg              Config
	store            *store.Store
	ca               *pki.CA
	log              *slog.Logger
	now              func() time.Time
	serviceNet       netip.Prefix
	dnsIP            netip.Addr
	clusterNet       netip.Prefix
	nodeBits         int
	maxBody          int64
	requestTimeout   time.Duration
	writeTimeout     time.Duration
	bookmarkInterval time.Duration
	nodeCertValidity time.Duration

	membership  Membership
	certs       *pki.CertStore
	agentClient *http.Client
	revoked     *revocations
	metrics     *metrics
	handler     http.Handler

	stopCtx  context.Context
	stopAll  context.CancelFunc
	loopOnce sync.Once
	evictMu  sync.Mutex
}

// New checks cfg and builds a Server; nothing is started until Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("new api server: config has no store")
	}
	if cfg.CA == nil {
		return nil, errors.New("new api server: config has no ca")
	}
	if len(cfg.ServingCert.Certificate) == 0 {
		return nil, errors.New("new api server: config has no serving certificate")
	}
	if cfg.ServiceCIDR == "" {
		cfg.ServiceCIDR = DefaultServiceCIDR
	}
	if cfg.ClusterCIDR == "" {
		cfg.ClusterCIDR = DefaultClusterCIDR
	}
	if cfg.NodeCIDRBits == 0 {
		cfg.NodeCIDRBits = DefaultNodeCIDRBits
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.BookmarkInterval <= 0 {
		cfg.BookmarkInterval = DefaultBookmarkInterval
	}
	if cfg.NodeCertValidity <= 0 {
		cfg.NodeCertValidity = DefaultNodeCertValidity
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Membership == nil {
		cfg.Membership = EtcdMembership{Client: cfg.Store.Client()}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Name == "" {
		return nil, errors.New("new api server: config has no instance name")
	}
	svcNet, err := parseIPv4Prefix("service CIDR", cfg.ServiceCIDR)
	if err != nil {
		return nil, fmt.Errorf("new api server: %w", err)
	}
	if svcNet.Bits() > 29 {
		return nil, fmt.Errorf("new api server: service CIDR %s is too small (at most /29)", svcNet)
	}
	clusterNet, err := parseIPv4Prefix("cluster CIDR", cfg.ClusterCIDR)
	if err != nil {
		return nil, fmt.Errorf("new api server: %w", err)
	}
	if cfg.NodeCIDRBits <= clusterNet.Bits() || cfg.NodeCIDRBits > 30 {
		return nil, fmt.Errorf("new api server: node CIDR bits %d must be longer than the cluster CIDR %s and at most 30",
			cfg.NodeCIDRBits, clusterNet)
	}
	certs := pki.NewCertStore(cfg.ServingCert)
	agentTLS := pki.ClientTLSConfig(cfg.CA.Pool(), certs, "")
	// Logs are read only from node agents' own serving certificates; which
	// node's is checked per request in handleLog.
	pki.RequirePeer(agentTLS, func(id pki.Identity) error {
		if id.Role != pki.RoleNodeServer {
			return fmt.Errorf("peer %s is not a node agent", id)
		}
		return nil
	})
	stopCtx, stopAll := context.WithCancel(context.Background())
	s := &Server{
		cfg:              cfg,
		store:            cfg.Store,
		ca:               cfg.CA,
		log:              cfg.Logger,
		now:              cfg.Now,
		serviceNet:       svcNet,
		dnsIP:            svcNet.Addr().Next(),
		clusterNet:       clusterNet,
		nodeBits:         cfg.NodeCIDRBits,
		maxBody:          cfg.MaxBodyBytes,
		requestTimeout:   cfg.RequestTimeout,
		writeTimeout:     cfg.RequestTimeout,
		bookmarkInterval: cfg.BookmarkInterval,
		nodeCertValidity: cfg.NodeCertValidity,
		certs:            certs,
		agentClient: &http.Client{Transport: &http.Transport{
			TLSClientConfig:       agentTLS,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: cfg.RequestTimeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       time.Minute,
		}},
		membership: cfg.Membership,
		revoked:    newRevocations(),
		metrics:    newMetrics(),
		stopCtx:    stopCtx,
		stopAll:    stopAll,
	}
	s.handler = s.buildHandler()
	return s, nil
}

// Handler is the whole API as an http.Handler. It expects requests that
// came over TLS with the client certificate verified (as Serve and
// TLSConfig arrange); without one only join and the probes answer.
func (s *Server) Handler() http.Handler { return s.handler }

// Certificates holds the serving certificate; Set a renewed one to serve
// it from the next handshake on.
func (s *Server) Certificates() *pki.CertStore { return s.certs }

// TLSConfig is the server's TLS configuration: its serving certificate,
// client certificates verified against the cluster CA when presented
// (optional only so a joining node can reach /v1/join; every other path
// requires one), and revoked certificates refused during the handshake.
func (s *Server) TLSConfig() *tls.Config {
	cfg := pki.ServerTLSConfig(s.ca.Pool(), s.certs, pki.OptionalClientCert)
	pki.CheckRevocation(cfg, s.revoked.has)
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return cfg
}

func (s *Server) buildHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.handleHealthz)
	mux.HandleFunc("/readyz", s.handleReadyz)
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		c := callerFrom(r.Context())
		s.setLabels(r, attributes{verb: verbMetrics})
		if err := authorize(c.id, attributes{verb: verbMetrics}); err != nil {
			writeError(w, err)
			return
		}
		s.metrics.handler().ServeHTTP(w, r)
	})
	mux.HandleFunc("/", s.routeAPI)
	return s.instrument(s.authenticate(s.recoverPanics(mux)))
}

// recoverPanics answers InternalError instead of dropping the connection
// when a handler panics, and logs the panic.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("api handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, api.NewError(api.ReasonInternal, "internal error while serving %s %s", r.Method, r.URL.Path))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// Serve serves the API over TLS on l until ctx ends, then stops: it ends
// every watch and log stream, waits (up to 10 s) for other requests to
// finish and withdraws this instance's published endpoint. Before
// accepting the first connection it loads the revoked certificates, so a
// restarted server never admits one. It returns nil after a stop caused by
// ctx, or the error that stopped it.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	loadCtx, cancel := context.WithTimeout(ctx, s.requestTimeout)
	err := s.loadRevocations(loadCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("serve api: %w", err)
	}
	loopCtx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	var loops sync.WaitGroup
	loops.Go(func() { s.watchRevocations(loopCtx) })
	if s.cfg.AdvertiseURL != "" {
		loops.Go(func() { s.publishEndpoint(loopCtx) })
	}
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.requestTimeout,
		WriteTimeout:      s.requestTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(l, "", "") }()
	s.log.Info("api server listening", "address", l.Addr().String(), "advertise", s.cfg.AdvertiseURL)
	select {
	case err := <-done:
		s.stopAll()
		stopLoops()
		loops.Wait()
		return fmt.Errorf("serve api on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	s.stopAll()
	shutCtx, cancelShut := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelShut()
	if err := srv.Shutdown(shutCtx); err != nil {
		_ = srv.Close()
	}
	<-done
	stopLoops()
	loops.Wait()
	s.log.Info("api server stopped", "address", l.Addr().String())
	return nil
}

// loadRevocations reads every revoked serial into memory.
func (s *Server) loadRevocations(ctx context.Context) error {
	recs, err := s.store.ListAux(ctx, auxRevoked)
	if err != nil {
		return fmt.Errorf("load revoked certificates: %w", err)
	}
	for key, raw := range recs {
		var rec certRecord
		if err := json.Unmarshal(raw, &rec); err != nil || rec.Serial == "" {
			rec.Serial = key[len(auxRevoked):]
		}
		s.revoked.add(rec.Serial, rec.NotAfter)
	}
	return nil
}

// watchRevocations keeps the in-memory set of revoked serials current
// until ctx ends, re-listing whenever the watch breaks.
func (s *Server) watchRevocations(ctx context.Context) {
	for ctx.Err() == nil {
		events, err := s.store.WatchAux(ctx, auxRevoked)
		if err == nil {
			lctx, cancel := context.WithTimeout(ctx, s.requestTimeout)
			err = s.loadRevocations(lctx)
			cancel()
		}
		if err != nil {
			s.log.Warn("watch revoked certificates", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		for ev := range events {
			serial := ev.Key[len(auxRevoked):]
			if ev.Deleted {
				s.revoked.remove(serial)
				continue
			}
			var rec certRecord
			_ = json.Unmarshal(ev.Value, &rec)
			s.revoked.add(serial, rec.NotAfter)
		}
	}
}

// publishEndpoint keeps this instance's advertised URL published until ctx
// ends, retrying while etcd does not answer.
func (s *Server) publishEndpoint(ctx context.Context) {
	key := AuxEndpointsPrefix + s.cfg.Name
	for {
		err := s.store.KeepAux(ctx, key, s.cfg.AdvertiseURL, DefaultEndpointTTL)
		if err == nil {
			<-ctx.Done()
			return
		}
		s.log.Warn("publish control-plane endpoint", "url", s.cfg.AdvertiseURL, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}
