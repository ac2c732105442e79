package framework_test

import (
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func serviceConfig(c *testCluster, typ, extraPort string) string {
	return c.providerConfig() + fmt.Sprintf(`
resource "berth_deployment" "web" {
  name     = "web"
  replicas = 2
  template = {
    labels     = { app = "web" }
    containers = [{ name = "web", image = "registry.example/web:1", ports = [{ name = "http", container_port = 8080 }] }]
  }
}

resource "berth_service" "web" {
  name     = "web"
  type     = %[1]q
  selector = { app = "web" }
  ports = [
    { name = "http", port = 80, target_port = "http" },
    %[2]s
  ]
}

data "berth_service_endpoints" "web" {
  name       = berth_service.web.name
  depends_on = [berth_deployment.web]
}

data "berth_nodes" "all" {}
`, typ, extraPort)
}

func TestAccServiceCreateImportUpdateKeepsNodePorts(t *testing.T) {
	c := startCluster(t, "n1", "n2")
	var nodePort string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: serviceConfig(c, "NodePort", ""),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("berth_service.web", tfjsonpath.New("cluster_ip"), knownvalue.NotNull()),
					statecheck.ExpectKnownValue("data.berth_nodes.all", tfjsonpath.New("nodes"), knownvalue.ListSizeExact(2)),
					statecheck.ExpectKnownValue("data.berth_nodes.all", tfjsonpath.New("nodes").AtSliceIndex(0).AtMapKey("ready"), knownvalue.Bool(true)),
				},
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttrWith("berth_service.web", "ports.0.node_port", func(v string) error { nodePort = v; return nil }),
					resource.TestCheckResourceAttr("data.berth_nodes.all", "nodes.0.name", "n1"),
				),
			},
			{
				// The endpoints controller has caught up by the next refresh.
				Config: serviceConfig(c, "NodePort", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("berth_service.web", plancheck.ResourceActionNoop)},
				},
			},
			{
				ResourceName:      "berth_service.web",
				ImportState:       true,
				ImportStateId:     "default/web",
				ImportStateVerify: true,
			},
			{
				Config: serviceConfig(c, "NodePort", `{ name = "metrics", port = 9090, protocol = "TCP" },`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("berth_service.web", plancheck.ResourceActionUpdate)},
				},
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttrWith("berth_service.web", "ports.0.node_port", func(v string) error {
						if v != nodePort {
							return fmt.Errorf("node port changed from %s to %s", nodePort, v)
						}
						return nil
					}),
					resource.TestCheckResourceAttr("berth_service.web", "ports.1.target_port", "9090"),
				),
			},
			{
				Config: serviceConfig(c, "ClusterIP", ""),
				Check:  resource.TestCheckNoResourceAttr("berth_service.web", "ports.0.node_port"),
			},
		},
	})
}
