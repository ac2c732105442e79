package ssh

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Feature states reported by Preflight for kernel features.
const (
	FeatureLoaded   = "loaded"   // in use by the running kernel now
	FeatureBuiltin  = "builtin"  // compiled into the kernel
	FeatureLoadable = "loadable" // a module the kernel can load on demand
	FeatureMissing  = "missing"  // neither present nor loadable
	FeatureUnknown  = "unknown"  // the host offers no way to tell (no kernel config, no module tree)
)

// kernelFeatures are the kernel features berth's node agent relies on:
// module name and kernel config symbol.
var kernelFeatures = [][2]string{
	{"overlay", "OVERLAY_FS"},
	{"bridge", "BRIDGE"},
	{"vxlan", "VXLAN"},
	{"veth", "VETH"},
	{"nf_tables", "NF_TABLES"},
	{"br_netfilter", "BRIDGE_NETFILTER"},
}

// requiredTools are the programs Upload and the image installer need on a
// host besides a POSIX shell.
var requiredTools = []string{"sha256sum", "cat", "wc", "mv", "chmod", "mkdir", "tar", "df"}

// Report is what Preflight found on a host: the facts, so callers can show
// them, and Problems, so callers can refuse to install where it cannot
// work.
type Report struct {
	Host string
	// Machine is uname -m; Arch its Go name (amd64, arm64) or empty when
	// berth ships no image for it.
	Machine string
	Arch    string
	// Kernel is uname -r.
	Kernel string
	// CgroupV1Controllers lists the mounted v1 hierarchies (cpu, memory,
	// ...). CgroupV2 reports the unified hierarchy mounted at
	// /sys/fs/cgroup (pure v2); CgroupHybrid reports it mounted at
	// /sys/fs/cgroup/unified beside v1 hierarchies, which then hold the
	// controllers.
	CgroupV1Controllers []string
	CgroupV2            bool
	CgroupHybrid        bool
	// Features maps each kernel feature (overlay, bridge, vxlan, veth,
	// nf_tables, br_netfilter) to one of the Feature* states. Only
	// FeatureMissing is a problem: a host that gives no way to tell is
	// given the benefit of the doubt.
	Features map[string]string
	// PID1 is the command name of process 1. Init is "systemd" when
	// systemd manages the host (PID 1 is systemd and /run/systemd/system
	// exists) and "none" otherwise, in which case berth supervises its
	// services itself: a fact, not a problem.
	PID1 string
	Init string
	// ClockSkew is host clock minus local clock, measured to within
	// ClockUncertainty (half the round trip plus the host's clock
	// resolution).
	ClockSkew        time.Duration
	ClockUncertainty time.Duration
	// FreeBytes maps /opt and /var/lib to the space available there (on
	// the nearest existing ancestor when the directory does not exist).
	FreeBytes map[string]uint64
	// UID is the login's user ID; Sudo reports passwordless sudo.
	UID  int
	Sudo bool
	// MissingTools lists required programs not found on PATH.
	MissingTools []string
}

// Requirements are the thresholds Problems checks a Report against.
type Requirements struct {
	// MinKernel is the oldest kernel (major, minor) supported.
	MinKernel [2]int
	// MaxClockSkew is the largest tolerated clock difference; certificates
	// and leases misbehave beyond it.
	MaxClockSkew time.Duration
	// MinFreeBytes is the space needed under each path.
	MinFreeBytes map[string]uint64
}

// DefaultRequirements returns what a berth node needs: Linux 4.19 or
// newer, clocks within 5 s, 1 GiB free under /opt (node images) and 2 GiB
// under /var/lib (containers and etcd).
func DefaultRequirements() Requirements {
	return Requirements{
		MinKernel:    [2]int{4, 19},
		MaxClockSkew: 5 * time.Second,
		MinFreeBytes: map[string]uint64{"/opt": 1 << 30, "/var/lib": 2 << 30},
	}
}

// Problems lists, as sentences a person can act on, what the host lacks
// against DefaultRequirements; empty means berth can be installed.
func (r Report) Problems() []string { return r.ProblemsAgainst(DefaultRequirements()) }

