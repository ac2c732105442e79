package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
)

// DefaultTimeout bounds every request that is not a stream, so a stalled
// control plane never hangs a caller.
const DefaultTimeout = 30 * time.Second

// maxErrorBody is how much of a failed response is read to explain it.
const maxErrorBody = 1 << 20

// Connection liveness defaults. A control-plane host that loses power sends
// no FIN or RST: without these, a connection to it (and every watch on it)
// would hang until TCP gives up, minutes later. See WithConnectionCheck.
const (
	// DefaultPingAfter is how long a connection may stay silent before the
	// client sends an HTTP/2 PING to check the server is still there.
	DefaultPingAfter = 5 * time.Second
	// DefaultPingTimeout is how long that PING may go unanswered before the
	// connection is closed, failing every request and watch on it so they
	// move to another endpoint.
	DefaultPingTimeout = 5 * time.Second
)

// maxDialTimeout bounds a TCP connect: a powered-off host on the same
// network never answers (its SYNs vanish), and a connect on any working
// network takes far less than this.
const maxDialTimeout = 5 * time.Second

// failedEndpointCooldown is how long an endpoint that failed (could not be
// reached, or broke a stream) is tried only after every other endpoint.
const failedEndpointCooldown = 30 * time.Second

// Client talks to a control plane's HTTPS API. It is safe for concurrent
// use; make one and share it.
type Client struct {
	http      *http.Client
	transport *http.Transport
	timeout   time.Duration
	log       *slog.Logger
	userAgent string

	mu        sync.Mutex
	endpoints []string
	current   int
	// failed holds when each endpoint last failed; such endpoints go last
	// for failedEndpointCooldown.
	failed map[string]time.Time
	// fallback endpoints are tried when none of endpoints answers; a sync
	// never replaces them.
	fallback []string
	// failWake is closed and replaced whenever an endpoint fails.
	failWake chan struct{}
}

// Option changes how New builds a Client.
type Option func(*options)

type options struct {
	timeout     time.Duration
	log         *slog.Logger
	userAgent   string
	pingAfter   time.Duration
	pingTimeout time.Duration
	fallback    []string
}

// WithTimeout bounds each request that is not a stream (default 30 s); for
// watches, log follows and snapshots it bounds the wait for the response to
// begin.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithLogger sets where the client reports failovers and endpoint changes;
// by default it stays silent.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithUserAgent names the caller in the User-Agent header, so the control
// plane's logs say which component sent a request.
func WithUserAgent(ua string) Option { return func(o *options) { o.userAgent = ua } }

// WithConnectionCheck sets how long a connection may stay silent before
// the client PINGs the server (default 5 s) and how long the PING may go
// unanswered before the connection is declared dead and closed (default
// 5 s). A dead connection fails every request and watch on it, and they
// move to the next endpoint, so losing a control-plane host stalls a
// client for about their sum. Both must be positive.
func WithConnectionCheck(pingAfter, pingTimeout time.Duration) Option {
	return func(o *options) { o.pingAfter, o.pingTimeout = pingAfter, pingTimeout }
}

// WithFallbackEndpoints names endpoints to try when none of the client's
// endpoints answers, after every one of them: for a node agent, the
// control-plane URLs its host was installed with. [Client.SyncEndpoints]
// replaces the endpoints with the published list but keeps these, so a
// client whose every known control-plane host went away between two syncs
// (a cluster moving to other hosts) still finds the control plane.
func WithFallbackEndpoints(eps ...string) Option {
	return func(o *options) { o.fallback = append(o.fallback, eps...) }
}

