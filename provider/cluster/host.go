package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/berth-io/berth/provider/ssh"
)

// journal is a host's record of the operation in progress, so a run cut
// short is finished by the next one instead of started over.
type journal struct {
	// Operation is "install" (the only one kept across runs).
	Operation string `json:"operation"`
	// Target is the digest being installed; From the one it replaces
	// (empty on a fresh host).
	Target string `json:"target"`
	From   string `json:"from,omitempty"`
	// ConfigHash is the configuration being installed.
	ConfigHash string `json:"configHash"`
	// Step is the last step reached: started, cordoned, configured,
	// switched, healthy.
	Step string `json:"step"`
}

// probe is what one read-only command finds on a host.
type probe struct {
	Current    string // digest ("sha256:<hex>") /opt/berth/current points at
	Previous   string
	ConfigHash string
	Journal    *journal
	AgentCreds bool
	EtcdData   bool
	Control    *controlConfig
	Running    map[string]bool
	Init       string
}

// hostRun runs a command on a host with a timeout, naming the host and the
// step in its error.
func hostRun(ctx context.Context, c *ssh.Client, step, cmd string, timeout time.Duration) ([]byte, error) {
	out, _, _, err := c.Run(ctx, cmd, ssh.RunOptions{Timeout: timeout})
	if err != nil {
		return out, fmt.Errorf("%s on host %q: %w", step, c.Host(), err)
	}
	return out, nil
}

func digestOfLink(target string) string {
	target = strings.TrimSpace(target)
	if target == "" {
		return ""
	}
	i := strings.LastIndexByte(target, '/')
	return "sha256:" + target[i+1:]
}

const probeScript = `b64() { if [ -r "$1" ]; then base64 -w0 "$1"; fi; echo; }
echo "current=$(readlink ` + pathCurrent + ` 2>/dev/null)"
echo "previous=$(readlink ` + pathPrevious + ` 2>/dev/null)"
echo "hash=$(cat ` + pathConfigHash + ` 2>/dev/null)"
if [ -n "$(ls -A /etc/berth/agent 2>/dev/null)" ]; then echo agentcreds=yes; fi
if [ -d /var/lib/berth/control/etcd/member ]; then echo etcddata=yes; fi
echo "journal=$(b64 ` + pathJournal + `)"
echo "control=$(b64 ` + pathControl + `)"
if [ -x ` + hostBerth + ` ] && [ -r ` + pathNodeConfig + ` ]; then echo "status=$(` + hostBerth + ` node status --config ` + pathNodeConfig + ` 2>/dev/null | base64 -w0)"; fi
`

func probeHost(ctx context.Context, c *ssh.Client) (probe, error) {
	out, err := hostRun(ctx, c, "inspect berth", probeScript, time.Minute)
	if err != nil {
		return probe{}, err
	}
	var p probe
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "current":
			p.Current = digestOfLink(v)
		case "previous":
			p.Previous = digestOfLink(v)
		case "hash":
			p.ConfigHash = strings.TrimSpace(v)
		case "agentcreds":
			p.AgentCreds = true
		case "etcddata":
			p.EtcdData = true
		case "journal", "control", "status":
			if v == "" {
				continue
			}
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return p, fmt.Errorf("inspect berth on host %q: decode %s: %w", c.Host(), k, err)
			}
			switch k {
			case "journal":
				var j journal
				if json.Unmarshal(b, &j) == nil && j.Operation != "" {
					p.Journal = &j
				}
			case "control":
				var cc controlConfig
				if json.Unmarshal(b, &cc) == nil {
					p.Control = &cc
				}
			case "status":
				var st struct {
					Init     string                     `json:"init"`
					Services map[string]json.RawMessage `json:"services"`
				}
				if json.Unmarshal(b, &st) == nil {
					p.Init = st.Init
					p.Running = map[string]bool{}
					for s := range st.Services {
						p.Running[s] = true
					}
				}
			}
		}
	}
	return p, nil
}

