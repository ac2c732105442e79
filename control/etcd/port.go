package etcd

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// PortReservation holds a TCP port on one address so nothing else binds it,
// without accepting connections, until a member started with
// Config.ReusePort has bound it too. It is how tests (and Start, for port 0)
// know a free port before the member starts, without a window in which
// another process could take it.
type PortReservation struct {
	host string
	port int

	mu sync.Mutex
	fd int
}

// ReservePort reserves a free port on the IP address host (for example
// "127.0.0.1") with a bound, non-listening socket that has SO_REUSEPORT set.
func ReservePort(host string) (*PortReservation, error) {
	return reservePort(host, 0)
}

func reservePort(host string, port int) (*PortReservation, error) {
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("reserve port on %q: not an ip address", host)
	}
	var (
		fd  int
		err error
		sa  unix.Sockaddr
	)
	if ip4 := ip.To4(); ip4 != nil {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		a := &unix.SockaddrInet4{Port: port}
		copy(a.Addr[:], ip4)
		sa = a
	} else {
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		a := &unix.SockaddrInet6{Port: port}
		copy(a.Addr[:], ip.To16())
		sa = a
	}
	if err != nil {
		return nil, fmt.Errorf("reserve port on %s: socket: %w", host, err)
	}
	// SO_REUSEPORT only: with SO_REUSEADDR too, Linux would let any
	// SO_REUSEADDR listener (every Go listener) bind the port, since the
	// reservation does not listen.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("reserve port on %s: setsockopt: %w", host, err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("reserve port on %s: bind: %w", host, err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("reserve port on %s: getsockname: %w", host, err)
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		port = a.Port
	case *unix.SockaddrInet6:
		port = a.Port
	}
	return &PortReservation{host: host, port: port, fd: fd}, nil
}

// Port is the reserved port number.
func (r *PortReservation) Port() int { return r.port }

// Addr is host:port of the reservation.
func (r *PortReservation) Addr() string { return net.JoinHostPort(r.host, strconv.Itoa(r.port)) }

// URL is scheme://host:port of the reservation, for Config's URL fields.
func (r *PortReservation) URL(scheme string) string { return scheme + "://" + r.Addr() }

// Release lets the port go; the member that bound it keeps it. Calling it
// again does nothing.
func (r *PortReservation) Release() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	if err != nil {
		return fmt.Errorf("release port %s: %w", r.Addr(), err)
	}
	return nil
}

// reserveZeroPort replaces a port-0 URL with a reserved port, returning the
// new URL and the reservation to release once the member has bound it.
func reserveZeroPort(u *url.URL) (*url.URL, *PortReservation, error) {
	if u.Port() != "0" {
		return u, nil, nil
	}
	r, err := ReservePort(u.Hostname())
	if err != nil {
		return nil, nil, err
	}
	out := *u
	out.Host = r.Addr()
	return &out, r, nil
}

func releaseAll(rs []*PortReservation) error {
	var errs []error
	for _, r := range rs {
		errs = append(errs, r.Release())
	}
	return errors.Join(errs...)
}
