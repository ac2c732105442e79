// Package generate runs the bridge's code generator (tfgen) on berth's
// mapping the way this repository wants it: documentation comes from the
// Terraform schema's descriptions (never from a downloaded upstream
// repository), HCL examples are not converted (that would need network
// plug-ins), and any warning the generator reports fails the run, so the
// committed schema and SDK are always produced cleanly.
//
// cmd/pulumi-tfgen-berth is its command line; tests call Run directly.
package generate

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen/schemafilter"
	gogen "github.com/pulumi/pulumi/pkg/v3/codegen/go"
	pschema "github.com/pulumi/pulumi/pkg/v3/codegen/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag/colors"
	"github.com/spf13/afero"
)

// Run generates language's output (tfgen.Schema, tfgen.Golang, ...) for
// opts.ProviderInfo into opts.Root, writing the generator's messages to
// stdout and stderr. It fails when the generator reports an error or a
// warning; the returned Report lists them either way.
//
// A language SDK is generated from the schema this same run computes, so
// an SDK never lags behind the mapping (tfgen's own command line reads a
// schema.json from a fixed path relative to the working directory instead).
func Run(opts tfgen.GeneratorOptions, stdout, stderr io.Writer) (*Report, error) {
	rep := &Report{}
	opts.Sink = &recordingSink{
		Sink:   diag.DefaultSink(stdout, stderr, diag.FormatOptions{Color: colors.Never, Debug: opts.Debug}),
		report: rep,
	}
	opts.XInMemoryDocs = true
	opts.SkipExamples = true
	fail := func(err error) (*Report, error) {
		return rep, fmt.Errorf("generate %s for %s: %w", opts.Language, opts.Package, err)
	}
	if opts.ProviderInfo.MetadataInfo == nil {
		return fail(fmt.Errorf("ProviderInfo.MetadataInfo is required"))
	}
	if opts.Language == tfgen.Schema {
		g, err := tfgen.NewGenerator(opts)
		if err != nil {
			return fail(fmt.Errorf("set up the generator: %w", err))
		}
		if _, err := g.Generate(); err != nil {
			return fail(err)
		}
	} else {
		spec, err := packageSpec(opts)
		if err != nil {
			return fail(err)
		}
		if opts.Language != tfgen.Golang {
			return fail(fmt.Errorf("only the schema and go are generated here"))
		}
		if err := generateGo(spec, opts.Root); err != nil {
			return fail(err)
		}
	}
	if n := len(rep.Warnings) + len(rep.Errors); n > 0 {
		return fail(fmt.Errorf("%d diagnostics, want none:\n%s", n, strings.Join(append(rep.Errors, rep.Warnings...), "\n")))
	}
	return rep, nil
}

// packageSpec computes the Pulumi schema in memory and narrows it to
// opts.Language, as tfgen does before generating an SDK.
func packageSpec(opts tfgen.GeneratorOptions) (pschema.PackageSpec, error) {
	schemaOpts := opts
	schemaOpts.Language = tfgen.Schema
	schemaOpts.Root = afero.NewMemMapFs()
	g, err := tfgen.NewGenerator(schemaOpts)
	if err != nil {
		return pschema.PackageSpec{}, fmt.Errorf("set up the schema generator: %w", err)
	}
	if _, err := g.Generate(); err != nil {
		return pschema.PackageSpec{}, fmt.Errorf("generate the schema: %w", err)
	}
	raw, err := afero.ReadFile(schemaOpts.Root, "schema.json")
	if err != nil {
		return pschema.PackageSpec{}, fmt.Errorf("read the generated schema: %w", err)
	}
	var spec pschema.PackageSpec
	if err := json.Unmarshal(schemafilter.FilterSchemaByLanguage(raw, string(opts.Language)), &spec); err != nil {
		return pschema.PackageSpec{}, fmt.Errorf("parse the generated schema: %w", err)
	}
	// The schema leaves the version out so that it stays stable; SDKs
	// carry it.
	spec.Version = opts.Version
	return spec, nil
}

// Main is the command line of pulumi-tfgen-berth: tfgen's usual flags
// (`<language> --out DIR`), generated with Run's rules.
func Main(pkg string, info tfbridge.ProviderInfo, stdout, stderr io.Writer) {
	tfgen.MainWithCustomGenerate(pkg, info.Version, info, func(opts tfgen.GeneratorOptions) error {
		_, err := Run(opts, stdout, stderr)
		return err
	})
}

// Report holds the warnings and errors a generator run reported.
type Report struct {
	mu       sync.Mutex
	Warnings []string
	Errors   []string
}

func (r *Report) add(sev diag.Severity, d *diag.Diag, args ...any) {
	if sev != diag.Warning && sev != diag.Error {
		return
	}
	msg := d.Message
	if len(args) > 0 {
		msg = fmt.Sprintf(d.Message, args...)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if sev == diag.Warning {
		r.Warnings = append(r.Warnings, "warning: "+msg)
	} else {
		r.Errors = append(r.Errors, "error: "+msg)
	}
}

// recordingSink passes every message on and records warnings and errors.
type recordingSink struct {
	diag.Sink
	report *Report
}

func (s *recordingSink) Logf(sev diag.Severity, d *diag.Diag, args ...any) {
	s.report.add(sev, d, args...)
	s.Sink.Logf(sev, d, args...)
}

func (s *recordingSink) Errorf(d *diag.Diag, args ...any) {
	s.report.add(diag.Error, d, args...)
	s.Sink.Errorf(d, args...)
}

func (s *recordingSink) Warningf(d *diag.Diag, args ...any) {
	s.report.add(diag.Warning, d, args...)
	s.Sink.Warningf(d, args...)
}

// generateGo writes the Go SDK for spec under root/<package>/, replacing
// what was there. tfgen itself delegates Go to `pulumi package gen-sdk`
// and the pulumi-language-go plugin; this calls the same code generator
// (github.com/pulumi/pulumi/pkg/v3/codegen/go) in-process, so generating
// needs neither the CLI nor the language plugin.
func generateGo(spec pschema.PackageSpec, root afero.Fs) error {
	pkg, diags, err := pschema.BindSpec(spec, nil, pschema.ValidationOptions{AllowDanglingReferences: true})
	if err != nil {
		return fmt.Errorf("bind the schema: %w", err)
	}
	if diags.HasErrors() {
		return fmt.Errorf("bind the schema: %s", diags.Error())
	}
	files, err := gogen.GeneratePackage("pulumi-tfgen-berth", pkg, nil)
	if err != nil {
		return fmt.Errorf("generate the Go SDK: %w", err)
	}
	if err := root.RemoveAll(pkg.Name); err != nil {
		return fmt.Errorf("remove the old Go SDK: %w", err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return fmt.Errorf("write the Go SDK: %w", err)
		}
		if err := afero.WriteFile(root, name, markGenerated(name, files[name]), 0o644); err != nil {
			return fmt.Errorf("write the Go SDK: %w", err)
		}
	}
	return nil
}

// generatedMarker matches Go's convention for generated files
// (https://go.dev/s/generatedcode).
var generatedMarker = regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$`)

// markGenerated puts the generated-code marker on a Go file that lacks it
// (the code generator leaves it off doc.go).
func markGenerated(name string, src []byte) []byte {
	if !strings.HasSuffix(name, ".go") || generatedMarker.Match(src) {
		return src
	}
	return append([]byte("// Code generated by pulumi-tfgen-berth DO NOT EDIT.\n\n"), src...)
}
