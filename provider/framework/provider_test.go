package framework_test

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// A cluster and its workloads in one apply: the workload provider's
// configuration comes from a resource that does not exist yet, so it is
// unknown while planning, and the plan must still succeed.
func TestAccProviderWithUnknownConfigurationStillPlans(t *testing.T) {
	accPrereqs(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{{
			Config: `
resource "terraform_data" "cluster" {
  input = "https://127.0.0.1:6443"
}

provider "berth" {
  endpoints          = [terraform_data.cluster.output]
  ca_certificate     = terraform_data.cluster.output
  client_certificate = terraform_data.cluster.output
  client_key         = terraform_data.cluster.output
}

resource "berth_deployment" "web" {
  name = "web"
  template = {
    labels     = { app = "web" }
    containers = [{ name = "web", image = "registry.example/web:${terraform_data.cluster.id}" }]
  }
}

resource "berth_service" "web" {
  name     = "web"
  selector = { app = "web" }
  ports    = [{ port = 80 }]
}
`,
			PlanOnly:           true,
			ExpectNonEmptyPlan: true,
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PostApplyPostRefresh: []plancheck.PlanCheck{
					plancheck.ExpectUnknownValue("berth_deployment.web", tfjsonpath.New("rollout_state")),
				},
			},
		}},
	})
}

func TestAccProviderWithoutCredentialsSaysWhatToSet(t *testing.T) {
	accPrereqs(t)
	t.Setenv("BERTH_CONFIG", "")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{{
			Config:      `data "berth_nodes" "all" {}`,
			ExpectError: regexp.MustCompile(`no\s+control-plane\s+credentials`),
		}},
	})
}
