package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/berth-io/berth/control/api"
)

// Evict asks to remove a pod while respecting its deployment's
// availability: the API refuses with TooManyRequests (429) while evicting
// it would take the deployment below replicas − maxUnavailable, and the
// caller retries later (as [Drain] does). gracePeriodSeconds, when not
// nil, overrides the pod's termination grace period.
func (c *Client) Evict(ctx context.Context, ns, pod string, gracePeriodSeconds *int64) error {
	path := api.ObjectPath(podKind(), ns, pod) + "/eviction"
	body := api.EvictionRequest{GracePeriodSeconds: gracePeriodSeconds}
	if err := c.do(ctx, request{method: http.MethodPost, path: path, body: body}, nil); err != nil {
		return fmt.Errorf("evict pod %s/%s: %w", ns, pod, err)
	}
	return nil
}

// Rollback makes an old revision of a deployment desired again (0: the
// live revision before the current desired one) and returns the updated
// deployment.
func (c *Client) Rollback(ctx context.Context, ns, name string, revision int64) (*api.Deployment, error) {
	ki, _ := api.LookupKind("Deployment")
	var d api.Deployment
	path := api.ObjectPath(ki, ns, name) + "/rollback"
	if err := c.do(ctx, request{method: http.MethodPost, path: path, body: api.RollbackRequest{Revision: revision}}, &d); err != nil {
		return nil, fmt.Errorf("roll back deployment %s/%s to revision %d: %w", ns, name, revision, err)
	}
	return &d, nil
}

// LogOptions choose which logs Logs streams.
type LogOptions struct {
	// Container names the container; it may be empty for pods with one.
	Container string
	// Follow keeps the stream open for new lines until ctx ends.
	Follow bool
	// TailLines, when positive, starts that many lines from the end.
	TailLines int64
}

// Logs streams a container's logs. Close the reader when done; with
// Follow it stays open until ctx ends or the container's log ends.
func (c *Client) Logs(ctx context.Context, ns, pod string, opts LogOptions) (io.ReadCloser, error) {
	q := url.Values{}
	if opts.Container != "" {
		q.Set(api.QueryContainer, opts.Container)
	}
	if opts.Follow {
		q.Set(api.QueryFollow, "true")
	}
	if opts.TailLines > 0 {
		q.Set(api.QueryTailLines, strconv.FormatInt(opts.TailLines, 10))
	}
	resp, _, err := c.stream(ctx, request{method: http.MethodGet, path: api.ObjectPath(podKind(), ns, pod) + "/log", query: q})
	if err != nil {
		return nil, fmt.Errorf("logs of pod %s/%s: %w", ns, pod, err)
	}
	return resp.Body, nil
}

// CreateJoinToken mints a short-lived join token (admin only). The secret
// is returned once; never log or store it.
func (c *Client) CreateJoinToken(ctx context.Context, req api.JoinTokenRequest) (*api.JoinToken, error) {
	var tok api.JoinToken
	if err := c.do(ctx, request{method: http.MethodPost, path: "/" + api.Version + "/jointokens", body: req}, &tok); err != nil {
		return nil, fmt.Errorf("create join token: %w", err)
	}
	return &tok, nil
}

// Join trades a join token for a node's certificates. It needs no client
// certificate: the caller knows only the cluster CA (to verify the control
// plane) and one endpoint. timeout bounds the request (0: DefaultTimeout).
func Join(ctx context.Context, caCertificate, endpoint string, req api.JoinRequest, timeout time.Duration) (*api.JoinResponse, error) {
	opts := []Option{WithUserAgent("berth-join")}
	if timeout > 0 {
		opts = append(opts, WithTimeout(timeout))
	}
	c, err := New(Config{Endpoints: []string{endpoint}, CACertificate: caCertificate}, opts...)
	if err != nil {
		return nil, fmt.Errorf("join as node %q: %w", req.NodeName, err)
	}
	defer c.Close()
	var resp api.JoinResponse
	if err := c.do(ctx, request{method: http.MethodPost, path: "/" + api.Version + "/join", body: req}, &resp); err != nil {
		return nil, fmt.Errorf("join as node %q: %w", req.NodeName, err)
	}
	return &resp, nil
}

// Renew trades the caller's certificate requests for fresh certificates
// of the same identity, before the current ones expire.
func (c *Client) Renew(ctx context.Context, req api.RenewRequest) (*api.JoinResponse, error) {
	var resp api.JoinResponse
	if err := c.do(ctx, request{method: http.MethodPost, path: "/" + api.Version + "/renew", body: req}, &resp); err != nil {
		return nil, fmt.Errorf("renew certificates: %w", err)
	}
	return &resp, nil
}

// ControlPlane returns the control plane's published endpoints and
// cluster ID.
func (c *Client) ControlPlane(ctx context.Context) (*api.ControlPlane, error) {
	var cp api.ControlPlane
	if err := c.do(ctx, request{method: http.MethodGet, path: "/" + api.Version + "/controlplane"}, &cp); err != nil {
		return nil, fmt.Errorf("get control plane: %w", err)
	}
	return &cp, nil
}

// SyncEndpoints replaces the client's endpoints with the ones the control
// plane publishes, so the client follows control-plane hosts as they are
// added and removed. An empty published list leaves the endpoints alone.
func (c *Client) SyncEndpoints(ctx context.Context) error {
	cp, err := c.ControlPlane(ctx)
	if err != nil {
		return fmt.Errorf("sync endpoints: %w", err)
	}
	if len(cp.Endpoints) == 0 {
		return nil
	}
	before := c.Endpoints()
	if err := c.SetEndpoints(cp.Endpoints); err != nil {
		return fmt.Errorf("sync endpoints: %w", err)
	}
	if after := c.Endpoints(); !sameSet(before, after) {
		c.log.Info("control-plane endpoints changed", "before", before, "after", after)
	}
	return nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, s := range a {
		m[s] = true
	}
	for _, s := range b {
		if !m[s] {
			return false
		}
	}
	return true
}

