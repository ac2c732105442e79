package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Latency between vendors without netem. The kernel here has no netem
// qdisc, so the router delays packets itself: policy routing sends every
// packet that arrives on one vendor's bridge for another vendor's subnet
// into a TUN device, the keeper reads it, holds it for the configured delay
// and writes it back into the device, and the kernel then routes it (the
// rules match only the bridges, so a packet coming out of the TUN device
// takes the main table) to the destination vendor's bridge. Each packet
// crossing between vendors is delayed once, so a round trip between hosts
// of different vendors takes at least twice the delay; traffic within a
// vendor, from the root namespace, and to or from the registry and the
// load balancer is not delayed.

const (
	// delayLink is the TUN device inside the router namespace.
	delayLink = "btbtun"
	// delayTable is the routing table that sends packets into it.
	delayTable = "100"
	// delayRulePref is the priority of the policy rules, before main (32766).
	delayRulePref = "1000"
	// delayQueue bounds the packets held at once; beyond it packets are
	// dropped, as a full router queue would.
	delayQueue = 1 << 16
)

// delayRoutes lists the `ip` commands (run in the router namespace) that
// route traffic between vendors through the delay device: one rule per
// ordered pair of vendors.
func delayRoutes(p plan, vendors int) [][]string {
	cmds := [][]string{
		{"route", "add", "default", "dev", delayLink, "table", delayTable},
	}
	for from := 1; from <= vendors; from++ {
		for to := 1; to <= vendors; to++ {
			if from == to {
				continue
			}
			cmds = append(cmds, []string{"rule", "add", "pref", delayRulePref, "iif", bridgeName(from),
				"to", p.VendorPrefix(to).String(), "lookup", delayTable})
		}
	}
	return cmds
}

// delayLine holds packets read from a TUN device for a fixed delay and
// writes them back in the order they came.
type delayLine struct {
	dev     *os.File
	delay   time.Duration
	queue   chan heldPacket
	dropped atomic.Uint64
}

type heldPacket struct {
	due time.Time
	pkt []byte
}

// startDelay makes the TUN device in the calling process's network
// namespace (the keeper runs in the router's), routes traffic between
// vendors through it and starts delaying. The device lives as long as the
// keeper holds it open; the routes and rules go with the namespace.
func startDelay(ctx context.Context, p plan, vendors int, delay time.Duration) (*delayLine, error) {
	dev, err := openTUN(delayLink)
	if err != nil {
		return nil, fmt.Errorf("make delay device: %w", err)
	}
	// The packets written back come in through the TUN device with the
	// source address of another interface's subnet: reverse-path filtering
	// must not drop them.
	for _, conf := range []string{"all", "default", delayLink} {
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+conf+"/rp_filter", []byte("0\n"), 0o644); err != nil {
			dev.Close()
			return nil, fmt.Errorf("turn off reverse-path filter on %s: %w", conf, err)
		}
	}
	cmds := append([][]string{{"link", "set", delayLink, "up"}}, delayRoutes(p, vendors)...)
	for _, c := range cmds {
		if err := ip(ctx, "", c...); err != nil {
			dev.Close()
			return nil, fmt.Errorf("route traffic between vendors through the delay device: %w", err)
		}
	}
	d := &delayLine{dev: dev, delay: delay, queue: make(chan heldPacket, delayQueue)}
	go d.read()
	go d.write()
	return d, nil
}

// openTUN makes (or attaches to) a TUN device without packet information
// headers and returns it in non-blocking mode, so Close ends a pending Read.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN device %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("make TUN device %s: %w", name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN device %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

// read takes packets off the device and queues each with the time it is
// due back; it ends when the device is closed.
func (d *delayLine) read() {
	defer close(d.queue)
	buf := make([]byte, 1<<16)
	for {
		n, err := d.dev.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				fmt.Fprintf(os.Stderr, "keeper: delay device: read: %v\n", err)
			}
			return
		}
		pkt := make([]byte, n)
		copy(pkt, buf[:n])
		select {
		case d.queue <- heldPacket{due: time.Now().Add(d.delay), pkt: pkt}:
		default:
			d.dropped.Add(1)
		}
	}
}

// write sends each queued packet back into the device once it is due. The
// delay is the same for every packet, so the queue is in due order and
// packets leave in the order they came.
func (d *delayLine) write() {
	timer := time.NewTimer(0)
	<-timer.C
	for p := range d.queue {
		if wait := time.Until(p.due); wait > 0 {
			timer.Reset(wait)
			<-timer.C
		}
		if _, err := d.dev.Write(p.pkt); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			// A packet the kernel refuses (e.g. no route any more) is lost,
			// as it would be on a real link.
			d.dropped.Add(1)
		}
	}
}

// Close stops delaying; the device disappears with its last file.
func (d *delayLine) Close() error { return d.dev.Close() }

// parseLatency reads the latency recorded in state ("" is none).
func parseLatency(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("parse latency %s: %w", strconv.Quote(s), err)
	}
	return d, nil
}
