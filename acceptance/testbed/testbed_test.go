package testbed

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestAddressPlanKeepsEachTestbedInsideItsBlock(t *testing.T) {
	tests := []struct {
		block                          int
		wantBlock, wantRoot, wantReg   string
		wantLB, wantGW2, wantHost3of15 string
	}{
		{0, "198.18.0.0/20", "198.18.0.1", "198.18.0.10", "198.18.0.11", "198.18.2.1", "198.18.15.13"},
		{1, "198.18.16.0/20", "198.18.16.1", "198.18.16.10", "198.18.16.11", "198.18.18.1", "198.18.31.13"},
		{31, "198.19.240.0/20", "198.19.240.1", "198.19.240.10", "198.19.240.11", "198.19.242.1", "198.19.255.13"},
	}
	for _, tt := range tests {
		p := plan{block: tt.block}
		got := []string{p.Block().String(), p.RootAddr().String(), p.Registry().String(), p.LB().String(), p.Gateway(2).String(), p.HostAddr(15, 3).String()}
		want := []string{tt.wantBlock, tt.wantRoot, tt.wantReg, tt.wantLB, tt.wantGW2, tt.wantHost3of15}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("block %d: got %v, want %v", tt.block, got, want)
		}
		if !testRange.Contains(p.HostAddr(MaxVendors, MaxHostsPerVendor)) || !p.Block().Contains(p.HostAddr(MaxVendors, MaxHostsPerVendor)) {
			t.Errorf("block %d: last host address %s leaves the block", tt.block, p.HostAddr(MaxVendors, MaxHostsPerVendor))
		}
		if n := len(p.RootLink()); n > 15 {
			t.Errorf("block %d: root link name %q is %d characters, Linux allows 15", tt.block, p.RootLink(), n)
		}
	}
	if BlockCount != 32 {
		t.Errorf("BlockCount = %d, want 32 blocks of /20 in a /15", BlockCount)
	}
}

func TestInterfaceNamesFitLinux(t *testing.T) {
	for _, n := range []string{bridgeName(MaxVendors), hostLinkName(MaxVendors, MaxHostsPerVendor), uplinkName} {
		if len(n) > 15 {
			t.Errorf("interface name %q is longer than 15 characters", n)
		}
	}
}

