output "endpoints" {
  description = "Control-plane endpoints."
  value       = berth_cluster.this.endpoints
}

output "node_port" {
  description = "Node port the web service answers on, on every node."
  value       = berth_service.web.ports[0].node_port
}

output "admin_config" {
  description = "Client configuration for the berth CLI (BERTH_CONFIG)."
  sensitive   = true
  value = jsonencode({
    endpoints         = berth_cluster.this.endpoints
    caCertificate     = berth_cluster.this.ca_certificate
    clientCertificate = berth_cluster.this.client_certificate
    clientKey         = berth_cluster.this.client_key
  })
}