// writeFiles writes files atomically (temp file, chmod 0600, rename) in one
// command; the contents travel base64-encoded on standard input.
func writeFiles(ctx context.Context, c *ssh.Client, step string, files map[string][]byte) error {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var script, stdin bytes.Buffer
	script.WriteString("set -e\numask 077\n")
	for _, p := range paths {
		q := ssh.Quote(p)
		tmp := ssh.Quote(p + ".tmp")
		fmt.Fprintf(&script, "mkdir -p \"$(dirname %s)\"\nIFS= read -r line\nprintf %%s \"$line\" | base64 -d > %s\nchmod 0600 %s\nmv -f %s %s\n", q, tmp, tmp, tmp, q)
		stdin.WriteString(base64.StdEncoding.EncodeToString(files[p]))
		stdin.WriteByte('\n')
	}
	_, _, _, err := c.Run(ctx, script.String(), ssh.RunOptions{Timeout: time.Minute, Stdin: &stdin})
	if err != nil {
		return fmt.Errorf("%s on host %q: %w", step, c.Host(), err)
	}
	return nil
}

func writeJournal(ctx context.Context, c *ssh.Client, j *journal) error {
	if j == nil {
		_, err := hostRun(ctx, c, "clear journal", "rm -f "+pathJournal, 30*time.Second)
		return err
	}
	b, _ := json.Marshal(j)
	return writeFiles(ctx, c, "write journal", map[string][]byte{pathJournal: b})
}

// ensureImage puts the bundle under /opt/berth/images/<hex> unless it is
// there: upload (sha256 verified by the host), unpack into a temporary
// directory, verify every file with the image's own berth, make it
// read-only and rename it into place.
func ensureImage(ctx context.Context, c *ssh.Client, bundle string, digest string, progress func(string)) error {
	hexd := strings.TrimPrefix(digest, "sha256:")
	dir := pathImages + "/" + hexd
	out, err := hostRun(ctx, c, "look for image "+digest, fmt.Sprintf("if [ -f %s/manifest.json ]; then echo present; fi", dir), time.Minute)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(out)) == "present" {
		return nil
	}
	f, err := os.Open(bundle)
	if err != nil {
		return fmt.Errorf("open node image %s: %w", bundle, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open node image %s: %w", bundle, err)
	}
	remote := pathImages + "/.incoming/" + hexd + ".tar.gz"
	progress("upload image")
	upCtx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if err := c.Upload(upCtx, f, fi.Size(), remote, 0o600, hexd); err != nil {
		return fmt.Errorf("upload image %s to host %q: %w", digest, c.Host(), err)
	}
	progress("unpack image")
	script := fmt.Sprintf(`set -e
tmp=$(mktemp -d %[1]s/.unpack-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
tar -xzf %[2]s -C "$tmp"
"$tmp/bin/berth" node verify-image "$tmp" >/dev/null
chmod -R a-w "$tmp"
chmod 0755 "$tmp"
mv -T "$tmp" %[3]s
trap - EXIT
rm -f %[2]s
`, pathImages, ssh.Quote(remote), ssh.Quote(dir))
	if _, err := hostRun(ctx, c, "unpack image "+digest, script, 10*time.Minute); err != nil {
		return err
	}
	return nil
}

// switchImage points current at digest atomically; when keepPrevious is
// set previous is pointed at what current was (or at prev when given).
func switchImage(ctx context.Context, c *ssh.Client, digest, prev string) error {
	hexd := strings.TrimPrefix(digest, "sha256:")
	script := "set -e\ncd /opt/berth\n"
	if prev != "" && prev != digest {
		script += fmt.Sprintf("ln -sfn images/%s .previous.tmp && mv -T .previous.tmp previous\n", strings.TrimPrefix(prev, "sha256:"))
	}
	script += fmt.Sprintf("ln -sfn images/%s .current.tmp && mv -T .current.tmp current\n", hexd)
	_, err := hostRun(ctx, c, "switch to image "+digest, script, time.Minute)
	return err
}

// pruneImages removes images other than current and previous.
func pruneImages(ctx context.Context, c *ssh.Client) error {
	script := `cd /opt/berth/images || exit 0
keep1=$(basename "$(readlink /opt/berth/current)" 2>/dev/null)
keep2=$(basename "$(readlink /opt/berth/previous)" 2>/dev/null)
for d in *; do
  [ -d "$d" ] || continue
  [ "$d" = "$keep1" ] || [ "$d" = "$keep2" ] && continue
  chmod -R u+w "$d" && rm -rf "$d"
done
rm -rf .incoming .unpack-*
`
	_, err := hostRun(ctx, c, "remove old images", script, 5*time.Minute)
	return err
}