// ProblemsAgainst lists what the host lacks against req.
func (r Report) ProblemsAgainst(req Requirements) []string {
	var out []string
	add := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("host %q: ", r.Host)+fmt.Sprintf(format, args...))
	}
	if r.Arch == "" {
		add("architecture %q is not supported; berth node images exist for amd64 (x86_64) and arm64 (aarch64)", r.Machine)
	}
	if maj, min, ok := kernelVersion(r.Kernel); !ok {
		add("kernel version %q could not be read", r.Kernel)
	} else if maj < req.MinKernel[0] || (maj == req.MinKernel[0] && min < req.MinKernel[1]) {
		add("kernel %s is older than %d.%d, the oldest berth supports; upgrade the kernel", r.Kernel, req.MinKernel[0], req.MinKernel[1])
	}
	if !r.CgroupV2 {
		var missing []string
		for _, c := range []string{"cpu", "memory", "pids"} {
			if !contains(r.CgroupV1Controllers, c) {
				missing = append(missing, c)
			}
		}
		switch {
		case len(r.CgroupV1Controllers) == 0:
			add("no cgroup filesystem is mounted under /sys/fs/cgroup; containers need cgroup v2 (or v1 with cpu, memory and pids)")
		case len(missing) > 0:
			add("cgroup v1 controllers %s are not mounted; containers need cpu, memory and pids", strings.Join(missing, ", "))
		}
	}
	for _, kf := range kernelFeatures {
		if f := kf[0]; r.Features[f] == FeatureMissing {
			add("kernel feature %s is missing (%s); install its kernel module or use a kernel built with CONFIG_%s", f, featureUse(f), kf[1])
		}
	}
	if abs(r.ClockSkew)-r.ClockUncertainty > req.MaxClockSkew {
		add("clock is off by %s against this machine (more than %s); enable time synchronisation (NTP) on the host", r.ClockSkew.Round(time.Millisecond), req.MaxClockSkew)
	}
	paths := make([]string, 0, len(req.MinFreeBytes))
	for p := range req.MinFreeBytes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		free, ok := r.FreeBytes[p]
		if !ok {
			add("free space under %s could not be read", p)
		} else if free < req.MinFreeBytes[p] {
			add("only %s free under %s, %s needed", humanBytes(free), p, humanBytes(req.MinFreeBytes[p]))
		}
	}
	if r.UID != 0 && !r.Sudo {
		add("the SSH user has uid %d and no passwordless sudo; berth installs into /opt and /etc and needs root", r.UID)
	}
	if len(r.MissingTools) > 0 {
		add("required programs are missing: %s", strings.Join(r.MissingTools, ", "))
	}
	return out
}

func featureUse(f string) string {
	switch f {
	case "overlay":
		return "container root filesystems use overlayfs"
	case "bridge", "veth":
		return "pods attach to the node's bridge through veth pairs"
	case "vxlan":
		return "nodes reach each other's pods through a VXLAN overlay"
	case "nf_tables", "br_netfilter":
		return "services are nftables rules that must see bridged pod traffic"
	}
	return "berth needs it"
}

// preflightScript prints one "key value" fact per line; it uses only POSIX
// shell and tools found on minimal hosts, and tolerates their absence.
var preflightScript = `
echo "machine $(uname -m)"
echo "kernel $(uname -r)"
echo "uid $(id -u)"
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then echo "sudo yes"; fi
echo "pid1 $(cat /proc/1/comm 2>/dev/null)"
if [ -d /run/systemd/system ]; then echo "systemd_run yes"; fi
grep -w overlay /proc/filesystems >/dev/null 2>&1 && echo "fs overlay"
rel=$(uname -r)
cfg=""
if [ -r /proc/config.gz ] && command -v zcat >/dev/null 2>&1; then cfg=$(zcat /proc/config.gz 2>/dev/null)
elif [ -r "/boot/config-$rel" ]; then cfg=$(cat "/boot/config-$rel"); fi
kfeature() {
	if [ -d "/sys/module/$1" ]; then s=` + FeatureLoaded + `
	elif [ -n "$cfg" ] && printf '%s\n' "$cfg" | grep -q "^CONFIG_$2=y"; then s=` + FeatureBuiltin + `
	elif grep -q "/$1.ko" "/lib/modules/$rel/modules.builtin" 2>/dev/null; then s=` + FeatureBuiltin + `
	elif modinfo "$1" >/dev/null 2>&1 || [ -n "$(find "/lib/modules/$rel" -name "$1.ko*" 2>/dev/null | head -n 1)" ]; then s=` + FeatureLoadable + `
	elif [ -n "$cfg" ] || [ -d "/lib/modules/$rel" ]; then s=` + FeatureMissing + `
	else s=` + FeatureUnknown + `; fi
	echo "feature $1 $s"
}
` + featureCalls() + `
grep -E '^[^ ]+ [^ ]+ cgroup2? ' /proc/mounts 2>/dev/null | while read -r dev mnt typ opts rest; do echo "mount $mnt $typ $opts"; done
for d in /opt /var/lib; do
	p=$d
	while [ ! -e "$p" ]; do p=$(dirname "$p"); done
	echo "df $d $(df -Pk "$p" 2>/dev/null | tail -n 1)"
done
for t in ` + strings.Join(requiredTools, " ") + `; do command -v $t >/dev/null 2>&1 || echo "missing $t"; done
true
`

// featureCalls lists one kfeature call per kernel feature for the script.
func featureCalls() string {
	var b strings.Builder
	for _, f := range kernelFeatures {
		fmt.Fprintf(&b, "kfeature %s %s\n", f[0], f[1])
	}
	return b.String()
}

