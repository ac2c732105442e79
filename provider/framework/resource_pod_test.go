package framework_test

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func podConfig(c *testCluster, image, cpu string) string {
	return c.providerConfig() + fmt.Sprintf(`
resource "berth_pod" "web" {
  name   = "web"
  labels = { app = "web" }
  containers = [{
    name  = "web"
    image = %[1]q
    args  = ["-listen", ":8080"]
    env   = [{ name = "MODE", value = "test" }]
    ports = [{ name = "http", container_port = 8080 }]
    resources = {
      requests = { cpu = %[2]q, memory = "524288Ki" }
      limits   = { cpu = "1", memory = "1Gi" }
    }
    readiness_probe = {
      http_get = { port = "http", path = "/healthz" }
    }
  }]
}
`, image, cpu)
}

func TestAccPodCreateImportReplaceDestroy(t *testing.T) {
	c := startCluster(t, "n1")
	var firstUID string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: podConfig(c, "registry.example/web:1", "0.5"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("berth_pod.web", tfjsonpath.New("phase"), knownvalue.StringExact("Running")),
					statecheck.ExpectKnownValue("berth_pod.web", tfjsonpath.New("node_name"), knownvalue.StringExact("n1")),
					statecheck.ExpectKnownValue("berth_pod.web", tfjsonpath.New("id"), knownvalue.StringExact("default/web")),
					// The spelling the user chose stays, though the control plane stores 500m and 1Gi.
					statecheck.ExpectKnownValue("berth_pod.web", tfjsonpath.New("containers").AtSliceIndex(0).AtMapKey("resources").AtMapKey("requests").AtMapKey("cpu"), knownvalue.StringExact("0.5")),
				},
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttrWith("berth_pod.web", "uid", func(v string) error { firstUID = v; return nil }),
					resource.TestCheckResourceAttr("berth_pod.web", "containers.0.readiness_probe.period_seconds", "10"),
				),
			},
			{
				// The same amount spelt differently is no change.
				Config: podConfig(c, "registry.example/web:1", "500m"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				ResourceName:            "berth_pod.web",
				ImportState:             true,
				ImportStateId:           "default/web",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"containers.0.resources.requests.cpu", "containers.0.resources.requests.memory", "resource_version", "phase"},
			},
			{
				Config: podConfig(c, "registry.example/web:2", "500m"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("berth_pod.web", plancheck.ResourceActionReplace)},
				},
				Check: resource.TestCheckResourceAttrWith("berth_pod.web", "uid", func(v string) error {
					if v == firstUID {
						return fmt.Errorf("uid %s did not change: the pod was not replaced", v)
					}
					return nil
				}),
			},
		},
	})
}

func TestAccPodNamePrefixReplacesCreateBeforeDestroy(t *testing.T) {
	c := startCluster(t, "n1")
	cfg := func(image string) string {
		return c.providerConfig() + fmt.Sprintf(`
resource "berth_pod" "web" {
  name_prefix = "web-"
  containers  = [{ name = "web", image = %q }]
  lifecycle { create_before_destroy = true }
}
`, image)
	}
	var firstName string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: cfg("registry.example/web:1"),
				Check: resource.ComposeTestCheckFunc(
					resource.TestMatchResourceAttr("berth_pod.web", "name", regexp.MustCompile(`^web-[a-z0-9]+$`)),
					resource.TestCheckResourceAttrWith("berth_pod.web", "name", func(v string) error { firstName = v; return nil }),
				),
			},
			{
				Config: cfg("registry.example/web:2"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("berth_pod.web", plancheck.ResourceActionReplace)},
				},
				Check: resource.TestCheckResourceAttrWith("berth_pod.web", "name", func(v string) error {
					if v == firstName {
						return fmt.Errorf("replacement kept the name %s", v)
					}
					return nil
				}),
			},
		},
	})
}

func TestAccPodThatCannotStartFailsWithItsReasons(t *testing.T) {
	c := startCluster(t, "n1")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{{
			Config: c.providerConfig() + `resource "berth_pod" "web" {
  name       = "web"
  containers = [{ name = "web", image = "registry.example/web:bad" }]
}
`,
			ExpectError: regexp.MustCompile(`(?s)CrashLoopBackOff.*cannot open /etc/web.conf`),
		}},
	})
}