func restartServices(ctx context.Context, c *ssh.Client) error {
	_, err := hostRun(ctx, c, "restart berth services", hostBerth+" node restart --config "+pathNodeConfig+" --timeout 90s", 2*time.Minute)
	return err
}

// backupConfig keeps the host's current configuration for a rollback.
func backupConfig(ctx context.Context, c *ssh.Client) error {
	_, err := hostRun(ctx, c, "keep previous configuration", `set -e
rm -rf /etc/berth/.previous && mkdir -p /etc/berth/.previous
for f in node.json agent.json control.json config.sha256; do
  if [ -f /etc/berth/$f ]; then cp -p /etc/berth/$f /etc/berth/.previous/$f; fi
done`, time.Minute)
	return err
}

func restoreConfig(ctx context.Context, c *ssh.Client) error {
	_, err := hostRun(ctx, c, "restore previous configuration", `set -e
[ -d /etc/berth/.previous ] || exit 0
for f in node.json agent.json control.json config.sha256; do
  if [ -f /etc/berth/.previous/$f ]; then cp -p /etc/berth/.previous/$f /etc/berth/$f; fi
done`, time.Minute)
	return err
}

// logTail returns the last lines of every service log on the host.
func logTail(ctx context.Context, c *ssh.Client, lines int) string {
	out, err := hostRun(ctx, c, "read service logs", fmt.Sprintf(`for f in %s/*.log; do [ -f "$f" ] || continue; echo "== $f"; tail -n %d "$f"; done`, pathLogs, lines), 30*time.Second)
	if err != nil {
		return "(logs unavailable: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// wipeScript stops berth's services, kills its containers and their shims,
// unmounts what they left, removes the agent's network state (bridge,
// VXLAN device, nftables tables, pod network namespaces) and every berth
// file from the host.
const wipeScript = `set +e
if [ -x /opt/berth/current/bin/berth ] && [ -r /etc/berth/node.json ]; then
  /opt/berth/current/bin/berth node stop --config /etc/berth/node.json --timeout 60s
fi
if [ -d /run/systemd/system ]; then
  for u in berth-agent berth-control berth-containerd; do systemctl disable --now $u.service 2>/dev/null; rm -f /etc/systemd/system/$u.service; done
  systemctl daemon-reload 2>/dev/null
fi
name=$(sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' /etc/berth/node.json 2>/dev/null | head -n1)
for p in /proc/[0-9]*; do
  exe=$(readlink $p/exe 2>/dev/null)
  case "$exe" in /opt/berth/*) kill -9 ${p#/proc/} 2>/dev/null;; esac
done
if [ -n "$name" ]; then
  for cg in /sys/fs/cgroup/*/berth-$name /sys/fs/cgroup/berth-$name; do
    [ -d "$cg" ] || continue
    # cgroup2 lists a process of another PID namespace as 0, and kill 0
    # would signal this script's own process group.
    find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | grep -E '^[1-9][0-9]*$' | grep -vx "$$" | xargs -r kill -9 2>/dev/null
    sleep 0.2
    find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
fi
awk '{print $2}' /proc/self/mounts | grep -E '^/(var/lib/berth|run/berth|opt/berth)(/|$)' | sort -r | while read -r m; do umount -l "$m"; done
# The agent's network state (nodeagent/network, nodeagent/services): pod
# bridge, overlay device and nftables tables; pod network namespaces were
# bind mounts under /run/berth/netns, unmounted above.
for l in berth0 berth.vx; do ip link del "$l" 2>/dev/null; done
for t in berth-net berth-svc; do nft delete table ip "$t" 2>/dev/null; done
rm -rf /opt/berth /etc/berth /var/lib/berth /run/berth
exit 0
`

func wipeHost(ctx context.Context, c *ssh.Client) error {
	_, err := hostRun(ctx, c, "wipe berth", wipeScript, 5*time.Minute)
	return err
}
