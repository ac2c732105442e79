resource "berth_node_pool" "workers" {
  name = "workers"
  hosts = {
    worker-1 = { address = "198.51.100.20" }
    worker-2 = { address = "198.51.100.21" }
    worker-3 = { address = "198.51.100.22", labels = { disk = "ssd" } }
  }
  labels = { pool = "workers" }

  image_path   = berth_node_image.this.path
  image_digest = berth_node_image.this.digest

  max_unavailable = 1
  drain_timeout   = "5m"

  endpoints             = berth_cluster.this.endpoints
  ca_certificate        = berth_cluster.this.ca_certificate
  client_certificate    = berth_cluster.this.client_certificate
  client_key            = berth_cluster.this.client_key
  cluster_cidr          = berth_cluster.this.cluster_cidr
  service_cidr          = berth_cluster.this.service_cidr
  plain_http_registries = berth_cluster.this.plain_http_registries
}
