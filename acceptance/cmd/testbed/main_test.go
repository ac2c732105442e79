package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/acceptance/testbed"
)

// envHelper makes the test binary act as the testbed command, so a test can
// run `up` in a process that exits.
const envHelper = "BERTH_TESTBED_CLI_HELPER"

func TestMain(m *testing.M) {
	testbed.RunChild()
	if os.Getenv(envHelper) == "1" {
		if err := Run(context.Background(), flagArgs(), os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "testbed:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// flagArgs are the arguments after "--".
func flagArgs() []string {
	for i, a := range os.Args {
		if a == "--" {
			return os.Args[i+1:]
		}
	}
	return nil
}

func TestRunRejectsBadCommandLines(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"explode", "--name", "x"}},
		{"up without a name", []string{"up", "--hosts", "a=1"}},
		{"kill without a host", []string{"kill", "--name", "x"}},
		{"kill with two hosts", []string{"kill", "--name", "x", "a", "b"}},
		{"unknown flag", []string{"down", "--name", "x", "--force"}},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := Run(context.Background(), tt.args, &stdout, &stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("%s: Run(%q) = %v, want a usage error", tt.name, tt.args, err)
		}
		if !strings.Contains(stderr.String(), "usage:") {
			t.Errorf("%s: no usage on stderr: %q", tt.name, stderr.String())
		}
	}
}

func TestRunUpRejectsBadHostListsBeforeTouchingTheMachine(t *testing.T) {
	err := Run(context.Background(), []string{"up", "--name", "x", "--hosts", "a=many"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "host count") {
		t.Errorf("Run(up --hosts a=many) = %v, want a parse error", err)
	}
}

func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 4)
	_, err = c.Read(b)
	return err == nil && string(b) == "SSH-"
}

func TestIntegrationUpOutlivesTheCommandUntilDown(t *testing.T) {
	testbed.Prereqs(t)
	ctx := context.Background()
	name := fmt.Sprintf("cli-%d", os.Getpid())
	inv := filepath.Join(t.TempDir(), "inventory.json")
	up := exec.Command(os.Args[0], "-test.run=^$", "--", "up", "--name", name, "--hosts", "a=1,b=1", "--out", inv)
	up.Env = append(os.Environ(), envHelper+"=1")
	out, err := up.CombinedOutput()
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	defer Run(ctx, []string{"down", "--name", name}, &bytes.Buffer{}, &bytes.Buffer{})
	if !bytes.Contains(out, []byte("booting 2 hosts")) {
		t.Errorf("up printed no progress:\n%s", out)
	}
	i, err := testbed.LoadInventory(inv)
	if err != nil {
		t.Fatal(err)
	}
	if len(i.Hosts) != 2 || i.Registry == "" || i.LoadBalancer == "" {
		t.Fatalf("inventory = %+v", i)
	}
	a := i.Hosts[0]
	if !answers(a.SSHAddr()) {
		t.Fatalf("host %s does not answer after up exited", a.Name)
	}
	run := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if err := Run(ctx, args, &stdout, &stderr); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	run("kill", "--name", name, a.Name)
	if answers(a.SSHAddr()) {
		t.Errorf("killed host %s still answers", a.Name)
	}
	run("heal", "--name", name, a.Name)
	if !answers(a.SSHAddr()) {
		t.Errorf("healed host %s does not answer", a.Name)
	}
	if got := run("lb", "--name", name, "--port", "22", "--wait"); strings.Count(got, "healthy=true") != 2 {
		t.Errorf("lb over both hosts printed:\n%s", got)
	}
	if !answers(i.LoadBalancer) {
		t.Errorf("load balancer %s does not reach sshd", i.LoadBalancer)
	}
	var shown bytes.Buffer
	if err := Run(ctx, []string{"inventory", "--name", name}, &shown, &bytes.Buffer{}); err != nil || !strings.Contains(shown.String(), a.HostPublicKey) {
		t.Errorf("inventory printed %q, %v", shown.String(), err)
	}
	run("down", "--name", name)
	if answers(a.SSHAddr()) {
		t.Errorf("host %s answers after down", a.Name)
	}
	if _, err := os.Stat(i.StateDir); !os.IsNotExist(err) {
		t.Errorf("state directory %s remains after down: %v", i.StateDir, err)
	}
	if err := Run(ctx, []string{"down", "--name", name}, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, testbed.ErrNotFound) {
		t.Errorf("second down = %v, want ErrNotFound", err)
	}
}
