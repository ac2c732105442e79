package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-io/berth/acceptance/testbed"
	"github.com/berth-io/berth/bench"
	"github.com/berth-io/berth/provider/cluster"
	"github.com/berth-io/berth/provider/nodeimage"
	"github.com/berth-io/berth/provider/ssh"
)

const (
	figClusterBootstrap = "cluster.bootstrap.1cp3w"
	figClusterUpload    = "cluster.upload.throughput"
	figClusterUpgrade   = "cluster.upgrade.per_node"
)

var clusterDescs = map[string]string{
	figClusterBootstrap: "provider/cluster bootstrap of 1 control-plane host and 3 workers on testbed hosts until every node is Ready, beside scp of the same bundle to the 4 hosts in parallel",
	figClusterUpload:    "node image upload over SSH with sha256 verified on the host (provider/ssh), beside OpenSSH scp of the same bundle over the same link",
	figClusterUpgrade:   "rolling upgrade of 1 control-plane host and 3 workers to another node image (cordon, drain, upload, install, healthy, uncordon), time per node, beside scp of the bundle to one host",
}

func init() {
	bench.Register(bench.Scenario{
		Name:    "cluster",
		Figures: clusterFigures,
		Run:     runCluster,
	})
}

// clusterRuns is how many measured runs each figure of the scenario takes.
const clusterRuns = 3

// clusterImage is one node image the scenario installs.
type clusterImage struct {
	version, path, digest string
}

var clusterFigures = []string{figClusterBootstrap, figClusterUpload, figClusterUpgrade}

func clusterSkipped(reason string) []bench.Figure {
	return skipAll(clusterFigures, clusterDescs, reason)
}

// clusterRepo is the module root (repoRoot), which must hold
// scripts/build-runtime.sh.
func clusterRepo() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "build-runtime.sh")); err != nil {
		return "", fmt.Errorf("not inside the berth repository: %w", err)
	}
	return root, nil
}

// buildClusterImage builds a node image of this tree's berth stamped with
// version, on the cached static runtime.
func buildClusterImage(ctx context.Context, repo, runtimeDir, dir, version string) (string, string, error) {
	bin := filepath.Join(dir, "berth-"+version)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin,
		"-ldflags", "-s -w -X github.com/berth-io/berth/internal/version.Version="+version, "./cmd/berth")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build berth %s: %w: %s", version, err, msg)
	}
	path := filepath.Join(dir, "node-image-"+version+".tar.gz")
	_, d, err := nodeimage.BuildFile(ctx, nodeimage.BuildSpec{BerthBinary: bin, BerthVersion: version, RuntimeDir: runtimeDir}, path)
	if err != nil {
		return "", "", err
	}
	return path, d.String(), nil
}

