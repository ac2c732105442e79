resource "berth_cluster" "this" {
  control_plane_hosts = {
    cp-1 = { address = "198.51.100.10" }
    cp-2 = { address = "198.51.100.11" }
    cp-3 = {
      address  = "203.0.113.20"
      user     = "admin"
      host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDxeoW3ahpxJu0sKV5M4Hj4R0w3XGB3fIDk6kP1fvn2k"
      jump_host = {
        address = "bastion.example.net"
      }
    }
  }

  image_path   = berth_node_image.this.path
  image_digest = berth_node_image.this.digest

  plain_http_registries = ["registry.internal:5000"]
  snapshot_path         = "backups/etcd.snapshot"
  drain_timeout         = "5m"
}

# A second provider that manages workloads on the new cluster.
provider "berth" {
  alias              = "cluster"
  endpoints          = berth_cluster.this.endpoints
  ca_certificate     = berth_cluster.this.ca_certificate
  client_certificate = berth_cluster.this.client_certificate
  client_key         = berth_cluster.this.client_key
}
