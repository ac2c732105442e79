package framework_test

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/berth-io/berth/control/api"
)

func deploymentConfig(c *testCluster, image string, replicas int, extra string) string {
	return c.providerConfig() + fmt.Sprintf(`
resource "berth_deployment" "web" {
  name     = "web"
  replicas = %[2]d
  progress_deadline_seconds = 3
  template = {
    labels = { app = "web" }
    containers = [{
      name  = "web"
      image = %[1]q
      ports = [{ name = "http", container_port = 8080 }]
      resources = { requests = { cpu = "0.25" } }
    }]
  }
  %[3]s
}
`, image, replicas, extra)
}

func TestAccDeploymentCreateImportUpdateRollsOut(t *testing.T) {
	c := startCluster(t, "n1", "n2")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: deploymentConfig(c, "registry.example/web:1", 2, ""),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("berth_deployment.web", tfjsonpath.New("rollout_state"), knownvalue.StringExact("Complete")),
					statecheck.ExpectKnownValue("berth_deployment.web", tfjsonpath.New("live_revision"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue("berth_deployment.web", tfjsonpath.New("available_replicas"), knownvalue.Int64Exact(2)),
					statecheck.ExpectKnownValue("berth_deployment.web", tfjsonpath.New("selector"), knownvalue.MapExact(map[string]knownvalue.Check{"app": knownvalue.StringExact("web")})),
					statecheck.ExpectKnownValue("berth_deployment.web", tfjsonpath.New("strategy").AtMapKey("max_surge"), knownvalue.StringExact(api.DefaultMaxSurge)),
				},
			},
			{
				ResourceName:            "berth_deployment.web",
				ImportState:             true,
				ImportStateId:           "default/web",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"template.containers.0.resources.requests.cpu"},
			},
			{
				Config: deploymentConfig(c, "registry.example/web:2", 3, `strategy = { max_surge = "1", max_unavailable = "0" }`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("berth_deployment.web", plancheck.ResourceActionUpdate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("berth_deployment.web", tfjsonpath.New("rollout_state"), knownvalue.StringExact("Complete")),
					statecheck.ExpectKnownValue("berth_deployment.web", tfjsonpath.New("live_revision"), knownvalue.Int64Exact(2)),
					statecheck.ExpectKnownValue("berth_deployment.web", tfjsonpath.New("available_replicas"), knownvalue.Int64Exact(3)),
				},
			},
			{
				// A change made outside Terraform shows up as drift.
				PreConfig: func() {
					d := c.deployment("default", "web")
					n := int32(1)
					d.Spec.Replicas = &n
					if err := c.cli.Update(t.Context(), d); err != nil {
						t.Fatal(err)
					}
				},
				Config:             deploymentConfig(c, "registry.example/web:2", 3, `strategy = { max_surge = "1", max_unavailable = "0" }`),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
		},
	})
}

func TestAccDeploymentFailedRolloutIsNeverRecordedAsApplied(t *testing.T) {
	c := startCluster(t, "n1", "n2")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: deploymentConfig(c, "registry.example/web:1", 2, "")},
			{
				Config:      deploymentConfig(c, "registry.example/web:bad", 2, ""),
				ExpectError: regexp.MustCompile(`(?s)rolled\s+deployment\s+default/web\s+back:\s+revision\s+1\s+is\s+live.*CrashLoopBackOff.*cannot open /etc/web.conf`),
			},
			{
				// The state holds the rolled-back template, so the change
				// shows again; the old revision keeps serving.
				Config:             deploymentConfig(c, "registry.example/web:bad", 2, ""),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("berth_deployment.web", "template.containers.0.image", "registry.example/web:1"),
					resource.TestCheckResourceAttr("berth_deployment.web", "rollout_state", "RolledBack"),
					func(*terraform.State) error {
						d := c.deployment("default", "web")
						if d.Status.LiveRevision != 1 || d.Spec.Template.Spec.Containers[0].Image != "registry.example/web:1" {
							return fmt.Errorf("live revision %d with image %s, want revision 1 with web:1", d.Status.LiveRevision, d.Spec.Template.Spec.Containers[0].Image)
						}
						return nil
					},
				),
			},
		},
	})
}

func TestAccDeploymentPausedRolloutShowsAsPaused(t *testing.T) {
	c := startCluster(t, "n1")
	pause := `strategy = { on_failure = "Pause" }`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: deploymentConfig(c, "registry.example/web:1", 1, pause)},
			{
				Config:      deploymentConfig(c, "registry.example/web:bad", 1, pause),
				ExpectError: regexp.MustCompile(`(?s)is\s+paused\s+where\s+it\s+stopped:\s+revision\s+1\s+is\s+live.*CrashLoopBackOff`),
			},
			{
				Config:             deploymentConfig(c, "registry.example/web:bad", 1, pause),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
		},
	})
}

func TestAccDeploymentInvalidConfigNamesTheAttribute(t *testing.T) {
	accPrereqs(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: `
resource "berth_deployment" "web" {
  name = "web"
  template = {
    labels = { app = "web" }
    containers = [{
      name  = "web"
      image = "registry.example/web:1"
      ports = [{ container_port = 8080 }, { container_port = 70000 }]
    }]
  }
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`template\.containers\[0\]\.ports\[1\]\.container_port:\s+must\s+be\s+1-65535,\s+got\s+70000`),
			},
			{
				Config: `
resource "berth_deployment" "web" {
  name = "web"
  strategy = { max_surge = "0", max_unavailable = "0" }
  template = {
    labels = { app = "web" }
    containers = [{ name = "web", image = "registry.example/web:1" }]
  }
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`strategy:\s+maxSurge\s+and\s+maxUnavailable\s+must\s+not\s+both\s+be\s+0`),
			},
			{
				// Labels unknown while the configuration is validated
				// (count.index): the selector they feed is not judged yet.
				Config: `
resource "berth_deployment" "web" {
  count = 2
  name  = "web-${count.index}"
  template = {
    labels     = { app = "web-${count.index}" }
    containers = [{ name = "web", image = "registry.example/web:1" }]
  }
}
`,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
		},
	})
}
