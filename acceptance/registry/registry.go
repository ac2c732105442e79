// Package registry runs a real OCI distribution registry for the testbed, so
// node agents pull test workload images the normal way, over HTTP, by tag and
// digest.
//
// It wraps go-containerregistry's pkg/registry, a standards-following
// registry meant for tests. Manifests and tags always live in memory; blobs
// live in memory too unless WithBlobDir names a directory. Either way the
// registry forgets every tag when it stops, so whoever starts it pushes the
// workload images again (workloads.Set.Push) after each start.
//
// A test, or the testbed keeper, uses it like this:
//
//	l, err := net.Listen("tcp", "198.18.0.1:5000") // or 127.0.0.1:0 in unit tests
//	...
//	go func() { errc <- registry.Serve(ctx, l) }()
//	refs, err := set.Push(ctx, l.Addr().String())
//	...
//	cancel() // Serve returns nil once it has stopped
//
// It speaks plain HTTP only: clients must treat it as an insecure registry
// (name.Insecure in go-containerregistry, a hosts.toml entry with an http://
// server for containerd). It must never be exposed beyond loopback or the
// testbed's own addresses, and it never logs unless given a request log.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
)

// shutdownGrace bounds how long Serve waits for in-flight pulls and pushes
// after its context ends before it closes their connections.
const shutdownGrace = 5 * time.Second

// Option changes how the registry stores blobs or reports requests.
type Option func(*options)

type options struct {
	blobDir    string
	requestLog io.Writer
}

// WithBlobDir keeps blobs (layers and configs) as files under dir instead of
// in memory, so that large images do not grow the serving process. The
// directory must exist; the registry never removes what it writes there.
func WithBlobDir(dir string) Option {
	return func(o *options) { o.blobDir = dir }
}

// WithRequestLog writes one line per request to w, for debugging a testbed
// whose agents cannot pull. Without it the registry writes nothing.
func WithRequestLog(w io.Writer) Option {
	return func(o *options) { o.requestLog = w }
}

// New returns the registry as an http.Handler, to be mounted at the site
// root, for callers that run their own http.Server.
func New(opts ...Option) http.Handler {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	w := o.requestLog
	if w == nil {
		w = io.Discard
	}
	ro := []ggcr.Option{ggcr.Logger(log.New(w, "registry: ", log.LstdFlags))}
	if o.blobDir != "" {
		ro = append(ro, ggcr.WithBlobHandler(ggcr.NewDiskBlobHandler(o.blobDir)))
	}
	return ggcr.New(ro...)
}

// Serve answers registry requests on l until ctx ends, then stops accepting,
// lets requests in flight finish for a few seconds, and returns nil. It
// returns an error only if serving fails for another reason. Serve closes l.
func Serve(ctx context.Context, l net.Listener, opts ...Option) error {
	srv := &http.Server{
		Handler:           New(opts...),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve registry on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve registry on %s: %w", l.Addr(), err)
	}
	return nil
}
