package bridge_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"
	"github.com/spf13/afero"

	"github.com/berth-io/berth/provider/bridge"
	"github.com/berth-io/berth/provider/bridge/generate"
)

// generateInto runs the generator for lang into an in-memory file system
// and fails the test on any error or warning.
func generateInto(t *testing.T, lang tfgen.Language) afero.Fs {
	t.Helper()
	fs := afero.NewMemMapFs()
	var out bytes.Buffer
	rep, err := generate.Run(tfgen.GeneratorOptions{
		Package:      bridge.PackageName,
		Version:      bridge.Provider().Version,
		Language:     lang,
		ProviderInfo: bridge.Provider(),
		Root:         fs,
	}, &out, &out)
	if err != nil {
		t.Fatalf("tfgen %s: %v\n%s", lang, err, out.String())
	}
	if len(rep.Warnings)+len(rep.Errors) != 0 {
		t.Fatalf("tfgen %s reported diagnostics: %v %v", lang, rep.Errors, rep.Warnings)
	}
	return fs
}

func readFS(t *testing.T, fs afero.Fs, name string) []byte {
	t.Helper()
	b, err := afero.ReadFile(fs, name)
	if err != nil {
		t.Fatalf("read generated %s: %v", name, err)
	}
	return b
}

func TestSchemaGenerationReportsNoWarningsAndMatchesTheCommittedSchema(t *testing.T) {
	fs := generateInto(t, tfgen.Schema)
	for _, name := range []string{"schema.json", "bridge-metadata.json"} {
		got := readFS(t, fs, name)
		committed, err := os.ReadFile(filepath.Join("cmd", "pulumi-resource-berth", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, committed) {
			t.Errorf("cmd/pulumi-resource-berth/%s is stale: run scripts/generate-sdk.sh", name)
		}
	}
}

func TestGoSDKGenerationReportsNoWarnings(t *testing.T) {
	fs := generateInto(t, tfgen.Golang)
	for _, want := range []string{
		"berth/deployment.go", "berth/service.go", "berth/pod.go", "berth/cluster.go", "berth/nodePool.go",
		"berth/nodeImage.go", "berth/getNodes.go", "berth/provider.go", "berth/config/config.go",
	} {
		if ok, err := afero.Exists(fs, want); err != nil || !ok {
			t.Errorf("the Go SDK lacks %s (%v)", want, err)
		}
	}
	doc := string(readFS(t, fs, "berth/doc.go"))
	if !strings.HasPrefix(doc, "// Code generated ") {
		t.Errorf("berth/doc.go is not marked generated:\n%s", doc)
	}
}

// packageSchema is the part of a Pulumi package schema the secret checks
// read.
type packageSchema struct {
	Config struct {
		Variables map[string]property `json:"variables"`
	} `json:"config"`
	Provider struct {
		InputProperties map[string]property `json:"inputProperties"`
	} `json:"provider"`
	Resources map[string]struct {
		Properties      map[string]property `json:"properties"`
		InputProperties map[string]property `json:"inputProperties"`
	} `json:"resources"`
	Types map[string]struct {
		Properties map[string]property `json:"properties"`
	} `json:"types"`
}

type property struct {
	Secret bool `json:"secret"`
}

func committedSchema(t *testing.T) packageSchema {
	t.Helper()
	f, err := os.Open(filepath.Join("cmd", "pulumi-resource-berth", "schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	var s packageSchema
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("parse schema.json: %v", err)
	}
	return s
}

func TestControlPlaneCredentialsAreSecretsInProviderConfig(t *testing.T) {
	s := committedSchema(t)
	for _, name := range []string{"caCertificate", "clientCertificate", "clientKey"} {
		if v, ok := s.Config.Variables[name]; !ok || !v.Secret {
			t.Errorf("config variable %s: present %v, secret %v; want a secret", name, ok, v.Secret)
		}
		if v, ok := s.Provider.InputProperties[name]; !ok || !v.Secret {
			t.Errorf("provider input %s: present %v, secret %v; want a secret", name, ok, v.Secret)
		}
	}
}

// TestKeysAndCertificatesAreSecretsEverywhere checks every property of
// every resource and type whose name says it holds a key, a certificate
// or a credential.
func TestKeysAndCertificatesAreSecretsEverywhere(t *testing.T) {
	s := committedSchema(t)
	check := func(where string, props map[string]property) {
		for name, p := range props {
			lower := strings.ToLower(name)
			// Host keys are public keys, pinned in the open.
			publicKey := strings.HasSuffix(lower, "publickey") || lower == "hostkey"
			if (strings.HasSuffix(lower, "key") && !publicKey) ||
				strings.HasSuffix(lower, "certificate") || strings.Contains(lower, "password") ||
				strings.Contains(lower, "token") || strings.Contains(lower, "credential") {
				if !p.Secret {
					t.Errorf("%s.%s is not a secret", where, name)
				}
			}
		}
	}
	check("config", s.Config.Variables)
	check("provider", s.Provider.InputProperties)
	for tok, r := range s.Resources {
		check(tok, r.Properties)
		check(tok+" (inputs)", r.InputProperties)
	}
	for tok, ty := range s.Types {
		check(tok, ty.Properties)
	}
	if _, ok := s.Types["berth:config/ssh:Ssh"]; !ok {
		// Make sure the walk saw the nested SSH block at all.
		found := false
		for tok, ty := range s.Types {
			if strings.Contains(strings.ToLower(tok), "ssh") {
				found = found || ty.Properties["privateKey"].Secret
			}
		}
		if !found {
			t.Errorf("no SSH type with a secret privateKey in %d types", len(s.Types))
		}
	}
}
