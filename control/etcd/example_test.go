package etcd_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-io/berth/control/etcd"
)

// The life of an embedded member: start, use its client with a timeout per
// request, check health, take a backup, close.
func Example() {
	dir, err := os.MkdirTemp("", "berth-etcd-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	startCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := etcd.Start(startCtx, etcd.Config{
		Name:    "cp-1",
		DataDir: filepath.Join(dir, "data"),
		// Port 0: free loopback ports, as tests want. A real control host
		// gives fixed ports, TLS from control/pki and its cluster ID.
		ListenClientURLs: []string{"127.0.0.1:0"},
		ListenPeerURLs:   []string{"127.0.0.1:0"},
	})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	go func() {
		if err, ok := <-srv.Err(); ok {
			fmt.Println("member failed:", err) // a real caller stops its control plane
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli := srv.Client()
	if _, err := cli.Put(ctx, "/berth/hello", "world"); err != nil {
		panic(err)
	}
	resp, err := cli.Get(ctx, "/berth/hello")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s=%s\n", resp.Kvs[0].Key, resp.Kvs[0].Value)

	health, err := etcd.Health(ctx, cli)
	if err != nil {
		panic(err)
	}
	fmt.Println("voters:", health.Voters, "quorum:", health.Quorum)

	backup, err := os.Create(filepath.Join(dir, "backup.db"))
	if err != nil {
		panic(err)
	}
	defer backup.Close()
	if err := etcd.Snapshot(ctx, cli, backup); err != nil {
		panic(err)
	}
	fmt.Println("snapshot verified")

	if err := srv.Close(); err != nil {
		panic(err)
	}
	// Output:
	// /berth/hello=world
	// voters: 1 quorum: true
	// snapshot verified
}