// New makes a Client from cfg. The CA certificate is required (every
// connection is TLS and verified); the client certificate is optional only
// for requests that need none.
func New(cfg Config, opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout, userAgent: "berth-client", pingAfter: DefaultPingAfter, pingTimeout: DefaultPingTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("new client: timeout must be positive, got %s", o.timeout)
	}
	if o.pingAfter <= 0 || o.pingTimeout <= 0 {
		return nil, fmt.Errorf("new client: connection check intervals must be positive, got %s and %s", o.pingAfter, o.pingTimeout)
	}
	eps, err := normalizeEndpoints(cfg.Endpoints)
	if err != nil {
		return nil, fmt.Errorf("new client: %w", err)
	}
	var fallback []string
	if len(o.fallback) > 0 {
		if fallback, err = normalizeEndpoints(o.fallback); err != nil {
			return nil, fmt.Errorf("new client: fallback endpoints: %w", err)
		}
	}
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("new client: %w", err)
	}
	dialer := &net.Dialer{
		Timeout: min(o.timeout, maxDialTimeout),
		// TCP keepalive is the backstop for connections HTTP/2 PINGs do
		// not cover (HTTP/1.1): probes after 5 s of silence, dead after
		// three unanswered ones.
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 5 * time.Second, Count: 3},
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   min(o.timeout, 10*time.Second),
		ResponseHeaderTimeout: o.timeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   32,
		ForceAttemptHTTP2:     true,
		// Every request and watch of a client to one endpoint shares one
		// HTTP/2 connection; a PING after pingAfter of silence, unanswered
		// for pingTimeout, closes it and fails them all at once.
		HTTP2: &http.HTTP2Config{SendPingTimeout: o.pingAfter, PingTimeout: o.pingTimeout},
	}
	return &Client{
		http:      &http.Client{Transport: tr},
		transport: tr,
		timeout:   o.timeout,
		log:       o.log,
		userAgent: o.userAgent,
		endpoints: eps,
		failed:    map[string]time.Time{},
		fallback:  fallback,
		failWake:  make(chan struct{}),
	}, nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	if strings.TrimSpace(cfg.CACertificate) == "" {
		return nil, errors.New("caCertificate is empty: the cluster CA is needed to verify the control plane")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(cfg.CACertificate)) {
		return nil, errors.New("caCertificate holds no PEM certificate")
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, VerifyConnection: requireControlPlane}
	if cfg.ClientCertificate != "" || cfg.ClientKey != "" {
		cert, err := tls.X509KeyPair([]byte(cfg.ClientCertificate), []byte(cfg.ClientKey))
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// controlPlaneGroup is the organisation of every control-plane serving
// certificate (pki.ServersGroup; the client may import only the API types).
const controlPlaneGroup = "berth:control-plane"

// requireControlPlane refuses a server whose certificate, though signed by
// the cluster CA, is not a control-plane host's: a node agent's serving
// certificate must never be able to pose as the API.
func requireControlPlane(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	if len(leaf.Subject.Organization) != 1 || leaf.Subject.Organization[0] != controlPlaneGroup {
		return fmt.Errorf("server %q is not a berth control-plane host (organisation %q)", leaf.Subject.CommonName, leaf.Subject.Organization)
	}
	return nil
}

func normalizeEndpoints(in []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, e := range in {
		e = strings.TrimRight(strings.TrimSpace(e), "/")
		if e == "" || seen[e] {
			continue
		}
		u, err := url.Parse(e)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("endpoint %q: must be an https:// URL with a host", e)
		}
		seen[e] = true
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, errors.New("no endpoints: name at least one https:// control-plane address")
	}
	return out, nil
}

// Endpoints returns the endpoints the client currently uses, the one it
// last reached first (fallback endpoints are not among them).
func (c *Client) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.endpoints)
	out := make([]string, 0, n)
	for i := range n {
		out = append(out, c.endpoints[(c.current+i)%n])
	}
	return out
}

// SetEndpoints replaces the endpoint list, keeping the endpoint in use
// first when it is still listed.
func (c *Client) SetEndpoints(eps []string) error {
	norm, err := normalizeEndpoints(eps)
	if err != nil {
		return fmt.Errorf("set endpoints: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.endpoints[c.current]
	c.endpoints, c.current = norm, 0
	for i, e := range norm {
		if e == cur {
			c.current = i
		}
	}
	for ep := range c.failed {
		if !slices.Contains(norm, ep) && !slices.Contains(c.fallback, ep) {
			delete(c.failed, ep)
		}
	}
	return nil
}

// Close releases idle connections.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// request describes one API call.
type request struct {
	method string
	path   string
	query  url.Values
	body   any
	// stream responses are not bounded by the request timeout once they
	// have begun.
	stream bool
}

// send performs r against the endpoints in turn (see order), moving on
// only when an endpoint cannot be reached. It returns the response and the
// endpoint that gave it; the caller must close the response body. A
// non-2xx answer becomes an *api.Status error; a 5xx one also sends the
// client's next requests to another endpoint first.
func (c *Client) send(ctx context.Context, r request) (*http.Response, string, error) {
	var body []byte
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, "", fmt.Errorf("encode request body: %w", err)
		}
		body = b
	}
	var errs []error
	for _, ep := range c.order() {
		u := ep + r.path
		if len(r.query) > 0 {
			u += "?" + r.query.Encode()
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
		if err != nil {
			return nil, "", fmt.Errorf("build request %s %s: %w", r.method, r.path, err)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", c.userAgent)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if r.method == http.MethodPut || r.method == http.MethodDelete {
			// Safe to send again on a connection the server closed under
			// it: an update is compare-and-swap (a replay conflicts) and
			// a delete of a deleted object answers NotFound. This lets
			// the transport retry instead of failing the request.
			req.Header.Set("Idempotency-Key", "replay-safe")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					// No answer in time: an endpoint that is merely slow
					// costs nothing to move away from; a dead one would
					// stall the next request too.
					c.endpointFailed(ep, err)
				}
				return nil, "", fmt.Errorf("%s %s: %w", r.method, r.path, ctx.Err())
			}
			c.endpointFailed(ep, err)
			errs = append(errs, err)
			continue
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			defer resp.Body.Close()
			st := decodeStatus(resp)
			if resp.StatusCode >= 500 {
				// An answer, so not retried; but an instance failing on
				// its own side (its etcd member stopped as its host
				// leaves) should not get the next request too.
				c.endpointFailed(ep, st)
			} else {
				c.endpointAnswered(ep)
			}
			return nil, "", st
		}
		c.endpointAnswered(ep)
		return resp, ep, nil
	}
	return nil, "", fmt.Errorf("%s %s: no control-plane endpoint answered: %w", r.method, r.path, errors.Join(errs...))
}

