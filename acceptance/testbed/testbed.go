package testbed

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Errors callers branch on.
var (
	// ErrExists: a live testbed of that name already exists.
	ErrExists = errors.New("testbed already exists")
	// ErrNotFound: no testbed of that name.
	ErrNotFound = errors.New("no such testbed")
	// ErrNoHost: the testbed has no host of that name.
	ErrNoHost = errors.New("no such host")
	// ErrPoweredOff: the host is killed, so nothing runs in it.
	ErrPoweredOff = errors.New("host is powered off")
	// ErrFull: every address block is leased.
	ErrFull = errors.New("every testbed address block is in use")
)

// User is the login user of every host.
const User = "root"

// Testbed is a running testbed: a router, vendors, hosts, the registry and
// the load balancer. Its methods are safe for concurrent use, and also work
// on a testbed another process made (see Open).
type Testbed struct {
	root     string // StateDir, a field so tests of cleanup can see it
	dir      string // StateDir/NAME
	name     string // never changes, read without mu
	block    int    // never changes once leased, read without mu
	progress io.Writer

	mu sync.Mutex
	st state
}

func (tb *Testbed) plan() plan         { return plan{block: tb.block} }
func (tb *Testbed) statePath() string  { return filepath.Join(tb.dir, "state.json") }
func (tb *Testbed) keyPath() string    { return filepath.Join(tb.dir, "id_ed25519") }
func (tb *Testbed) socketPath() string { return filepath.Join(tb.dir, "keeper.sock") }

func (tb *Testbed) logf(format string, args ...any) {
	if tb.progress != nil {
		fmt.Fprintf(tb.progress, "testbed %s: %s\n", tb.name, fmt.Sprintf(format, args...))
	}
}

// Up makes a testbed and returns when every host answers SSH, the registry
// and the load balancer are serving. Before that it removes every testbed
// whose owner has died. On failure it removes what it made.
func Up(ctx context.Context, o Options) (*Testbed, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if !childReady {
		return nil, fmt.Errorf("testbed %q: the program must call testbed.RunChild first thing in main (testbed.Main does it for tests)", o.Name)
	}
	self, err := procOf(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("testbed %q: %w", o.Name, err)
	}
	tb := &Testbed{root: StateDir, dir: filepath.Join(StateDir, o.Name), name: o.Name, progress: o.Progress}
	tb.st = state{Name: o.Name, Owner: self, Vendors: o.Vendors, Created: time.Now().UTC()}
	if o.Latency > 0 {
		tb.st.Latency = o.Latency.String()
	}
	for v, vendor := range o.Vendors {
		for i := 1; i <= vendor.Hosts; i++ {
			tb.st.Hosts = append(tb.st.Hosts, hostState{
				Name: fmt.Sprintf("%s-%d", vendor.Name, i), Vendor: vendor.Name,
				VIndex: v + 1, Index: i, Link: hostLinkName(v+1, i),
			})
		}
	}
	if err := tb.lease(ctx); err != nil {
		return nil, err
	}
	tb.logf("leased %s", tb.plan().Block())
	if err := tb.build(ctx, o); err != nil {
		derr := tb.Down(context.WithoutCancel(ctx))
		return nil, errors.Join(fmt.Errorf("make testbed %q: %w", o.Name, err), derr)
	}
	tb.logf("up: %d hosts, registry %s, load balancer %s", len(tb.st.Hosts), tb.RegistryAddr(), tb.LBAddr())
	return tb, nil
}

