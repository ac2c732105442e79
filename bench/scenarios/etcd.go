package scenarios

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/berth-io/berth/bench"
)

func init() {
	bench.Register(bench.Scenario{
		Name:    "etcd-baseline",
		Figures: []string{"etcd.put.p50", "etcd.put.p99", "etcd.txn.throughput"},
		Run:     runEtcdBaseline,
	})
}

// rawEtcd is an embedded etcd on loopback in a temporary directory, the
// baseline every control-plane figure is compared with.
type rawEtcd struct {
	e    *embed.Etcd
	cli  *clientv3.Client
	dir  string
	once sync.Once
}

func startRawEtcd(ctx context.Context) (*rawEtcd, error) {
	dir, err := os.MkdirTemp("", "berth-bench-etcd-")
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cu, _ := url.Parse("http://127.0.0.1:0")
	pu, _ := url.Parse("http://127.0.0.1:0")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-ctx.Done():
		e.Close()
		os.RemoveAll(dir)
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		e.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("etcd not ready after 30s")
	}
	addr := e.Clients[0].Addr().String()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		e.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	return &rawEtcd{e: e, cli: cli, dir: dir}, nil
}

func (r *rawEtcd) Close() {
	r.once.Do(func() {
		r.cli.Close()
		r.e.Close()
		os.RemoveAll(r.dir)
	})
}

// putLatencies times n serial puts of a value of size bytes, in ms.
func putLatencies(ctx context.Context, cli *clientv3.Client, prefix string, n, size int) ([]float64, error) {
	val := string(make([]byte, size))
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cli.Put(cctx, prefix+strconv.Itoa(i), val)
		cancel()
		if err != nil {
			return nil, err
		}
		out = append(out, float64(time.Since(start).Microseconds())/1000)
	}
	return out, nil
}

// txnThroughput measures compare-and-swap transactions per second with
// `workers` concurrent clients, the same shape as a scheduler binding.
func txnThroughput(ctx context.Context, cli *clientv3.Client, prefix string, total, workers int) (float64, error) {
	for i := 0; i < total; i++ {
		if _, err := cli.Put(ctx, prefix+strconv.Itoa(i), "pending"); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < total; i += workers {
				key := prefix + strconv.Itoa(i)
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				get, err := cli.Get(cctx, key)
				if err == nil {
					_, err = cli.Txn(cctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", get.Kvs[0].ModRevision)).
						Then(clientv3.OpPut(key, "bound")).Commit()
				}
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

func runEtcdBaseline(ctx context.Context, w io.Writer) ([]bench.Figure, error) {
	r, err := startRawEtcd(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	fmt.Fprintln(w, "    1,000 serial puts x 5 runs, 2,000 CAS txns x 5 runs")
	var p50s, p99s, tputs []float64
	for run := 0; run < 6; run++ { // run 0 is the warm-up
		lat, err := putLatencies(ctx, r.cli, fmt.Sprintf("/bench/put/%d/", run), 1000, 512)
		if err != nil {
			return nil, fmt.Errorf("etcd puts: %w", err)
		}
		tp, err := txnThroughput(ctx, r.cli, fmt.Sprintf("/bench/txn/%d/", run), 2000, 16)
		if err != nil {
			return nil, fmt.Errorf("etcd txns: %w", err)
		}
		if run == 0 {
			continue
		}
		p50s = append(p50s, bench.Percentile(lat, 50))
		p99s = append(p99s, bench.Percentile(lat, 99))
		tputs = append(tputs, tp)
	}
	return []bench.Figure{
		bench.NewFigure("etcd.put.p50", "raw etcd put latency, median (baseline)", "ms", bench.LowerIsBetter, p50s, "", nil),
		bench.NewFigure("etcd.put.p99", "raw etcd put latency, p99 (baseline)", "ms", bench.LowerIsBetter, p99s, "", nil),
		bench.NewFigure("etcd.txn.throughput", "raw etcd get+CAS txns/s, 16 clients (baseline)", "txn/s", bench.HigherIsBetter, tputs, "", nil),
	}, nil
}
