// Package cli implements every berth command behind a testable Run. The user
// commands follow the conventions people know from kubectl: `get KIND
// [NAME]`, `-n NAMESPACE`, `-o json|yaml`, readable tables by default.
// It never logs from library code: commands write to the writers they are
// given and return errors.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/internal/version"
)

// EnvConfig names the variable holding the client config path when
// --config is not given.
const EnvConfig = "BERTH_CONFIG"

// exitError carries a process exit code, for commands such as
// `rollout status` whose outcome is a code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode returns the process exit code for an error Run returned.
func ExitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// globals are the flags every user command shares.
type globals struct {
	configPath string
	namespace  string
	timeout    time.Duration
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
}

func (g *globals) client() (*client.Client, error) {
	path := g.configPath
	if path == "" {
		path = os.Getenv(EnvConfig)
	}
	if path == "" {
		return nil, errors.New("no client config: pass --config FILE or set BERTH_CONFIG (berth control --dev writes DATA_DIR/admin.json)")
	}
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.WithUserAgent("berth-cli/"+version.Version))
}

// Run executes the berth command line in args.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "berth",
		Short:         "berth runs containers on SSH-reachable hosts, driven from Terraform or Pulumi",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Version,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetIn(stdin)
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", "", "client config file (default $BERTH_CONFIG)")
	pf.StringVarP(&g.namespace, "namespace", "n", "default", "namespace of namespaced objects")
	pf.DurationVar(&g.timeout, "request-timeout", 30*time.Second, "timeout of each API request")

	root.AddCommand(
		newGetCmd(g), newDescribeCmd(g), newApplyCmd(g), newDeleteCmd(g),
		newRolloutCmd(g), newCordonCmd(g, true), newCordonCmd(g, false), newDrainCmd(g),
		newLogsCmd(g), newVersionCmd(g),
	)
	for _, c := range extraCommands {
		root.AddCommand(c(g))
	}
	return root
}

// extraCommands lets the node-side commands (control, agent, image)
// register themselves from their own files.
var extraCommands []func(*globals) *cobra.Command

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the client version and, with a config, the server's",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(g.stdout, "client: %s\n", version.Version)
			if g.configPath == "" && os.Getenv(EnvConfig) == "" {
				return nil
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			v, err := c.Version(ctx)
			if err != nil {
				return fmt.Errorf("server version: %w", err)
			}
			fmt.Fprintf(g.stdout, "server: %s\n", v.Version)
			return nil
		},
	}
}