// lease cleans up dead testbeds and records this one, with the lowest free
// address block, under the machine-wide lock.
func (tb *Testbed) lease(ctx context.Context) error {
	unlock, err := lockDir(ctx, tb.root)
	if err != nil {
		return err
	}
	defer unlock()
	used := map[int]bool{}
	entries, err := os.ReadDir(tb.root)
	if err != nil {
		return fmt.Errorf("list testbeds: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(tb.root, e.Name())
		st, err := readState(filepath.Join(dir, "state.json"))
		if errors.Is(err, os.ErrNotExist) {
			// Made and recorded under this lock, so a directory without a
			// record is what a crash between the two left behind.
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("remove unrecorded testbed directory: %w", err)
			}
			continue
		}
		if err != nil {
			return err
		}
		if st.Owner.alive() {
			if st.Name == tb.st.Name {
				return fmt.Errorf("testbed %q (owner PID %d): %w", st.Name, st.Owner.PID, ErrExists)
			}
			used[st.Block] = true
			continue
		}
		old := &Testbed{root: tb.root, dir: dir, name: st.Name, block: st.Block, progress: tb.progress, st: *st}
		tb.logf("removing testbed %q: its owner (PID %d) has died", st.Name, st.Owner.PID)
		if err := old.teardown(ctx); err != nil {
			return fmt.Errorf("remove dead testbed %q: %w", st.Name, err)
		}
	}
	tb.st.Block = -1
	for b := 0; b < BlockCount; b++ {
		if used[b] {
			continue
		}
		// A link of that name that no testbed records is not ours to take.
		if _, err := os.Stat("/sys/class/net/" + (plan{block: b}).RootLink()); err == nil {
			continue
		}
		tb.st.Block = b
		break
	}
	if tb.st.Block < 0 {
		return fmt.Errorf("testbed %q: %w", tb.st.Name, ErrFull)
	}
	tb.block = tb.st.Block
	if err := os.MkdirAll(tb.dir, 0o700); err != nil {
		return fmt.Errorf("make testbed directory: %w", err)
	}
	return writeState(tb.statePath(), &tb.st)
}

// build makes everything recorded in tb.st.
func (tb *Testbed) build(ctx context.Context, o Options) error {
	clientKey, err := writeClientKey(tb.keyPath())
	if err != nil {
		return err
	}
	p := tb.plan()
	tb.logf("building router and %d vendor networks", len(tb.st.Vendors))
	if err := buildRouter(ctx, &tb.st, p); err != nil {
		return err
	}
	for i := range tb.st.Hosts {
		h := &tb.st.Hosts[i]
		key, err := prepareDisk(tb.diskDir(h.Name), h.Name, clientKey)
		if err != nil {
			return err
		}
		h.HostKey = key
		if err := buildHostNet(ctx, &tb.st, p, h); err != nil {
			return err
		}
	}
	if err := tb.save(ctx); err != nil {
		return err
	}
	tb.logf("starting keeper (registry and load balancer)")
	keeper, err := tb.startKeeper(ctx)
	if err != nil {
		return err
	}
	tb.st.Keeper = keeper
	if o.Detach {
		tb.st.Owner = keeper
	}
	if err := tb.save(ctx); err != nil {
		return err
	}
	tb.logf("booting %d hosts", len(tb.st.Hosts))
	errs := make([]error, len(tb.st.Hosts))
	var wg sync.WaitGroup
	for i := range tb.st.Hosts {
		h := &tb.st.Hosts[i]
		if h.Init, err = tb.startHost(h); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = waitSSH(ctx, tb.sshAddr(h), h.Init)
		}()
	}
	wg.Wait()
	if err := tb.save(ctx); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// writeClientKey makes the testbed's SSH client key pair, authorised on
// every host, and returns its public half.
func writeClientKey(path string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate testbed client key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "berth-testbed")
	if err != nil {
		return nil, fmt.Errorf("encode testbed client key: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("write testbed client key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode testbed client key: %w", err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		return nil, fmt.Errorf("write testbed client key: %w", err)
	}
	return sshPub, nil
}

// save writes tb.st under the machine-wide lock. Callers hold tb.mu or own
// tb exclusively.
func (tb *Testbed) save(ctx context.Context) error {
	unlock, err := lockDir(ctx, tb.root)
	if err != nil {
		return err
	}
	defer unlock()
	return writeState(tb.statePath(), &tb.st)
}

// Open attaches to a testbed made by another process (or this one), to
// run faults, control the load balancer or take it down.
func Open(ctx context.Context, name string) (*Testbed, error) {
	stateDir := StateDir
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("open testbed %q: invalid name", name)
	}
	dir := filepath.Join(stateDir, name)
	unlock, err := lockDir(ctx, stateDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := readState(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open testbed %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open testbed %q: %w", name, err)
	}
	return &Testbed{root: stateDir, dir: dir, name: st.Name, block: st.Block, st: *st}, nil
}

