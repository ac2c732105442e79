package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestSummarizeAndPercentile(t *testing.T) {
	st := Summarize([]float64{5, 1, 3, 2, 4})
	if st.Median != 3 || st.Min != 1 || st.Max != 5 || st.Runs != 5 {
		t.Fatalf("Summarize = %+v", st)
	}
	if got := Summarize([]float64{1, 2, 3, 4}).Median; got != 2.5 {
		t.Fatalf("even median = %v", got)
	}
	samples := make([]float64, 100)
	for i := range samples {
		samples[i] = float64(i + 1)
	}
	if p50, p99 := Percentile(samples, 50), Percentile(samples, 99); p50 != 50 || p99 != 99 {
		t.Fatalf("p50=%v p99=%v", p50, p99)
	}
}

func TestNewFigureComputesRatioAndFlagsWideSpread(t *testing.T) {
	f := NewFigure("api.create.p50", "", "ms", LowerIsBetter, []float64{2, 2, 2}, "etcd.put.p50", []float64{1, 1, 1})
	if f.Ratio != 2 || f.WideSpread {
		t.Fatalf("figure = %+v", f)
	}
	f = NewFigure("x", "", "ms", LowerIsBetter, []float64{1, 2, 10}, "", nil)
	if !f.WideSpread {
		t.Fatalf("spread 1..10 around 2 not flagged: %+v", f)
	}
}

func TestSpliceTableKeepsProse(t *testing.T) {
	doc := "# Benchmarks\n\nProse.\n\n" + beginMarker + "\nold\n" + endMarker + "\n\nMore prose.\n"
	got := SpliceTable(doc, "new\n")
	if !strings.Contains(got, "Prose.") || !strings.Contains(got, "More prose.") || strings.Contains(got, "old") || !strings.Contains(got, "new") {
		t.Fatalf("splice = %q", got)
	}
	if got := SpliceTable("", "t\n"); !strings.Contains(got, beginMarker) {
		t.Fatalf("markers not added: %q", got)
	}
}

func TestRunReportsFailedScenarioAfterWritingOthers(t *testing.T) {
	mu.Lock()
	saved := scenarios
	scenarios = nil
	mu.Unlock()
	defer func() { mu.Lock(); scenarios = saved; mu.Unlock() }()
	Register(Scenario{Name: "ok", Figures: []string{"a"}, Run: func(ctx context.Context, w io.Writer) ([]Figure, error) {
		return []Figure{NewFigure("a", "", "ms", LowerIsBetter, []float64{1}, "b", []float64{2})}, nil
	}})
	Register(Scenario{Name: "broken", Figures: []string{"c"}, Run: func(ctx context.Context, w io.Writer) ([]Figure, error) {
		return nil, errors.New("boom")
	}})
	dir := t.TempDir()
	var out bytes.Buffer
	err := Run(context.Background(), []string{"-json", dir + "/r.json", "-markdown", dir + "/B.md"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("Run error = %v", err)
	}
	if !strings.Contains(out.String(), "0.50×") {
		t.Fatalf("progress lacks the ratio: %s", out.String())
	}
}
