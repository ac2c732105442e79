package registry_test

import (
	"context"
	"fmt"
	"net"

	"github.com/berth-io/berth/acceptance/registry"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Serve a registry on loopback, push an image and pull it back.
func Example() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- registry.Serve(ctx, l) }()

	img, err := random.Image(512, 1)
	if err != nil {
		panic(err)
	}
	tag, err := name.NewTag(l.Addr().String()+"/berth-test/example:v1", name.Insecure)
	if err != nil {
		panic(err)
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
		panic(err)
	}
	pulled, err := remote.Image(tag, remote.WithContext(ctx))
	if err != nil {
		panic(err)
	}
	want, _ := img.Digest()
	got, _ := pulled.Digest()
	fmt.Println("same digest:", got == want)

	cancel()
	fmt.Println("serve:", <-done)
	// Output:
	// same digest: true
	// serve: <nil>
}
