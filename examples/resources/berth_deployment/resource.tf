resource "berth_deployment" "web" {
  name     = "web"
  replicas = 3

  template = {
    labels = { app = "web" }
    containers = [{
      name  = "web"
      image = "registry.example:5000/team/web:v2"
      ports = [{ name = "http", container_port = 8080 }]
      env   = [{ name = "LOG_LEVEL", value = "info" }]
      resources = {
        requests = { cpu = "250m", memory = "128Mi" }
        limits   = { cpu = "1", memory = "256Mi" }
      }
      readiness_probe = {
        http_get = { path = "/healthz", port = "http" }
      }
      liveness_probe = {
        tcp_socket        = { port = "http" }
        failure_threshold = 5
      }
    }]
  }

  strategy = {
    max_surge       = "1"
    max_unavailable = "0"
    on_failure      = "Rollback"
  }
  progress_deadline_seconds = 120

  timeouts {
    update = "15m"
  }
}
