data "berth_service_endpoints" "web" {
  name      = "web"
  namespace = "default"
}

output "web_pod_ips" {
  value = data.berth_service_endpoints.web.addresses[*].ip
}
