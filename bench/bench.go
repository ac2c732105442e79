// Package bench is berth's benchmark harness. Every figure berth publishes is
// measured beside a baseline taken in the same run on the same machine (raw
// etcd puts, raw `ctr run`, plain scp, terraform_data, a direct TCP
// connection) and reported as a ratio, because this kind of machine is noisy
// and absolute numbers from different runs do not compare.
//
// A [Scenario] measures one or more [Figure]s. Each figure is the median of
// several runs after a warm-up, with min and max kept; a figure whose spread
// is wide says so. A scenario whose prerequisites are missing returns figures
// marked skipped with the reason, never a made-up number. `make bench` runs
// every registered scenario through cmd/bench, which writes
// bench/results.json and the table in BENCHMARKS.md.
//
// The harness never asserts speed: benchmarks inform, tests decide
// correctness.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// Better says which direction of a figure is an improvement.
type Better string

// The directions.
const (
	LowerIsBetter  Better = "lower"
	HigherIsBetter Better = "higher"
)

// Figure is one published number beside its same-run baseline.
type Figure struct {
	// Name identifies the figure, for example "api.create.p50".
	Name string `json:"name"`
	// Description says what was measured, for the table.
	Description string `json:"description,omitempty"`
	// Value is the median over Runs.
	Value float64 `json:"value"`
	// Unit of Value and BaselineValue, for example "ms" or "pods/s".
	Unit string `json:"unit"`
	// BaselineName names the baseline, for example "etcd.put.p50".
	BaselineName string `json:"baseline_name,omitempty"`
	// BaselineValue is the baseline's median in the same run.
	BaselineValue float64 `json:"baseline_value,omitempty"`
	// Ratio is Value / BaselineValue.
	Ratio float64 `json:"ratio,omitempty"`
	// Better says which direction is an improvement.
	Better Better `json:"better"`
	// Runs is how many measured runs the median is taken over.
	Runs int `json:"runs"`
	// Min and Max over the runs.
	Min float64 `json:"min"`
	// Max over the runs.
	Max float64 `json:"max"`
	// WideSpread is set when (max-min)/median exceeds SpreadLimit.
	WideSpread bool `json:"wide_spread,omitempty"`
	// Machine describes where it ran.
	Machine string `json:"machine"`
	// Skipped, when set, is why there is no number.
	Skipped string `json:"skipped,omitempty"`
}

// SpreadLimit is the relative spread ((max-min)/median) above which a
// figure is flagged as noisy.
const SpreadLimit = 0.5

// Stats summarises repeated measurements.
type Stats struct {
	Median, Min, Max float64
	Runs             int
}

