package layout

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/berth-io/berth/"

// rules maps a package (and everything below it) to the packages of ours it
// may import (again with everything below them). The longest matching key
// wins. "*" allows anything. This is DESIGN.md's layout table; rows it does
// not have are explained in docs/ARCHITECTURE.md.
var rules = map[string][]string{
	"control/api":        {},
	"control/client":     {"control/api"},
	"control/pki":        {},
	"control/etcd":       {},
	"control/store":      {"control/api", "control/etcd"},
	"control/server":     {"control/api", "control/store", "control/pki", "control/etcd"},
	"control/scheduler":  {"control/api", "control/client"},
	"control/controller": {"control/api", "control/client", "control/scheduler"},
	"control/plane": {"control/api", "control/client", "control/pki", "control/etcd", "control/store",
		"control/server", "control/scheduler", "control/controller"},
	"nodeagent/runtime":  {"control/api"},
	"nodeagent/network":  {"control/api", "control/client", "control/pki", "nodeagent/runtime"},
	"nodeagent/services": {"control/api", "control/client", "control/pki", "nodeagent/runtime"},
	"nodeagent/probe":    {"control/api", "control/client", "control/pki", "nodeagent/runtime"},
	"nodeagent/agent": {"control/api", "control/client", "control/pki", "nodeagent/runtime",
		"nodeagent/network", "nodeagent/services", "nodeagent/probe"},
	"provider/nodeimage": {},
	"provider/ssh":       {},
	"provider/cluster":   {"control/api", "control/client", "control/pki", "provider/nodeimage", "provider/ssh"},
	"provider/framework": {"control/api", "control/client", "control/pki", "provider/cluster",
		"provider/nodeimage"},
	"provider/cmd/terraform-provider-berth": {"provider/framework"},
	"cmd/berth":                             {"control", "nodeagent", "provider/nodeimage"},
	"acceptance":                            {"*"},
	"bench":                                 {"*"},
	"internal/prereq":                       {},
	"internal/layout":                       {},
	"internal/version":                      {},
}

// everywhere lists packages every package may import: they carry no logic
// that could tangle the graph (the build version string).
var everywhere = []string{"internal/version"}

// testOnly packages may be imported by tests but by no production package.
var testOnly = []string{"internal/prereq", "acceptance"}

func within(pkg, prefix string) bool {
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

func ruleFor(pkg string) (string, []string, bool) {
	best := ""
	for k := range rules {
		if within(pkg, k) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return "", nil, false
	}
	return best, rules[best], true
}

func allowed(pkg, imp string) bool {
	key, allow, ok := ruleFor(pkg)
	if !ok {
		return false
	}
	if within(imp, key) {
		return true // a package may use its own subpackages
	}
	for _, e := range everywhere {
		if within(imp, e) {
			return true
		}
	}
	for _, a := range allow {
		if a == "*" || within(imp, a) {
			return true
		}
	}
	return false
}

func TestProductionImportsFollowTheLayoutTable(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], module) {
			continue
		}
		pkg := strings.TrimPrefix(fields[0], module)
		if _, _, ok := ruleFor(pkg); !ok {
			t.Errorf("package %s has no row in the layout table: add it to DESIGN.md/docs/ARCHITECTURE.md and to this test", pkg)
			continue
		}
		checked++
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			imp = strings.TrimPrefix(imp, module)
			for _, to := range testOnly {
				if within(imp, to) && !within(pkg, "acceptance") && !within(pkg, "bench") {
					t.Errorf("production package %s imports %s, which only tests may import", pkg, imp)
				}
			}
			if !allowed(pkg, imp) {
				t.Errorf("package %s imports %s, which the layout table does not allow", pkg, imp)
			}
		}
	}
	if checked == 0 {
		t.Fatal("go list found no packages of this module: the test checked nothing")
	}
}

func TestRulesCatchAForbiddenImport(t *testing.T) {
	tests := []struct {
		pkg, imp string
		ok       bool
	}{
		{"control/api", "control/client", false},
		{"control/server", "nodeagent/agent", false},
		{"control/controller/deployment", "control/client", true},
		{"control/controller/deployment", "control/store", false},
		{"control/client/cache", "control/api", true},
		{"provider/cluster", "control/server", false},
		{"cmd/berth", "control/plane", true},
		{"cmd/berth", "provider/cluster", false},
		{"acceptance/testbed", "provider/ssh", true},
	}
	for _, tt := range tests {
		if got := allowed(tt.pkg, tt.imp); got != tt.ok {
			t.Errorf("allowed(%s, %s) = %v, want %v", tt.pkg, tt.imp, got, tt.ok)
		}
	}
}
