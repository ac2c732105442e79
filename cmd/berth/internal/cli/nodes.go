package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-io/berth/control/client"
)

func newCordonCmd(g *globals, cordon bool) *cobra.Command {
	use, short := "cordon NODE", "Stop new pods from being scheduled on a node"
	if !cordon {
		use, short = "uncordon NODE", "Let pods be scheduled on a node again"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			if err := client.Cordon(ctx, c, args[0], cordon); err != nil {
				return err
			}
			word := "cordoned"
			if !cordon {
				word = "uncordoned"
			}
			fmt.Fprintf(g.stdout, "node/%s %s\n", args[0], word)
			return nil
		},
	}
}

func newDrainCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	var grace int64
	cmd := &cobra.Command{
		Use:   "drain NODE",
		Short: "Cordon a node and evict its pods, respecting each deployment's availability",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			opts := client.DrainOptions{Timeout: timeout}
			if grace >= 0 {
				opts.GracePeriodSeconds = &grace
			}
			if err := client.Drain(cmd.Context(), c, args[0], opts); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "node/%s drained\n", args[0])
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up when pods are still on the node after this long")
	cmd.Flags().Int64Var(&grace, "grace-period", -1, "seconds each pod gets to stop (default: its own setting)")
	return cmd
}

func newLogsCmd(g *globals) *cobra.Command {
	var container string
	var follow bool
	var tail int64
	cmd := &cobra.Command{
		Use:   "logs POD [-c CONTAINER] [--follow] [--tail N]",
		Short: "Print a container's logs, read from its node through the control plane",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if !follow {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, g.timeout)
				defer cancel()
			}
			opts := client.LogOptions{Container: container, Follow: follow}
			if tail >= 0 {
				opts.TailLines = tail
			}
			rc, err := c.Logs(ctx, g.namespace, args[0], opts)
			if err != nil {
				return fmt.Errorf("logs of pod %q: %w", args[0], err)
			}
			defer rc.Close()
			_, err = io.Copy(g.stdout, rc)
			if err != nil && ctx.Err() != nil && follow {
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (default: the pod's only container)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new lines")
	cmd.Flags().Int64Var(&tail, "tail", -1, "show only the last N lines")
	return cmd
}
