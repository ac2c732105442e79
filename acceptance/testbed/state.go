package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc identifies a process beyond its PID: a PID is reused, the pair of PID
// and start time (clock ticks since boot, /proc/PID/stat field 22) is not.
type proc struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// procOf reads the identity of a running process.
func procOf(pid int) (proc, error) {
	start, state, err := readStat(pid)
	if err != nil {
		return proc{}, err
	}
	if state == "Z" || state == "X" {
		return proc{}, fmt.Errorf("process %d has exited", pid)
	}
	return proc{PID: pid, Start: start}, nil
}

func readStat(pid int) (start uint64, state string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", fmt.Errorf("read process %d status: %w", pid, err)
	}
	return parseStat(string(b))
}

// parseStat extracts the state and start time from /proc/PID/stat. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(s string) (start uint64, state string, err error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", fmt.Errorf("parse process status %q: no command name", s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, "", fmt.Errorf("parse process status %q: %d fields after the command name", s, len(f))
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("parse process start time: %w", err)
	}
	return start, f[0], nil
}

// alive reports whether the very process p names still runs: same PID,
// same start time, not a zombie.
func (p proc) alive() bool {
	if p.PID <= 0 {
		return false
	}
	start, state, err := readStat(p.PID)
	return err == nil && start == p.Start && state != "Z" && state != "X"
}

// kill sends SIGKILL to p if it is still the same process, and waits until
// it is gone (reaped by whoever is its parent, or a zombie).
func (p proc) kill(ctx context.Context) error {
	if !p.alive() {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process %d: %w", p.PID, err)
	}
	for p.alive() {
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return fmt.Errorf("wait for process %d to die: %w", p.PID, err)
		}
	}
	return nil
}

// killNamespace kills p, the init of a PID namespace, and waits until no
// process of that namespace runs any more: the kernel kills the others when
// init dies, but they finish dying a little later.
func (p proc) killNamespace(ctx context.Context) error {
	if !p.alive() {
		return nil
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p.PID))
	if err != nil {
		return fmt.Errorf("find PID namespace of process %d: %w", p.PID, err)
	}
	if err := p.kill(ctx); err != nil {
		return err
	}
	for processesIn(ns) > 0 {
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return fmt.Errorf("wait for the processes of PID namespace %s to die: %w", ns, err)
		}
	}
	return nil
}

// processesIn counts the machine's processes, zombies aside, in the PID
// namespace ns (as /proc/PID/ns/pid names it).
func processesIn(ns string) int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && l == ns {
			if _, state, err := readStat(pid); err == nil && state != "Z" && state != "X" {
				n++
			}
		}
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// hostState is what the testbed records about one host.
type hostState struct {
	Name    string `json:"name"`
	Vendor  string `json:"vendor"`
	VIndex  int    `json:"vendor_index"` // vendor number, from 1
	Index   int    `json:"index"`        // host number inside the vendor, from 1
	Link    string `json:"link"`         // router-side veth
	Init    proc   `json:"init"`         // PID 1 of the host's PID namespace, outside view
	Cut     bool   `json:"cut"`
	HostKey string `json:"host_key"` // authorized_keys line
}

// state is the testbed's record in StateDir/NAME/state.json. It is written
// before anything is made, so a crashed Up can be cleaned up from it.
type state struct {
	Name    string      `json:"name"`
	Block   int         `json:"block"`
	Owner   proc        `json:"owner"`
	Keeper  proc        `json:"keeper"`
	Vendors []Vendor    `json:"vendors"`
	Hosts   []hostState `json:"hosts"`
	Latency string      `json:"latency,omitempty"`
	Created time.Time   `json:"created"`
}

func readState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read testbed state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("parse testbed state %s: %w", path, err)
	}
	return &st, nil
}

func writeState(path string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode testbed state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write testbed state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write testbed state: %w", err)
	}
	return nil
}

// lockDir takes the machine-wide testbed lock (an flock on StateDir/lock)
// that guards leases and every state.json. Unlock by calling the result.
func lockDir(ctx context.Context, dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("make testbed state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open testbed lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock testbed state: %w", err)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			f.Close()
			return nil, fmt.Errorf("wait for testbed lock: %w", err)
		}
	}
}
