// Command nodebench is the part of berth's node benchmarks that runs on a
// testbed host, so that its timings include no exec or SSH round trip:
// the raw containerd baselines (`ctr run` of the test web image until the
// process answers HTTP) and an HTTP load generator (keep-alive or a fresh
// connection per request). It prints one JSON object on stdout.
//
//	nodebench ctr-seq   -address SOCK -namespace NS -image REF -prefix ID -n 100 -port-base 20000
//	nodebench ctr-burst -address SOCK -namespace NS -image REF -prefix ID -n 100 -port-base 20000
//	nodebench ctr-clean -address SOCK -namespace NS -prefix ID
//	nodebench http-load -addr HOST:PORT -conns 8 -duration 5s -mode keepalive|fresh
//
// It talks only to the containerd socket it is given, to loopback and to
// the address it is given.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nodebench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: nodebench ctr-seq|ctr-burst|ctr-clean|http-load [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	ctrBin := fs.String("ctr", "ctr", "ctr binary")
	address := fs.String("address", "", "containerd socket")
	ns := fs.String("namespace", "", "containerd namespace")
	image := fs.String("image", "", "image reference (already pulled into the namespace)")
	prefix := fs.String("prefix", "raw", "container ID prefix")
	n := fs.Int("n", 100, "containers")
	portBase := fs.Int("port-base", 20000, "container i listens on port-base+i (host network)")
	addr := fs.String("addr", "", "http-load: host:port")
	conns := fs.Int("conns", 8, "http-load: concurrent connections (workers)")
	dur := fs.Duration("duration", 5*time.Second, "http-load: how long")
	mode := fs.String("mode", "keepalive", "http-load: keepalive or fresh")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch {
	case *n < 0:
		return fmt.Errorf("-n %d: must not be negative", *n)
	case *conns < 1:
		return fmt.Errorf("-conns %d: must be at least 1", *conns)
	case *dur <= 0:
		return fmt.Errorf("-duration %s: must be positive", *dur)
	case *mode != "keepalive" && *mode != "fresh":
		return fmt.Errorf("-mode %q: must be keepalive or fresh", *mode)
	}
	// The ctr commands name their containerd and namespace explicitly: an
	// empty one would let ctr fall back to the host's default containerd
	// (and ctr-clean remove what is not ours there).
	var required []string
	switch args[0] {
	case "ctr-seq", "ctr-burst":
		required = []string{"address", "namespace", "image"}
	case "ctr-clean":
		required = []string{"address", "namespace"}
	case "http-load":
		required = []string{"addr"}
	}
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			return fmt.Errorf("%s needs -%s", args[0], name)
		}
	}
	c := ctr{bin: *ctrBin, address: *address, ns: *ns}
	enc := json.NewEncoder(stdout)
	switch args[0] {
	case "ctr-seq":
		ms := make([]float64, 0, *n)
		for i := 0; i < *n; i++ {
			d, err := c.runUntilAnswering(ctx, *image, fmt.Sprintf("%s-%d", *prefix, i), *portBase+i)
			if err != nil {
				return err
			}
			ms = append(ms, float64(d.Microseconds())/1000)
		}
		return enc.Encode(map[string]any{"ms": ms})
	case "ctr-burst":
		start := time.Now()
		errs := make(chan error, *n)
		var wg sync.WaitGroup
		for i := 0; i < *n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.runUntilAnswering(ctx, *image, fmt.Sprintf("%s-%d", *prefix, i), *portBase+i)
				errs <- err
			}()
		}
		wg.Wait()
		secs := time.Since(start).Seconds()
		close(errs)
		for err := range errs {
			if err != nil {
				return err
			}
		}
		return enc.Encode(map[string]any{"seconds": secs})
	case "ctr-clean":
		removed, err := c.clean(ctx, *prefix)
		if err != nil {
			return err
		}
		return enc.Encode(map[string]any{"removed": removed})
	case "http-load":
		res, err := httpLoad(ctx, *addr, *conns, *dur, *mode == "fresh")
		if err != nil {
			return err
		}
		return enc.Encode(res)
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
}

type ctr struct{ bin, address, ns string }