func runCluster(ctx context.Context, w io.Writer) ([]bench.Figure, error) {
	if os.Geteuid() != 0 {
		return clusterSkipped("needs root to make testbed hosts (network, mount and PID namespaces)"), nil
	}
	for _, b := range []string{"ip", "nft", "nsenter", "tc", "scp", "go"} {
		if _, err := exec.LookPath(b); err != nil {
			return clusterSkipped(b + " is not installed"), nil
		}
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		return clusterSkipped("/usr/sbin/sshd is not installed (openssh-server)"), nil
	}
	repo, err := clusterRepo()
	if err != nil {
		return clusterSkipped(err.Error()), nil
	}
	work, err := os.MkdirTemp("", "berth-bench-cluster-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	fmt.Fprintln(w, "  building three node images (versions bench-a, bench-b, bench-c)")
	out, err := exec.CommandContext(ctx, filepath.Join(repo, "scripts", "build-runtime.sh")).Output()
	if err != nil {
		return nil, fmt.Errorf("build runtime: %w", err)
	}
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		return nil, errors.New("build runtime: no directory printed")
	}
	runtimeDir := fields[len(fields)-1]
	var images []clusterImage
	for _, v := range []string{"v0.0.0-bench-a", "v0.0.0-bench-b", "v0.0.0-bench-c"} {
		path, digest, err := buildClusterImage(ctx, repo, runtimeDir, work, v)
		if err != nil {
			return nil, err
		}
		images = append(images, clusterImage{version: v, path: path, digest: digest})
	}
	pathA := images[0].path

	fmt.Fprintln(w, "  bringing up a testbed of 4 hosts")
	upCtx, upCancel := context.WithTimeout(ctx, 3*time.Minute)
	tb, err := testbed.Up(upCtx, testbed.Options{
		Name:    fmt.Sprintf("bench-cluster-%d", os.Getpid()),
		Vendors: []testbed.Vendor{{Name: "bench", Hosts: 4}},
	})
	upCancel()
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer dcancel()
		if err := tb.Down(dctx); err != nil {
			fmt.Fprintln(w, "  take testbed down:", err)
		}
	}()
	key, err := os.ReadFile(tb.PrivateKeyPath())
	if err != nil {
		return nil, err
	}
	hosts := tb.Hosts()
	knownHosts := filepath.Join(work, "known_hosts")
	var kh strings.Builder
	cfgs := make([]ssh.HostConfig, len(hosts))
	for i, h := range hosts {
		pattern := h.Address // OpenSSH looks port 22 up without brackets
		if h.SSHPort != 22 {
			pattern = fmt.Sprintf("[%s]:%d", h.Address, h.SSHPort)
		}
		fmt.Fprintf(&kh, "%s %s\n", pattern, strings.TrimSpace(h.HostPublicKey))
		cfgs[i] = ssh.HostConfig{Name: h.Name, Address: h.Address, Port: h.SSHPort, User: h.User, PrivateKey: key, HostKey: h.HostPublicKey}
	}
	if err := os.WriteFile(knownHosts, []byte(kh.String()), 0o600); err != nil {
		return nil, err
	}
	scp := func(ctx context.Context, h testbed.Host, remote string) error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, "scp", "-q", "-B", "-i", tb.PrivateKeyPath(), "-P", strconv.Itoa(h.SSHPort),
			"-o", "UserKnownHostsFile="+knownHosts, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
			pathA, h.User+"@"+h.Address+":"+remote)
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("scp to %s: %w: %s", h.Name, err, msg)
		}
		return nil
	}
	fi, err := os.Stat(pathA)
	if err != nil {
		return nil, err
	}
	mb := float64(fi.Size()) / 1e6
	// The image digest is the SHA-256 of the bundle's bytes.
	sum := nodeimage.Digest(images[0].digest).Hex()

	// Upload throughput: the engine's verified upload and scp, alternating,
	// to the same host over the same link.
	fmt.Fprintf(w, "  upload of a %.1f MB bundle: provider/ssh beside scp\n", mb)
	pool := ssh.NewPool(&ssh.Dialer{})
	defer pool.Close()
	c, err := pool.Client(ctx, cfgs[0])
	if err != nil {
		return nil, err
	}
	uploadOnce := func(ctx context.Context) (float64, error) {
		f, err := os.Open(pathA)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		began := time.Now()
		if err := c.Upload(ctx, f, fi.Size(), "/var/tmp/bench-upload.tar.gz", 0o600, sum); err != nil {
			return 0, err
		}
		return mb / time.Since(began).Seconds(), nil
	}
	scpOnce := func(ctx context.Context) (float64, error) {
		began := time.Now()
		if err := scp(ctx, hosts[0], "/var/tmp/bench-scp.tar.gz"); err != nil {
			return 0, err
		}
		return mb / time.Since(began).Seconds(), nil
	}
	var upl, base []float64
	for i := 0; i < 6; i++ {
		u, err := uploadOnce(ctx)
		if err != nil {
			return nil, fmt.Errorf("upload: %w", err)
		}
		s, err := scpOnce(ctx)
		if err != nil {
			return nil, err
		}
		if i > 0 { // the first pair warms caches
			upl, base = append(upl, u), append(base, s)
		}
	}
	figs := []bench.Figure{bench.NewFigure(figClusterUpload, clusterDescs[figClusterUpload], "MB/s", bench.HigherIsBetter, upl, "scp.throughput", base)}

	// scp of the bundle to every host at once: what moving the bytes alone
	// costs a bootstrap.
	scpAllOnce := func(ctx context.Context) (float64, error) {
		began := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, len(hosts))
		for i, h := range hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = scp(ctx, h, "/var/tmp/bench-scp.tar.gz")
			}()
		}
		wg.Wait()
		return time.Since(began).Seconds(), errors.Join(errs...)
	}
	scpAll, err := bench.Repeat(ctx, 1, clusterRuns, scpAllOnce)
	if err != nil {
		return nil, err
	}
	if err := pool.ForEach(ctx, cfgs, 4, func(ctx context.Context, c *ssh.Client) error {
		_, _, _, err := c.Run(ctx, "rm -f /var/tmp/bench-upload.tar.gz /var/tmp/bench-scp.tar.gz", ssh.RunOptions{Timeout: 30 * time.Second})
		return err
	}); err != nil {
		return nil, fmt.Errorf("remove uploaded copies: %w", err)
	}

	spec := cluster.Spec{
		ControlPlane: []cluster.Host{{Name: hosts[0].Name, SSH: cfgs[0]}},
		Image:        cluster.Image{Path: images[0].path, Digest: images[0].digest},
		Settings:     cluster.Settings{EtcdHeartbeatMs: 300, EtcdElectionMs: 3000},
		Rollout:      cluster.RolloutPolicy{HealthTimeout: 5 * time.Minute, DrainTimeout: 2 * time.Minute},
	}
	pool0 := cluster.WorkerPool{Name: "workers"}
	for i := 1; i < len(hosts); i++ {
		pool0.Hosts = append(pool0.Hosts, cluster.Host{Name: hosts[i].Name, SSH: cfgs[i]})
	}
	spec.Workers = []cluster.WorkerPool{pool0}
	var st cluster.State
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer dcancel()
		if err := cluster.Destroy(dctx, st, cluster.Options{}); err != nil {
			fmt.Fprintln(w, "  destroy:", err)
		}
	}()
	// Bootstrap from clean hosts, each run after a Destroy of the last.
	var boots []float64
	for i := 0; i < clusterRuns; i++ {
		if i > 0 {
			dctx, dcancel := context.WithTimeout(ctx, 5*time.Minute)
			err := cluster.Destroy(dctx, st, cluster.Options{})
			dcancel()
			if err != nil {
				return nil, fmt.Errorf("destroy between bootstraps: %w", err)
			}
			st = cluster.State{}
		}
		fmt.Fprintf(w, "  bootstrap %d of %d: 1 control-plane host and 3 workers\n", i+1, clusterRuns)
		began := time.Now()
		st, err = cluster.Apply(ctx, spec, cluster.State{}, cluster.Options{})
		if err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
		boots = append(boots, time.Since(began).Seconds())
	}
	figs = append(figs, bench.NewFigure(figClusterBootstrap, clusterDescs[figClusterBootstrap], "s", bench.LowerIsBetter, boots, "scp.bundle.4hosts", scpAll))

	// Upgrades rotate through the images, so every one uploads a bundle the
	// hosts do not keep (they keep the current and the previous image).
	var perNode []float64
	for i := 1; i <= clusterRuns; i++ {
		img := images[i%len(images)]
		fmt.Fprintf(w, "  rolling upgrade %d of %d of the 4 nodes to %s\n", i, clusterRuns, img.version)
		spec.Image = cluster.Image{Path: img.path, Digest: img.digest}
		began := time.Now()
		next, err := cluster.Apply(ctx, spec, st, cluster.Options{})
		st = next
		if err != nil {
			return nil, fmt.Errorf("rolling upgrade to %s: %w", img.version, err)
		}
		perNode = append(perNode, time.Since(began).Seconds()/float64(len(hosts)))
	}
	scp1 := make([]float64, len(base))
	for i, v := range base {
		scp1[i] = mb / v
	}
	figs = append(figs, bench.NewFigure(figClusterUpgrade, clusterDescs[figClusterUpgrade], "s", bench.LowerIsBetter, perNode, "scp.bundle.1host", scp1))
	return figs, nil
}
