package testbed

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// A host's disk, StateDir/NAME/hosts/HOST/, holds what survives a power cut:
//
//	etc/, etc.work/   upper and work directories of an overlay on /etc
//	                  (so /etc/berth and /etc/ssh are the host's own)
//	opt/              bind-mounted on /opt
//	var-lib/          bind-mounted on /var/lib
//	root/             bind-mounted on /root
//	console.log       stdout and stderr of the host's init and sshd
//
// /run and /tmp are fresh tmpfs on every boot, as on a real machine.
var diskDirs = []string{"etc", "etc.work", "opt", "var-lib", "root"}

func (tb *Testbed) diskDir(host string) string { return filepath.Join(tb.dir, "hosts", host) }

// sshdConfig is the whole sshd configuration of a host: root may log in by
// key only, keys come from /etc/ssh/authorized_keys/USER.
const sshdConfig = `# Written by the berth testbed.
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile /etc/ssh/authorized_keys/%u
UsePAM no
UseDNS no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
ClientAliveInterval 15
Subsystem sftp internal-sftp
`

// prepareDisk writes a new host's disk: its directories, host key, sshd
// configuration, authorised key and name. It returns the host public key in
// authorized_keys format.
func prepareDisk(disk, host string, clientKey ssh.PublicKey) (string, error) {
	for _, d := range diskDirs {
		if err := os.MkdirAll(filepath.Join(disk, d), 0o755); err != nil {
			return "", fmt.Errorf("make disk of host %q: %w", host, err)
		}
	}
	if err := os.Chmod(filepath.Join(disk, "root"), 0o700); err != nil {
		return "", fmt.Errorf("make disk of host %q: %w", host, err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate host key of %q: %w", host, err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "root@"+host)
	if err != nil {
		return "", fmt.Errorf("encode host key of %q: %w", host, err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode host key of %q: %w", host, err)
	}
	hostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	etc := filepath.Join(disk, "etc")
	files := []struct {
		path string
		mode os.FileMode
		data string
	}{
		{"ssh/sshd_config", 0o644, sshdConfig},
		{"ssh/ssh_host_ed25519_key", 0o600, string(pem.EncodeToMemory(block))},
		{"ssh/ssh_host_ed25519_key.pub", 0o644, hostKey + " root@" + host + "\n"},
		{"ssh/authorized_keys/root", 0o644, string(ssh.MarshalAuthorizedKey(clientKey))},
		{"hostname", 0o644, host + "\n"},
		{"hosts", 0o644, "127.0.0.1\tlocalhost\n127.0.1.1\t" + host + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
		{"berth/.keep", 0o644, ""},
	}
	for _, f := range files {
		p := filepath.Join(etc, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("write disk of host %q: %w", host, err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return "", fmt.Errorf("write disk of host %q: %w", host, err)
		}
	}
	if err := os.Remove(filepath.Join(etc, "berth/.keep")); err != nil {
		return "", fmt.Errorf("write disk of host %q: %w", host, err)
	}
	return hostKey, nil
}

// startHost powers a host on: its init becomes PID 1 of fresh PID, mount and
// UTS namespaces joined to the host's network namespace, mounts the host's
// disk and starts sshd. The init does not belong to ctx: it runs until
// killed.
func (tb *Testbed) startHost(h *hostState) (proc, error) {
	self, err := os.Executable()
	if err != nil {
		return proc{}, fmt.Errorf("boot host %q: find own executable: %w", h.Name, err)
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return proc{}, fmt.Errorf("boot host %q: %w", h.Name, err)
	}
	disk := tb.diskDir(h.Name)
	console, err := os.OpenFile(filepath.Join(disk, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return proc{}, fmt.Errorf("boot host %q: %w", h.Name, err)
	}
	defer console.Close()
	cmd := exec.Command(nsenter, "--net="+nsPath(hostNS(tb.name, h.Name)), "--", self)
	cmd.Env = []string{
		childEnv + "=" + roleHost,
		envHostname + "=" + h.Name,
		envDisk + "=" + disk,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS,
		Setsid:     true,
	}
	if err := cmd.Start(); err != nil {
		return proc{}, fmt.Errorf("boot host %q: %w", h.Name, err)
	}
	p, err := procOf(cmd.Process.Pid)
	go cmd.Wait() // reap it when it dies while we live
	if err != nil {
		return proc{}, fmt.Errorf("boot host %q: %w", h.Name, err)
	}
	return p, nil
}

// waitSSH waits until addr accepts TCP connections and sends an SSH banner.
func waitSSH(ctx context.Context, addr string, init proc) error {
	for {
		if !init.alive() {
			return fmt.Errorf("wait for sshd on %s: host init died (see its console.log)", addr)
		}
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "SSH-") {
				return nil
			}
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("wait for sshd on %s: %w", addr, err)
		}
	}
}

// Environment of the host init child.
const (
	envHostname = "BERTH_TESTBED_HOSTNAME"
	envDisk     = "BERTH_TESTBED_DISK"
)

// hostInit is PID 1 of a host: it mounts the host's file systems, starts
// sshd, restarts it should it die, and reaps orphans. Killing it from
// outside ends every process of the host at once.
func hostInit() error {
	name, disk := os.Getenv(envHostname), os.Getenv(envDisk)
	if name == "" || disk == "" {
		return fmt.Errorf("host init: %s and %s must be set", envHostname, envDisk)
	}
	if err := mountHost(name, disk); err != nil {
		return fmt.Errorf("host init of %q: %w", name, err)
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD)
	sshd, err := startSSHD()
	if err != nil {
		return fmt.Errorf("host init of %q: %w", name, err)
	}
	for range sigs {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == sshd {
				fmt.Fprintf(os.Stderr, "host init: sshd exited (%v), restarting\n", ws)
				time.Sleep(time.Second)
				if sshd, err = startSSHD(); err != nil {
					return fmt.Errorf("host init of %q: %w", name, err)
				}
			}
		}
	}
	return nil
}

func startSSHD() (int, error) {
	pid, err := syscall.ForkExec("/usr/sbin/sshd", []string{"/usr/sbin/sshd", "-D", "-e"}, &syscall.ProcAttr{
		Env:   []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Files: []uintptr{os.Stdin.Fd(), os.Stdout.Fd(), os.Stderr.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return 0, fmt.Errorf("start sshd: %w", err)
	}
	return pid, nil
}

// mountHost builds the host's view of the file system inside its fresh mount
// namespace. Nothing it mounts propagates back to the machine.
func mountHost(name, disk string) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := syscall.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	mounts, err := readMountInfo()
	if err != nil {
		return err
	}
	// Drop copies of network namespace handles (ours and other testbeds'):
	// held here, they would keep those namespaces alive after their owners
	// delete them.
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].fstype == "nsfs" {
			syscall.Unmount(mounts[i].dir, syscall.MNT_DETACH)
		}
	}
	// Detach what the machine has mounted on or below the places the host
	// gets its own file systems, so its mount table (which runc reads to find
	// cgroups) shows only the host's.
	for i := len(mounts) - 1; i >= 0; i-- {
		for _, top := range []string{"/proc", "/sys", "/opt", "/root", "/run", "/tmp", "/var/lib"} {
			if d := mounts[i].dir; d == top || strings.HasPrefix(d, top+"/") {
				syscall.Unmount(d, syscall.MNT_DETACH)
			}
		}
	}
	const nosuid = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC
	type m struct {
		src, dir, fstype string
		flags            uintptr
		data             string
	}
	steps := []m{
		{"proc", "/proc", "proc", nosuid, ""},
		{"sysfs", "/sys", "sysfs", nosuid, ""},
		{"tmpfs", "/sys/fs/cgroup", "tmpfs", nosuid, "mode=755"},
	}
	for _, c := range mounts {
		if (c.fstype == "cgroup" || c.fstype == "cgroup2") && strings.HasPrefix(c.dir, "/sys/fs/cgroup/") {
			steps = append(steps, m{"cgroup", c.dir, c.fstype, nosuid, cgroupData(c.fstype, c.super)})
		}
	}
	steps = append(steps,
		m{"overlay", "/etc", "overlay", 0, fmt.Sprintf("lowerdir=/etc,upperdir=%s/etc,workdir=%s/etc.work", disk, disk)},
		m{disk + "/opt", "/opt", "", syscall.MS_BIND, ""},
		m{disk + "/root", "/root", "", syscall.MS_BIND, ""},
		m{"tmpfs", "/run", "tmpfs", syscall.MS_NOSUID | syscall.MS_NODEV, "mode=755"},
		m{"tmpfs", "/tmp", "tmpfs", syscall.MS_NOSUID | syscall.MS_NODEV, "mode=1777"},
		m{disk + "/var-lib", "/var/lib", "", syscall.MS_BIND, ""}, // last: the disk lives under /var/lib
	)
	for _, s := range steps {
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			return fmt.Errorf("make mount point %s: %w", s.dir, err)
		}
		if err := syscall.Mount(s.src, s.dir, s.fstype, s.flags, s.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", s.src, s.dir, err)
		}
	}
	for _, d := range []string{"/run/sshd", "/run/lock", "/run/berth"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("make %s: %w", d, err)
		}
	}
	return nil
}

// cgroupData turns a cgroup mount's super options into mount data: the
// controllers and name= of a v1 hierarchy ("none" when it has no
// controller), without the read-write flags.
func cgroupData(fstype, super string) string {
	var keep []string
	onlyNames := true
	for _, o := range strings.Split(super, ",") {
		switch {
		case o == "rw" || o == "ro" || o == "" || strings.HasPrefix(o, "release_agent="):
			continue
		case strings.HasPrefix(o, "name="):
		default:
			onlyNames = false
		}
		keep = append(keep, o)
	}
	if fstype == "cgroup" && onlyNames {
		keep = append([]string{"none"}, keep...)
	}
	return strings.Join(keep, ",")
}

type mountInfo struct{ dir, fstype, super string }

func readMountInfo() ([]mountInfo, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	return parseMountInfo(string(b)), nil
}

// parseMountInfo reads /proc/self/mountinfo: mount point is field 5; after
// the " - " separator come the file system type, source and super options.
func parseMountInfo(s string) []mountInfo {
	var out []mountInfo
	for _, line := range strings.Split(s, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 {
			continue
		}
		out = append(out, mountInfo{dir: unescapeMount(a[4]), fstype: b[0], super: b[2]})
	}
	return out
}

// unescapeMount undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
