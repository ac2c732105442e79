resource "berth_service" "web" {
  name     = "web"
  type     = "NodePort"
  selector = { app = "web" }
  ports = [{
    name        = "http"
    port        = 80
    target_port = "http"
  }]
}

output "web_node_port" {
  value = berth_service.web.ports[0].node_port
}
