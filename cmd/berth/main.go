// Command berth is the single node binary and the user CLI: `berth control`
// runs a control plane, `berth agent` a node agent, `berth image` builds node
// images, and get/describe/apply/delete/rollout/cordon/drain/logs talk to a
// cluster. main stays thin; everything is in internal/cli so it is tested
// without a process.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-io/berth/cmd/berth/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		os.Exit(cli.ExitCode(err))
	}
}
