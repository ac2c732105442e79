// Package sdk_test checks the promises of the generated Pulumi Go SDK: it
// depends on the Pulumi SDK only (and the semver package the Pulumi SDK's
// API uses for plugin versions), nothing of berth's, and every file is
// marked as generated.
package sdk_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// generatedMarker is Go's convention for generated files
// (https://go.dev/s/generatedcode).
var generatedMarker = regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$`)

// allowedModules are the only modules the SDK may require directly.
var allowedModules = map[string]bool{
	"github.com/pulumi/pulumi/sdk/v3": true,
	"github.com/blang/semver":         true,
}

func TestGoModRequiresOnlyThePulumiSDK(t *testing.T) {
	out, err := exec.Command("go", "mod", "edit", "-json").Output()
	if err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	var m struct {
		Module  struct{ Path string }
		Require []struct {
			Path     string
			Indirect bool
		}
		Replace []struct{ Old struct{ Path string } }
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m.Module.Path != "github.com/berth-io/berth/sdk" {
		t.Errorf("module path = %q, want github.com/berth-io/berth/sdk", m.Module.Path)
	}
	for _, r := range m.Require {
		if !r.Indirect && !allowedModules[r.Path] {
			t.Errorf("go.mod requires %s directly; the SDK may depend on the Pulumi SDK only", r.Path)
		}
		if strings.HasPrefix(r.Path, "github.com/berth-io/") {
			t.Errorf("go.mod requires %s; the SDK must not depend on berth's other modules", r.Path)
		}
	}
	if len(m.Replace) != 0 {
		t.Errorf("go.mod has replace directives %v; users' builds would not see them", m.Replace)
	}
}

func TestPackagesImportOnlyThePulumiSDK(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./go/...").Output()
	if err != nil {
		t.Fatalf("go list ./go/...: %v", err)
	}
	pkgs := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(pkgs) < 2 {
		t.Fatalf("go list found %d packages under go/; has the SDK been generated?", len(pkgs))
	}
	for _, line := range pkgs {
		fields := strings.Fields(line)
		for _, imp := range fields[1:] {
			first := strings.SplitN(imp, "/", 2)[0]
			switch {
			case !strings.Contains(first, "."): // the standard library
			case strings.HasPrefix(imp, "github.com/berth-io/berth/sdk/"):
			case strings.HasPrefix(imp, "github.com/pulumi/pulumi/sdk/v3/"):
			case imp == "github.com/blang/semver":
			default:
				t.Errorf("package %s imports %s; the SDK may depend on the Pulumi SDK only", fields[0], imp)
			}
		}
	}
}

func TestEveryGoFileIsMarkedGenerated(t *testing.T) {
	n := 0
	err := filepath.WalkDir("go", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		header, _, _ := strings.Cut(string(b), "\npackage ")
		if !generatedMarker.MatchString(header) {
			t.Errorf("%s has no \"// Code generated ... DO NOT EDIT.\" line before its package clause", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no Go files under go/")
	}
}
