package migration

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/berth-io/berth/acceptance/testbed"
	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// FollowNodes keeps the testbed load balancer pointed at the node port of
// every node that can take traffic — Ready and not cordoned — among hosts,
// the way a cloud load balancer's target group follows a cluster's nodes:
// a node that joins becomes a target once Ready (the balancer's own health
// check puts it in service), a node that is cordoned to be drained stops
// being one at once, while its node port still forwards, before it is
// wiped. It polls every interval until ctx ends, and returns nil then; an
// error only when the load balancer refuses a change. The node list comes
// from cli, which should follow the control plane's endpoints
// (client.RunEndpointSync) if the control plane moves; while the API does
// not answer the targets stay as they are. logf, when set, hears each
// change.
func FollowNodes(ctx context.Context, tb *testbed.Testbed, cli *client.Client, port int, hosts []string, interval time.Duration, logf func(string, ...any)) error {
	var current []string
	for {
		var nodes api.NodeList
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := cli.List(lctx, &nodes, client.ListOptions{})
		cancel()
		if err == nil {
			want := Targets(nodes.Items, hosts)
			if len(want) > 0 && !slices.Equal(want, current) {
				if err := tb.SetLB(ctx, port, want...); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if logf != nil {
					logf("load balancer targets %v", want)
				}
				current = want
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// Targets names the nodes among hosts that can take traffic (Ready, not
// cordoned), sorted.
func Targets(nodes []api.Node, hosts []string) []string {
	var out []string
	for i := range nodes {
		n := &nodes[i]
		if slices.Contains(hosts, n.Metadata.Name) && api.IsNodeReady(n) && !n.Spec.Unschedulable {
			out = append(out, n.Metadata.Name)
		}
	}
	sort.Strings(out)
	return out
}

// HostNames lists the names of hosts.
func HostNames(hosts []testbed.Host) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, h.Name)
	}
	return out
}

// Endpoints are the API URLs control-plane hosts serve on port.
func Endpoints(hosts []testbed.Host, port int) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, fmt.Sprintf("https://%s:%d", h.Address, port))
	}
	sort.Strings(out)
	return out
}
