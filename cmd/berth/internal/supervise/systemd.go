package supervise

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Init systems DetectInit tells apart.
const (
	InitSystemd = "systemd"
	InitNone    = "none"
)

// DetectInit reports InitSystemd when systemd manages this host (PID 1 is
// systemd and /run/systemd/system exists), else InitNone: berth then
// supervises its services itself.
func DetectInit() string {
	comm, err := os.ReadFile("/proc/1/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "systemd" {
		return InitNone
	}
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return InitNone
	}
	return InitSystemd
}

// UnitName is the systemd unit of a service.
func UnitName(service string) string { return "berth-" + service + ".service" }

// Units renders one systemd unit per service, keyed by unit name. Commands
// go through the /opt/berth/current symlink so a restart after a switch runs
// the new image. containerd's unit kills only containerd itself
// (KillMode=process): its shims and containers survive a restart.
func Units(c Config) map[string]string {
	c = c.WithDefaults()
	out := map[string]string{}
	var prev string
	for _, s := range c.Services(c.ImageDir) {
		var b strings.Builder
		fmt.Fprintf(&b, "[Unit]\nDescription=berth %s (node image service)\nDocumentation=https://github.com/berth-io/berth\n", s.Name)
		b.WriteString("After=network-online.target\nWants=network-online.target\n")
		if prev != "" {
			fmt.Fprintf(&b, "After=%s\nWants=%s\n", prev, prev)
		}
		b.WriteString("\n[Service]\nType=simple\n")
		for _, e := range s.Env {
			fmt.Fprintf(&b, "Environment=%s\n", e)
		}
		fmt.Fprintf(&b, "ExecStart=%s %s\n", s.Path, strings.Join(s.Args, " "))
		b.WriteString("Restart=always\nRestartSec=2\nTimeoutStopSec=30\nLimitNOFILE=1048576\n")
		log := filepath.Join(c.LogDir, s.Name+".log")
		fmt.Fprintf(&b, "StandardOutput=append:%s\nStandardError=append:%s\n", log, log)
		if s.KeepChildren {
			b.WriteString("KillMode=process\nDelegate=yes\nOOMScoreAdjust=-999\n")
		}
		b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
		out[UnitName(s.Name)] = b.String()
		prev = UnitName(s.Name)
	}
	return out
}

// InstallUnits writes the units and containerd's config, removes the units
// of services this host no longer runs, and reloads systemd.
func InstallUnits(ctx context.Context, c Config, unitDir string) ([]string, error) {
	c = c.WithDefaults()
	for _, d := range []string{c.LogDir, c.RunDir, c.ContainerdRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := os.WriteFile(c.ContainerdConfigPath(), []byte(c.ContainerdTOML()), 0o600); err != nil {
		return nil, fmt.Errorf("write containerd config: %w", err)
	}
	units := Units(c)
	var names []string
	for _, s := range []string{"containerd", "control", "agent"} {
		name := UnitName(s)
		path := filepath.Join(unitDir, name)
		text, ok := units[name]
		if !ok {
			_ = systemctl(ctx, "disable", "--now", name)
			_ = os.Remove(path)
			continue
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("write unit %s: %w", path, err)
		}
		names = append(names, name)
	}
	if err := systemctl(ctx, "daemon-reload"); err != nil {
		return nil, err
	}
	return names, nil
}

func systemctl(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Systemctl runs systemctl with args (enable --now, restart, stop) on the
// given units, for the node command.
func Systemctl(ctx context.Context, args ...string) error { return systemctl(ctx, args...) }
