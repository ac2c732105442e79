// Package sshtest runs a real SSH server in-process on loopback so tests of
// SSH-driven code can exercise host key pinning, authentication, command
// execution (through /bin/sh on this machine), uploads and jump hosts
// without a remote machine.
//
// It is for tests only: production code must never import it, and it must
// never listen anywhere but 127.0.0.1 nor forward to anything but loopback.
package sshtest
