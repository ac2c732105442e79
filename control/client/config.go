package client

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Config is what a client needs to reach a control plane: its endpoints,
// the cluster CA that signs them, and a client certificate. The control
// plane's dev mode writes exactly this JSON as admin.json, and a joined
// node stores its own copy, so tools read it with [LoadConfig].
type Config struct {
	// Endpoints are HTTPS base URLs of control-plane hosts, for example
	// https://198.18.0.10:6443; the client fails over between them.
	Endpoints []string `json:"endpoints"`
	// CACertificate is the cluster CA, PEM; servers must chain to it.
	CACertificate string `json:"caCertificate"`
	// ClientCertificate is the caller's PEM certificate, signed by the
	// cluster CA; empty only for the join request.
	ClientCertificate string `json:"clientCertificate"`
	// ClientKey is the PEM private key of ClientCertificate.
	ClientKey string `json:"clientKey"`
}

// LoadConfig reads a Config from a JSON file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read client config: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return Config{}, fmt.Errorf("parse client config %s: %w", path, err)
	}
	if len(cfg.Endpoints) == 0 {
		return Config{}, fmt.Errorf("client config %s: endpoints is empty: name at least one https:// control-plane address", path)
	}
	return cfg, nil
}

// Save writes the Config as JSON readable only by its owner (0600), because
// it holds a private key. It replaces the file atomically so a reader never
// sees half of it.
func (c Config) Save(path string) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode client config: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".client-config-*")
	if err != nil {
		return fmt.Errorf("save client config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save client config: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save client config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save client config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save client config: %w", err)
	}
	return nil
}
