// Package prober measures a service's availability the way its clients feel
// it, so acceptance tests can state "zero failed requests" during a rolling
// update, a node replacement or a vendor move, and mean it.
//
// A prober sends HTTP GET requests to one URL at a steady rate (default 20
// per second), each on a fresh TCP connection (keep-alives off), with no
// retries and a timeout (default 2 s) covering connect, request and the
// whole response. A request succeeds when it gets a 2xx status and its body
// is read in full; anything else is a failure, counted with a short reason
// ("connection refused", "timeout", "http 503", ...). Requests are sent on
// schedule whether or not earlier ones have answered, so a stalled server
// shows up as failures, not as a slower probe.
//
// A test uses it like this:
//
//	p, err := prober.Start(ctx, prober.Config{URL: "http://" + lbAddr + "/"})
//	... roll out v2 ...
//	p.Wait(ctx, func(r prober.Result) bool { return r.Seen("web v2 ") > 0 })
//	res := p.Stop()
//	if res.Failed != 0 { t.Fatalf("%d requests failed: %v", res.Failed, res.Reasons) }
//
// Stop waits for requests in flight, so its Result counts every request sent
// exactly once. Times in a Result are the times requests were sent, so a test
// can tell which requests were sent after an event it caused. The prober
// only ever sends to the URL it is given and never logs.
package prober

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultRate    = 20.0
	DefaultTimeout = 2 * time.Second
)

// Limits that keep a long run's Result small.
const (
	maxBodyBytes    = 4 << 10 // read at most this much of a response
	maxBodyKey      = 200     // bodies are recorded trimmed to this length
	maxDistinctKeys = 1000    // distinct bodies and reasons recorded; the rest count as "other"
)

// Config says what to probe and how hard.
type Config struct {
	// URL is requested with GET; only http:// URLs are expected.
	URL string
	// Rate is the number of requests started per second (default 20).
	Rate float64
	// Timeout bounds each request from dial to the end of the body
	// (default 2 s).
	Timeout time.Duration
}

// Result is what a prober has counted so far.
type Result struct {
	// Sent counts requests started; Succeeded + Failed of them have ended.
	Sent, Succeeded, Failed int
	// Reasons counts failures by reason, e.g. "connection refused",
	// "connection reset", "timeout", "eof", "http 500".
	Reasons map[string]int
	// Bodies counts successful responses by body (trimmed of surrounding
	// space, at most 200 bytes): "web v1 pod=web-abc" etc.
	Bodies map[string]int
	// FirstFailure and LastFailure are when the earliest and the latest
	// failed requests were sent; zero when none failed.
	FirstFailure, LastFailure time.Time
	// LastSuccess is when the latest successful request was sent.
	LastSuccess time.Time
	// Started is when the prober started; Stopped when Stop returned
	// (zero until then).
	Started, Stopped time.Time
}

// Seen counts successful responses whose body contains substr, e.g.
// Seen("web v2 ") for answers from version v2.
func (r Result) Seen(substr string) int {
	n := 0
	for body, c := range r.Bodies {
		if strings.Contains(body, substr) {
			n += c
		}
	}
	return n
}

// String summarises r for test failure messages.
func (r Result) String() string {
	s := fmt.Sprintf("sent %d, succeeded %d, failed %d, reasons %v, bodies %v", r.Sent, r.Succeeded, r.Failed, r.Reasons, r.Bodies)
	if r.Failed > 0 {
		// When they failed lets a test's timeline say what was happening.
		s += fmt.Sprintf(", failures between %s and %s", r.FirstFailure.Format("15:04:05.000"), r.LastFailure.Format("15:04:05.000"))
	}
	return s
}

// Prober sends requests until Stop. Its methods are safe for concurrent use.
type Prober struct {
	cfg    Config
	client *http.Client
	cancel context.CancelFunc
	sender chan struct{} // closed when the sending loop has ended

	mu       sync.Mutex
	res      Result
	changed  chan struct{}
	requests sync.WaitGroup
	stopOnce sync.Once
}

