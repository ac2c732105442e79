package bridge_test

import (
	"context"
	"strings"
	"testing"
	"unicode"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/resource"

	"github.com/berth-io/berth/provider/bridge"
	"github.com/berth-io/berth/provider/framework"
)

// terraformNames lists the type names the Terraform provider itself
// registers, so a resource added there is checked here without a change.
func terraformNames(t *testing.T) (resources, dataSources []string) {
	t.Helper()
	ctx := context.Background()
	p := framework.New("test")()
	for _, f := range p.Resources(ctx) {
		var resp resource.MetadataResponse
		f().Metadata(ctx, resource.MetadataRequest{ProviderTypeName: "berth"}, &resp)
		resources = append(resources, resp.TypeName)
	}
	for _, f := range p.DataSources(ctx) {
		var resp datasource.MetadataResponse
		f().Metadata(ctx, datasource.MetadataRequest{ProviderTypeName: "berth"}, &resp)
		dataSources = append(dataSources, resp.TypeName)
	}
	if len(resources) == 0 || len(dataSources) == 0 {
		t.Fatalf("the Terraform provider registers %d resources and %d data sources", len(resources), len(dataSources))
	}
	return resources, dataSources
}

// camel turns berth_service_endpoints into ServiceEndpoints.
func camel(tfName string) string {
	var b strings.Builder
	for _, part := range strings.Split(strings.TrimPrefix(tfName, "berth_"), "_") {
		r := []rune(part)
		r[0] = unicode.ToUpper(r[0])
		b.WriteString(string(r))
	}
	return b.String()
}

func TestEveryTerraformResourceHasAnIndexToken(t *testing.T) {
	info := bridge.Provider()
	resources, _ := terraformNames(t)
	for _, name := range resources {
		ri, ok := info.Resources[name]
		if !ok || ri == nil {
			t.Errorf("resource %s has no mapping", name)
			continue
		}
		if want := "berth:index:" + camel(name); string(ri.Tok) != want {
			t.Errorf("resource %s maps to %q, want %q", name, ri.Tok, want)
		}
	}
	if len(info.Resources) != len(resources) {
		t.Errorf("the mapping has %d resources, the provider %d", len(info.Resources), len(resources))
	}
}

func TestEveryTerraformDataSourceHasAGetFunctionToken(t *testing.T) {
	info := bridge.Provider()
	_, dataSources := terraformNames(t)
	for _, name := range dataSources {
		di, ok := info.DataSources[name]
		if !ok || di == nil {
			t.Errorf("data source %s has no mapping", name)
			continue
		}
		if want := "berth:index:get" + camel(name); string(di.Tok) != want {
			t.Errorf("data source %s maps to %q, want %q", name, di.Tok, want)
		}
	}
	if len(info.DataSources) != len(dataSources) {
		t.Errorf("the mapping has %d data sources, the provider %d", len(info.DataSources), len(dataSources))
	}
}

func TestKnownTokens(t *testing.T) {
	info := bridge.Provider()
	for tf, want := range map[string]string{
		"berth_pod":        "berth:index:Pod",
		"berth_deployment": "berth:index:Deployment",
		"berth_service":    "berth:index:Service",
	} {
		if got := info.Resources[tf]; got == nil || string(got.Tok) != want {
			t.Errorf("%s maps to %v, want %s", tf, got, want)
		}
	}
	for tf, want := range map[string]string{
		"berth_nodes":             "berth:index:getNodes",
		"berth_service_endpoints": "berth:index:getServiceEndpoints",
	} {
		if got := info.DataSources[tf]; got == nil || string(got.Tok) != want {
			t.Errorf("%s maps to %v, want %s", tf, got, want)
		}
	}
}

func TestGoSDKImportPathIsTheSDKModule(t *testing.T) {
	info := bridge.Provider()
	if info.Golang == nil || info.Golang.ImportBasePath != "github.com/berth-io/berth/sdk/go/berth" {
		t.Fatalf("Golang info = %+v, want ImportBasePath github.com/berth-io/berth/sdk/go/berth", info.Golang)
	}
	if info.Name != "berth" {
		t.Fatalf("package name = %q, want berth", info.Name)
	}
}

func TestEveryResourceHasAnIDAttribute(t *testing.T) {
	info := bridge.Provider()
	for name := range info.Resources {
		r, ok := info.P.ResourcesMap().GetOk(name)
		if !ok {
			t.Errorf("resource %s is mapped but not served", name)
			continue
		}
		if _, ok := r.Schema().GetOk("id"); !ok {
			t.Errorf("resource %s has no id attribute; Pulumi needs one", name)
		}
	}
}
