// Command etcd-only starts an embedded etcd member and nothing else, the
// memory baseline of berth's control plane: the same library, on loopback,
// in a process of its own. It prints "ready" on stdout once the member
// serves (after writing -puts values of -size bytes) and runs until
// SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "etcd-only:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("etcd-only", flag.ContinueOnError)
	dir := fs.String("dir", "", "data directory (required)")
	puts := fs.Int("puts", 0, "values to write once ready")
	size := fs.Int("size", 1024, "size of each value in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("-dir is required")
	}
	cfg := embed.NewConfig()
	cfg.Dir = *dir
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cu, _ := url.Parse("http://127.0.0.1:0")
	pu, _ := url.Parse("http://127.0.0.1:0")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("etcd: %w", err)
	case <-ctx.Done():
		return nil
	case <-time.After(time.Minute):
		return fmt.Errorf("etcd not ready after 1m")
	}
	if *puts > 0 {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Clients[0].Addr().String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return fmt.Errorf("etcd client: %w", err)
		}
		val := string(make([]byte, *size))
		for i := 0; i < *puts; i++ {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := cli.Put(pctx, "/bench/"+strconv.Itoa(i), val)
			cancel()
			if err != nil {
				cli.Close()
				return fmt.Errorf("put: %w", err)
			}
		}
		cli.Close()
	}
	fmt.Println("ready")
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcd: %w", err)
	}
}
