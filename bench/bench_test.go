package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
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

func TestRunMergeKeepsFiguresOfScenariosNotRun(t *testing.T) {
	mu.Lock()
	saved := scenarios
	scenarios = nil
	mu.Unlock()
	defer func() { mu.Lock(); scenarios = saved; mu.Unlock() }()
	calls := 0.0
	Register(Scenario{Name: "one", Figures: []string{"x"}, Run: func(ctx context.Context, w io.Writer) ([]Figure, error) {
		calls++
		return []Figure{NewFigure("x", "", "ms", LowerIsBetter, []float64{calls}, "", nil)}, nil
	}})
	Register(Scenario{Name: "two", Figures: []string{"y"}, Run: func(ctx context.Context, w io.Writer) ([]Figure, error) {
		return []Figure{NewFigure("y", "", "ms", LowerIsBetter, []float64{7}, "", nil)}, nil
	}})
	dir := t.TempDir()
	jsonPath := dir + "/r.json"
	run := func(args ...string) map[string]float64 {
		t.Helper()
		args = append(args, "-json", jsonPath, "-markdown", dir+"/B.md")
		if err := Run(context.Background(), args, io.Discard, io.Discard); err != nil {
			t.Fatalf("Run %q: %v", args, err)
		}
		data, err := os.ReadFile(jsonPath)
		if err != nil {
			t.Fatal(err)
		}
		var r Results
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range r.Figures {
			got[f.Name] = f.Value
		}
		return got
	}
	if got := run(); len(got) != 2 || got["x"] != 1 || got["y"] != 7 {
		t.Fatalf("first run: %v", got)
	}
	if got := run("-run", "^one$", "-merge"); len(got) != 2 || got["x"] != 2 || got["y"] != 7 {
		t.Fatalf("-merge run of one: %v, want x from this run and y kept", got)
	}
	if got := run("-run", "^one$"); len(got) != 1 || got["x"] != 3 {
		t.Fatalf("run of one without -merge: %v, want x only", got)
	}
}