// SetProgress sets where the testbed reports its steps (nil: nowhere).
func (tb *Testbed) SetProgress(w io.Writer) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.progress = w
}

// Down removes everything the testbed made: host processes, the keeper,
// network namespaces (with their links, bridges and firewall), the root link
// and its route, and the state directory with the host disks.
func (tb *Testbed) Down(ctx context.Context) error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	unlock, err := lockDir(ctx, tb.root)
	if err != nil {
		return err
	}
	defer unlock()
	// Re-read: another process may have rebooted hosts since.
	if st, err := readState(tb.statePath()); err == nil {
		tb.st = *st
	}
	tb.logf("tearing down")
	return tb.teardown(ctx)
}

// teardown removes the testbed; the caller holds the machine-wide lock.
func (tb *Testbed) teardown(ctx context.Context) error {
	var errs []error
	for _, h := range tb.st.Hosts {
		if err := h.Init.killNamespace(ctx); err != nil {
			errs = append(errs, fmt.Errorf("power off host %q: %w", h.Name, err))
		}
	}
	if err := tb.st.Keeper.kill(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop keeper: %w", err))
	}
	if err := removeNetwork(ctx, tb.name, tb.plan()); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(tb.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove testbed state: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tear down testbed %q: %w", tb.name, err)
	}
	return nil
}

// Name is the testbed's name.
func (tb *Testbed) Name() string { return tb.name }

// Dir is the testbed's state directory (keys, host disks, logs).
func (tb *Testbed) Dir() string { return tb.dir }

// Block is the address block leased to the testbed; the root namespace has
// a route to it and to nothing else of the testbed.
func (tb *Testbed) Block() netip.Prefix { return tb.plan().Block() }

// RegistryAddr is the registry's "address:port", reachable over plain HTTP
// from the root namespace and from every host.
func (tb *Testbed) RegistryAddr() string {
	return net.JoinHostPort(tb.plan().Registry().String(), strconv.Itoa(RegistryPort))
}

// LBAddr is the load balancer's "address:port", reachable from the root
// namespace and from every host.
func (tb *Testbed) LBAddr() string {
	return net.JoinHostPort(tb.plan().LB().String(), strconv.Itoa(LBPort))
}

// PrivateKeyPath is the file holding the client key authorised on every host.
func (tb *Testbed) PrivateKeyPath() string { return tb.keyPath() }

func (tb *Testbed) sshAddr(h *hostState) string {
	return net.JoinHostPort(tb.plan().HostAddr(h.VIndex, h.Index).String(), strconv.Itoa(SSHPort))
}

func (tb *Testbed) hostOf(h *hostState) Host {
	return Host{
		Name: h.Name, Vendor: h.Vendor, Address: tb.plan().HostAddr(h.VIndex, h.Index).String(),
		SSHPort: SSHPort, User: User, PrivateKeyPath: tb.keyPath(), HostPublicKey: h.HostKey,
	}
}

// Hosts lists every host, vendor by vendor.
func (tb *Testbed) Hosts() []Host {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	out := make([]Host, 0, len(tb.st.Hosts))
	for i := range tb.st.Hosts {
		out = append(out, tb.hostOf(&tb.st.Hosts[i]))
	}
	return out
}

// Host finds a host by name.
func (tb *Testbed) Host(name string) (Host, error) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	h, err := tb.find(name)
	if err != nil {
		return Host{}, err
	}
	return tb.hostOf(h), nil
}

func (tb *Testbed) find(name string) (*hostState, error) {
	for i := range tb.st.Hosts {
		if tb.st.Hosts[i].Name == name {
			return &tb.st.Hosts[i], nil
		}
	}
	return nil, fmt.Errorf("testbed %q: %w: %q", tb.name, ErrNoHost, name)
}

// Inventory describes the testbed for programs that did not make it.
func (tb *Testbed) Inventory() *Inventory {
	return &Inventory{
		Name: tb.name, Hosts: tb.Hosts(), Registry: tb.RegistryAddr(), LoadBalancer: tb.LBAddr(),
		Block: tb.Block().String(), StateDir: tb.dir,
	}
}

