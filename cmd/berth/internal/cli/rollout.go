package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

func deploymentArg(args []string) (string, error) {
	name := args[0]
	if k, n, ok := strings.Cut(name, "/"); ok {
		ki, found := api.LookupKind(k)
		if !found || ki.Kind != "Deployment" {
			return "", fmt.Errorf("rollout works on deployments, got %q", args[0])
		}
		name = n
	}
	return name, nil
}

// deploymentTarget reads the deployment a rollout command names and the
// client to reach it: the preamble every rollout subcommand shares.
func deploymentTarget(g *globals, args []string) (string, *client.Client, error) {
	name, err := deploymentArg(args)
	if err != nil {
		return "", nil, err
	}
	c, err := g.client()
	if err != nil {
		return "", nil, err
	}
	return name, c, nil
}

func newRolloutCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "rollout", Short: "Follow, list and undo deployment rollouts"}
	var timeout time.Duration
	status := &cobra.Command{
		Use:   "status deployment/NAME",
		Short: "Wait until the rollout completes; exit non-zero when it fails, rolls back or pauses",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := deploymentTarget(g, args)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return RolloutStatus(ctx, c, g.namespace, name, g.stdout)
		},
	}
	status.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up waiting after this long")

	history := &cobra.Command{
		Use:   "history deployment/NAME",
		Short: "List a deployment's revisions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := deploymentTarget(g, args)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			var d api.Deployment
			if err := c.Get(ctx, g.namespace, name, &d); err != nil {
				return fmt.Errorf("get deployment %q: %w", name, err)
			}
			var revs api.RevisionList
			if err := c.List(ctx, &revs, client.ListOptions{Namespace: g.namespace, Labels: map[string]string{api.LabelDeployment: name}}); err != nil {
				return fmt.Errorf("list revisions: %w", err)
			}
			sort.Slice(revs.Items, func(i, j int) bool { return revs.Items[i].Number < revs.Items[j].Number })
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "REVISION\tTEMPLATE-HASH\tIMAGES\tNOTE")
			for _, r := range revs.Items {
				var images []string
				for _, ctr := range r.Template.Spec.Containers {
					images = append(images, ctr.Image)
				}
				var note []string
				if r.Number == d.Status.LiveRevision {
					note = append(note, "live")
				}
				if r.Number == d.Status.DesiredRevision {
					note = append(note, "desired")
				}
				if r.Number == d.Status.FailedRevision && d.Status.FailedRevision != 0 {
					note = append(note, "failed")
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", r.Number, r.TemplateHash, strings.Join(images, ","), strings.Join(note, ","))
			}
			return tw.Flush()
		},
	}

	var toRevision int64
	undo := &cobra.Command{
		Use:   "undo deployment/NAME [--to-revision N]",
		Short: "Roll back to the previous live revision, or to a named one",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := deploymentTarget(g, args)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			if _, err := c.Rollback(ctx, g.namespace, name, toRevision); err != nil {
				return fmt.Errorf("roll back deployment %q: %w", name, err)
			}
			fmt.Fprintf(g.stdout, "deployment/%s rolled back\n", name)
			return nil
		},
	}
	undo.Flags().Int64Var(&toRevision, "to-revision", 0, "revision to return to (default: the live revision before the current one)")
	cmd.AddCommand(status, history, undo)
	return cmd
}

// RolloutStatus follows a deployment until its latest rollout settles,
// printing progress lines as they change. It returns nil when the rollout
// is Complete and an error saying what is live otherwise (failed, rolled
// back or paused), so scripts can rely on the exit code.
func RolloutStatus(ctx context.Context, c *client.Client, ns, name string, w io.Writer) error {
	last := ""
	for {
		var d api.Deployment
		if err := c.Get(ctx, ns, name, &d); err != nil {
			return fmt.Errorf("get deployment %q: %w", name, err)
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		observed := d.Status.ObservedGeneration >= d.Metadata.Generation
		var line string
		switch {
		case !observed:
			line = fmt.Sprintf("Waiting for deployment %q spec update to be observed...", name)
		case d.Status.RolloutState == api.RolloutComplete:
			fmt.Fprintf(w, "deployment %q successfully rolled out (revision %d)\n", name, d.Status.LiveRevision)
			return nil
		case d.Status.RolloutState == api.RolloutFailed || d.Status.RolloutState == api.RolloutRolledBack || d.Status.RolloutState == api.RolloutPaused:
			return &exitError{code: 1, err: fmt.Errorf("deployment %q rollout %s: live revision %d: %s",
				name, strings.ToLower(string(d.Status.RolloutState)), d.Status.LiveRevision, d.Status.Message)}
		default:
			line = fmt.Sprintf("Waiting for deployment %q rollout to finish: %d of %d updated replicas are available...",
				name, min(d.Status.AvailableReplicas, d.Status.UpdatedReplicas), want)
		}
		if line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		select {
		case <-ctx.Done():
			return &exitError{code: 1, err: fmt.Errorf("deployment %q: gave up waiting: %w (state %s: %s)", name, ctx.Err(), d.Status.RolloutState, d.Status.Message)}
		case <-time.After(500 * time.Millisecond):
		}
	}
}
