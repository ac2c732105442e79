// Package testbed makes simulated hosting vendors on one Linux machine, so
// berth's acceptance tests, the Terraform tests, the Pulumi example and the
// demo have real SSH-reachable hosts to install clusters on, break and
// repair. See README.md in this directory for the layout.
//
// A testbed has vendors (an isolated bridge and /24 each) joined by a router
// network namespace; each host is a set of namespaces (network, mount, PID,
// UTS) running Debian's sshd with its own host key, accepting root by the
// testbed's key only, with a private /etc (overlay), /opt, /var/lib and
// /root on a disk directory outside the namespaces, fresh /run and /tmp, and
// its own cgroup mounts so containerd and runc work inside. A keeper process
// in the router namespace serves an OCI registry (package registry) and a
// load balancer (package lb) on testbed addresses.
//
// Tests in other packages share one testbed per test binary:
//
//	func TestMain(m *testing.M) { os.Exit(testbed.Main(m)) }
//
//	func TestIntegrationSomething(t *testing.T) {
//		tb := testbed.Shared(t)            // skips under -short or without root
//		h, _ := tb.Host("vendor-a-1")      // h.SSHAddr(), h.PrivateKeyPath, h.HostPublicKey
//		out, err := tb.Exec(ctx, h.Name, "cat /etc/berth/config")
//		tb.KillHost(ctx, h.Name); tb.HealHost(ctx, h.Name)
//		tb.SetLB(ctx, 30080); tb.WaitLB(ctx) // then dial tb.LBAddr()
//	}
//
// Programs that are neither tests nor the testbed command must call RunChild
// first thing in main before calling Up: the testbed re-executes the calling
// binary for its helper processes.
//
// The testbed must never touch what it did not make: every name it gives
// begins with "btb", it routes and listens only on its leased block of
// 198.18.0.0/15, and no host has a route out of the testbed. It never logs;
// Options.Progress receives its steps.
package testbed
