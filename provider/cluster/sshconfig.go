package cluster

import "github.com/berth-io/berth/provider/ssh"

// SSHConfig is how the engine reaches one host: address, user, key, pinned
// host key, optional jump host. It is provider/ssh's HostConfig, named here
// so the IaC layers describe hosts through the engine alone, as the layout
// table requires.
type SSHConfig = ssh.HostConfig

// HostKeyStore records host keys seen at first contact and enforces them
// afterwards.
type HostKeyStore = ssh.HostKeyStore

// The SSH defaults a host that names no user or port gets.
const (
	DefaultSSHUser = ssh.DefaultUser
	DefaultSSHPort = ssh.DefaultPort
)

// NewMemoryHostKeyStore returns a host key store that lives as long as one
// operation; callers persist what it learns through State.
func NewMemoryHostKeyStore() HostKeyStore { return ssh.NewMemoryHostKeyStore() }
