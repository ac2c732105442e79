package pulumi_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goMod is the part of `go mod edit -json` these tests read.
type goMod struct {
	Require []struct{ Path, Version string }
	Replace []struct {
		Old struct{ Path string }
		New struct{ Path, Version string }
	}
	Tool []struct{ Path string }
}

func readGoMod(t *testing.T) goMod {
	t.Helper()
	out, err := exec.Command("go", "mod", "edit", "-json").Output()
	if err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	var m goMod
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("parse go mod edit -json: %v", err)
	}
	return m
}

func requiredVersion(m goMod, path string) string {
	for _, r := range m.Require {
		if r.Path == path {
			return r.Version
		}
	}
	return ""
}

func TestPkgAndSDKArePinnedToTheSameVersion(t *testing.T) {
	m := readGoMod(t)
	pkg := requiredVersion(m, "github.com/pulumi/pulumi/pkg/v3")
	sdk := requiredVersion(m, "github.com/pulumi/pulumi/sdk/v3")
	if pkg == "" || pkg != sdk {
		t.Fatalf("pkg/v3 is %q and sdk/v3 is %q; the CLI needs both at one version", pkg, sdk)
	}
}

func TestClipboardReplaceOfTheCLIIsRepeated(t *testing.T) {
	m := readGoMod(t)
	for _, r := range m.Replace {
		if r.Old.Path == "github.com/atotto/clipboard" && r.New.Path == "github.com/tgummerer/clipboard" {
			return
		}
	}
	t.Fatal("go.mod lacks the replace of github.com/atotto/clipboard the Pulumi CLI needs to build")
}

func TestTheCLIIsDeclaredAsATool(t *testing.T) {
	m := readGoMod(t)
	for _, tool := range m.Tool {
		if tool.Path == "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi" {
			return
		}
	}
	t.Fatal("go.mod does not declare github.com/pulumi/pulumi/pkg/v3/cmd/pulumi as a tool")
}

// TestBuiltCLIReportsThePinnedVersion checks bin/pulumi as scripts/pulumi.sh
// built it: the Automation API refuses a CLI without a version.
func TestBuiltCLIReportsThePinnedVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped under -short")
	}
	cli, err := filepath.Abs(filepath.Join("..", "..", "bin", "pulumi"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cli); err != nil {
		missing(t, "bin/pulumi is not built (run scripts/pulumi.sh)")
	}
	out, err := exec.Command(cli, "version").Output()
	if err != nil {
		t.Fatalf("bin/pulumi version: %v", err)
	}
	want := requiredVersion(readGoMod(t), "github.com/pulumi/pulumi/pkg/v3")
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("bin/pulumi version = %q, want %q", got, want)
	}
}

// missing skips, or fails under BERTH_REQUIRE_PREREQS=1, as
// internal/prereq does; this module cannot import the root module without
// its requirements leaking into the CLI's build.
func missing(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("BERTH_REQUIRE_PREREQS") == "1" {
		t.Fatalf("missing prerequisite (BERTH_REQUIRE_PREREQS=1): %s", reason)
	}
	t.Skipf("skipping: %s (set BERTH_REQUIRE_PREREQS=1 to make this a failure)", reason)
}
