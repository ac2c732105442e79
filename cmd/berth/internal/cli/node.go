package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-io/berth/cmd/berth/internal/supervise"
	"github.com/berth-io/berth/provider/nodeimage"
)

func init() {
	extraCommands = append(extraCommands, newNodeCmd)
}

// DefaultNodeConfig is where the provisioning engine writes a host's
// supervise.Config.
const DefaultNodeConfig = "/etc/berth/node.json"

func newNodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run and control this host's berth services (containerd, control plane, agent)",
		Long: `Host-side commands the provisioning engine runs over SSH. Under systemd the
services are units (berth-containerd, berth-control, berth-agent); otherwise
'berth node supervise' keeps them running itself, started detached by
'berth node start'. Restarting never stops containers: containerd is stopped
by its own PID only and its shims keep the containers alive.`,
	}
	var cfgPath string
	var timeout time.Duration
	load := func() (supervise.Config, error) { return supervise.LoadConfig(cfgPath) }
	withTimeout := func(cmd *cobra.Command) (context.Context, context.CancelFunc) {
		return context.WithTimeout(cmd.Context(), timeout)
	}
	self := func(c supervise.Config) string { return filepath.Join(c.ImageDir, "bin", "berth") }

	superviseCmd := &cobra.Command{
		Use:   "supervise",
		Short: "Run this host's services in the foreground, restarting any that exits",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load()
			if err != nil {
				return err
			}
			return supervise.Supervise(cmd.Context(), c, supervise.DefaultBackoff, func(e supervise.Event) {
				line := fmt.Sprintf("%s %-10s %s (%s)", time.Now().UTC().Format(time.RFC3339), e.Service, e.Step, e.Elapsed.Round(time.Millisecond))
				if e.Err != nil {
					line += ": " + e.Err.Error()
				}
				fmt.Fprintln(g.stderr, line)
			})
		},
	}
	start := func(cmd *cobra.Command, restart bool) error {
		c, err := load()
		if err != nil {
			return err
		}
		ctx, cancel := withTimeout(cmd)
		defer cancel()
		if supervise.DetectInit() == supervise.InitSystemd {
			units, err := supervise.InstallUnits(ctx, c, supervise.DefaultUnitDir)
			if err != nil {
				return err
			}
			if err := supervise.Systemctl(ctx, append([]string{"enable"}, units...)...); err != nil {
				return err
			}
			verb := "start"
			if restart {
				verb = "restart"
			}
			return supervise.Systemctl(ctx, append([]string{verb}, units...)...)
		}
		if restart {
			if err := supervise.Stop(ctx, c); err != nil {
				return err
			}
		}
		pid, err := supervise.Start(ctx, c, self(c), cfgPath)
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "supervisor pid %d\n", pid)
		return nil
	}
	startCmd := &cobra.Command{
		Use:   "start",
		Short: "Start this host's services unless they run (systemd units, or a detached supervisor)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return start(cmd, false) },
	}
	restartCmd := &cobra.Command{
		Use:   "restart",
		Short: "Restart this host's services from the image /opt/berth/current points at",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return start(cmd, true) },
	}
	stopCmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop this host's services (containers keep running in their shims)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load()
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			if supervise.DetectInit() == supervise.InitSystemd {
				return supervise.Systemctl(ctx, "stop", supervise.UnitName("agent"), supervise.UnitName("control"), supervise.UnitName("containerd"))
			}
			return supervise.Stop(ctx, c)
		},
	}
	statusCmd := &cobra.Command{
		Use:   "status",
		Short: "Print the init system, the running image and each service's PID and start time as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load()
			if err != nil {
				return err
			}
			img, _ := filepath.EvalSymlinks(c.ImageDir)
			out := struct {
				Init     string                             `json:"init"`
				Image    string                             `json:"image"`
				Services map[string]supervise.ServiceStatus `json:"services"`
			}{supervise.DetectInit(), img, supervise.Status(c)}
			enc := json.NewEncoder(g.stdout)
			return enc.Encode(out)
		},
	}
	unitsCmd := &cobra.Command{
		Use:   "units",
		Short: "Print the systemd units this host's services would run as",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load()
			if err != nil {
				return err
			}
			units := supervise.Units(c)
			names := make([]string, 0, len(units))
			for n := range units {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(g.stdout, "# %s\n%s\n", n, units[n])
			}
			return nil
		},
	}
	verifyCmd := &cobra.Command{
		Use:   "verify-image DIR",
		Short: "Check an unpacked node image directory against its manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			m, err := nodeimage.VerifyDir(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "ok: berth %s, %d files\n", m.BerthVersion, len(m.Files))
			return nil
		},
	}
	for _, c := range []*cobra.Command{superviseCmd, startCmd, restartCmd, stopCmd, statusCmd, unitsCmd} {
		c.Flags().StringVar(&cfgPath, "config", DefaultNodeConfig, "node config file")
	}
	for _, c := range []*cobra.Command{startCmd, restartCmd, stopCmd, verifyCmd} {
		c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait")
	}
	cmd.AddCommand(superviseCmd, startCmd, restartCmd, stopCmd, statusCmd, unitsCmd, verifyCmd)
	return cmd
}
