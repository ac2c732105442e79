package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/acceptance/workloads"
)

// sshClient logs into h as the inventory says, pinning its host key.
func sshClient(t *testing.T, h Host) (*ssh.Client, error) {
	t.Helper()
	pem, err := os.ReadFile(h.PrivateKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(h.HostPublicKey))
	if err != nil {
		t.Fatalf("host %s: parse host key: %v", h.Name, err)
	}
	return ssh.Dial("tcp", h.SSHAddr(), &ssh.ClientConfig{
		User: h.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hostKey), Timeout: 10 * time.Second,
	})
}

// sshRun runs command on h over SSH and returns its combined output.
func sshRun(t *testing.T, h Host, command string) (string, error) {
	t.Helper()
	c, err := sshClient(t, h)
	if err != nil {
		return "", fmt.Errorf("ssh to %s: %w", h.Name, err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("ssh session on %s: %w", h.Name, err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(command)
	return string(out), err
}

func mustSSH(t *testing.T, h Host, command string) string {
	t.Helper()
	out, err := sshRun(t, h, command)
	if err != nil {
		t.Fatalf("on %s: %q: %v: %s", h.Name, command, err, out)
	}
	return out
}

func mustHost(t *testing.T, tb *Testbed, name string) Host {
	t.Helper()
	h, err := tb.Host(name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// connectFrom reports whether host can open a TCP connection to addr.
func connectFrom(t *testing.T, tb *Testbed, host, addr string) bool {
	t.Helper()
	h, p, _ := net.SplitHostPort(addr)
	out, _ := tb.Exec(context.Background(), host,
		fmt.Sprintf("timeout 2 bash -c 'exec 3<>/dev/tcp/%s/%s' 2>/dev/null && echo connected || echo failed", h, p))
	return strings.TrimSpace(string(out)) == "connected"
}

func TestIntegrationEveryHostAnswersSSHWithItsPinnedKey(t *testing.T) {
	tb := Shared(t)
	hosts := tb.Hosts()
	if len(hosts) != 4 {
		t.Fatalf("shared testbed has %d hosts, want 4", len(hosts))
	}
	for _, h := range hosts {
		if got := strings.TrimSpace(mustSSH(t, h, "hostname")); got != h.Name {
			t.Errorf("host %s says its hostname is %q", h.Name, got)
		}
	}
	impostor := hosts[0]
	impostor.HostPublicKey = hosts[1].HostPublicKey
	if _, err := sshRun(t, impostor, "true"); err == nil {
		t.Errorf("SSH to %s accepted %s's host key", hosts[0].Name, hosts[1].Name)
	}
}

func TestIntegrationVendorsReachEachOtherOnlyThroughTheRouter(t *testing.T) {
	tb := Shared(t)
	a1, a2, b1 := mustHost(t, tb, "vendor-a-1"), mustHost(t, tb, "vendor-a-2"), mustHost(t, tb, "vendor-b-1")
	gwA := tb.plan().Gateway(1).String()
	routes := mustSSH(t, a1, "ip -4 route show")
	want := fmt.Sprintf("%s via %s dev eth0", tb.Block(), gwA)
	if lines := strings.Split(strings.TrimSpace(routes), "\n"); len(lines) != 2 || !strings.Contains(routes, want) {
		t.Errorf("routes of %s = %q, want only the own subnet and %q", a1.Name, routes, want)
	}
	if got := mustSSH(t, a1, "ip route get "+b1.Address); !strings.Contains(got, "via "+gwA) {
		t.Errorf("%s reaches %s by %q, want via the router %s", a1.Name, b1.Name, got, gwA)
	}
	if got := mustSSH(t, a1, "ip route get "+a2.Address); strings.Contains(got, "via") {
		t.Errorf("%s reaches %s of its own vendor by %q, want directly", a1.Name, a2.Name, got)
	}
	if !connectFrom(t, tb, a1.Name, b1.SSHAddr()) {
		t.Errorf("%s cannot connect to %s of the other vendor", a1.Name, b1.Name)
	}
	if !connectFrom(t, tb, b1.Name, a2.SSHAddr()) {
		t.Errorf("%s cannot connect to %s of the other vendor", b1.Name, a2.Name)
	}
}

func TestIntegrationHostsReachNothingOutsideTheTestbed(t *testing.T) {
	tb := Shared(t)
	host := "vendor-a-1"
	var accepted atomic.Int32
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	targets := []string{tb.plan().RootAddr().String(), tb.plan().RouterUplink().String()}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !testRange.Contains(netip.AddrFrom4([4]byte(ipn.IP.To4()))) {
			targets = append(targets, ipn.IP.String()) // the machine's own addresses
		}
	}
	if out, _ := tb.Exec(context.Background(), host, "ip route show default"); strings.TrimSpace(string(out)) != "" {
		t.Errorf("%s has a default route: %s", host, out)
	}
	check := func(when string) {
		for _, ip := range targets {
			if connectFrom(t, tb, host, net.JoinHostPort(ip, port)) {
				t.Errorf("%s: %s opened a connection to %s in the root namespace", when, host, ip)
			}
		}
	}
	check("with the testbed's routes")
	// Even a host that routes everything to its gateway gets nowhere.
	gw := tb.plan().Gateway(1).String()
	if _, err := tb.Exec(context.Background(), host, "ip route add default via "+gw); err != nil {
		t.Fatal(err)
	}
	defer tb.Exec(context.Background(), host, "ip route del default")
	check("with a default route via the router")
	if n := accepted.Load(); n != 0 {
		t.Errorf("the root namespace accepted %d connections from a host", n)
	}
	// The control: the root namespace does reach the host.
	h := mustHost(t, tb, host)
	c, err := net.DialTimeout("tcp", h.SSHAddr(), 5*time.Second)
	if err != nil {
		t.Fatalf("root namespace cannot reach %s: %v", host, err)
	}
	c.Close()
}

func TestIntegrationRegistryServesRootAndHosts(t *testing.T) {
	tb := Shared(t)
	resp, err := http.Get("http://" + tb.RegistryAddr() + "/v2/")
	if err != nil {
		t.Fatalf("registry from the root namespace: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("registry /v2/ from the root namespace: %s", resp.Status)
	}
	for _, h := range []string{"vendor-a-1", "vendor-b-2"} {
		if out, err := tb.Exec(context.Background(), h, "curl -sS -o /dev/null -w '%{http_code}' http://"+tb.RegistryAddr()+"/v2/"); err != nil || string(out) != "200" {
			t.Errorf("registry /v2/ from %s: %q, %v", h, out, err)
		}
	}
}

func TestIntegrationContainerdInAHostRunsAWorkloadPulledFromTheRegistry(t *testing.T) {
	tb := Shared(t)
	prereq := []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2"}
	for _, p := range prereq {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s is not installed", p) // covered by Prereqs in CI images
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	set, err := workloads.Build(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	refs, err := set.Push(ctx, tb.RegistryAddr())
	if err != nil {
		t.Fatal(err)
	}
	h := mustHost(t, tb, "vendor-b-1")
	sock := "/run/ctd-test/containerd.sock"
	ctr := "ctr -a " + sock + " "
	cg := "/btb-" + tb.Name() + "-" + h.Name + "-web1"
	setup := `set -e
mkdir -p /var/lib/ctd-test /run/ctd-test
cat > /run/ctd-test/config.toml <<'EOF'
version = 2
root = "/var/lib/ctd-test"
state = "/run/ctd-test"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "` + sock + `"
EOF
setsid containerd --config /run/ctd-test/config.toml >/run/ctd-test/log 2>&1 </dev/null &
i=0; until ` + ctr + `version >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 300 ] || { cat /run/ctd-test/log; exit 1; }; sleep 0.1; done
` + ctr + `images pull --plain-http ` + refs.V1 + ` >/dev/null
` + ctr + `run -d --net-host --env POD_NAME=web1 --cgroup ` + cg + ` ` + refs.V1 + ` web1
`
	defer tb.Exec(context.Background(), h.Name, ctr+"task kill -s KILL web1; sleep 0.5; "+ctr+"task delete web1; "+ctr+"container delete web1; pkill -x containerd")
	mustSSH(t, h, setup)
	url := "http://" + net.JoinHostPort(h.Address, strconv.Itoa(workloads.Port)) + "/"
	var body string
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if ctx.Err() != nil {
			out, _ := tb.Exec(context.Background(), h.Name, ctr+"task ls; cat /run/ctd-test/log")
			t.Fatalf("workload on %s never answered %s: %v\n%s", h.Name, url, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body != "web v1 pod=web1\n" {
		t.Errorf("workload answered %q, want %q", body, "web v1 pod=web1\n")
	}
}

// pidNamespace is the identity of the PID namespace of a host's init.
func pidNamespace(t *testing.T, tb *Testbed, host string) string {
	t.Helper()
	tb.mu.Lock()
	h, err := tb.find(host)
	pid := 0
	if err == nil {
		pid = h.Init.PID
	}
	tb.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func unreachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return true
}

func TestIntegrationKillHostEndsEveryProcessAndBootKeepsTheDisk(t *testing.T) {
	tb := Shared(t)
	ctx := context.Background()
	h := mustHost(t, tb, "vendor-a-2")
	mustSSH(t, h, `set -e
for d in /var/lib /etc/berth /opt /root; do echo kept > $d/disk-test; done
echo lost > /tmp/disk-test; echo lost > /run/disk-test
setsid sleep 100000 >/dev/null 2>&1 </dev/null &`)
	ns := pidNamespace(t, tb, h.Name)
	if n := processesIn(ns); n < 3 {
		t.Fatalf("host %s runs %d processes before the kill, want init, sshd and sleep", h.Name, n)
	}
	if err := tb.KillHost(ctx, h.Name); err != nil {
		t.Fatal(err)
	}
	if n := processesIn(ns); n != 0 {
		t.Errorf("%d processes of %s survived the kill", n, h.Name)
	}
	if !unreachable(h.SSHAddr()) {
		t.Errorf("killed host %s still answers on %s", h.Name, h.SSHAddr())
	}
	if running, err := tb.Running(h.Name); err != nil || running {
		t.Errorf("Running(%s) after the kill = %v, %v", h.Name, running, err)
	}
	if _, err := tb.Exec(ctx, h.Name, "true"); !errors.Is(err, ErrPoweredOff) {
		t.Errorf("Exec on a killed host: %v, want ErrPoweredOff", err)
	}
	if err := tb.HealHost(ctx, h.Name); err != nil {
		t.Fatal(err)
	}
	got := mustSSH(t, h, "cat /var/lib/disk-test /etc/berth/disk-test /opt/disk-test /root/disk-test; ls /tmp/disk-test /run/disk-test 2>&1; pgrep -x sleep || echo no-sleep")
	if strings.Count(got, "kept") != 4 {
		t.Errorf("disk after reboot of %s lost files:\n%s", h.Name, got)
	}
	if strings.Count(got, "No such file") != 2 || !strings.Contains(got, "no-sleep") {
		t.Errorf("/tmp, /run or processes survived the reboot of %s:\n%s", h.Name, got)
	}
	mustSSH(t, h, "rm -f /var/lib/disk-test /etc/berth/disk-test /opt/disk-test /root/disk-test")
}

func TestIntegrationCutHostKeepsRunningButCannotBeReached(t *testing.T) {
	tb := Shared(t)
	ctx := context.Background()
	h := mustHost(t, tb, "vendor-b-2")
	before := pidNamespace(t, tb, h.Name)
	if err := tb.CutHost(ctx, h.Name); err != nil {
		t.Fatal(err)
	}
	if !unreachable(h.SSHAddr()) {
		t.Errorf("cut host %s still answers", h.Name)
	}
	if connectFrom(t, tb, "vendor-a-1", h.SSHAddr()) {
		t.Errorf("another host still reaches cut host %s", h.Name)
	}
	if out, err := tb.Exec(ctx, h.Name, "pgrep -x sshd >/dev/null && echo sshd-running"); err != nil || !strings.Contains(string(out), "sshd-running") {
		t.Errorf("cut host %s stopped running sshd: %q, %v", h.Name, out, err)
	}
	if err := tb.HealHost(ctx, h.Name); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(mustSSH(t, h, "hostname")); got != h.Name {
		t.Errorf("healed host answers as %q", got)
	}
	if after := pidNamespace(t, tb, h.Name); after != before {
		t.Errorf("healing a cut host rebooted it (PID namespace %s became %s)", before, after)
	}
}

func TestIntegrationLoadBalancerSpreadsConnectionsAcrossTheChosenHosts(t *testing.T) {
	tb := Shared(t)
	ctx := context.Background()
	keyOwner := map[string]string{}
	for _, h := range tb.Hosts() {
		keyOwner[h.HostPublicKey] = h.Name
	}
	// Each SSH handshake through the load balancer shows which host answered.
	seen := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			var answered string
			cfg := &ssh.ClientConfig{User: "nobody", Timeout: 5 * time.Second,
				HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
					answered = keyOwner[strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))]
					return errors.New("seen")
				}}
			ssh.Dial("tcp", tb.LBAddr(), cfg)
			got[answered]++
		}
		return got
	}
	if err := tb.SetLB(ctx, SSHPort); err != nil {
		t.Fatal(err)
	}
	if err := tb.WaitLB(ctx); err != nil {
		t.Fatal(err)
	}
	if got := seen(8); len(got) != 4 || got[""] != 0 {
		t.Errorf("load balancer over every host reached %v, want all 4 hosts", got)
	}
	if err := tb.SetLB(ctx, SSHPort, "vendor-a-1", "vendor-b-1"); err != nil {
		t.Fatal(err)
	}
	if err := tb.WaitLB(ctx); err != nil {
		t.Fatal(err)
	}
	if got := seen(6); len(got) != 2 || got["vendor-a-1"] == 0 || got["vendor-b-1"] == 0 {
		t.Errorf("load balancer over vendor-a-1 and vendor-b-1 reached %v", got)
	}
	st, err := tb.LB(ctx)
	if err != nil || st.Port != SSHPort || len(st.LBConfig.Backends) != 2 || len(st.Backends) != 2 || !st.Backends[0].Healthy {
		t.Errorf("LB() = %+v, %v; want port 22 on two healthy backends", st, err)
	}
	if err := tb.SetLB(ctx, SSHPort, "no-such-host"); !errors.Is(err, ErrNoHost) {
		t.Errorf("SetLB with an unknown host: %v, want ErrNoHost", err)
	}
}

// ownUp makes a testbed just for one test; the test takes it down.
func ownUp(t *testing.T, name string, o Options) *Testbed {
	t.Helper()
	o.Name = fmt.Sprintf("%s-%d", name, os.Getpid())
	if len(o.Vendors) == 0 {
		o.Vendors = []Vendor{{Name: "v", Hosts: 1}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tb, err := Up(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// leftovers lists what of testbed tb still exists on the machine.
func leftovers(t *testing.T, tb *Testbed, procs []proc) []string {
	t.Helper()
	var left []string
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), nsPrefix(tb.Name())) {
			left = append(left, "network namespace "+e.Name())
		}
	}
	if _, err := os.Stat("/sys/class/net/" + tb.plan().RootLink()); err == nil {
		left = append(left, "link "+tb.plan().RootLink())
	}
	if out, _ := exec.Command("ip", "route", "show", tb.Block().String()).Output(); len(bytes.TrimSpace(out)) > 0 {
		left = append(left, "route "+string(out))
	}
	if _, err := os.Stat(tb.Dir()); err == nil {
		left = append(left, "state directory "+tb.Dir())
	}
	for _, p := range procs {
		if p.alive() {
			left = append(left, fmt.Sprintf("process %d", p.PID))
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, nsPrefix(tb.Name())) || strings.Contains(line, tb.Dir()+"/") {
			left = append(left, "mount "+line)
		}
	}
	if out, _ := exec.Command("nft", "list", "tables").Output(); bytes.Contains(out, []byte("btb")) {
		left = append(left, "nftables table in the root namespace: "+string(out))
	}
	return left
}

func recordedProcs(tb *Testbed) []proc {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	ps := []proc{tb.st.Keeper}
	for _, h := range tb.st.Hosts {
		ps = append(ps, h.Init)
	}
	return ps
}

func TestIntegrationDownRemovesEverythingTheTestbedMade(t *testing.T) {
	Prereqs(t)
	tb := ownUp(t, "down", Options{Vendors: []Vendor{{"a", 2}, {"b", 1}}})
	procs := recordedProcs(tb)
	if left := leftovers(t, tb, procs); len(left) < 10 {
		t.Fatalf("the check finds only %d things of a running testbed: %v", len(left), left)
	}
	if err := tb.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, tb, procs); len(left) > 0 {
		t.Errorf("Down left behind:\n%s", strings.Join(left, "\n"))
	}
}

func TestIntegrationUpCleansTestbedsOfDeadOwnersAndLeavesLiveOnes(t *testing.T) {
	Prereqs(t)
	ctx := context.Background()
	dead := ownUp(t, "dead", Options{})
	deadProcs := recordedProcs(dead)
	live := ownUp(t, "live", Options{})
	defer live.Down(ctx)
	// A live testbed of another owner.
	other := exec.Command("sleep", "600")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	otherProc, err := procOf(other.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := live.update(ctx, func() error { live.st.Owner = otherProc; return nil }); err != nil {
		t.Fatal(err)
	}
	// A crashed owner whose PID was reused: same PID, other start time.
	self, err := procOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := dead.update(ctx, func() error { dead.st.Owner = proc{PID: self.PID, Start: self.Start + 1}; return nil }); err != nil {
		t.Fatal(err)
	}

	again := ownUp(t, "again", Options{})
	defer again.Down(ctx)

	var left []string
	for _, l := range leftovers(t, dead, deadProcs) {
		// The freed block may have gone straight to the next testbed.
		if again.Block() == dead.Block() && (strings.HasPrefix(l, "link ") || strings.HasPrefix(l, "route ")) {
			continue
		}
		left = append(left, l)
	}
	if len(left) > 0 {
		t.Errorf("Up left the testbed of a dead owner behind:\n%s", strings.Join(left, "\n"))
	}
	h := mustHost(t, live, "v-1")
	if got := strings.TrimSpace(mustSSH(t, h, "hostname")); got != "v-1" {
		t.Errorf("live testbed's host answers %q", got)
	}
	if _, err := Up(ctx, Options{Name: live.Name(), Vendors: []Vendor{{"v", 1}}}); !errors.Is(err, ErrExists) {
		t.Errorf("Up with the name of a live testbed: %v, want ErrExists", err)
	}
	if again.Block() == live.Block() {
		t.Errorf("two live testbeds share block %s", live.Block())
	}
}

func TestIntegrationLatencyDelaysOnlyTrafficBetweenVendors(t *testing.T) {
	Prereqs(t)
	ctx := context.Background()
	const latency = 40 * time.Millisecond
	name := fmt.Sprintf("lat-%d", os.Getpid())
	tb, err := Up(ctx, Options{Name: name, Vendors: []Vendor{{"a", 2}, {"b", 1}}, Latency: latency})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Down(ctx)
	from := nsPath(hostNS(name, "a-1"))
	// A TCP connect takes one round trip; the fastest of a few is the
	// round trip with the least scheduling noise on a loaded machine.
	between, err := fastestConnect(from, mustHost(t, tb, "b-1").SSHAddr(), 5)
	if err != nil {
		t.Fatal(err)
	}
	within, err := fastestConnect(from, mustHost(t, tb, "a-2").SSHAddr(), 5)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("connect a-1 → b-1 %s, a-1 → a-2 %s (latency %s)", between, within, latency)
	if between < 2*latency {
		t.Errorf("a TCP connect between vendors took %s, want at least twice the latency (%s)", between, 2*latency)
	}
	if within >= latency {
		t.Errorf("a TCP connect within a vendor took %s at best, want no added latency (under %s)", within, latency)
	}
	// Hosts still reach the registry without delay, and everything goes.
	if out := mustSSH(t, mustHost(t, tb, "b-1"), "echo ok"); strings.TrimSpace(out) != "ok" {
		t.Errorf("ssh to b-1 answered %q", out)
	}
	if err := tb.Down(ctx); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), nsPrefix(name)) {
			t.Errorf("Down left network namespace %s", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(StateDir, name)); err == nil {
		t.Errorf("Down left the state directory")
	}
}

// fastestConnect opens n TCP connections to addr from inside the network
// namespace at ns and returns the shortest connect time.
func fastestConnect(ns, addr string, n int) (time.Duration, error) {
	type result struct {
		best time.Duration
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// The thread enters the namespace and is never unlocked, so Go
		// discards it when this goroutine ends.
		runtime.LockOSThread()
		f, err := os.Open(ns)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("enter %s: %w", ns, err)}
			return
		}
		var best time.Duration
		for i := 0; i < n; i++ {
			start := time.Now()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			took := time.Since(start)
			if err != nil {
				done <- result{err: fmt.Errorf("connect to %s from %s: %w", addr, ns, err)}
				return
			}
			c.Close()
			if i == 0 || took < best {
				best = took
			}
		}
		done <- result{best: best}
	}()
	r := <-done
	return r.best, r.err
}