// order returns the endpoints in the order to try them: from the one in
// use onwards, then the fallback endpoints, except that endpoints which
// failed in the last failedEndpointCooldown come after all the others
// (oldest failure first), so a request does not wait on a dead host
// another request or a broken watch has just found.
func (c *Client) order() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.endpoints)
	now := time.Now()
	var good, bad []string
	add := func(ep string) {
		if t, ok := c.failed[ep]; ok && now.Sub(t) < failedEndpointCooldown {
			bad = append(bad, ep)
			return
		}
		good = append(good, ep)
	}
	for i := range n {
		add(c.endpoints[(c.current+i)%n])
	}
	for _, ep := range c.fallback {
		if !slices.Contains(c.endpoints, ep) {
			add(ep)
		}
	}
	sort.SliceStable(bad, func(i, j int) bool { return c.failed[bad[i]].Before(c.failed[bad[j]]) })
	return append(good, bad...)
}

// endpointFailed records that ep could not be reached or lost a stream:
// it is tried last for a while, and the client moves on from it.
func (c *Client) endpointFailed(ep string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed[ep] = time.Now()
	n := len(c.endpoints)
	if n > 1 && c.endpoints[c.current] == ep {
		c.current = (c.current + 1) % n
	}
	close(c.failWake)
	c.failWake = make(chan struct{})
	c.log.Debug("control-plane endpoint failed; trying the others first", "endpoint", ep, "err", err)
}

// EndpointFailures returns a channel closed the next time a request or a
// watch finds an endpoint unreachable, silent or broken. A control-plane
// host going away is when the published endpoint list is most likely to
// have changed, so long-lived clients sync their endpoints then rather
// than wait for their next periodic sync ([Client.RunEndpointSync] does).
func (c *Client) EndpointFailures() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failWake
}

// endpointAnswered prefers ep from now on, unless it left the list.
func (c *Client) endpointAnswered(ep string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.failed, ep)
	for i, e := range c.endpoints {
		if e == ep {
			c.current = i
		}
	}
}

// do performs r with the request timeout and decodes a JSON answer into
// out (when out is not nil).
func (c *Client) do(ctx context.Context, r request, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, _, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", r.method, r.path, err)
	}
	return nil
}

// stream performs r and returns the open response and the endpoint that
// gave it; the request timeout bounds only the wait for the response to
// begin, and the body lives until ctx ends or the caller closes it.
func (c *Client) stream(ctx context.Context, r request) (*http.Response, string, error) {
	r.stream = true
	return c.send(ctx, r)
}

// decodeStatus turns a failed response into an *api.Status: the JSON body
// when it is one, otherwise a Status built from the HTTP code.
func decodeStatus(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var st api.Status
	if err := json.Unmarshal(data, &st); err == nil && st.Reason != "" {
		if st.Code == 0 {
			st.Code = resp.StatusCode
		}
		if st.Message == "" {
			st.Message = fmt.Sprintf("%s (HTTP %d)", st.Reason, resp.StatusCode)
		}
		return &st
	}
	msg := strings.TrimSpace(string(data))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &api.Status{
		Code:    resp.StatusCode,
		Reason:  reasonForCode(resp.StatusCode),
		Message: fmt.Sprintf("%s %s: HTTP %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, msg),
	}
}

func reasonForCode(code int) api.Reason {
	switch code {
	case http.StatusBadRequest:
		return api.ReasonBadRequest
	case http.StatusUnauthorized:
		return api.ReasonUnauthorized
	case http.StatusForbidden:
		return api.ReasonForbidden
	case http.StatusNotFound:
		return api.ReasonNotFound
	case http.StatusConflict:
		return api.ReasonConflict
	case http.StatusGone:
		return api.ReasonGone
	case http.StatusRequestEntityTooLarge:
		return api.ReasonTooLarge
	case http.StatusUnprocessableEntity:
		return api.ReasonInvalid
	case http.StatusTooManyRequests:
		return api.ReasonTooManyRequests
	case http.StatusServiceUnavailable:
		return api.ReasonUnavailable
	case http.StatusGatewayTimeout:
		return api.ReasonTimeout
	}
	return api.ReasonInternal
}
