resource "berth_pod" "debug" {
  name_prefix = "debug-"
  labels      = { app = "debug" }

  containers = [{
    name    = "shell"
    image   = "registry.example:5000/tools/shell:1.4"
    command = ["/bin/sleep", "infinity"]
    resources = {
      requests = { cpu = "100m", memory = "64Mi" }
      limits   = { memory = "128Mi" }
    }
  }]

  # A generated name lets the replacement start before the old pod stops.
  lifecycle {
    create_before_destroy = true
  }
}