// update re-reads the state under the lock, lets change modify it and
// writes it back, so several processes can drive faults on one testbed.
func (tb *Testbed) update(ctx context.Context, change func() error) error {
	unlock, err := lockDir(ctx, tb.root)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := readState(tb.statePath())
	if err != nil {
		return err
	}
	tb.st = *st
	if err := change(); err != nil {
		return err
	}
	return writeState(tb.statePath(), &tb.st)
}

// KillHost cuts a host's power: every process in it dies at once (its
// PID namespace's init is killed) and its network link goes dead, so its
// address stops answering. The disk stays as it was.
func (tb *Testbed) KillHost(ctx context.Context, name string) error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.update(ctx, func() error {
		h, err := tb.find(name)
		if err != nil {
			return err
		}
		if err := h.Init.killNamespace(ctx); err != nil {
			return fmt.Errorf("kill host %q: %w", name, err)
		}
		h.Init = proc{}
		tb.logf("killed host %s", name)
		return setLink(ctx, &tb.st, h, false)
	})
}

// CutHost takes a host off the network (its link goes down) while its
// processes keep running.
func (tb *Testbed) CutHost(ctx context.Context, name string) error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.update(ctx, func() error {
		h, err := tb.find(name)
		if err != nil {
			return err
		}
		h.Cut = true
		tb.logf("cut host %s off the network", name)
		return setLink(ctx, &tb.st, h, false)
	})
}

// BootHost powers a killed host on again: its init mounts the same disk and
// starts sshd. It returns when sshd answers (or at once if the host is also
// cut off). Booting a running host does nothing.
func (tb *Testbed) BootHost(ctx context.Context, name string) error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var wait func() error
	err := tb.update(ctx, func() error {
		h, err := tb.find(name)
		if err != nil {
			return err
		}
		if h.Init.alive() {
			return nil
		}
		if !h.Cut {
			if err := setLink(ctx, &tb.st, h, true); err != nil {
				return err
			}
		}
		if h.Init, err = tb.startHost(h); err != nil {
			return err
		}
		tb.logf("booted host %s", name)
		if !h.Cut {
			addr, init := tb.sshAddr(h), h.Init
			wait = func() error { return waitSSH(ctx, addr, init) }
		}
		return nil
	})
	if err != nil || wait == nil {
		return err
	}
	return wait()
}

// HealHost undoes every fault: a cut host is put back on the network, a
// killed host is booted. It returns when sshd answers.
func (tb *Testbed) HealHost(ctx context.Context, name string) error {
	tb.mu.Lock()
	err := tb.update(ctx, func() error {
		h, err := tb.find(name)
		if err != nil {
			return err
		}
		if h.Cut {
			h.Cut = false
			tb.logf("put host %s back on the network", name)
			if h.Init.alive() {
				return setLink(ctx, &tb.st, h, true)
			}
		}
		return nil
	})
	tb.mu.Unlock()
	if err != nil {
		return err
	}
	return tb.BootHost(ctx, name)
}

// Running reports whether a host is powered on (its init is alive).
func (tb *Testbed) Running(name string) (bool, error) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	h, err := tb.find(name)
	if err != nil {
		return false, err
	}
	if st, err := readState(tb.statePath()); err == nil {
		for _, x := range st.Hosts {
			if x.Name == name {
				return x.Init.alive(), nil
			}
		}
	}
	return h.Init.alive(), nil
}

// Exec runs a shell command inside a host (all of its namespaces, as root,
// without SSH) and returns its combined output. It is meant for assertions
// about a host, not for provisioning, which goes through SSH.
func (tb *Testbed) Exec(ctx context.Context, host, command string) ([]byte, error) {
	tb.mu.Lock()
	h, err := tb.find(host)
	if err == nil {
		if st, rerr := readState(tb.statePath()); rerr == nil {
			tb.st = *st
			h, err = tb.find(host)
		}
	}
	var init proc
	if err == nil {
		init = h.Init
	}
	tb.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if !init.alive() {
		return nil, fmt.Errorf("exec on host %q: %w", host, ErrPoweredOff)
	}
	cmd := exec.CommandContext(ctx, "nsenter", "--target", strconv.Itoa(init.PID),
		"--mount", "--uts", "--net", "--pid", "--wd=/", "--", "/bin/sh", "-c", command)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("exec %q on host %q: %w: %s", command, host, err, strings.TrimSpace(string(out)))
	}
	return out, nil
}
