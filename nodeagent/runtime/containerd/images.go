package containerd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"

	"github.com/berth-io/berth/nodeagent/runtime"
)

// PullImage implements runtime.Runtime. Registries named in
// opts.PlainHTTP are spoken to over HTTP; others over HTTPS.
func (r *Runtime) PullImage(ctx context.Context, ref string, opts runtime.PullOptions) (runtime.Image, error) {
	if err := r.open("pull image", ref); err != nil {
		return runtime.Image{}, err
	}
	ref, err := normalize("pull image", ref, runtime.ErrImagePull)
	if err != nil {
		return runtime.Image{}, err
	}
	ctx, cancel := r.call(ctx, r.cfg.PullTimeout)
	defer cancel()
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: registryHosts(opts)})
	img, err := r.client.Pull(ctx, ref,
		client.WithResolver(resolver),
		client.WithPullUnpack,
		client.WithPullSnapshotter(r.cfg.Snapshotter))
	if err != nil {
		return runtime.Image{}, pullError(ref, err)
	}
	return runtime.Image{Ref: img.Name(), Digest: img.Target().Digest.String()}, nil
}

// registryHosts configures the resolver from opts: plain HTTP where asked,
// and each host's credentials for that host only.
func registryHosts(opts runtime.PullOptions) docker.RegistryHosts {
	plain := func(host string) (bool, error) {
		return slices.Contains(opts.PlainHTTP, host), nil
	}
	return docker.ConfigureDefaultRegistries(
		docker.WithPlainHTTP(plain),
		docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(credentialsFor(opts)))),
	)
}

// credentialsFor answers the resolver's question "which username and
// password for this host?" from opts, and with nothing for other hosts.
func credentialsFor(opts runtime.PullOptions) func(host string) (string, string, error) {
	return func(host string) (string, string, error) {
		if c, ok := opts.Credentials[host]; ok {
			return c.Username, c.Password, nil
		}
		if host == dockerHubHost {
			if c, ok := opts.Credentials["docker.io"]; ok {
				return c.Username, c.Password, nil
			}
		}
		return "", "", nil
	}
}

// dockerHubHost is where containerd sends requests for docker.io images.
const dockerHubHost = "registry-1.docker.io"

// normalize parses ref and returns it in Docker's fully qualified form
// ("nginx" is "docker.io/library/nginx:latest"), as containerd names images.
// A reference that does not parse is an error of kind with reason
// InvalidImageName.
func normalize(op, ref string, kind error) (string, error) {
	n, err := runtime.NormalizeImageRef(ref)
	if err != nil {
		return "", &runtime.Error{Op: op, Subject: ref, Kind: kind, Reason: runtime.ReasonInvalidImageName, Err: err}
	}
	return n, nil
}

// pullError classifies a pull failure into the reason the pod reports.
func pullError(ref string, err error) error {
	e := &runtime.Error{Op: "pull image", Subject: ref, Kind: runtime.ErrImagePull, Err: err}
	var status remoteerrors.ErrUnexpectedStatus
	switch {
	case errdefs.IsNotFound(err):
		e.Reason = runtime.ReasonImageNotFound
		e.Err = fmt.Errorf("%w: %w", runtime.ErrImageNotFound, err)
	case errors.Is(err, docker.ErrInvalidAuthorization), errdefs.IsUnauthorized(err), errdefs.IsPermissionDenied(err):
		e.Reason = runtime.ReasonRegistryUnauthorized
	case errors.As(err, &status) && (status.StatusCode == 401 || status.StatusCode == 403):
		e.Reason = runtime.ReasonRegistryUnauthorized
	case unreachable(err):
		e.Reason = runtime.ReasonRegistryUnavailable
	default:
		e.Reason = runtime.ReasonImagePull
	}
	return e
}

// unreachable reports whether err says the registry could not be reached:
// no route, refused, reset, name unknown, or no answer in time.
func unreachable(err error) bool {
	var (
		dnsErr *net.DNSError
		opErr  *net.OpError
		urlErr *url.Error
	)
	switch {
	case errors.As(err, &dnsErr), errors.As(err, &opErr):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return true
	case errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &urlErr) && urlErr.Timeout():
		return true
	}
	// Errors that crossed gRPC (from the daemon) keep only their text.
	msg := err.Error()
	for _, s := range []string{"connection refused", "no such host", "i/o timeout", "no route to host"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// GetImage implements runtime.Runtime.
func (r *Runtime) GetImage(ctx context.Context, ref string) (runtime.Image, error) {
	if err := r.open("get image", ref); err != nil {
		return runtime.Image{}, err
	}
	ref, err := normalize("get image", ref, runtime.ErrImageNotFound)
	if err != nil {
		return runtime.Image{}, err
	}
	ctx, cancel := r.call(ctx, r.cfg.CallTimeout)
	defer cancel()
	img, err := r.client.GetImage(ctx, ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return runtime.Image{}, &runtime.Error{Op: "get image", Subject: ref, Kind: runtime.ErrImageNotFound,
				Reason: runtime.ReasonImageNotFound, Err: err}
		}
		return runtime.Image{}, fmt.Errorf("get image %s: %w", ref, err)
	}
	return runtime.Image{Ref: img.Name(), Digest: img.Target().Digest.String()}, nil
}

// ImportArchive implements runtime.Runtime for OCI image layout tarballs
// (as `ctr image import` takes them) whose index names each image with an
// io.containerd.image.name or org.opencontainers.image.ref.name annotation
// holding a full reference. Each image is unpacked for containers.
func (r *Runtime) ImportArchive(ctx context.Context, path string) ([]runtime.Image, error) {
	if err := r.open("import image archive", path); err != nil {
		return nil, err
	}
	ctx, cancel := r.call(ctx, r.cfg.PullTimeout)
	defer cancel()
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("import image archive: %w", err)
	}
	defer f.Close()
	imgs, err := r.client.Import(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("import image archive %s: %w", path, err)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("import image archive %s: it names no image (no ref-name annotation in its index)", path)
	}
	out := make([]runtime.Image, 0, len(imgs))
	for _, i := range imgs {
		img := client.NewImage(r.client, i)
		if err := img.Unpack(ctx, r.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("import image archive %s: unpack %s: %w", path, i.Name, err)
		}
		out = append(out, runtime.Image{Ref: i.Name, Digest: i.Target.Digest.String()})
	}
	return out, nil
}
