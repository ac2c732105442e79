package registry

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// start serves a registry on a loopback port for the life of the test and
// checks that it stops cleanly.
func start(t *testing.T, opts ...Option) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, l, opts...) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve returned %v after its context ended, want nil", err)
		}
	})
	return l.Addr().String()
}

func TestPushedImageIsPulledBackByTagWithTheSameDigest(t *testing.T) {
	blobDir := t.TempDir()
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"blobs in memory", nil},
		{"blobs on disk", []Option{WithBlobDir(blobDir)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			host := start(t, tc.opts...)
			img, err := random.Image(1024, 2)
			if err != nil {
				t.Fatal(err)
			}
			tag, err := name.NewTag(host+"/berth-test/rand:v1", name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
				t.Fatalf("push: %v", err)
			}
			got, err := remote.Image(tag, remote.WithContext(ctx))
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			want, _ := img.Digest()
			have, err := got.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if have != want {
				t.Fatalf("pulled digest %s, pushed %s", have, want)
			}
			layers, err := got.Layers()
			if err != nil || len(layers) != 2 {
				t.Fatalf("pulled %d layers (err %v), pushed 2", len(layers), err)
			}
			if _, err := layers[0].Compressed(); err != nil {
				t.Fatalf("read pulled layer: %v", err)
			}
		})
	}
	entries, err := os.ReadDir(filepath.Join(blobDir, "sha256"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("blob dir holds %d blobs (err %v), want the pushed blobs", len(entries), err)
	}
}

func TestUnknownTagIsNotFound(t *testing.T) {
	host := start(t)
	tag, err := name.NewTag(host+"/berth-test/missing:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(tag, remote.WithContext(t.Context())); err == nil {
		t.Fatal("pull of a tag never pushed succeeded")
	}
}

func TestServeStopsAcceptingWhenContextEnds(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, l) }()
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Serve returned %v, want nil", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("registry still accepts connections after Serve returned")
	}
}
