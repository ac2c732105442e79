// Command pushimages builds the test web workload images (v1, v2, broken,
// crash) and pushes them to a testbed's plain-HTTP registry, printing one
// "variant ref" line each:
//
//	pushimages --registry 198.18.0.10:5000
//	pushimages --inventory .cache/demo/inventory.json
//
// The demo and the Terraform acceptance tests use it; it must never push
// anywhere but the registry it is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-io/berth/acceptance/testbed"
	"github.com/berth-io/berth/acceptance/workloads"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushimages:", err)
		os.Exit(1)
	}
}

// Run builds the images and pushes them to the registry named by
// --registry or by the inventory's registry.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pushimages", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reg := fs.String("registry", "", "registry host:port (plain HTTP)")
	inv := fs.String("inventory", "", "testbed inventory file whose registry to push to")
	work := fs.String("work-dir", "", "scratch directory for the build (default: a temporary one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *reg == "" && *inv != "" {
		i, err := testbed.LoadInventory(*inv)
		if err != nil {
			return err
		}
		*reg = i.Registry
	}
	if *reg == "" {
		return errors.New("give --registry HOST:PORT or --inventory FILE")
	}
	dir := *work
	if dir == "" {
		d, err := os.MkdirTemp("", "pushimages-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	set, err := workloads.Build(ctx, dir)
	if err != nil {
		return fmt.Errorf("build workload images: %w", err)
	}
	refs, err := set.Push(ctx, *reg)
	if err != nil {
		return err
	}
	for _, v := range workloads.Variants() {
		fmt.Fprintf(stdout, "%s %s\n", v, refs.Of(v))
	}
	return nil
}