func TestParseVendorsKeepsOrderAndRejectsNonsense(t *testing.T) {
	tests := []struct {
		in      string
		want    []Vendor
		wantErr bool
	}{
		{"vendor-a=3,vendor-b=3", []Vendor{{"vendor-a", 3}, {"vendor-b", 3}}, false},
		{" b=1 , a=2 ", []Vendor{{"b", 1}, {"a", 2}}, false},
		{"a", nil, true},
		{"a=x", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseVendors(tt.in)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseVendors(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestOptionsRejectNamesThatCouldCollide(t *testing.T) {
	ok := Options{Name: "demo", Vendors: []Vendor{{"vendor-a", 1}}}
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"valid", func(*Options) {}, ""},
		{"dot in name would break cleanup matching", func(o *Options) { o.Name = "a.b" }, "testbed name"},
		{"upper case", func(o *Options) { o.Name = "Demo" }, "testbed name"},
		{"too long", func(o *Options) { o.Name = strings.Repeat("a", 25) }, "testbed name"},
		{"no vendors", func(o *Options) { o.Vendors = nil }, "no vendors"},
		{"duplicate vendor", func(o *Options) { o.Vendors = []Vendor{{"a", 1}, {"a", 1}} }, "twice"},
		{"zero hosts", func(o *Options) { o.Vendors = []Vendor{{"a", 0}} }, "hosts"},
		{"too many vendors", func(o *Options) { o.Vendors = make([]Vendor, MaxVendors+1) }, "vendors"},
		{"negative latency", func(o *Options) { o.Latency = -1 }, "latency"},
	}
	for _, tt := range tests {
		o := ok
		tt.change(&o)
		err := o.validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: validate() = %v, want error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestParseStatCountsFieldsFromTheLastParenthesis(t *testing.T) {
	line := "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615"
	start, state, err := parseStat(line)
	if err != nil || start != 987654 || state != "S" {
		t.Fatalf("parseStat = %d, %q, %v; want 987654, S", start, state, err)
	}
	if _, _, err := parseStat("1234 (x) S 1 2"); err == nil {
		t.Fatal("parseStat of a truncated line: want error")
	}
}

func TestProcessIdentityNeedsPIDAndStartTime(t *testing.T) {
	self, err := procOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !self.alive() {
		t.Error("this process is not reported alive")
	}
	reused := proc{PID: self.PID, Start: self.Start + 1}
	if reused.alive() {
		t.Error("a process with the same PID but another start time counts as alive")
	}
	if (proc{}).alive() {
		t.Error("the zero proc counts as alive")
	}
}

func TestCgroupDataNamesControllersOrNone(t *testing.T) {
	tests := []struct{ fstype, super, want string }{
		{"cgroup", "rw,cpu", "cpu"},
		{"cgroup", "rw,cpu,cpuacct", "cpu,cpuacct"},
		{"cgroup", "rw,name=systemd", "none,name=systemd"},
		{"cgroup", "rw,xattr,release_agent=/x,name=systemd", "xattr,name=systemd"},
		{"cgroup2", "rw", ""},
		{"cgroup2", "rw,nsdelegate", "nsdelegate"},
	}
	for _, tt := range tests {
		if got := cgroupData(tt.fstype, tt.super); got != tt.want {
			t.Errorf("cgroupData(%q, %q) = %q, want %q", tt.fstype, tt.super, got, tt.want)
		}
	}
}

func TestParseMountInfoReadsMountPointTypeAndOptions(t *testing.T) {
	in := "30 23 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n" +
		"40 27 0:30 / /mnt/with\\040space rw - tmpfs tmpfs rw,size=4k\n"
	got := parseMountInfo(in)
	want := []mountInfo{{"/sys/fs/cgroup/cpu", "cgroup", "rw,cpu"}, {"/mnt/with space", "tmpfs", "rw,size=4k"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseMountInfo = %+v, want %+v", got, want)
	}
}

func TestRouterRulesAdmitOnlyRepliesIntoTheRootLink(t *testing.T) {
	rules := routerRules(plan{block: 2})
	for _, want := range []string{
		"policy drop",
		"ct state established,related accept",
		`iifname "up0" oifname "br*" ip saddr 198.18.32.1 ip daddr 198.18.32.0/20 accept`,
		`iifname "br*" oifname "br*" ip saddr 198.18.32.0/20 ip daddr 198.18.32.0/20 accept`,
		"ip daddr 198.18.32.10 tcp dport 5000 accept",
		"ip daddr 198.18.32.11 tcp dport 80 accept",
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("router rules lack %q:\n%s", want, rules)
		}
	}
	if strings.Contains(rules, `oifname "up0" accept`) {
		t.Errorf("router rules let new traffic into the root link:\n%s", rules)
	}
}

func TestInventoryRoundTripsThroughAFile(t *testing.T) {
	inv := &Inventory{
		Name:         "demo",
		Hosts:        []Host{{Name: "vendor-a-1", Vendor: "vendor-a", Address: "198.18.1.11", SSHPort: 22, User: "root", PrivateKeyPath: "/k", HostPublicKey: "ssh-ed25519 AAAA"}},
		Registry:     "198.18.0.10:5000",
		LoadBalancer: "198.18.0.11:80",
	}
	path := filepath.Join(t.TempDir(), "inventory.json")
	if err := inv.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadInventory(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, inv) {
		t.Errorf("LoadInventory = %+v, want %+v", got, inv)
	}
	h, err := got.Host("vendor-a-1")
	if err != nil || h.SSHAddr() != "198.18.1.11:22" {
		t.Errorf("Host(vendor-a-1).SSHAddr() = %q, %v", h.SSHAddr(), err)
	}
	if _, err := got.Host("nope"); !errors.Is(err, ErrNoHost) {
		t.Errorf("Host(nope) error = %v, want ErrNoHost", err)
	}
	if err := os.WriteFile(path, []byte(`{"name":"x","hosts":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadInventory(path); err == nil {
		t.Error("LoadInventory of an inventory without hosts: want error")
	}
}

func TestPrepareDiskWritesAKeyOnlySSHConfigurationAndPinnableHostKey(t *testing.T) {
	dir := t.TempDir()
	client, err := writeClientKey(filepath.Join(dir, "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk")
	hostKey, err := prepareDisk(disk, "vendor-a-1", client)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(disk, "etc/ssh/sshd_config"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PermitRootLogin prohibit-password", "PasswordAuthentication no", "UsePAM no", "KbdInteractiveAuthentication no"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("sshd configuration lacks %q", want)
		}
	}
	if strings.Contains(string(cfg), "Include") {
		t.Error("sshd configuration includes the machine's drop-ins")
	}
	if fi, err := os.Stat(filepath.Join(disk, "etc/ssh/ssh_host_ed25519_key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("host private key: %v, mode %v; want mode 0600", err, fi.Mode().Perm())
	}
	pub, err := os.ReadFile(filepath.Join(disk, "etc/ssh/ssh_host_ed25519_key.pub"))
	if err != nil || !strings.HasPrefix(string(pub), hostKey+" ") {
		t.Errorf("host public key file %q does not start with the returned key %q (%v)", pub, hostKey, err)
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostKey)); err != nil {
		t.Errorf("returned host key %q is not in authorized_keys format: %v", hostKey, err)
	}
	auth, err := os.ReadFile(filepath.Join(disk, "etc/ssh/authorized_keys/root"))
	if err != nil || string(auth) != string(ssh.MarshalAuthorizedKey(client)) {
		t.Errorf("root's authorised keys = %q (%v), want the testbed client key", auth, err)
	}
	for _, d := range diskDirs {
		if fi, err := os.Stat(filepath.Join(disk, d)); err != nil || !fi.IsDir() {
			t.Errorf("disk directory %s missing: %v", d, err)
		}
	}
}