// Preflight inspects the host behind c: architecture, kernel, cgroups,
// kernel features, init system, clock skew, free disk, privileges and
// tools. The error reports only failure to inspect; what the host lacks is
// in Report.Problems.
func Preflight(ctx context.Context, c *Client) (Report, error) {
	skew, uncertainty, err := measureClockSkew(ctx, c)
	if err != nil {
		return Report{}, err
	}
	out, _, _, err := c.Run(ctx, preflightScript, RunOptions{Timeout: 60 * time.Second})
	if err != nil {
		return Report{}, fmt.Errorf("preflight of host %q: %w", c.Host(), err)
	}
	r := parsePreflight(c.Host(), string(out))
	r.ClockSkew, r.ClockUncertainty = skew, uncertainty
	return r, nil
}

// measureClockSkew compares the host's clock with ours, bracketing the
// remote reading between two local ones.
func measureClockSkew(ctx context.Context, c *Client) (skew, uncertainty time.Duration, err error) {
	before := time.Now()
	out, _, _, err := c.Run(ctx, "date -u +%s.%N", RunOptions{Timeout: 30 * time.Second})
	after := time.Now()
	if err != nil {
		return 0, 0, fmt.Errorf("preflight of host %q: read clock: %w", c.Host(), err)
	}
	remote, resolution, err := parseRemoteTime(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, 0, fmt.Errorf("preflight of host %q: read clock: %w", c.Host(), err)
	}
	half := after.Sub(before) / 2
	mid := before.Add(half)
	return remote.Sub(mid), half + resolution, nil
}

// parseRemoteTime reads "seconds.nanoseconds", or seconds alone when the
// host's date does not know %N (then the resolution is a second).
func parseRemoteTime(s string) (time.Time, time.Duration, error) {
	secStr, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("unexpected output of date: %q", s)
	}
	if len(frac) == 9 {
		if ns, err := strconv.ParseInt(frac, 10, 64); err == nil {
			return time.Unix(sec, ns), time.Microsecond, nil
		}
	}
	return time.Unix(sec, 0).Add(500 * time.Millisecond), 500 * time.Millisecond, nil
}

// parsePreflight turns the script's lines into a Report.
func parsePreflight(host, out string) Report {
	r := Report{Host: host, Features: map[string]string{}, FreeBytes: map[string]uint64{}, UID: -1}
	overlayFS := false
	systemdRun := false
	for _, line := range strings.Split(out, "\n") {
		key, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest = strings.TrimSpace(rest)
		switch key {
		case "machine":
			r.Machine = rest
			r.Arch = goArch(rest)
		case "kernel":
			r.Kernel = rest
		case "uid":
			if n, err := strconv.Atoi(rest); err == nil {
				r.UID = n
			}
		case "sudo":
			r.Sudo = true
		case "pid1":
			r.PID1 = rest
		case "systemd_run":
			systemdRun = true
		case "fs":
			overlayFS = overlayFS || rest == "overlay"
		case "feature":
			if name, state, ok := strings.Cut(rest, " "); ok {
				r.Features[name] = state
			}
		case "mount":
			f := strings.Fields(rest)
			if len(f) < 3 {
				continue
			}
			mnt, typ, opts := f[0], f[1], strings.Split(f[2], ",")
			switch typ {
			case "cgroup2":
				switch mnt {
				case "/sys/fs/cgroup":
					r.CgroupV2 = true
				case "/sys/fs/cgroup/unified":
					r.CgroupHybrid = true
				}
			case "cgroup":
				for _, o := range opts {
					switch o {
					case "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc":
						if !contains(r.CgroupV1Controllers, o) {
							r.CgroupV1Controllers = append(r.CgroupV1Controllers, o)
						}
					}
				}
			}
		case "df":
			// "df /opt <fs> <blocks> <used> <available> <capacity> <mount>"
			f := strings.Fields(rest)
			if len(f) >= 5 {
				if kb, err := strconv.ParseUint(f[4], 10, 64); err == nil {
					r.FreeBytes[f[0]] = kb * 1024
				}
			}
		case "missing":
			r.MissingTools = append(r.MissingTools, rest)
		}
	}
	if overlayFS && r.Features["overlay"] != FeatureLoaded {
		r.Features["overlay"] = FeatureLoaded
	}
	sort.Strings(r.CgroupV1Controllers)
	r.Init = "none"
	if r.PID1 == "systemd" && systemdRun {
		r.Init = "systemd"
	}
	return r
}

// goArch maps uname -m to the architectures berth builds images for.
func goArch(machine string) string {
	switch machine {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	}
	return ""
}

// kernelVersion reads major.minor from uname -r ("6.1.0-18-amd64").
func kernelVersion(release string) (major, minor int, ok bool) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minorStr := parts[1]
	if i := strings.IndexFunc(minorStr, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minorStr = minorStr[:i]
	}
	minor, err2 := strconv.Atoi(minorStr)
	return major, minor, err1 == nil && err2 == nil
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
