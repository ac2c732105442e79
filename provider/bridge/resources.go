package bridge

import (
	_ "embed" // the bridge metadata tfgen writes next to the provider plugin
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf"
	pfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	shim "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim"

	"github.com/berth-io/berth/provider/framework"
)

// PackageName is the Pulumi package name: tokens start with "berth:".
const PackageName = "berth"

// MainModule is the one Pulumi module every resource and function lives in.
const MainModule = "index"

// ImportBasePath is the Go import path of the generated SDK.
const ImportBasePath = "github.com/berth-io/berth/sdk/go/berth"

// Version is the provider plugin's version, a semantic version as Pulumi
// requires; release builds set it with
// -ldflags "-X github.com/berth-io/berth/provider/bridge.Version=v1.2.3".
var Version = "0.1.0-dev"

// bridgeMetadata is written by `pulumi-tfgen-berth schema` beside the
// schema; the bridge reads its renames and auto-aliasing history from it.
//
//go:embed cmd/pulumi-resource-berth/bridge-metadata.json
var bridgeMetadata []byte

// secretAttributes are Terraform attribute names whose values Pulumi keeps
// as secrets wherever they occur (provider configuration, resources, data
// sources, nested blocks), in addition to those the provider marks
// Sensitive: private keys, certificates and admin credentials.
var secretAttributes = map[string]bool{
	"private_key":        true,
	"client_key":         true,
	"client_certificate": true,
	"ca_certificate":     true,
	"ca_key":             true,
	"admin_config":       true,
	"admin_credentials":  true,
	"join_token":         true,
	"token":              true,
	"password":           true,
}

// IsSecretName reports whether an attribute of this Terraform name is
// always mapped to a Pulumi secret.
func IsSecretName(tfName string) bool { return secretAttributes[tfName] }

// Provider returns the bridge's description of berth's Terraform provider.
func Provider() tfbridge.ProviderInfo {
	p := privateStateShim{pfbridge.ShimProvider(framework.New(Version)()).(pf.ShimProvider)}
	info := tfbridge.ProviderInfo{
		P:                 p,
		Name:              PackageName,
		DisplayName:       "berth",
		Version:           strings.TrimPrefix(Version, "v"),
		Publisher:         "berth",
		Description:       "Install berth clusters on SSH-reachable hosts and manage their pods, deployments and services.",
		Keywords:          []string{"pulumi", "berth", "containers", "orchestrator", "category/infrastructure"},
		License:           "Apache-2.0",
		Homepage:          "https://github.com/berth-io/berth",
		Repository:        "https://github.com/berth-io/berth",
		GitHubOrg:         "berth-io",
		TFProviderLicense: licenseRef(tfbridge.Apache20LicenseType),
		MetadataInfo:      tfbridge.NewProviderMetadata(bridgeMetadata),
		Config:            map[string]*tfbridge.SchemaInfo{},
		Golang: &tfbridge.GolangInfo{
			ImportBasePath:                 ImportBasePath,
			GenerateResourceContainerTypes: true,
			RespectSchemaVersion:           true,
		},
	}
	info.MustComputeTokens(tokens.SingleModule(PackageName+"_", MainModule, makeToken))
	markSecrets(&info)
	return info
}

// makeToken turns a module and a Pulumi type name into a token without the
// lower-cased file segment the standard mapping adds: berth:index:Deployment.
func makeToken(module, name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("token for module %q: empty name", module)
	}
	return fmt.Sprintf("%s:%s:%s", PackageName, module, name), nil
}

func licenseRef(l tfbridge.TFProviderLicense) *tfbridge.TFProviderLicense { return &l }

// markSecrets sets Secret on every attribute named in secretAttributes, in
// the provider configuration and in every resource and data source.
func markSecrets(info *tfbridge.ProviderInfo) {
	markSchemaSecrets(info.P.Schema(), info.Config)
	info.P.ResourcesMap().Range(func(name string, r shim.Resource) bool {
		ri := info.Resources[name]
		if ri == nil {
			return true
		}
		if ri.Fields == nil {
			ri.Fields = map[string]*tfbridge.SchemaInfo{}
		}
		markSchemaSecrets(r.Schema(), ri.Fields)
		return true
	})
	info.P.DataSourcesMap().Range(func(name string, r shim.Resource) bool {
		di := info.DataSources[name]
		if di == nil {
			return true
		}
		if di.Fields == nil {
			di.Fields = map[string]*tfbridge.SchemaInfo{}
		}
		markSchemaSecrets(r.Schema(), di.Fields)
		return true
	})
}

// markSchemaSecrets walks a schema map, nested blocks and objects included,
// recording Secret in fields for the secret attribute names.
func markSchemaSecrets(m shim.SchemaMap, fields map[string]*tfbridge.SchemaInfo) {
	if m == nil {
		return
	}
	m.Range(func(key string, s shim.Schema) bool {
		fi := fields[key]
		if fi == nil {
			fi = &tfbridge.SchemaInfo{}
		}
		if secretAttributes[key] {
			fi.Secret = tfbridge.True()
		} else {
			markNestedSecrets(s, fi)
		}
		if fi.Secret != nil || fi.Elem != nil || fi.Name != "" || len(fi.Fields) > 0 {
			fields[key] = fi
		}
		return true
	})
}

// markNestedSecrets records secrets inside an object or collection s on
// its SchemaInfo, where the bridge expects them: an object's (or a block's)
// attributes in Elem.Fields, a collection's element in Elem, recursively.
func markNestedSecrets(s shim.Schema, fi *tfbridge.SchemaInfo) {
	elem := fi.Elem
	if elem == nil {
		elem = &tfbridge.SchemaInfo{}
	}
	switch e := s.Elem().(type) {
	case shim.Resource:
		if elem.Fields == nil {
			elem.Fields = map[string]*tfbridge.SchemaInfo{}
		}
		markSchemaSecrets(e.Schema(), elem.Fields)
		if len(elem.Fields) == 0 {
			elem.Fields = nil
		}
	case shim.Schema:
		markNestedSecrets(e, elem)
	default:
		return
	}
	if elem.Fields != nil || elem.Elem != nil || elem.Secret != nil {
		fi.Elem = elem
	}
}