func (c ctr) cmd(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"-a", c.address, "-n", c.ns}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// runUntilAnswering creates and starts a container of image on the host
// network (`ctr run -d --net-host`, PORT=port) and returns the time until
// GET /healthz on 127.0.0.1:port answers 200.
func (c ctr) runUntilAnswering(ctx context.Context, image, id string, port int) (time.Duration, error) {
	start := time.Now()
	if _, err := c.cmd(ctx, "run", "-d", "--net-host", "--env", "PORT="+strconv.Itoa(port), image, id); err != nil {
		return 0, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
	cl := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := start.Add(2 * time.Minute)
	for {
		resp, err := cl.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("container %s: %s not answering 200 after 2m (last error %v)", id, url, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clean removes every container of the namespace whose ID starts with
// prefix: its task killed and deleted, then the container. It returns how
// many it removed.
func (c ctr) clean(ctx context.Context, prefix string) (int, error) {
	out, err := c.cmd(ctx, "containers", "list", "-q")
	if err != nil {
		return 0, err
	}
	var ids []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, _ = c.cmd(ctx, "task", "delete", "-f", id) // no task is fine
			if _, err := c.cmd(ctx, "containers", "delete", id); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return len(ids), nil
}

// loadResult is what http-load prints.
type loadResult struct {
	Requests int `json:"requests"`
	// Failed counts requests that failed (dial, write, read or a non-200
	// answer); a failed keep-alive connection is replaced by a new one.
	Failed     int     `json:"failed"`
	FirstError string  `json:"first_error,omitempty"`
	RPS        float64 `json:"rps"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
}

// httpLoad sends GET / from conns workers for dur. With fresh, every
// request dials a new TCP connection (and resets it after the answer); the
// latency then includes the handshake. Otherwise each worker keeps one
// connection. Latencies are per successful request, as the worker sees
// them; failures are counted (the first one's error kept) and the worker
// goes on, with a new connection.
func httpLoad(ctx context.Context, addr string, conns int, dur time.Duration, fresh bool) (loadResult, error) {
	var total, failed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	lat := make([][]float64, conns)
	start := time.Now()
	stop := start.Add(dur)
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn net.Conn
			var br *bufio.Reader
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			fail := func(err error) {
				failed.Add(1)
				select {
				case errs <- err:
				default:
				}
				if conn != nil {
					conn.Close()
					conn = nil
				}
			}
			for time.Now().Before(stop) && ctx.Err() == nil {
				t0 := time.Now()
				if conn == nil {
					var err error
					conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
					if err != nil {
						conn = nil
						fail(err)
						continue
					}
					br = bufio.NewReader(conn)
				}
				_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := conn.Write(req); err != nil {
					fail(err)
					continue
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					fail(err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					fail(fmt.Errorf("GET / from %s: %s", addr, resp.Status))
					continue
				}
				if fresh {
					// The client closes with a reset (SO_LINGER 0), so no
					// side keeps TIME_WAIT sockets: at thousands of
					// connections a second, the server's TIME_WAITs for the
					// masqueraded source (every connection through a service
					// reaches the pod from the node's bridge address) met
					// SYNs of later connections on the same ports and cost
					// one-second SYN retransmits, and TIME_WAITs of one
					// target's run disturbed the next target's.
					if tc, ok := conn.(*net.TCPConn); ok {
						_ = tc.SetLinger(0)
					}
					conn.Close()
					conn = nil
				}
				lat[w] = append(lat[w], float64(time.Since(t0).Nanoseconds())/1000)
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	close(errs)
	firstErr := ""
	if err := <-errs; err != nil {
		firstErr = err.Error()
	}
	var all []float64
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return loadResult{}, fmt.Errorf("no request completed (%d failed, first: %s)", failed.Load(), firstErr)
	}
	sort.Float64s(all)
	pct := func(p float64) float64 {
		i := int(p/100*float64(len(all))+0.999999) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(all) {
			i = len(all) - 1
		}
		return all[i]
	}
	return loadResult{Requests: len(all), Failed: int(failed.Load()), FirstError: firstErr, RPS: float64(total.Load()) / elapsed, P50us: pct(50), P99us: pct(99)}, nil
}