// Summarize computes the median, min and max of samples.
func Summarize(samples []float64) Stats {
	if len(samples) == 0 {
		return Stats{}
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stats{Median: med, Min: s[0], Max: s[len(s)-1], Runs: len(s)}
}

// Percentile returns the p-th percentile (0-100) of samples by the
// nearest-rank method.
func Percentile(samples []float64, p float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	rank := int(p/100*float64(len(s)) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(s) {
		rank = len(s)
	}
	return s[rank-1]
}

// Repeat runs fn warmup times unmeasured and then runs times, collecting
// the value each run returns.
func Repeat(ctx context.Context, warmup, runs int, fn func(ctx context.Context) (float64, error)) ([]float64, error) {
	for i := 0; i < warmup; i++ {
		if _, err := fn(ctx); err != nil {
			return nil, fmt.Errorf("warm-up run %d: %w", i+1, err)
		}
	}
	out := make([]float64, 0, runs)
	for i := 0; i < runs; i++ {
		v, err := fn(ctx)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", i+1, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// NewFigure builds a figure from samples of the measured thing and of its
// baseline, both taken in this run.
func NewFigure(name, desc, unit string, better Better, samples []float64, baselineName string, baseline []float64) Figure {
	st := Summarize(samples)
	f := Figure{
		Name: name, Description: desc, Unit: unit, Better: better,
		Value: st.Median, Min: st.Min, Max: st.Max, Runs: st.Runs, Machine: Machine(),
	}
	if st.Median != 0 && (st.Max-st.Min)/st.Median > SpreadLimit {
		f.WideSpread = true
	}
	if baselineName != "" {
		b := Summarize(baseline)
		f.BaselineName, f.BaselineValue = baselineName, b.Median
		if b.Median != 0 {
			f.Ratio = st.Median / b.Median
		}
	}
	return f
}

// SkippedFigure is a figure that could not be measured, with the reason.
func SkippedFigure(name, desc, reason string) Figure {
	return Figure{Name: name, Description: desc, Skipped: reason, Machine: Machine()}
}

// Scenario measures figures. Run must honour ctx and return skipped
// figures (not an error) when its prerequisites are missing.
type Scenario struct {
	// Name of the scenario, used to select it on the command line.
	Name string
	// Figures lists the names of the figures it produces, so a failed or
	// skipped scenario still reports each of them.
	Figures []string
	// Run measures; progress goes to w.
	Run func(ctx context.Context, w io.Writer) ([]Figure, error)
}

var (
	mu        sync.Mutex
	scenarios []Scenario
)

// Register adds a scenario; scenario files call it from init.
func Register(s Scenario) {
	mu.Lock()
	defer mu.Unlock()
	scenarios = append(scenarios, s)
}

// Scenarios returns the registered scenarios in registration order.
func Scenarios() []Scenario {
	mu.Lock()
	defer mu.Unlock()
	return append([]Scenario(nil), scenarios...)
}

var machineOnce sync.Once
var machine string

// Machine describes this machine: CPU model, core count, memory, kernel.
func Machine() string {
	machineOnce.Do(func() {
		cpu := "unknown CPU"
		if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(line, "model name") {
					if _, v, ok := strings.Cut(line, ":"); ok {
						cpu = strings.TrimSpace(v)
					}
					break
				}
			}
		}
		mem := ""
		if b, err := os.ReadFile("/proc/meminfo"); err == nil {
			var kb int64
			fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb)
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/1024/1024)
		}
		kernel := ""
		if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
			kernel = ", Linux " + strings.TrimSpace(string(b))
		}
		machine = fmt.Sprintf("%s, %d cores%s%s, %s/%s", cpu, runtime.NumCPU(), mem, kernel, runtime.GOOS, runtime.GOARCH)
	})
	return machine
}

// Results is what bench/results.json holds.
type Results struct {
	// Machine the run was on.
	Machine string `json:"machine"`
	// Date of the run, UTC.
	Date time.Time `json:"date"`
	// Figures measured (or skipped).
	Figures []Figure `json:"figures"`
}

// WriteJSON writes results as indented JSON.
func WriteJSON(w io.Writer, r Results) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// WriteMarkdown writes the results table: one row per figure with its
// baseline and the ratio, and a note on how to read it.
func WriteMarkdown(w io.Writer, r Results) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured on %s, %s. Each value is the median of the runs after a warm-up (min–max in brackets); "+
		"the baseline is measured in the same run on the same machine, and the ratio is value / baseline.\n\n",
		r.Machine, r.Date.Format("2006-01-02"))
	b.WriteString("| figure | value | baseline | ratio | better | runs |\n|---|---|---|---|---|---|\n")
	for _, f := range r.Figures {
		if f.Skipped != "" {
			fmt.Fprintf(&b, "| %s | skipped: %s | | | | |\n", figName(f), f.Skipped)
			continue
		}
		val := fmt.Sprintf("%s %s (%s–%s)", fmtNum(f.Value), f.Unit, fmtNum(f.Min), fmtNum(f.Max))
		if f.WideSpread {
			val += " **wide spread**"
		}
		base, ratio := "", ""
		if f.BaselineName != "" {
			base = fmt.Sprintf("%s: %s %s", f.BaselineName, fmtNum(f.BaselineValue), f.Unit)
			ratio = fmt.Sprintf("%.2f×", f.Ratio)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d |\n", figName(f), val, base, ratio, f.Better, f.Runs)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func figName(f Figure) string {
	if f.Description == "" {
		return "`" + f.Name + "`"
	}
	return "`" + f.Name + "` " + f.Description
}
