// Command bench runs berth's benchmarks beside their same-run baselines and
// writes bench/results.json and the table in BENCHMARKS.md. `make bench`
// runs it; `-run REGEXP` selects scenarios and `-list` lists them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-io/berth/acceptance/testbed"
	"github.com/berth-io/berth/bench"
	_ "github.com/berth-io/berth/bench/scenarios" // registers the scenarios
)

func main() {
	testbed.RunChild() // the cluster scenario's testbed re-executes this binary
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
