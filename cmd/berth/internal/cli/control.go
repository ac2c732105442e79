package cli

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/berth-io/berth/control/plane"
	"github.com/berth-io/berth/internal/version"
)

func init() {
	extraCommands = append(extraCommands, newControlCmd)
}

func newControlCmd(g *globals) *cobra.Command {
	var configPath, dataDir, listen, logLevel string
	var dev bool
	cmd := &cobra.Command{
		Use:   "control (--config FILE | --dev --data-dir DIR [--listen ADDR])",
		Short: "Run a control plane: etcd, the API server, the scheduler and the controllers",
		Long: `Run a control plane until interrupted.

With --dev it is a single self-contained control plane for trying berth out
and for tests: it creates a cluster CA, an embedded etcd and an admin client
config (DATA_DIR/admin.json) on first start, and keeps everything on restart.
Point the CLI at it with --config DATA_DIR/admin.json or BERTH_CONFIG.

With --config it reads the control-plane configuration that provisioning
writes to /etc/berth/control.json on a host.`,
		Example: `  berth control --dev --data-dir /tmp/berth --listen 127.0.0.1:7443
  berth control --config /etc/berth/control.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg plane.Config
			switch {
			case configPath != "" && dev:
				return fmt.Errorf("--config and --dev exclude each other: a dev control plane needs only --data-dir")
			case configPath != "":
				var err error
				if cfg, err = plane.LoadConfig(configPath); err != nil {
					return err
				}
			case dev:
				if dataDir == "" {
					return fmt.Errorf("--data-dir is required with --dev: where etcd, the CA and admin.json live")
				}
				cfg = plane.Config{Dev: true, DataDir: dataDir, ListenAddress: listen}
			default:
				return fmt.Errorf("pass --config FILE (a provisioned host) or --dev --data-dir DIR (a local control plane)")
			}
			cfg.Version = version.Version
			logger, err := newLogger(g, logLevel)
			if err != nil {
				return err
			}
			return plane.Run(cmd.Context(), cfg, logger)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "control-plane configuration file (JSON)")
	cmd.Flags().BoolVar(&dev, "dev", false, "run a single self-contained development control plane")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "with --dev: directory for etcd data, the CA and admin.json")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7443", "with --dev: address the API listens on")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	// --config here names the control-plane config, not a client config.
	cmd.Flags().Lookup("config").Usage = "control-plane configuration file (JSON), as provisioning writes it"
	return cmd
}

// newLogger makes the structured logger the long-running commands write to
// standard error.
func newLogger(g *globals, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: l})), nil
}
