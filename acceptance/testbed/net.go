package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"

// Names of what the testbed makes. Every name begins with "btb" (berth
// testbed) and carries the testbed's name or leased block, and testbed names
// cannot contain '.', so cleanup of one testbed never matches another's.
func routerNS(tb string) string     { return "btb." + tb + ".router" }
func hostNS(tb, host string) string { return "btb." + tb + ".h." + host }
func nsPath(ns string) string       { return netnsDir + "/" + ns }
func bridgeName(v int) string       { return fmt.Sprintf("br%d", v) }
func hostLinkName(v, i int) string  { return fmt.Sprintf("h%d-%d", v, i) }
func nsPrefix(tb string) string     { return "btb." + tb + "." }
func vendorIndex(st *state, v string) int {
	for i, x := range st.Vendors {
		if x.Name == v {
			return i + 1
		}
	}
	return 0
}

// uplinkName is the router's end of the root link (names inside a network
// namespace are private to it).
const uplinkName = "up0"

// run runs a command and returns its error with the command line and its
// output, since iproute2 and nft explain their failures only there.
func run(ctx context.Context, stdin string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ip runs iproute2, optionally inside a named network namespace.
func ip(ctx context.Context, ns string, args ...string) error {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return run(ctx, "", "ip", args...)
}

// inNS runs a command inside a named network namespace without the mount
// changes `ip netns exec` makes.
func inNS(ctx context.Context, ns, stdin string, args ...string) error {
	return run(ctx, stdin, "nsenter", append([]string{"--net=" + nsPath(ns), "--"}, args...)...)
}

// routerRules is the router's firewall. Forwarded traffic may go from the
// root namespace to hosts and between hosts of the block, never anywhere
// else; nothing new may enter the root link, so hosts can only answer the
// root namespace. Traffic between vendors may pass through the delay device
// (see latency.go). The router itself accepts only the registry and the load
// balancer, and pings.
func routerRules(p plan) string {
	return fmt.Sprintf(`table inet btb {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iifname "lo" accept
		ip daddr %[3]s tcp dport %[5]d accept
		ip daddr %[4]s tcp dport %[6]d accept
		ip saddr %[1]s icmp type echo-request accept
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "%[7]s" oifname "br*" ip saddr %[2]s ip daddr %[1]s accept
		iifname "br*" oifname "br*" ip saddr %[1]s ip daddr %[1]s accept
		iifname "br*" oifname "%[8]s" ip saddr %[1]s ip daddr %[1]s accept
		iifname "%[8]s" oifname "br*" ip saddr %[1]s ip daddr %[1]s accept
	}
}
`, p.Block(), p.RootAddr(), p.Registry(), p.LB(), RegistryPort, LBPort, uplinkName, delayLink)
}

// buildRouter makes the router namespace, the root link with its route, the
// firewall, and one bridge per vendor.
func buildRouter(ctx context.Context, st *state, p plan) error {
	r := routerNS(st.Name)
	if err := ip(ctx, "", "netns", "add", r); err != nil {
		return fmt.Errorf("make router namespace: %w", err)
	}
	// Forwarding on; bridged frames must not pass through the router's IP
	// firewall (br_netfilter, when loaded, defaults to that per namespace).
	sysctl := "echo 1 > /proc/sys/net/ipv4/ip_forward && " +
		"if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then " +
		"echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables; echo 0 > /proc/sys/net/bridge/bridge-nf-call-ip6tables; echo 0 > /proc/sys/net/bridge/bridge-nf-call-arptables; fi"
	if err := inNS(ctx, r, "", "sh", "-c", sysctl); err != nil {
		return fmt.Errorf("configure router namespace: %w", err)
	}
	if err := inNS(ctx, r, routerRules(p), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("load router firewall: %w", err)
	}
	root := p.RootLink()
	steps := [][]string{
		{r, "link", "set", "lo", "up"},
		{r, "addr", "add", p.Registry().String() + "/32", "dev", "lo"},
		{r, "addr", "add", p.LB().String() + "/32", "dev", "lo"},
		{"", "link", "add", root, "type", "veth", "peer", "name", uplinkName, "netns", r},
		{"", "addr", "add", p.RootAddr().String() + "/30", "dev", root},
		{"", "link", "set", root, "up"},
		{r, "addr", "add", p.RouterUplink().String() + "/30", "dev", uplinkName},
		{r, "link", "set", uplinkName, "up"},
		{"", "route", "add", p.Block().String(), "via", p.RouterUplink().String(), "dev", root},
	}
	for v := range st.Vendors {
		br := bridgeName(v + 1)
		steps = append(steps,
			[]string{r, "link", "add", br, "type", "bridge"},
			[]string{r, "addr", "add", p.Gateway(v+1).String() + "/24", "dev", br},
			[]string{r, "link", "set", br, "up"},
		)
	}
	for _, s := range steps {
		if err := ip(ctx, s[0], s[1:]...); err != nil {
			return fmt.Errorf("build router: %w", err)
		}
	}
	return nil
}

// buildHostNet makes a host's network namespace, cabled to its vendor's
// bridge, with a route to the testbed's block and nothing else.
func buildHostNet(ctx context.Context, st *state, p plan, h *hostState) error {
	r, hn := routerNS(st.Name), hostNS(st.Name, h.Name)
	addr := p.HostAddr(h.VIndex, h.Index)
	steps := [][]string{
		{"", "netns", "add", hn},
		{hn, "link", "set", "lo", "up"},
		{r, "link", "add", h.Link, "type", "veth", "peer", "name", "eth0", "netns", hn},
		{r, "link", "set", h.Link, "master", bridgeName(h.VIndex)},
		{r, "link", "set", h.Link, "up"},
		{hn, "addr", "add", addr.String() + "/24", "dev", "eth0"},
		{hn, "link", "set", "eth0", "up"},
		{hn, "route", "add", p.Block().String(), "via", p.Gateway(h.VIndex).String()},
	}
	for _, s := range steps {
		if err := ip(ctx, s[0], s[1:]...); err != nil {
			return fmt.Errorf("build network of host %q: %w", h.Name, err)
		}
	}
	return nil
}

// removeNetwork deletes the testbed's root link and every network
// namespace named for the testbed. It matches by name, so it also removes
// what a crashed Up made before recording it. The root link goes first and
// explicitly: a deleted namespace is destroyed asynchronously, and with it
// the links inside.
func removeNetwork(ctx context.Context, name string, p plan) error {
	var errs []error
	link := "/sys/class/net/" + p.RootLink()
	if _, err := os.Stat(link); err == nil {
		if err := ip(ctx, "", "link", "del", p.RootLink()); err != nil {
			errs = append(errs, fmt.Errorf("remove root link: %w", err))
		}
	}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !os.IsNotExist(err) {
		errs = append(errs, fmt.Errorf("list network namespaces: %w", err))
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), nsPrefix(name)) {
			if err := ip(ctx, "", "netns", "del", e.Name()); err != nil {
				errs = append(errs, fmt.Errorf("remove network namespace: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// setLink brings a router-side host link up or down (cutting or healing).
func setLink(ctx context.Context, st *state, h *hostState, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if err := ip(ctx, routerNS(st.Name), "link", "set", h.Link, state); err != nil {
		return fmt.Errorf("set link of host %q %s: %w", h.Name, state, err)
	}
	return nil
}
