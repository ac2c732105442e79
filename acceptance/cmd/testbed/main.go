// Command testbed makes, breaks and removes berth testbeds: simulated
// hosting vendors of SSH-reachable hosts in Linux namespaces, with an OCI
// registry and a load balancer (see package acceptance/testbed).
//
//	testbed up --name NAME --hosts vendor-a=3,vendor-b=3 [--latency 20ms] [--out inventory.json]
//	testbed down --name NAME
//	testbed kill|cut|heal|boot --name NAME HOST
//	testbed lb --name NAME --port PORT [--wait] [HOST...]
//	testbed inventory --name NAME [--out FILE]
//
// A testbed made by up stays up after the command exits (its keeper process
// owns it) until down. It must never touch anything the testbed did not make.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-io/berth/acceptance/testbed"
)

func main() {
	testbed.RunChild()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  testbed up --name NAME --hosts vendor-a=3,vendor-b=3 [--latency 20ms] [--out inventory.json]
  testbed down --name NAME
  testbed kill|cut|heal|boot --name NAME HOST
  testbed lb --name NAME --port PORT [--wait] [HOST...]   (no HOST: every host)
  testbed inventory --name NAME [--out FILE]
`

// errUsage reports a command line Run cannot understand.
var errUsage = errors.New("bad command line")

// Run runs one testbed command; progress goes to stderr, results to stdout.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	name := fs.String("name", "", "testbed name")
	switch cmd {
	case "up":
		hosts := fs.String("hosts", "vendor-a=3,vendor-b=3", "vendors and their host counts")
		latency := fs.Duration("latency", 0, "delay added to each packet between vendors (a round trip between vendors takes twice as long)")
		out := fs.String("out", "", "write the inventory JSON to this file")
		if err := parse(fs, args, 0); err != nil {
			return err
		}
		vendors, err := testbed.ParseVendors(*hosts)
		if err != nil {
			return err
		}
		tb, err := testbed.Up(ctx, testbed.Options{
			Name: *name, Vendors: vendors, Latency: *latency, Detach: true, Progress: stderr,
		})
		if err != nil {
			return err
		}
		return writeInventory(tb.Inventory(), *out, stdout)
	case "down":
		if err := parse(fs, args, 0); err != nil {
			return err
		}
		tb, err := open(ctx, *name, stderr)
		if err != nil {
			return err
		}
		return tb.Down(ctx)
	case "kill", "cut", "heal", "boot":
		if err := parse(fs, args, 1); err != nil {
			return err
		}
		tb, err := open(ctx, *name, stderr)
		if err != nil {
			return err
		}
		fault := map[string]func(context.Context, string) error{
			"kill": tb.KillHost, "cut": tb.CutHost, "heal": tb.HealHost, "boot": tb.BootHost,
		}[cmd]
		return fault(ctx, fs.Arg(0))
	case "lb":
		port := fs.Int("port", 0, "backend port on every host")
		wait := fs.Bool("wait", false, "return only when every backend passes its health check")
		if err := parse(fs, args, -1); err != nil {
			return err
		}
		tb, err := open(ctx, *name, stderr)
		if err != nil {
			return err
		}
		if err := tb.SetLB(ctx, *port, fs.Args()...); err != nil {
			return err
		}
		if *wait {
			if err := tb.WaitLB(ctx); err != nil {
				return err
			}
		}
		st, err := tb.LB(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "load balancer %s:\n", tb.LBAddr())
		for _, b := range st.Backends {
			fmt.Fprintf(stdout, "  %s healthy=%t connections=%d\n", b.Addr, b.Healthy, b.Connections)
		}
		return nil
	case "inventory":
		out := fs.String("out", "", "write the inventory JSON to this file")
		if err := parse(fs, args, 0); err != nil {
			return err
		}
		tb, err := open(ctx, *name, stderr)
		if err != nil {
			return err
		}
		return writeInventory(tb.Inventory(), *out, stdout)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
}

// parse parses flags, requires --name, and wants exactly n positional
// arguments (any number when n < 0).
func parse(fs *flag.FlagSet, args []string, n int) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.Lookup("name").Value.String() == "" {
		fs.Usage()
		return fmt.Errorf("%w: %s needs --name", errUsage, fs.Name())
	}
	if n >= 0 && fs.NArg() != n {
		fs.Usage()
		return fmt.Errorf("%w: %s takes %d argument(s), got %d", errUsage, fs.Name(), n, fs.NArg())
	}
	return nil
}

func open(ctx context.Context, name string, progress io.Writer) (*testbed.Testbed, error) {
	tb, err := testbed.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	tb.SetProgress(progress)
	return tb, nil
}

func writeInventory(inv *testbed.Inventory, path string, stdout io.Writer) error {
	if path != "" {
		if err := inv.WriteFile(path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "testbed %s: inventory written to %s\n", inv.Name, path)
		return nil
	}
	f, err := os.CreateTemp("", "testbed-inventory-*.json")
	if err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	f.Close()
	defer os.Remove(f.Name())
	if err := inv.WriteFile(f.Name()); err != nil {
		return err
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	_, err = stdout.Write(b)
	return err
}
