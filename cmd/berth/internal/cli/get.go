package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// kindAndNames reads "KIND [NAME...]" or "KIND/NAME" arguments.
func kindAndNames(args []string) (api.KindInfo, []string, error) {
	first := args[0]
	var names []string
	if k, n, ok := strings.Cut(first, "/"); ok {
		first = k
		names = append(names, n)
	}
	ki, ok := api.LookupKind(first)
	if !ok {
		var known []string
		for _, k := range api.Kinds() {
			known = append(known, k.Resource)
		}
		return api.KindInfo{}, nil, fmt.Errorf("unknown kind %q: use one of %s", first, strings.Join(known, ", "))
	}
	return ki, append(names, args[1:]...), nil
}

func newGetCmd(g *globals) *cobra.Command {
	var output, selector string
	var all bool
	cmd := &cobra.Command{
		Use:   "get KIND [NAME...]",
		Short: "List objects, or show named ones",
		Example: `  berth get pods
  berth get deployment web -o yaml
  berth get pods -A -l app=web`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ki, names, err := kindAndNames(args)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var objs []api.Object
			if len(names) > 0 {
				for _, n := range names {
					obj := ki.New()
					rctx, cancel := context.WithTimeout(ctx, g.timeout)
					err := c.Get(rctx, g.namespace, n, obj)
					cancel()
					if err != nil {
						return fmt.Errorf("get %s %q: %w", strings.ToLower(ki.Kind), n, err)
					}
					objs = append(objs, obj)
				}
			} else {
				labels, err := api.ParseSelector(selector)
				if err != nil {
					return err
				}
				ns := g.namespace
				if all {
					ns = ""
				}
				list := ki.NewList()
				rctx, cancel := context.WithTimeout(ctx, g.timeout)
				err = c.List(rctx, list, client.ListOptions{Namespace: ns, Labels: labels})
				cancel()
				if err != nil {
					return fmt.Errorf("list %s: %w", ki.Resource, err)
				}
				objs = list.ObjectItems()
				if ki.Kind == "Event" {
					sort.SliceStable(objs, func(i, j int) bool {
						return objs[i].(*api.Event).LastTimestamp.Before(objs[j].(*api.Event).LastTimestamp)
					})
				}
				if len(objs) == 0 && (output == "" || output == "table") {
					where := " in namespace " + ns
					if !ki.Namespaced || all {
						where = ""
					}
					fmt.Fprintf(g.stderr, "No %s found%s.\n", ki.Resource, where)
					return nil
				}
			}
			return printObjects(g.stdout, ki, objs, output, all, time.Now())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: table (default), json, yaml, name")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector, for example app=web,tier=front")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list across all namespaces")
	return cmd
}

func newDescribeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "describe KIND NAME",
		Short: "Show an object in full, with the events about it",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ki, names, err := kindAndNames(args)
			if err != nil {
				return err
			}
			if len(names) != 1 {
				return fmt.Errorf("describe needs one name: berth describe %s NAME", strings.ToLower(ki.Kind))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			obj := ki.New()
			if err := c.Get(ctx, g.namespace, names[0], obj); err != nil {
				return fmt.Errorf("get %s %q: %w", strings.ToLower(ki.Kind), names[0], err)
			}
			if err := printYAML(g.stdout, []api.Object{obj}); err != nil {
				return err
			}
			events, err := eventsFor(ctx, c, obj)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "\nEvents:")
			if len(events) == 0 {
				fmt.Fprintln(g.stdout, "  <none>")
				return nil
			}
			evKind, _ := api.LookupKind("Event")
			return printTable(g.stdout, evKind, events, false, time.Now())
		},
	}
}

// eventsFor lists the events whose involved object is obj, oldest first.
func eventsFor(ctx context.Context, c *client.Client, obj api.Object) ([]api.Object, error) {
	m := obj.GetMeta()
	ki := api.KindOf(obj)
	ns := m.Namespace
	if !ki.Namespaced {
		ns = api.SystemNamespace
	}
	var list api.EventList
	if err := c.List(ctx, &list, client.ListOptions{Namespace: ns}); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	var out []api.Object
	for i := range list.Items {
		e := &list.Items[i]
		if e.InvolvedObject.Kind == ki.Kind && e.InvolvedObject.Name == m.Name {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].(*api.Event).LastTimestamp.Before(out[j].(*api.Event).LastTimestamp)
	})
	return out, nil
}
