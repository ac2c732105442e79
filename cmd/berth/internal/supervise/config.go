// Package supervise keeps a berth host's services running: containerd from
// the node image, `berth control` on control-plane hosts and `berth agent` on
// every host. Without systemd it supervises them itself (Supervise, Start,
// Stop), restarting crashed children with back-off; with systemd it renders
// units (Units) for systemctl to run.
//
// It must never stop containerd other than by its own PID: containerd's shims,
// and the containers they hold, must outlive a containerd restart or upgrade.
// It never logs: progress goes to the callback it is given.
package supervise

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Roles a host can have.
const (
	RoleControlPlane = "control-plane"
	RoleWorker       = "worker"
)

// Host layout defaults (DESIGN.md, Host layout).
const (
	DefaultImageDir      = "/opt/berth/current"
	DefaultControlConfig = "/etc/berth/control.json"
	DefaultAgentConfig   = "/etc/berth/agent.json"
	DefaultLogDir        = "/var/log/berth"
	DefaultRunDir        = "/run/berth"
	DefaultContainerdDir = "/var/lib/berth/containerd"
	DefaultUnitDir       = "/etc/systemd/system"
)

// Config is what /etc/berth/node.json holds: which services a host runs and
// where their files are. The provisioning engine writes it.
type Config struct {
	// Name is the host's node name, for messages.
	Name string `json:"name"`
	// Role is RoleControlPlane (containerd, control, agent) or RoleWorker
	// (containerd, agent).
	Role string `json:"role"`
	// ImageDir is the node image the services run from; default
	// /opt/berth/current (the symlink, resolved once at start).
	ImageDir string `json:"imageDir,omitempty"`
	// ControlConfig and AgentConfig are the services' own config files.
	ControlConfig string `json:"controlConfig,omitempty"`
	AgentConfig   string `json:"agentConfig,omitempty"`
	// LogDir receives one append-only log per service.
	LogDir string `json:"logDir,omitempty"`
	// RunDir holds pid files, containerd's state and socket.
	RunDir string `json:"runDir,omitempty"`
	// ContainerdRoot is containerd's persistent root.
	ContainerdRoot string `json:"containerdRoot,omitempty"`
}

// LoadConfig reads a Config, refusing unknown fields and bad roles.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read node config: %w", err)
	}
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("parse node config %s: %w", path, err)
	}
	if c.Role != RoleControlPlane && c.Role != RoleWorker {
		return Config{}, fmt.Errorf("node config %s: role %q is neither %q nor %q", path, c.Role, RoleControlPlane, RoleWorker)
	}
	return c.WithDefaults(), nil
}

// WithDefaults fills empty fields with the host layout's paths.
func (c Config) WithDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.ImageDir, DefaultImageDir)
	def(&c.ControlConfig, DefaultControlConfig)
	def(&c.AgentConfig, DefaultAgentConfig)
	def(&c.LogDir, DefaultLogDir)
	def(&c.RunDir, DefaultRunDir)
	def(&c.ContainerdRoot, DefaultContainerdDir)
	return c
}

// ContainerdSocket is where containerd listens; the agent config names it.
func (c Config) ContainerdSocket() string {
	return filepath.Join(c.RunDir, "containerd", "containerd.sock")
}

// ContainerdConfigPath is where the generated containerd config is written:
// beside the agent's config, so it survives a reboot under systemd.
func (c Config) ContainerdConfigPath() string {
	return filepath.Join(filepath.Dir(c.AgentConfig), "containerd.toml")
}

// ContainerdTOML renders containerd's configuration: its own root, state and
// socket under berth's directories, and no CRI plugin.
func (c Config) ContainerdTOML() string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, c.ContainerdRoot, filepath.Join(c.RunDir, "containerd"), c.ContainerdSocket(), c.ContainerdSocket()+".ttrpc", filepath.Join(c.ContainerdRoot, "opt"))
}

// Service is one supervised program.
type Service struct {
	// Name is containerd, control or agent.
	Name string
	// Path and Args are the command line; Path is inside the image.
	Path string
	Args []string
	// Env is added to the environment (PATH with the image's bin first, so
	// containerd finds its shim and the shim finds runc).
	Env []string
	// KeepChildren marks containerd: stopped by its own PID only, so its
	// shims and containers stay alive.
	KeepChildren bool
}

// Services lists the host's services in start order, run from imageDir.
func (c Config) Services(imageDir string) []Service {
	bin := filepath.Join(imageDir, "bin")
	path := "PATH=" + bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	s := []Service{{
		Name: "containerd", Path: filepath.Join(bin, "containerd"),
		Args: []string{"--config", c.ContainerdConfigPath()}, Env: []string{path}, KeepChildren: true,
	}}
	if c.Role == RoleControlPlane {
		s = append(s, Service{Name: "control", Path: filepath.Join(bin, "berth"), Args: []string{"control", "--config", c.ControlConfig}, Env: []string{path}})
	}
	s = append(s, Service{Name: "agent", Path: filepath.Join(bin, "berth"), Args: []string{"agent", "--config", c.AgentConfig}, Env: []string{path}})
	return s
}
