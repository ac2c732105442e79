package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-io/berth/nodeagent/agent"
)

func init() {
	extraCommands = append(extraCommands, newAgentCmd)
}

func newAgentCmd(g *globals) *cobra.Command {
	var configPath, logLevel string
	cmd := &cobra.Command{
		Use:   "agent --config FILE",
		Short: "Run the node agent: pods on containerd, the pod network, service rules",
		Long: `Run the node agent until interrupted (SIGTERM or SIGINT).

The configuration is the JSON that provisioning writes to
/etc/berth/agent.json. On first start the agent trades the join token named
by joinTokenFile for its certificates and deletes the file; later starts
use the stored certificates. Stopping the agent leaves containers running:
the next start adopts them.`,
		Example: `  berth agent --config /etc/berth/agent.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return fmt.Errorf("--config is required: the agent configuration file, /etc/berth/agent.json on a host")
			}
			cfg, err := agent.LoadConfig(configPath)
			if err != nil {
				return err
			}
			logger, err := newLogger(g, logLevel)
			if err != nil {
				return err
			}
			return agent.Run(cmd.Context(), cfg, logger)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "agent configuration file (JSON), as provisioning writes it")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
