package ssh

import (
	"strings"
	"testing"
	"time"
)

const healthyV2 = `machine x86_64
kernel 6.1.0-18-amd64
uid 0
pid1 systemd
systemd_run yes
fs overlay
feature overlay loaded
feature bridge builtin
feature vxlan loadable
feature veth loadable
feature nf_tables loaded
feature br_netfilter loadable
mount /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime
df /opt /dev/sda1 41152736 9000000 30000000 24% /
df /var/lib /dev/sdb1 41152736 9000000 30000000 24% /var/lib
`

func TestParsePreflightReadsTheHostsFacts(t *testing.T) {
	r := parsePreflight("node-1", healthyV2)
	if r.Arch != "amd64" || r.Kernel != "6.1.0-18-amd64" || !r.CgroupV2 || r.CgroupHybrid || r.Init != "systemd" || r.UID != 0 {
		t.Errorf("report = %+v", r)
	}
	if r.FreeBytes["/opt"] != 30000000*1024 || r.FreeBytes["/var/lib"] != 30000000*1024 {
		t.Errorf("free bytes = %v", r.FreeBytes)
	}
	if r.Features["vxlan"] != FeatureLoadable || r.Features["overlay"] != FeatureLoaded {
		t.Errorf("features = %v", r.Features)
	}
	if p := r.Problems(); len(p) != 0 {
		t.Errorf("a healthy host has problems: %q", p)
	}
}

func TestProblemsNameWhatTheHostLacks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(string) string
		skew   time.Duration
		wantIn string
	}{
		{"unsupported architecture", replace("machine x86_64", "machine riscv64"), 0, `architecture "riscv64" is not supported`},
		{"old kernel", replace("kernel 6.1.0-18-amd64", "kernel 4.14.1"), 0, "kernel 4.14.1 is older than 4.19"},
		{"no cgroups", replace("mount /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime", ""), 0, "no cgroup filesystem is mounted"},
		{"hybrid cgroups without pids", replace("mount /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime",
			"mount /sys/fs/cgroup/cpu cgroup rw,cpu\nmount /sys/fs/cgroup/memory cgroup rw,memory\nmount /sys/fs/cgroup/unified cgroup2 rw"), 0,
			"cgroup v1 controllers pids are not mounted"},
		{"missing vxlan", replace("feature vxlan loadable", "feature vxlan missing"), 0, "kernel feature vxlan is missing"},
		{"full /var/lib", replace("df /var/lib /dev/sdb1 41152736 9000000 30000000", "df /var/lib /dev/sdb1 41152736 41000000 1000"), 0, "only 1000.0 KiB free under /var/lib, 2.0 GiB needed"},
		{"unreadable disk", replace("df /opt /dev/sda1 41152736 9000000 30000000 24% /\n", ""), 0, "free space under /opt could not be read"},
		{"clock far off", func(s string) string { return s }, -90 * time.Second, "clock is off by -1m30s"},
		{"not root, no sudo", replace("uid 0", "uid 1000"), 0, "uid 1000 and no passwordless sudo"},
		{"missing sha256sum", func(s string) string { return s + "missing sha256sum\n" }, 0, "required programs are missing: sha256sum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := parsePreflight("node-1", tc.edit(healthyV2))
			r.ClockSkew, r.ClockUncertainty = tc.skew, 10*time.Millisecond
			problems := r.Problems()
			if len(problems) != 1 || !strings.Contains(problems[0], tc.wantIn) || !strings.HasPrefix(problems[0], `host "node-1": `) {
				t.Errorf("problems = %q; want exactly one naming node-1 and containing %q", problems, tc.wantIn)
			}
		})
	}
}

func TestProblemsToleratesWhatIsNotAProblem(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(string) string
		skew time.Duration
	}{
		{"no systemd", replace("pid1 systemd\nsystemd_run yes", "pid1 berth"), 0},
		{"feature state unknown", replace("feature vxlan loadable", "feature vxlan unknown"), 0},
		{"non-root with passwordless sudo", replace("uid 0", "uid 1000\nsudo yes"), 0},
		{"skew within the uncertainty of the reading", func(s string) string { return s }, 5*time.Second + 5*time.Millisecond},
		{"arm64", replace("machine x86_64", "machine aarch64"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := parsePreflight("node-1", tc.edit(healthyV2))
			r.ClockSkew, r.ClockUncertainty = tc.skew, 10*time.Millisecond
			if p := r.Problems(); len(p) != 0 {
				t.Errorf("problems = %q; want none", p)
			}
		})
	}
}

func replace(old, new string) func(string) string {
	return func(s string) string {
		if !strings.Contains(s, old) {
			panic("test fixture lacks " + old)
		}
		return strings.Replace(s, old, new, 1)
	}
}

func TestParseRemoteTimeKnowsBothDateFormats(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Time
		resol   time.Duration
		wantErr bool
	}{
		{in: "1700000000.123456789", want: time.Unix(1700000000, 123456789), resol: time.Microsecond},
		{in: "1700000000.%N", want: time.Unix(1700000000, 5e8), resol: 500 * time.Millisecond},
		{in: "1700000000", want: time.Unix(1700000000, 5e8), resol: 500 * time.Millisecond},
		{in: "Tue Nov 14", wantErr: true},
	} {
		got, resol, err := parseRemoteTime(tc.in)
		if (err != nil) != tc.wantErr || !got.Equal(tc.want) || resol != tc.resol {
			t.Errorf("parseRemoteTime(%q) = %v, %v, %v; want %v, %v, error %v", tc.in, got, resol, err, tc.want, tc.resol, tc.wantErr)
		}
	}
}
