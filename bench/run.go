package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Markers delimit the generated table inside BENCHMARKS.md; the prose
// around them is kept.
const (
	beginMarker = "<!-- bench:results:begin -->"
	endMarker   = "<!-- bench:results:end -->"
)

// Run is the body of cmd/bench: it runs the scenarios selected by -run,
// prints progress to stdout, and writes -json and the table in -markdown.
// A scenario that fails is reported and makes Run return an error after the
// results of the others are written.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runRE := fs.String("run", ".", "regular expression selecting scenarios by name")
	jsonPath := fs.String("json", "bench/results.json", "where to write the results as JSON")
	mdPath := fs.String("markdown", "BENCHMARKS.md", "file whose results table to rewrite (between the bench markers)")
	list := fs.Bool("list", false, "list the scenarios and exit")
	merge := fs.Bool("merge", false, "keep the figures of scenarios not run now from the existing -json file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	re, err := regexp.Compile(*runRE)
	if err != nil {
		return fmt.Errorf("-run: %w", err)
	}
	if *list {
		for _, s := range Scenarios() {
			fmt.Fprintf(stdout, "%s: %s\n", s.Name, strings.Join(s.Figures, ", "))
		}
		return nil
	}
	res := Results{Machine: Machine(), Date: time.Now().UTC()}
	var failed []string
	for _, s := range Scenarios() {
		if !re.MatchString(s.Name) {
			continue
		}
		start := time.Now()
		fmt.Fprintf(stdout, "==> %s\n", s.Name)
		figs, err := s.Run(ctx, stdout)
		if err != nil {
			fmt.Fprintf(stdout, "    FAILED after %s: %v\n", time.Since(start).Round(time.Second), err)
			failed = append(failed, s.Name)
			for _, n := range s.Figures {
				res.Figures = append(res.Figures, SkippedFigure(n, "", "scenario failed: "+firstLine(err.Error())))
			}
			continue
		}
		for _, f := range figs {
			if f.Skipped != "" {
				fmt.Fprintf(stdout, "    %-32s skipped: %s\n", f.Name, f.Skipped)
			} else if f.BaselineName != "" {
				fmt.Fprintf(stdout, "    %-32s %s %s vs %s %s (%.2f×)\n", f.Name, fmtNum(f.Value), f.Unit, fmtNum(f.BaselineValue), f.Unit, f.Ratio)
			} else {
				fmt.Fprintf(stdout, "    %-32s %s %s\n", f.Name, fmtNum(f.Value), f.Unit)
			}
		}
		res.Figures = append(res.Figures, figs...)
		fmt.Fprintf(stdout, "    done in %s\n", time.Since(start).Round(time.Second))
	}
	if *merge {
		if err := mergeResults(*jsonPath, &res, re); err != nil {
			return err
		}
	}
	if err := writeResults(*jsonPath, *mdPath, res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", *jsonPath, *mdPath)
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// mergeResults adds to res the figures of the existing results file that
// belong to scenarios not selected by re, so one scenario can be re-measured
// without dropping the rest of the table. Each kept figure keeps its own
// machine; the results' date is this run's.
func mergeResults(path string, res *Results, re *regexp.Regexp) error {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("merge results: %w", err)
	}
	var old Results
	if err := json.Unmarshal(data, &old); err != nil {
		return fmt.Errorf("merge results: parse %s: %w", path, err)
	}
	kept := map[string]bool{}
	for _, s := range Scenarios() {
		if re.MatchString(s.Name) {
			continue
		}
		for _, f := range s.Figures {
			kept[f] = true
		}
	}
	var figs []Figure
	for _, f := range old.Figures {
		if kept[f.Name] {
			figs = append(figs, f)
		}
	}
	res.Figures = append(figs, res.Figures...)
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func writeResults(jsonPath, mdPath string, res Results) error {
	if err := os.MkdirAll(filepath.Dir(jsonPath), 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	var jb bytes.Buffer
	if err := WriteJSON(&jb, res); err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(jsonPath, jb.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	var table bytes.Buffer
	if err := WriteMarkdown(&table, res); err != nil {
		return err
	}
	doc, err := os.ReadFile(mdPath)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read %s: %w", mdPath, err)
	}
	return os.WriteFile(mdPath, []byte(SpliceTable(string(doc), table.String())), 0o644)
}

// SpliceTable replaces the text between the bench markers of doc with
// table, appending the markers when doc has none.
func SpliceTable(doc, table string) string {
	block := beginMarker + "\n" + table + endMarker
	i := strings.Index(doc, beginMarker)
	j := strings.Index(doc, endMarker)
	if i < 0 || j < i {
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		return doc + "\n" + block + "\n"
	}
	return doc[:i] + block + doc[j+len(endMarker):]
}