// MinEndpointSyncSpacing is the least time between two endpoint syncs that
// endpoint failures trigger, so a client whose every endpoint is down does
// not sync in a tight loop.
const MinEndpointSyncSpacing = 2 * time.Second

// RunEndpointSync calls SyncEndpoints every interval, again
// MinEndpointSyncSpacing after a sync that failed, and soon after an
// endpoint fails (see [Client.EndpointFailures]), until ctx ends, logging
// failures (the current endpoints stay in use meanwhile).
func (c *Client) RunEndpointSync(ctx context.Context, interval time.Duration) {
	for {
		next := interval
		if err := c.SyncEndpoints(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("could not refresh control-plane endpoints", "err", err)
			next = min(interval, MinEndpointSyncSpacing)
		}
		if !c.WaitEndpointSync(ctx, next) {
			return
		}
	}
}

// WaitEndpointSync waits until the next endpoint sync is due: interval
// from now, or MinEndpointSyncSpacing from now once an endpoint fails,
// whichever is first. It reports false when ctx ends first. Loops that
// sync endpoints themselves (the node agent saves them) call it between
// syncs, with an interval of MinEndpointSyncSpacing after a sync that
// failed (a leaving host's API may have answered it with an error). A
// non-positive interval is taken as MinEndpointSyncSpacing, so a caller's
// zero value cannot make a loop sync without pause.
func (c *Client) WaitEndpointSync(ctx context.Context, interval time.Duration) bool {
	if interval <= 0 {
		interval = MinEndpointSyncSpacing
	}
	failed := c.EndpointFailures()
	spacing := time.NewTimer(min(MinEndpointSyncSpacing, interval))
	defer spacing.Stop()
	due := time.NewTimer(interval)
	defer due.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-due.C:
		return true
	case <-failed:
	}
	select {
	case <-ctx.Done():
		return false
	case <-spacing.C:
		return true
	case <-due.C:
		return true
	}
}

// Members lists the etcd members of the control plane.
func (c *Client) Members(ctx context.Context) ([]api.Member, error) {
	var l api.MemberList
	if err := c.do(ctx, request{method: http.MethodGet, path: "/" + api.Version + "/members"}, &l); err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	return l.Items, nil
}

// AddMember adds an etcd learner (admin only) and says how it must start.
func (c *Client) AddMember(ctx context.Context, req api.MemberAddRequest) (*api.MemberAddResponse, error) {
	var resp api.MemberAddResponse
	if err := c.do(ctx, request{method: http.MethodPost, path: "/" + api.Version + "/members", body: req}, &resp); err != nil {
		return nil, fmt.Errorf("add member %q: %w", req.Name, err)
	}
	return &resp, nil
}

// PromoteMember promotes a learner (by hex ID) to a voting member once it
// has caught up; the API refuses while it has not.
func (c *Client) PromoteMember(ctx context.Context, id string) error {
	path := "/" + api.Version + "/members/" + url.PathEscape(id) + "/promote"
	if err := c.do(ctx, request{method: http.MethodPost, path: path}, nil); err != nil {
		return fmt.Errorf("promote member %s: %w", id, err)
	}
	return nil
}

// RemoveMember removes a member by hex ID; the API refuses when that would
// break quorum.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	path := "/" + api.Version + "/members/" + url.PathEscape(id)
	if err := c.do(ctx, request{method: http.MethodDelete, path: path}, nil); err != nil {
		return fmt.Errorf("remove member %s: %w", id, err)
	}
	return nil
}

// Snapshot streams an etcd snapshot into w (admin only) and returns its
// size. Take one before every control-plane upgrade.
func (c *Client) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	resp, _, err := c.stream(ctx, request{method: http.MethodGet, path: "/" + api.Version + "/snapshot"})
	if err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("snapshot: copy after %d bytes: %w", n, err)
	}
	return n, nil
}

// Healthz reports whether a control plane answers /healthz (the process
// is alive).
func (c *Client) Healthz(ctx context.Context) error {
	if err := c.do(ctx, request{method: http.MethodGet, path: "/healthz"}, nil); err != nil {
		return fmt.Errorf("healthz: %w", err)
	}
	return nil
}

// Readyz reports whether a control plane answers /readyz (it serves the
// API and its etcd is reachable).
func (c *Client) Readyz(ctx context.Context) error {
	if err := c.do(ctx, request{method: http.MethodGet, path: "/readyz"}, nil); err != nil {
		return fmt.Errorf("readyz: %w", err)
	}
	return nil
}

// VersionInfo is what GET /v1/version answers.
type VersionInfo struct {
	// Version is the server's release, for example v0.3.1.
	Version string `json:"version"`
	// APIVersion is the API version it serves, "v1".
	APIVersion string `json:"apiVersion"`
	// GoVersion the server was built with.
	GoVersion string `json:"goVersion"`
}

// Version returns the server's version, so tools can tell whether an agent
// and the control plane are within one release of each other.
func (c *Client) Version(ctx context.Context) (*VersionInfo, error) {
	var v VersionInfo
	if err := c.do(ctx, request{method: http.MethodGet, path: "/" + api.Version + "/version"}, &v); err != nil {
		return nil, fmt.Errorf("get version: %w", err)
	}
	return &v, nil
}

func podKind() api.KindInfo {
	ki, _ := api.LookupKind("Pod")
	return ki
}