// Start validates cfg and starts probing at once; it sends until Stop is
// called or ctx ends. Requests in flight when ctx ends still run to their
// own timeout, so none is counted as failed for the prober's sake.
func Start(ctx context.Context, cfg Config) (*Prober, error) {
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Rate < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("start prober: rate %v and timeout %s must be positive", cfg.Rate, cfg.Timeout)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("start prober: %q is not an http URL", cfg.URL)
	}
	sctx, cancel := context.WithCancel(ctx)
	p := &Prober{
		cfg: cfg,
		client: &http.Client{
			Transport: &http.Transport{
				// A fresh connection per request, and never through a
				// proxy from the environment.
				DisableKeepAlives: true,
				Proxy:             nil,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		cancel:  cancel,
		sender:  make(chan struct{}),
		changed: make(chan struct{}),
		res: Result{
			Reasons: map[string]int{},
			Bodies:  map[string]int{},
			Started: time.Now(),
		},
	}
	go p.send(sctx)
	return p, nil
}

// send starts one request now and then one per tick until ctx ends.
func (p *Prober) send(ctx context.Context) {
	defer close(p.sender)
	t := time.NewTicker(time.Duration(float64(time.Second) / p.cfg.Rate))
	defer t.Stop()
	for {
		p.mu.Lock()
		p.res.Sent++
		p.requests.Add(1)
		p.mu.Unlock()
		go p.probe(context.WithoutCancel(ctx))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe sends one request and records its outcome.
func (p *Prober) probe(ctx context.Context) {
	defer p.requests.Done()
	sent := time.Now()
	body, reason := p.do(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if reason == "" {
		p.res.Succeeded++
		if sent.After(p.res.LastSuccess) {
			p.res.LastSuccess = sent
		}
		count(p.res.Bodies, body)
	} else {
		p.res.Failed++
		if p.res.FirstFailure.IsZero() || sent.Before(p.res.FirstFailure) {
			p.res.FirstFailure = sent
		}
		if sent.After(p.res.LastFailure) {
			p.res.LastFailure = sent
		}
		count(p.res.Reasons, reason)
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// count adds one to m[key], folding keys beyond the limit into "other".
func count(m map[string]int, key string) {
	if _, ok := m[key]; !ok && len(m) >= maxDistinctKeys {
		key = "other"
	}
	m[key]++
}

// do sends one request and returns the trimmed body, or a failure reason.
func (p *Prober) do(ctx context.Context) (body, reason string) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.URL, nil)
	if err != nil {
		return "", reasonOf(err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return "", reasonOf(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return "", reasonOf(err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Sprintf("http %d", resp.StatusCode)
	}
	body = strings.TrimSpace(string(b))
	if len(body) > maxBodyKey {
		body = body[:maxBodyKey]
	}
	return body, ""
}

// reasonOf names a request error the way an operator would.
func reasonOf(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// Snapshot returns the counts so far; requests in flight are in Sent only.
func (p *Prober) Snapshot() Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snapshotLocked()
}

func (p *Prober) snapshotLocked() Result {
	r := p.res
	r.Reasons = maps.Clone(p.res.Reasons)
	r.Bodies = maps.Clone(p.res.Bodies)
	return r
}

// Wait blocks until cond holds for the counts (evaluated now and after
// every request ends) or ctx ends. Tests use it instead of sleeping.
func (p *Prober) Wait(ctx context.Context, cond func(Result) bool) error {
	for {
		p.mu.Lock()
		ok := cond(p.snapshotLocked())
		ch := p.changed
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for probe results: %w (so far: %s)", ctx.Err(), p.Snapshot())
		}
	}
}

// Stop ends sending, waits for the requests in flight (at most one
// timeout), and returns the final counts. Later calls return the same
// counts.
func (p *Prober) Stop() Result {
	p.stopOnce.Do(func() {
		p.cancel()
		<-p.sender
		p.requests.Wait()
		p.mu.Lock()
		p.res.Stopped = time.Now()
		p.mu.Unlock()
	})
	return p.Snapshot()
}
